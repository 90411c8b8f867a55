"""Lesson 1.2: next-token cross-entropy with padding, backward, one optimizer step."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：理解 next-token prediction 的 label 怎么取，padding 怎么用 `ignore_index` 排除，
    然后 `backward()` 让每个参数都得到梯度，并用一步优化器更新让 loss 下降。

    **学完后你能自测**：
    - [ ] 说清楚为什么是 `logits[:, :-1]` 对 `input_ids[:, 1:]`；
    - [ ] 把 logits 展平成 `(N, V)`、labels 展平成 `(N,)` 交给 `F.cross_entropy`；
    - [ ] `loss` 是正数，且接近 ln(6400) ≈ 8.76，知道为什么；
    - [ ] `backward()` 之后骨干和 `lm_head` 的每个参数 `.grad` 都不是 None；
    - [ ] 写出 `zero_grad → 前向 → backward → step` 的一步训练，并看到 loss 下降。
    """),
    md("""
    ## 0. 准备：和 1.1 一样的模型与 lm_head

    每个 notebook 都是独立的，所以先用同样的种子重建 1.1 的骨干网络和 `lm_head`。
    """),
    code("""
    import math

    import matplotlib.pyplot as plt
    import torch
    import torch.nn.functional as F
    from torch import nn

    from diy import DIYModel
    from diy.checks import check_backward, check_next_token_loss, check_train_step
    from diy.plotting import zh_or_en  # 图中文字：有中文字体用中文，没有就用英文

    vocab_size, hidden_size, num_layers, num_heads, max_seq_len, dropout = 6400, 256, 2, 4, 128, 0.1

    torch.manual_seed(0)
    model = DIYModel(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)
    lm_head = nn.Linear(hidden_size, vocab_size, bias=False)
    print("model + lm_head ready:", tuple(lm_head.weight.shape))
    """),
    md("""
    ## 1. 一个真的带 padding 的 batch

    真实数据长短不一，要把短序列在右边补上 `padding_id`，凑成同样长度，这叫**右 padding**。
    我们约定 `padding_id = 0`，真实 token 从 1 开始取，这样 0 只会出现在 padding 位置。
    `seq_lengths` 记录每条序列的真实长度：第 0 行 10 个真实 token，第 1 行只有 6 个。
    """),
    code("""
    padding_id = 0
    seq_lengths = torch.tensor([10, 6])                       # (B,)
    batch_size, seq_len = 2, 10

    input_ids = torch.randint(1, vocab_size, (batch_size, seq_len))  # (B, L)，真实 token 不含 0
    positions = torch.arange(seq_len)                                  # (L,)
    is_padding = positions[None, :] >= seq_lengths[:, None]            # (B, L)
    input_ids[is_padding] = padding_id
    print("input_ids.shape:", tuple(input_ids.shape))
    print(input_ids)
    print("seq_lengths:", seq_lengths.tolist())
    """),
    md("""
    前向时把 `seq_lengths` 也交给骨干网络（右 padding 加上因果掩码，真实位置本来就看不到后面的 padding；
    `seq_lengths` 还让 padding 位置只关注真实 token）。然后过 `lm_head` 得到 logits。
    """),
    code("""
    hidden_states = model(input_ids, seq_lengths=seq_lengths, is_training=True)  # (B, L, hidden_size)
    logits = lm_head(hidden_states)                                              # (B, L, vocab_size)
    print("hidden_states.shape:", tuple(hidden_states.shape))
    print("logits.shape:       ", tuple(logits.shape))
    """),
    md("""
    ## 2. next-token 的 label：错开一位

    因果语言模型在位置 `t` 只看得到 token `0..t`，它要预测的是**下一个** token `t+1`。所以：
    - 预测用 `logits[:, :-1]`：去掉最后一个位置（它后面没有「下一个」了）；
    - 答案用 `input_ids[:, 1:]`：去掉第一个 token（没有谁预测它）。

    两者都是 `L-1 = 9` 个位置，一一对应。看第 1 行（真实长度 6）的配对：
    """),
    code("""
    row = 1
    print(" t | 模型已看到的最后一个 token | 要预测的下一个 token")
    for t in range(seq_len - 1):
        target = input_ids[row, t + 1].item()
        note = "  ← padding，不计入 loss" if target == padding_id else ""
        print(f"{t:2d} | {input_ids[row, t].item():24d} | {target:18d}{note}")
    """),
    md("""
    **另一种取法**（学习计划里提到的）：labels 就等于 `input_ids`、长度相同、不错位。那样位置 `t` 的目标 token 就在它自己的输入里，
    模型只要「抄」当前 token 就能把 loss 降到 0，学不到任何「预测下一个」的能力。
    Hugging Face 的模型接受 `labels=input_ids`，是因为它在**内部**做了同样的错位；无论哪种写法，真正计算 loss 时一定要错开一位。

    ## 3. 展平：F.cross_entropy 要 (N, V) 和 (N,)

    `F.cross_entropy(input, target)` 把 `input` 的**第 1 维**当作类别维。三维的 `(B, L-1, V)` 会被误解，所以要先展平：
    - logits：`(B, L-1, V)` → `(N, V)`，`N = B × (L-1) = 18`；
    - labels：`(B, L-1)` → `(N,)`，dtype 必须是整数 `torch.long`。

    注意：切片 `logits[:, :-1]` 在内存里**不连续**，对它用 `.view()` 会报错，用 `.reshape()`。
    """),
    code("""
    sliced = logits[:, :-1]   # (B, L-1, V)
    print("logits[:, :-1].shape:", tuple(sliced.shape), " 连续吗:", sliced.is_contiguous())
    print("input_ids[:, 1:].shape:", tuple(input_ids[:, 1:].shape), input_ids.dtype)
    print("N =", batch_size * (seq_len - 1))
    """),
    md("""
    ## 4. ✏️ 练习 1.2a：next-token 交叉熵

    补全 `next_token_loss(logits, input_ids, padding_id)`，返回一个标量张量：
    1. 错位：`logits[:, :-1, :]` 和 `input_ids[:, 1:]`；
    2. 展平成 `(N, V)` 和 `(N,)`（`V` 用 `logits.shape[-1]`，不要写死 6400）；
    3. `F.cross_entropy(..., ignore_index=padding_id)`：label 等于 `padding_id` 的位置不计入 loss。

    不要先做 softmax（`cross_entropy` 内部会做 log_softmax），也不要 `.item()`（那样就断开了计算图）。
    """),
    exercise(
        solution="""
        # ✏️ 练习 1.2a
        def next_token_loss(logits, input_ids, padding_id):
            \"\"\"logits (B, L, V)、input_ids (B, L) -> 标量 loss（padding 位置不计入）。\"\"\"
            vocab_size = logits.shape[-1]
            shifted_logits = logits[:, :-1, :].reshape(-1, vocab_size)  # (N, V)
            shifted_labels = input_ids[:, 1:].reshape(-1)                # (N,)
            return F.cross_entropy(shifted_logits, shifted_labels, ignore_index=padding_id)
        """,
        stub="""
        # ✏️ 练习 1.2a
        def next_token_loss(logits, input_ids, padding_id):
            \"\"\"logits (B, L, V)、input_ids (B, L) -> 标量 loss（padding 位置不计入）。\"\"\"
            raise NotImplementedError("✏️ 错位、展平，再 F.cross_entropy(..., ignore_index=padding_id)")
        """,
    ),
    check("""
    # 自检
    next_token_loss = check_next_token_loss(next_token_loss)
    """),
    md("""
    ## 5. padding 真的被排除了吗？

    用 `reduction="none"` 看每个位置各自的 loss：被 `ignore_index` 忽略的位置 loss 恰好是 0，
    而平均值只在真实位置上求——它和 `next_token_loss` 的结果相同。如果把 padding 也算进去，loss 就变了：
    模型会被训练去「预测 padding」。
    """),
    code("""
    shifted_logits = logits[:, :-1].reshape(-1, vocab_size)   # (N, V)
    shifted_labels = input_ids[:, 1:].reshape(-1)             # (N,)
    per_position = F.cross_entropy(shifted_logits, shifted_labels, ignore_index=padding_id,
                                   reduction="none").view(batch_size, seq_len - 1)  # (B, L-1)
    is_real = input_ids[:, 1:] != padding_id                  # (B, L-1)
    print("每个位置的 loss（第 1 行后 4 个是 padding 目标）:")
    for b in range(batch_size):
        print("  ", " ".join(f"{v:5.2f}" for v in per_position[b].tolist()))
    print(f"真实目标个数: {is_real.sum().item()} / {is_real.numel()}")
    mean_over_real = per_position[is_real].mean()
    loss_ignored = next_token_loss(logits, input_ids, padding_id)
    loss_counting_padding = F.cross_entropy(shifted_logits, shifted_labels)
    print(f"真实位置上的平均:       {mean_over_real.item():.4f}")
    print(f"next_token_loss:        {loss_ignored.item():.4f}")
    print(f"把 padding 也算进去:    {loss_counting_padding.item():.4f}")
    print("被忽略的位置 loss 全是 0:", bool((per_position[~is_real] == 0).all()))
    print("两者相等:", torch.allclose(mean_over_real, loss_ignored))
    """),
    md("""
    把每个位置的 loss 画成一张图，padding 目标的位置留白（灰色）：
    """),
    code("""
    shown = per_position.detach().clone()
    shown[~is_real] = float("nan")                      # ignored positions: drawn as gaps
    fig, ax = plt.subplots(figsize=(8, 2.2))
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad("lightgray")
    image = ax.imshow(shown.numpy(), cmap=cmap, aspect="auto")
    ax.set_xlabel(zh_or_en("位置 t（预测第 t+1 个 token）", "position t (predicting token t+1)"))
    ax.set_ylabel(zh_or_en("行", "row"))
    ax.set_yticks(range(batch_size))
    ax.set_title(zh_or_en("每个位置的 loss；灰色 = padding 目标，被忽略",
                       "Per-position loss; gray = padding target, ignored"))
    fig.colorbar(image, ax=ax, label="loss")
    plt.show()
    """),
    md("""
    ## 6. ✏️ 练习 1.2b：算 loss，然后 backward

    用你的 `next_token_loss` 在这批数据上算出 `loss`，再调用 `loss.backward()`。
    反向传播会给骨干网络和 `lm_head` 的**每一个**参数填上 `.grad`。
    （backward 之后计算图就释放了：想重跑这个单元格，先重跑上面算 `logits` 的前向单元格，
    否则会报 “Trying to backward through the graph a second time”。）
    """),
    exercise(
        solution="""
        # ✏️ 练习 1.2b
        loss = next_token_loss(logits, input_ids, padding_id)
        loss.backward()
        """,
        stub="""
        # ✏️ 练习 1.2b
        loss = None  # ✏️ 用 next_token_loss 算 loss，再对它调用 backward()
        """,
    ),
    check("""
    # 自检：loss 是否正确、每个参数是否都有梯度
    loss = check_backward(model, lm_head, loss, logits, input_ids, padding_id)
    """),
    md("""
    ## 7. 为什么 loss ≈ ln(6400)？

    一个什么都没学的模型对 6400 个 token 几乎一视同仁，每个概率约 1/6400，交叉熵就是 −ln(1/6400) = ln 6400 ≈ 8.76。
    实际略高一点：logits 不是全 0，而是有一定的随机起伏（标准差 σ），平均起来 loss ≈ ln V + σ²/2。
    最后一层 RMSNorm 让每个 hidden 元素的均方为 1，`nn.Linear` 的默认初始化给 σ² ≈ 1/3，所以约 8.76 + 0.17 ≈ 8.93。
    如果一开始的 loss 远大于它（比如几十、几百），多半是初始化或 label 有问题。
    """),
    code("""
    sigma = logits.detach().std().item()
    print(f"这个 batch 的 loss    = {loss.item():.4f}   （只有 14 个目标）")
    print(f"ln(vocab_size)       = {math.log(vocab_size):.4f}")
    print(f"logits 的标准差 σ     = {sigma:.3f}")
    print(f"ln V + σ²/2 (估计)   = {math.log(vocab_size) + sigma ** 2 / 2:.4f}")
    """),
    md("""
    14 个目标太少，平均值有不小的随机性（可能高于也可能低于估计）。换一个 16 × 128 的大 batch 再量一次，
    平均就稳定在估计值附近了（eval 模式、不需要梯度）：
    """),
    code("""
    model.eval()
    with torch.no_grad():
        big_ids = torch.randint(1, vocab_size, (16, 128))                 # (16, 128)
        big_logits = lm_head(model(big_ids, is_training=True))            # (16, 128, V)
        big_loss = next_token_loss(big_logits, big_ids, padding_id)
    model.train()
    print(f"16×128 个随机 token 上的平均 loss = {big_loss.item():.4f}")
    """),
    md("""
    每个参数张量的梯度范数（横轴是对数刻度）。不同参数的梯度能差两个数量级：RMSNorm 的权重是一维的，梯度最小，但不是零。
    每一条都存在，说明每个参数都参与了 loss 的计算。
    """),
    code("""
    named = [("lm_head.weight", lm_head.weight)] + list(model.named_parameters())
    names = [name for name, _ in named]
    grad_norms = [p.grad.norm().item() for _, p in named]
    print("有梯度的参数张量:", sum(p.grad is not None for _, p in named), "/", len(named))
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.barh(range(len(names)), grad_norms)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel(zh_or_en("梯度的 L2 范数（对数刻度）", "gradient L2 norm (log scale)"))
    ax.set_title(zh_or_en("每个参数张量都得到了梯度", "Every parameter tensor gets a gradient"))
    fig.tight_layout()
    plt.show()
    """),
    md("""
    ## 8. ✏️ 练习 1.2c：一步训练

    真正训练时每一步都是同样的四件事：
    1. `optimizer.zero_grad()`——PyTorch 的梯度是**累加**的，不清零就会把上一步的梯度也加进来
       （上面 1.2b 刚留下了一份梯度！）；
    2. 前向：`model(input_ids, seq_lengths=seq_lengths, is_training=True)` → `lm_head` → `next_token_loss`；
    3. `loss.backward()`；
    4. `optimizer.step()`：按梯度更新参数。

    补全 `train_step`，返回这一步的 `loss`。
    """),
    exercise(
        solution="""
        # ✏️ 练习 1.2c
        def train_step(model, lm_head, optimizer, input_ids, seq_lengths, padding_id):
            \"\"\"一步训练：zero_grad → 前向 → loss → backward → step，返回 loss。\"\"\"
            optimizer.zero_grad()
            hidden_states = model(input_ids, seq_lengths=seq_lengths, is_training=True)  # (B, L, C)
            logits = lm_head(hidden_states)                                              # (B, L, V)
            loss = next_token_loss(logits, input_ids, padding_id)
            loss.backward()
            optimizer.step()
            return loss
        """,
        stub="""
        # ✏️ 练习 1.2c
        def train_step(model, lm_head, optimizer, input_ids, seq_lengths, padding_id):
            \"\"\"一步训练：zero_grad → 前向 → loss → backward → step，返回 loss。\"\"\"
            raise NotImplementedError("✏️ 四步：zero_grad、前向算 loss、backward、step")
        """,
    ),
    check("""
    # 自检
    train_step = check_train_step(train_step)
    """),
    md("""
    在同一个 batch 上走一步 AdamW（学习率 1e-3），前后各用 eval 模式（关掉 dropout）量一次 loss：
    """),
    code("""
    def evaluate_loss():
        model.eval()
        with torch.no_grad():
            hidden = model(input_ids, seq_lengths=seq_lengths, is_training=True)
            value = next_token_loss(lm_head(hidden), input_ids, padding_id).item()
        model.train()
        return value

    optimizer = torch.optim.AdamW(list(model.parameters()) + list(lm_head.parameters()), lr=1e-3)
    before = evaluate_loss()
    step_loss = train_step(model, lm_head, optimizer, input_ids, seq_lengths, padding_id)
    after = evaluate_loss()
    print(f"更新前 loss: {before:.4f}")
    print(f"更新后 loss: {after:.4f}")
    print("loss 下降了:", after < before)
    """),
    md("""
    ## 小结

    你现在能：
    - 用 `logits[:, :-1]` 对 `input_ids[:, 1:]` 构造 next-token 的预测与答案，并说明为什么必须错位；
    - 把它们展平成 `(N, V)` 与 `(N,)`，用 `F.cross_entropy(..., ignore_index=padding_id)` 排除 padding；
    - 解释随机模型的 loss 为什么约等于 ln(6400) ≈ 8.76；
    - `loss.backward()` 让每个参数都有梯度，并写出 `zero_grad → 前向 → backward → step` 的一步训练。

    **下一节 1.3**：把骨干和 `lm_head` 封装成一个类 `DIYForCausalLM`，训练和生成都只调用它。
    """),
]

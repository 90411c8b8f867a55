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

    from diy import CharTokenizer, load_passage
    from diy.backbone import backbone_class, describe
    from diy.classroom.checks import check_backward, check_next_token_loss, check_train_step
    from diy.plotting import zh_or_en  # 图中文字：有中文字体用中文，没有就用英文

    DIYModel = backbone_class()  # 课程的 diy.DIYModel；设了 DIY_BACKBONE 时是你自己的 DIYModel.py
    vocab_size, hidden_size, num_layers, num_heads, max_seq_len, dropout = 6400, 256, 2, 4, 128, 0.1

    torch.manual_seed(0)
    model = DIYModel(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)
    lm_head = nn.Linear(hidden_size, vocab_size, bias=False)
    print("model + lm_head ready:", tuple(lm_head.weight.shape))
    print(describe())  # 这门课此刻跑在哪个骨干网络上（见 README「已经有自己的 DIYModel？」）
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
    随机 id 看不出意思。用第二步的课程分词器（一个字一个 id）把课程短文里的一句话和一个更短的句子放进同一个 batch，
    短的那行右 padding 到同样长度，再列出「输入字 → 目标字」：
    """),
    code("""
    tokenizer = CharTokenizer()
    sentences = [load_passage()[:9], "守灯塔的老人"]
    rows = [tokenizer.encode(text) for text in sentences]
    width = max(len(r) for r in rows)
    text_ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])  # (2, 9)
    print("text_ids.shape:", tuple(text_ids.shape))
    for b, r in enumerate(text_ids.tolist()):
        pairs = []
        for t in range(width - 1):
            target = tokenizer.id_to_token[r[t + 1]]
            pairs.append(f"{tokenizer.id_to_token[r[t]]}→{target}" if r[t + 1] != tokenizer.pad_token_id
                         else f"{tokenizer.id_to_token[r[t]]}→(pad，忽略)")
        print(f"第 {b} 行:", "  ".join(pairs))
    """),
    md("""
    **另一种取法**（学习计划里提到的）：labels 就等于 `input_ids`、长度相同、不错位。那样位置 `t` 的目标 token 就在它自己的输入里，
    模型只要「抄」当前 token 就能把 loss 降到 0，学不到任何「预测下一个」的能力。
    Hugging Face 的模型接受 `labels=input_ids`，是因为它在**内部**做了同样的错位；无论哪种写法，真正计算 loss 时一定要错开一位。
    """),
    md("""
    ## 3. 交叉熵：正确 token 的概率取负对数

    **交叉熵**（cross-entropy）衡量「模型给正确答案的概率有多低」：某个位置上，先把 logits 做 softmax 得到概率，
    loss 就是 **−log p(正确的下一个 token)**。正确 token 的概率是 1 时 loss 为 0；概率越小，loss 越大。
    先手算一个位置，再和 PyTorch 的 `F.cross_entropy` 对照（`log_softmax` 一步算出 log 概率，数值上比先 softmax 再 log 稳定）：
    """),
    code("""
    position_logits = logits[0, 2]                        # (V,)：第 0 行位置 2 的预测
    target = input_ids[0, 3]                              # 它要预测的下一个 token
    log_probs = position_logits.log_softmax(dim=-1)       # (V,)
    by_hand = -log_probs[target]
    by_torch = F.cross_entropy(position_logits[None], target[None])   # (1, V) 与 (1,)
    print(f"p(正确 token) = {log_probs[target].exp().item():.6f}")
    print(f"手算 −log p    = {by_hand.item():.4f}")
    print(f"F.cross_entropy = {by_torch.item():.4f}   相同: {torch.allclose(by_hand, by_torch)}")
    """),
    md("""
    ## 4. 展平：F.cross_entropy 要 (N, V) 和 (N,)

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
    ## 5. ✏️ 练习 1.2a：next-token 交叉熵

    补全 `next_token_loss(logits, input_ids, padding_id)`，返回一个标量张量：
    1. 错位：`logits[:, :-1, :]` 和 `input_ids[:, 1:]`；
    2. 展平成 `(N, V)` 和 `(N,)`（`V` 用 `logits.shape[-1]`，不要写死 6400）；
    3. `F.cross_entropy(..., ignore_index=padding_id)`：label 等于 `padding_id` 的位置不计入 loss。

    不要先做 softmax（`cross_entropy` 内部会做 log_softmax），也不要 `.item()`：`.item()` 得到的是普通的 Python 数，
    和**计算图**（前向时 PyTorch 记下的「每个张量由谁、怎样算出」）断开了，之后就没法 `backward()`。
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
    ## 6. padding 真的被排除了吗？

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
    """),
    md("""
    平均值只在真实位置上求，正好就是 `next_token_loss`；把 padding 也算进去，结果就变了：
    """),
    code("""
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
    **−100 的约定**：这里用 `ignore_index=padding_id`，因为我们保证了 0 只出现在 padding 位置。但 padding 的 id 也可能是一个真 token：
    有的分词器让 padding 和 `<eos>`（一段话结束）共用一个 id——那样连真正的 `<eos>` 目标也会被忽略，模型永远学不会「该停了」。
    所以通行的做法是：labels 先复制 `input_ids`，把 padding 位置改成 **−100**（它永远不会是真实的 token id），
    再用 `F.cross_entropy` 默认的 `ignore_index=-100`。第二步开始，课程的 `causal_lm_loss` 就用这个约定。
    """),
    code("""
    labels = input_ids.masked_fill(is_padding, -100)                 # (B, L)：padding 位置换成 -100
    loss_minus_100 = F.cross_entropy(logits[:, :-1].reshape(-1, vocab_size), labels[:, 1:].reshape(-1))
    print("labels 第 1 行:", labels[1].tolist())
    print(f"ignore_index=-100（默认）: {loss_minus_100.item():.4f}   与 next_token_loss 相同:",
          torch.allclose(loss_minus_100, loss_ignored))
    """),
    md("""
    ## 7. ✏️ 练习 1.2b：算 loss，然后 backward

    用你的 `next_token_loss` 和上面**已经算好的 `logits`**（不要再前向一次）算出 `loss`，再调用 `loss.backward()`。
    为什么不能重新前向？模型在 train 模式，dropout 每次前向都随机丢掉不同的激活，重新前向得到的 logits 和 loss 都会不同，
    自检对照的是上面那次前向。
    反向传播沿着计算图往回走，给骨干网络和 `lm_head` 的**每一个**参数填上 `.grad`。
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
    ## 8. 为什么 loss ≈ ln(6400)？

    一个什么都没学的模型对 6400 个 token 几乎一视同仁，每个概率约 1/6400，交叉熵就是 −ln(1/6400) = ln 6400 ≈ 8.76。
    如果一开始的 loss 远大于它（比如几十、几百），多半是初始化或 label 有问题。

    上面 1.2b 打印的 loss 是开着 dropout（train 模式）算的；下面 1.2c 的「更新前」用 eval 模式（关掉 dropout）量，两个数不一样，这是正常的。

    **选读：为什么实际略高一点？** logits 不是全 0，而是有随机起伏（标准差 σ）。loss = log Σ e^{z_i} − z_正确，
    而 z ~ N(0, σ²) 时 E[e^z] = e^{σ²/2}（对数正态分布的均值），所以 Σ e^{z_i} ≈ V·e^{σ²/2}，loss ≈ ln V + σ²/2。
    最后一层 **RMSNorm**（均方根归一化：把每个向量除以它各元素平方的平均值的平方根，再乘一个可学的缩放）让每个 hidden 元素的均方为 1，
    `nn.Linear` 的默认初始化给 σ² ≈ 1/3，所以约 8.76 + 0.17 ≈ 8.93。
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
        big_logits = lm_head(model(big_ids, is_training=False))           # (16, 128, V)；eval 就传 False
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
    ## 9. ✏️ 练习 1.2c：一步训练

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
    在同一个 batch 上走一步 **AdamW**（一种按每个参数梯度的历史大小自动调整步长的优化器，训练 Transformer 的标准选择；
    第二步还会用到它），学习率 1e-3，前后各用 eval 模式（关掉 dropout）量一次 loss：
    """),
    code("""
    def evaluate_loss():
        model.eval()
        with torch.no_grad():
            hidden = model(input_ids, seq_lengths=seq_lengths, is_training=False)   # eval 就传 False
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
    ## 先猜一猜，再运行

    1. 忘了 `ignore_index`（padding 也算进 loss），loss 会变大还是变小？
    2. padding 还是 0，但 `ignore_index` 写成了 −100（labels 没换成 −100），结果和「忘了 ignore_index」一样吗？
    3. 不清零梯度、同一个 loss 连续 backward 两次，`.grad` 变成一次的几倍？

    想好了再运行下一格。
    """),
    code("""
    model.eval()
    check_logits = lm_head(model(input_ids, seq_lengths=seq_lengths, is_training=False))  # eval 模式，可重复
    flat_logits = check_logits[:, :-1].reshape(-1, vocab_size)
    flat_labels = input_ids[:, 1:].reshape(-1)
    right = F.cross_entropy(flat_logits, flat_labels, ignore_index=padding_id)
    counting_padding = F.cross_entropy(flat_logits, flat_labels, ignore_index=-100)
    print(f"1. 正确 {right.item():.4f}，把 padding 也算进去 {counting_padding.item():.4f}：",
          "变大" if counting_padding > right else "变小")
    print("2. 和忘了 ignore_index 一样:", torch.equal(counting_padding, F.cross_entropy(flat_logits, flat_labels)))
    lm_head.weight.grad = None
    right.backward(retain_graph=True)
    once = lm_head.weight.grad.clone()
    right.backward()
    print(f"3. 两次 backward 后 .grad 是一次的 {(lm_head.weight.grad.norm() / once.norm()).item():.1f} 倍")
    model.train()
    """),
    md("""
    ## 常见错误

    | 症状 | 原因 | 修复 |
    | --- | --- | --- |
    | `view size is not compatible ...` | 切片 `logits[:, :-1]` 不连续 | 用 `.reshape(...)` |
    | `Expected target size ...` | 三维 logits 直接交给 `F.cross_entropy` | 先展平成 `(N, V)` 和 `(N,)` |
    | loss 很低、模型却学不会预测 | 没有错位（labels = input_ids） | `logits[:, :-1]` 对 `input_ids[:, 1:]` |
    | loss 被 padding 拉偏 | 忘了 `ignore_index`，或与 labels 里的 padding 值不一致 | `ignore_index=padding_id`，或 labels 换成 −100 |
    | `element 0 of tensors does not require grad` | 用了 `.item()` / `.detach()` / `no_grad()` | 直接返回 `F.cross_entropy` 的张量 |
    | loss 偏高、和 logits 对不上 | 先做了 softmax 再交给交叉熵 | 把 logits 直接交给 `F.cross_entropy` |
    | 1.2b 的 loss 和自检的不一样 | 重新前向了一次（dropout 开着） | 用已经算好的 `logits` |
    | `backward through the graph a second time` | 同一个计算图 backward 了两次 | 先重新前向 |
    | 更新量越来越大 | 忘了 `zero_grad()`（梯度累加） | 每一步开头 `optimizer.zero_grad()` |
    | 参数一点没变 | 忘了 `optimizer.step()`，或在 backward 之后又清零了梯度 | 顺序：zero_grad → 前向 → backward → step |

    ## 小结

    你现在能：
    - 手算一个位置的交叉熵（−log p(正确 token)），并和 `F.cross_entropy` 对上；
    - 用 `logits[:, :-1]` 对 `input_ids[:, 1:]` 构造 next-token 的预测与答案，并说明为什么必须错位；
    - 把它们展平成 `(N, V)` 与 `(N,)`，用 `F.cross_entropy(..., ignore_index=padding_id)` 排除 padding，说出 −100 约定的好处；
    - 解释随机模型的 loss 为什么约等于 ln(6400) ≈ 8.76；
    - `loss.backward()` 让每个参数都有梯度，并写出 `zero_grad → 前向 → backward → step` 的一步训练。

    **下一节 1.3**：把骨干和 `lm_head` 封装成一个类 `DIYForCausalLM`，训练和生成都只调用它。
    """),
]

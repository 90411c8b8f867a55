"""Lesson 1.3: wrap backbone + lm_head into DIYForCausalLM."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：把「骨干 + lm_head」收进一个类。从第二步起，训练和生成都只调用这个类，骨干网络保持不动。

    **学完后你能自测**：
    - [ ] `DIYForCausalLM` 里有 `self.model`（DIYModel）和 `self.lm_head`（nn.Linear，无 bias）；
    - [ ] `forward` 把参数原样交给骨干，训练时返回 `logits`，推理且 `use_cache=True` 时返回 `(logits, presents)`
      （学习计划允许这一步先只返回 `logits`，第三步生成时再返回 `presents`——自检两种都接受）；
    - [ ] 用它得到同样形状的 logits，重复 1.2 的 loss 和 backward，并证明结果和 1.2 **完全相同**。
    """),
    code("""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from diy import causal_lm_loss
    from diy.backbone import backbone_class, describe
    from diy.classroom.checks import check_causal_lm

    DIYModel = backbone_class()  # 课程的 diy.DIYModel；设了 DIY_BACKBONE 时是你自己的 DIYModel.py
    vocab_size, hidden_size, num_layers, num_heads, max_seq_len, dropout = 6400, 256, 2, 4, 128, 0.1
    torch.manual_seed(0)
    print("ready")
    print(describe())  # 这门课此刻跑在哪个骨干网络上（见 README「已经有自己的 DIYModel？」）
    """),
    md("""
    ## 1. ✏️ 练习 1.3：写出 DIYForCausalLM

    - `__init__(self, vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout=0.1)`：
      参数和 `DIYModel` 相同、同序。先调用 `super().__init__()`，再构造 `self.model = DIYModel(...)`
      和 `self.lm_head = nn.Linear(hidden_size, vocab_size, bias=False)`。名字必须是 `model` 和 `lm_head`：
      `state_dict` 的键（`model.*`、`lm_head.weight`）和后面的步骤都依赖它们。
    - `forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False, is_training=True)`：
      1. 把**所有**参数原样交给 `self.model(...)`；
      2. 推理且 `use_cache=True` 时，骨干返回的是 tuple `(hidden_states, presents)`，要先拆包；
      3. `logits = self.lm_head(hidden_states)`；
      4. 用了 cache 就 `return logits, presents`，否则 `return logits`。
    """),
    exercise(
        solution="""
        # ✏️ 练习 1.3
        class DIYForCausalLM(nn.Module):
            def __init__(self, vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout=0.1):
                super().__init__()
                self.model = DIYModel(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)
                self.lm_head = nn.Linear(hidden_size, vocab_size, bias=False)

            def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                        is_training=True):
                out = self.model(input_ids, seq_lengths=seq_lengths, past_key_values=past_key_values,
                                 use_cache=use_cache, is_training=is_training)
                if use_cache:
                    hidden_states, presents = out            # 推理路径：(hidden_states, presents)
                    return self.lm_head(hidden_states), presents
                return self.lm_head(out)                     # (B, L, vocab_size)
        """,
        stub="""
        # ✏️ 练习 1.3
        class DIYForCausalLM(nn.Module):
            def __init__(self, vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout=0.1):
                super().__init__()
                raise NotImplementedError("✏️ 构造 self.model 和 self.lm_head")

            def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                        is_training=True):
                raise NotImplementedError("✏️ 参数原样传给 self.model，拆包，再过 self.lm_head")
        """,
    ),
    check("""
    # 自检：会用另一组尺寸构造你的类，逐项对比训练路径、seq_lengths 和 KV cache
    DIYForCausalLM = check_causal_lm(DIYForCausalLM)
    """),
    md("""
    ## 2. 形状检查

    用课程超参数构造，在 1.1 那样的假数据上前向。
    """),
    code("""
    clm = DIYForCausalLM(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)
    input_ids = torch.randint(0, vocab_size, (2, 10))    # (B, L)
    logits = clm(input_ids, is_training=True)             # (B, L, vocab_size)
    print("input_ids.shape:", tuple(input_ids.shape))
    print("logits.shape:   ", tuple(logits.shape))
    print(f"参数量: {sum(p.numel() for p in clm.parameters()):,}")
    keys = list(clm.state_dict())
    print("state_dict 键:", keys[:2], "...", keys[-2:])
    """),
    md("""
    ## 3. 它和 1.2 是同一个计算

    重建 1.2 的骨干和 `lm_head`（同样的种子、同样带 padding 的 batch），把它们的权重拷进 `clm`。
    **`state_dict`** 是模型所有参数（和缓冲区）按名字组成的字典，比如 `model.embed_tokens.weight` → 张量；
    保存、加载、拷贝权重都用它。1.2 的骨干的键只要加上前缀 `model.`，再加上 `lm_head.weight`，`strict=True` 保证一个不多、一个不少。
    两边都切到 eval 模式关掉 dropout（调用时也传 `is_training=False`：和模式一致，见 1.1 开头），这样前向是确定的，可以逐元素比较。
    """),
    code("""
    torch.manual_seed(0)
    model = DIYModel(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)
    lm_head = nn.Linear(hidden_size, vocab_size, bias=False)

    padding_id = 0
    seq_lengths = torch.tensor([10, 6])
    input_ids = torch.randint(1, vocab_size, (2, 10))
    input_ids[torch.arange(10)[None, :] >= seq_lengths[:, None]] = padding_id

    weights = {f"model.{name}": value for name, value in model.state_dict().items()}
    weights["lm_head.weight"] = lm_head.weight.detach()
    clm.load_state_dict(weights, strict=True)
    print(f"拷贝了 {len(weights)} 个张量")
    """),
    md("""
    同样的输入、同样的 loss 公式（1.2 的错位 + 展平 + `ignore_index`）。因为是 eval 模式、同样的初始权重，
    这里的 loss 就是 1.2c 里「更新前」打印的那个数（不是 1.2b 那个开着 dropout 的数）：
    """),
    code("""
    def next_token_loss(logits, input_ids, padding_id):
        vocab_size = logits.shape[-1]
        return F.cross_entropy(logits[:, :-1].reshape(-1, vocab_size), input_ids[:, 1:].reshape(-1),
                               ignore_index=padding_id)

    model.eval()
    lm_head.eval()
    clm.eval()
    logits_12 = lm_head(model(input_ids, seq_lengths=seq_lengths, is_training=False))  # 1.2 的做法（eval 就传 False）
    logits_13 = clm(input_ids, seq_lengths=seq_lengths, is_training=False)            # 1.3 的做法
    loss_12 = next_token_loss(logits_12, input_ids, padding_id)
    loss_13 = next_token_loss(logits_13, input_ids, padding_id)
    print("logits 形状:", tuple(logits_13.shape))
    print("logits 完全相同:", torch.equal(logits_12, logits_13))
    print(f"loss 1.2 = {loss_12.item():.4f}   loss 1.3 = {loss_13.item():.4f}   相同: {torch.equal(loss_12, loss_13)}")
    """),
    md("""
    再各自 backward 一次，比较每个参数的梯度：
    """),
    code("""
    loss_12.backward()
    loss_13.backward()
    grads_12 = {f"model.{n}": p.grad for n, p in model.named_parameters()}
    grads_12["lm_head.weight"] = lm_head.weight.grad
    same = all(torch.equal(p.grad, grads_12[n]) for n, p in clm.named_parameters())
    print("有梯度的参数张量:", sum(p.grad is not None for p in clm.parameters()), "/",
          len(list(clm.parameters())))
    print("每个梯度都完全相同:", same)
    """),
    md("""
    `diy` 包里的 `causal_lm_loss(logits, labels)` 做的是同一件事，第二步会直接用它：
    - 它在**内部**错开一位，所以 labels 传**不错位**的、和 `input_ids` 一样长的张量（不要自己先切 `[:, 1:]`，否则就错位了两次）；
    - 用 PyTorch 默认的 `ignore_index=-100`（1.2 讲过为什么），所以 labels 要先把 padding 换成 -100；
    - 在 float32 里计算（和 Hugging Face 一样）。
    """),
    code("""
    labels = input_ids.masked_fill(input_ids == padding_id, -100)
    print(f"causal_lm_loss = {causal_lm_loss(logits_13, labels).item():.4f}")
    print("与 1.2 的写法一致:", torch.allclose(causal_lm_loss(logits_13, labels), loss_13))
    """),
    md("""
    ## 4. 推理路径与 KV cache（为第三步做准备）

    生成时一次只多一个 token。`is_training=False, use_cache=True` 时，骨干把每层注意力算出的 key 和 value 作为 **`presents`**
    （「到目前为止的缓存」）返回：每层一个 `(k, v)`，形状 `(B, num_heads, 已处理的长度, head_dim)`。
    下一次只把新 token 和 `past_key_values=presents` 传进去，就不用重算前面的位置。
    比较之前 `clm` 必须在 eval 模式（上面已经切过）：开着 dropout，两次前向本来就不一样，比较就没有意义了。
    """),
    code("""
    prompt = torch.randint(1, vocab_size, (1, 6))                 # (1, 6)
    logits, presents = clm(prompt, use_cache=True, is_training=False)
    print("logits.shape:", tuple(logits.shape))
    print("presents: 共", len(presents), "层；第 0 层 k, v:", tuple(presents[0][0].shape), tuple(presents[0][1].shape))

    next_id = logits[:, -1].argmax(dim=-1, keepdim=True)            # (1, 1) 最可能的下一个 token
    step_logits, presents = clm(next_id, past_key_values=presents, use_cache=True, is_training=False)
    print("新 token 的 logits:", tuple(step_logits.shape), "  缓存长度变为", presents[0][0].shape[2])

    full = clm(torch.cat([prompt, next_id], dim=1), is_training=False)   # 不用缓存，整段重算
    print("用缓存与整段重算一致:", torch.allclose(step_logits[:, -1], full[:, -1], atol=1e-5))
    """),
    md("""
    ## 5. 通过 DIYForCausalLM 走一步优化

    学习计划的总结说：「训练时先 `optimizer.zero_grad()` 再 forward 再 `optimizer.step()`」。用 `clm` 和 `causal_lm_loss` 走一遍，
    前后在 eval 模式下量 loss（labels 还是上面那个 padding 换成 −100 的张量）：
    """),
    code("""
    optimizer = torch.optim.AdamW(clm.parameters(), lr=1e-3)

    def eval_loss():
        clm.eval()
        with torch.no_grad():
            return causal_lm_loss(clm(input_ids, seq_lengths=seq_lengths, is_training=False), labels).item()

    before = eval_loss()
    clm.train()
    optimizer.zero_grad()
    loss = causal_lm_loss(clm(input_ids, seq_lengths=seq_lengths, is_training=True), labels)
    loss.backward()
    optimizer.step()
    after = eval_loss()
    print(f"更新前 {before:.4f} → 更新后 {after:.4f}，下降了: {after < before}")
    """),
    md("""
    ## 6. 课程的 DIYForCausalLM：交给骨干的 is_training 跟着 train() / eval() 走

    从第二步起，训练和生成用的是 `diy` 包里课程自己的 `DIYForCausalLM`。它和你写的只差一件事：交给骨干的 `is_training`
    不照抄调用方，而是跟着模式走——`train()` 时 `True`，`eval()` 时 `False`，带缓存（推理路径）时总是 `False`。
    所以第二步的 `evaluate` 里 `model.eval()` 之后直接 `model(input_ids)` 就行，不管骨干的 dropout 看的是 `self.training`
    还是 `is_training`（1.1 开头说的两种写法）。在骨干上挂一个 forward 之前的钩子，看它收到了什么：
    """),
    code("""
    from diy import DIYForCausalLM as CourseCausalLM

    course_clm = CourseCausalLM(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)
    received = []
    course_clm.model.register_forward_pre_hook(
        lambda module, args, kwargs: received.append((module.training, kwargs["is_training"])), with_kwargs=True)
    with torch.no_grad():
        course_clm.train()(input_ids)
        course_clm.eval()(input_ids)
        course_clm.eval()(input_ids, is_training=True)            # 调用方写了 True：骨干收到的仍然跟着模式
        course_clm.eval()(prompt, use_cache=True, is_training=False)
    calls = ["train() 后 model(x)", "eval() 后 model(x)", "eval() 后 model(x, is_training=True)", "eval() 后带缓存"]
    for call, (training, flag) in zip(calls, received, strict=True):
        print(f"{call:<36} 骨干的 training={training}，收到 is_training={flag}")
    """),
    md("""
    ## 先猜一猜，再运行

    1. `clm.state_dict()` 有几个键？比 1.2 的骨干多几个？
    2. 开着 dropout（train 模式）用缓存解码一个 token，和整段重算还一致吗？
    3. 用 `causal_lm_loss` 时，如果 labels 自己先切了 `[:, 1:]` 再传进去（错位两次），会报错吗？

    想好了再运行下一格。
    """),
    code("""
    print("1.", len(clm.state_dict()), "个键，比骨干多", len(clm.state_dict()) - len(model.state_dict()), "个（lm_head.weight）")
    clm.train()
    with torch.no_grad():
        logits_c, presents_c = clm(prompt, use_cache=True, is_training=False)
        step_c, _ = clm(next_id, past_key_values=presents_c, use_cache=True, is_training=False)
        full_c = clm(torch.cat([prompt, next_id], dim=1), is_training=True)   # train 模式的整段：训练路径
    print("2. train 模式下缓存与整段重算一致:", torch.allclose(step_c[:, -1], full_c[:, -1], atol=1e-5))
    clm.eval()
    try:
        causal_lm_loss(clm(input_ids, is_training=False), labels[:, 1:])
        print("3. 没有报错")
    except Exception as error:
        print("3. 报错了：形状对不上 →", type(error).__name__)
    """),
    md("""
    第 3 题：形状不同时会被拒绝；更危险的是自己把 logits 和 labels **都**切掉一位再交给 `causal_lm_loss`——形状对得上、不报错，
    但模型学的是「下下个 token」。所以记住一句话：`causal_lm_loss` 收**不错位**的 labels。

    ## 常见错误

    | 症状 | 原因 | 修复 |
    | --- | --- | --- |
    | `cannot assign module before Module.__init__() call` | 没有先 `super().__init__()` | `__init__` 第一行调用它 |
    | 自检说找不到 `self.model` | 骨干起了别的名字（如 `self.backbone`） | 必须叫 `model` 和 `lm_head`：`state_dict` 的键依赖它们 |
    | `'tuple' object has no attribute ...` | `use_cache=True` 时没拆包 `(hidden_states, presents)` | 先拆包，再过 `lm_head` |
    | padding 位置的输出和参考不同 | `seq_lengths` 没传给骨干 | 所有参数原样传给 `self.model` |
    | 解码时看不到前面的 token | `past_key_values` 没传给骨干 | 同上 |
    | 生成的结果每次不同 | 没有 `eval()`，dropout 开着 | 推理前 `model.eval()` |
    | 训练 loss 降得异常快、学不会 | 给 `causal_lm_loss` 的 labels 已经错过位 | labels 传不错位的 `input_ids`（padding 换成 −100） |

    ## 第一步总结

    **结构**：`DIYForCausalLM` 包含
    - `self.model`：DIYModel（embed → blocks → norm），输出 `hidden_states`；
    - `self.lm_head`：`nn.Linear(hidden_size, vocab_size, bias=False)`，把 hidden 映射到词表分数。

    **数据流**：`input_ids (B, L)` → DIYModel → `hidden_states (B, L, 256)` → lm_head → `logits (B, L, 6400)`。

    **你现在能**：
    - 用 `logits[:, :-1]` 对 `input_ids[:, 1:]` 算 next-token 交叉熵，用 `ignore_index` 排除 padding，并 `backward()`；
    - 训练和推理都只调用 `DIYForCausalLM`：训练返回 `logits`，推理且用 cache 时返回 `(logits, presents)`；
    - 证明封装前后是同一个计算：logits、loss 和每个梯度逐元素相同。

    **下一步（第二步）**：用 `DIYForCausalLM` 写一个最小的训练循环，让它在一小段文本上过拟合（loss 从约 8.9 降到 0.1 以下），
    验证这个模型「能学」。之后的第三步用这里的 KV cache 做生成。
    """),
]

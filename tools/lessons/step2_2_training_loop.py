"""Lesson 2.2: the training loop (train_step, evaluate), a loss curve."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：把第一步 1.2 的「一步训练」重复几十次，让 loss 从约 ln(6400) ≈ 8.76 一路降到接近 0，并且会看 loss 曲线。

    **学完后你能自测**：
    - [ ] 说出「先过拟合一个 batch」为什么是排查训练代码最有用的习惯；
    - [ ] 写出 `train_step`：`train()` → 前向 → loss → `zero_grad` → `backward` → 梯度裁剪 → `step`，返回 `loss.item()`；
    - [ ] 写出 `evaluate`：`eval()` + `torch.no_grad()` 下算 loss，再切回 `train()`；
    - [ ] loss 的起点接近 ln 6400，曲线整体下降，评估 loss 最后低于 0.05；
    - [ ] 说出忘了 `zero_grad` 或 `step` 时曲线是什么样子。
    """),
    md("""
    ## 0. 准备：短文、token 流、评估用的 batch

    和 2.1 一样得到 token 流。另外准备**评估 batch**：把短文（加 `<eos>`）整篇切成重叠的窗口，每个「下一个字」恰好算一次，
    并且尽量带着足够长的上文——这样评估 loss 衡量的就是「整篇背得怎么样」。
    """),
    code("""
    import math

    import matplotlib.pyplot as plt
    import torch

    from diy import (
        CharTokenizer,
        DIYConfig,
        DIYForCausalLM,
        TrainConfig,
        causal_lm_loss,
        get_batch,
        load_passage,
        training_stream,
    )
    from diy.checks import check_evaluate, check_training_step
    from diy.data import eval_batch
    from diy.plotting import plot_loss_curve, zh_or_en
    from diy.training import train

    tokenizer = CharTokenizer()
    passage_ids = tokenizer.encode(load_passage())
    tokens = training_stream(passage_ids, tokenizer.eos_token_id, seq_len=128)  # 训练用的 token 流
    document = torch.tensor(passage_ids + [tokenizer.eos_token_id])              # 短文 + <eos>，一遍
    eval_ids, eval_labels = eval_batch(document, seq_len=128)
    print("tokens:", tuple(tokens.shape), " 短文:", tuple(document.shape))
    print("评估 batch:", tuple(eval_ids.shape), tuple(eval_labels.shape))
    print("每行被忽略（-100）的目标个数:", (eval_labels == -100).sum(dim=1).tolist())
    """),
    md("""
    ## 1. 模型和优化器

    模型就是第一步 1.3 的 `DIYForCausalLM`（课程默认超参数）。优化器用 **AdamW**：它为每个参数记住梯度的滑动平均和梯度平方的滑动平均，
    按「梯度大小的相对值」调整步长，是训练 Transformer 的标准选择（W 指 weight decay——每一步把参数往 0 拉一点点——和梯度更新分开处理）。
    学习率 `lr` 是每一步走多远；这里用 3e-3（为了几十步就背下一段话，比正常训练大，2.3 会看太大、太小各是什么样）。
    """),
    code("""
    torch.manual_seed(0)
    model = DIYForCausalLM(DIYConfig())
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    print(f"参数量: {sum(p.numel() for p in model.parameters()):,}")
    print(optimizer.__class__.__name__, "lr =", optimizer.param_groups[0]["lr"])
    """),
    md("""
    ## 2. ✏️ 练习 2.2a：train_step

    一步训练，顺序和 1.2 一样，多了两件事：

    ```
    model.train()                          # dropout 打开（评估之后模型可能还在 eval 模式）
    logits = model(input_ids)              # (B, L, V)
    loss = causal_lm_loss(logits, input_ids)   # labels 就是 input_ids：loss 在内部错开一位
    optimizer.zero_grad()                  # 清掉上一步的梯度（backward 会累加到 .grad 上）
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)   # 梯度裁剪
    optimizer.step()
    return loss.item()                     # 返回 Python 浮点数
    ```

    - **梯度裁剪**：把所有参数梯度拼成一个长向量，如果它的长度（L2 范数）超过 `max_grad_norm`，就整体缩小到这个长度。
      偶尔一个「坏」batch 会产生特别大的梯度，一步就把参数推得很远；裁剪只限制这种极端的步子，方向不变，平常几乎不起作用。
    - **返回 `loss.item()`**：训练循环会把每一步的 loss 存进列表。存张量的话，每个张量都连着它那一步的整张计算图，
      几百步之后内存就被这些图占满了。

    （`zero_grad` 放在一步的最后、`step()` 之后也很常见；这里放在 `backward` 之前，
    是因为调用者可能留下了梯度——比如 1.2 里你手动 `backward` 过。）
    """),
    exercise(
        solution="""
        # ✏️ 练习 2.2a
        def train_step(model, optimizer, input_ids, max_grad_norm=1.0):
            \"\"\"在一个 batch 上训练一步，返回这一步的 loss（浮点数）。\"\"\"
            model.train()
            logits = model(input_ids)                     # (B, L, V)
            loss = causal_lm_loss(logits, input_ids)      # labels 就是 input_ids：loss 在内部错位（这里没有 padding）
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            return loss.item()
        """,
        stub="""
        # ✏️ 练习 2.2a
        def train_step(model, optimizer, input_ids, max_grad_norm=1.0):
            \"\"\"在一个 batch 上训练一步，返回这一步的 loss（浮点数）。\"\"\"
            raise NotImplementedError("✏️ train() → 前向 → loss → zero_grad → backward → 裁剪 → step")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    train_step = check_training_step(train_step)
    """),
    md("""
    ## 3. 排查习惯：先过拟合**一个** batch

    写好训练代码后，先别急着跑完整的训练：拿**同一个** batch 反复训练几十步。模型参数比这个 batch 多得多，
    如果代码是对的，loss 一定能降到接近 0；如果降不下去，问题出在代码（错位、忘了 `step`……），而不是数据或超参数。
    这一招几秒钟就能排除一大类 bug。

    **先猜一猜，再运行**：在同一个 `(2, 64)` 的 batch 上训练 30 步，loss 大概会降到多少？
    """),
    code("""
    torch.manual_seed(0)
    probe = DIYForCausalLM(DIYConfig())
    probe_optimizer = torch.optim.AdamW(probe.parameters(), lr=3e-3)
    one_batch = get_batch(tokens, 2, 64, torch.Generator().manual_seed(1))  # (2, 64)，始终是这一个
    one_batch_losses = [train_step(probe, probe_optimizer, one_batch) for _ in range(30)]
    print("第 1 步的 loss 接近 ln(6400) = 8.76:", abs(one_batch_losses[0] - math.log(6400)) < 0.5)
    print("30 步后低于 0.5:", one_batch_losses[-1] < 0.5)
    print("每 5 步:", [round(x, 1) for x in one_batch_losses[::5]])
    """),
    md("""
    ## 4. ✏️ 练习 2.2b：evaluate

    训练时每个 batch 只是短文的一小段，还开着 dropout，它的 loss 忽高忽低。隔几步算一次**评估 loss**：
    在整篇短文上、关掉 dropout、不记录计算图。

    1. `model.eval()`：关掉 dropout，同样的输入得到同样的输出；
    2. `with torch.no_grad():` 里前向、算 `causal_lm_loss(logits, labels)`（评估 batch 自带 labels，重复的目标是 -100）；
    3. `model.train()`：切回训练模式，否则接下来的训练步就在关着 dropout 的情况下训练了；
    4. `return loss.item()`。
    """),
    exercise(
        solution="""
        # ✏️ 练习 2.2b
        def evaluate(model, input_ids, labels):
            \"\"\"eval 模式、不记录梯度，返回 loss（浮点数）；结束后模型回到 train 模式。\"\"\"
            model.eval()
            with torch.no_grad():
                loss = causal_lm_loss(model(input_ids), labels)
            model.train()
            return loss.item()
        """,
        stub="""
        # ✏️ 练习 2.2b
        def evaluate(model, input_ids, labels):
            \"\"\"eval 模式、不记录梯度，返回 loss（浮点数）；结束后模型回到 train 模式。\"\"\"
            raise NotImplementedError("✏️ eval() → no_grad 里算 loss → train() → .item()")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    evaluate = check_evaluate(evaluate)
    """),
    md("""
    ## 5. 训练循环

    循环本身很短。`diy.training.train` 就是下面这几行（加上进度条和出错检查），`python -m diy.train` 用的也是它；
    这里把**你的** `train_step` 和 `evaluate` 交给它：

    ```
    for step in range(1, steps + 1):
        input_ids = get_batch(tokens, batch_size, seq_len, generator)   # 随机窗口 (8, 128)
        loss = train_step(model, optimizer, input_ids, max_grad_norm)   # 一步
        history.train_loss.append(loss)
        if step % eval_every == 0:
            history.eval_loss.append(evaluate(model, eval_ids, eval_labels))
    ```

    默认设置（`TrainConfig()`）：70 步、lr 3e-3、每步 8 个长 128 的窗口、每 10 步评估一次、`max_grad_norm=1.0`。
    在 2 核 CPU 上约 12～20 秒。进度条显示步数和用时，每次评估时更新训练 loss 和评估 loss——它每次运行都不一样，
    所以自动测试不比较这一格的输出，结论在下一格打印。
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    torch.manual_seed(0)
    model = DIYForCausalLM(DIYConfig())
    config = TrainConfig()
    print(config)
    history = train(model, tokens, config, eval_tokens=document, train_step=train_step, evaluate=evaluate)
    """),
    code("""
    print(f"第 1 步的训练 loss ≈ {history.train_loss[0]:.1f}（ln 6400 = {math.log(6400):.2f}）")
    print("每次评估的 loss:", [round(x, 2) for x in history.eval_loss])
    print("评估 loss 一路下降:", all(a > b for a, b in zip(history.eval_loss[:-1], history.eval_loss[1:], strict=True)))
    print("最后的评估 loss 低于 0.05:", history.eval_loss[-1] < 0.05)
    print("历史记录里存的是浮点数:", all(type(x) is float for x in history.train_loss))
    """),
    md("""
    第 1 步的 loss 比 ln 6400 略高一点：随机初始化的模型并不是完全均匀地猜（1.2 的选读里算过：约 ln V + σ²/2）。

    ## 6. loss 曲线

    纵轴用**对数刻度**：loss 从 8.8 降到 0.01，跨了近三个数量级，普通刻度下后半段会挤成一条贴着 0 的线。
    灰色虚线是起点 ln 6400（「均匀瞎猜」的 loss），绿色点线是目标 0.05。
    """),
    code("""
    fig = plot_loss_curve(history)
    plt.show()
    """),
    md("""
    训练 loss（蓝线）是每一步那个 batch 的 loss，开着 dropout，所以有毛刺；评估 loss（橙点）在整篇短文上、关着 dropout，更平滑，也更低。

    ## 7. 忘了 `zero_grad` 或 `step` 会怎样？

    **先猜一猜，再运行**：在同一个 batch 上用 AdamW 各训练 20 步——(a) 正确的一步；(b) 忘了 `zero_grad`；(c) 忘了 `optimizer.step()`。三条曲线各是什么样子？
    """),
    code("""
    def broken_step(model, optimizer, input_ids, zero_grad=True, step=True):
        model.train()
        loss = causal_lm_loss(model(input_ids), input_ids)
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if step:
            optimizer.step()
        return loss.item()


    curves = {}
    for name, kwargs in [(zh_or_en("正确", "correct"), {}),
                         (zh_or_en("忘了 zero_grad", "no zero_grad"), {"zero_grad": False}),
                         (zh_or_en("忘了 step", "no step"), {"step": False})]:
        torch.manual_seed(0)
        demo = DIYForCausalLM(DIYConfig())
        demo_optimizer = torch.optim.AdamW(demo.parameters(), lr=3e-3)
        curves[name] = [broken_step(demo, demo_optimizer, one_batch, **kwargs) for _ in range(20)]
    for name, losses in curves.items():
        print(f"{name:16} 第 1 步 {losses[0]:.1f} → 第 20 步 {losses[-1]:.1f}")
    """),
    code("""
    fig, ax = plt.subplots(figsize=(7, 3))
    for name, losses in curves.items():
        ax.plot(range(1, 21), losses, marker=".", label=name)
    ax.set_xlabel(zh_or_en("步数", "step"))
    ax.set_ylabel("loss")
    ax.set_title(zh_or_en("同一个 batch 上的 20 步", "20 steps on one batch"))
    ax.legend()
    plt.show()
    """),
    md("""
    - **忘了 `step()`**：参数从不改变，loss 是一条平线（只有 dropout 带来的小抖动）——「loss 一动不动」先查这个；
    - **忘了 `zero_grad()`**：每一步的梯度都加到了之前所有梯度的总和上。用 SGD 的话，更新越来越大，很快就发散；
      但 AdamW 会按梯度的大小把步长归一化，把这个错误**掩盖**了——曲线几乎和正确的一样！
      这正是它危险的地方：「loss 在降」不代表代码是对的。自检 2.2a 不看曲线，而是逐个比较参数，所以能抓住它；
    - 正确的一步：稳定下降。

    ## 小结

    你现在能：
    - 用「过拟合一个 batch」几秒钟验证训练代码；
    - 写出 `train_step`（含梯度裁剪，返回 `loss.item()`）和 `evaluate`（`eval()` + `no_grad()`，再切回 `train()`）；
    - 用 `diy.training.train` 把它们组成训练循环，画出对数刻度的 loss 曲线，读懂训练 loss 与评估 loss 的区别；
    - 从曲线的样子认出「忘了 `step`」和「忘了 `zero_grad`」。

    **下一节 2.3**：用模型自己的输出证明它学会了——从短文开头 8 个字把整段背出来，再把模型存成检查点。
    """),
]

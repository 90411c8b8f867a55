"""Lesson 2.2: the training loop (train_step, evaluate, the loop itself), loss curves, clipping."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：把第一步 1.2 的「一步训练」重复几十次，让 loss 从约 ln(6400) ≈ 8.76 一路降到接近 0，并且会看 loss 曲线。
    训练循环由你自己写。

    **学完后你能自测**：
    - [ ] 说出「先过拟合一个 batch」为什么是排查训练代码最有用的习惯；
    - [ ] 写出 `train_step`（一步）、`evaluate`（评估 loss）和训练循环 `train_loop`，并证明你的循环与 `diy.training.train` 一步不差；
    - [ ] loss 的起点接近 ln 6400，曲线整体下降，评估 loss 最后低于 0.05；说出困惑度（perplexity）是什么；
    - [ ] 看着梯度范数的曲线，说出梯度裁剪在这次训练里做了什么、为什么对 Adam 也有用；
    - [ ] 说出忘了 `zero_grad` 或 `step` 时曲线是什么样子，以及为什么「loss 在降」不代表代码是对的。
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
    from matplotlib.ticker import MaxNLocator

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
    from diy.backbone import describe
    from diy.classroom.checks import check_evaluate, check_train_loop, check_training_step
    from diy.classroom.course_runs import course_run
    from diy.data import eval_batch
    from diy.plotting import add_perplexity_axis, plot_loss_curve, zh_or_en
    from diy.training import History, train

    tokenizer = CharTokenizer()
    passage_ids = tokenizer.encode(load_passage())
    tokens = training_stream(passage_ids, tokenizer.eos_token_id, seq_len=128)  # 训练用的 token 流
    document = torch.tensor(passage_ids + [tokenizer.eos_token_id])              # 短文 + <eos>，一遍
    eval_ids, eval_labels = eval_batch(document, seq_len=128)
    print("tokens:", tuple(tokens.shape), " 短文:", tuple(document.shape))
    print("评估 batch:", tuple(eval_ids.shape), tuple(eval_labels.shape))
    # 位置 0 的 label 从来不是目标（没有前一个位置来预测它），所以只数位置 1…L-1
    ignored = (eval_labels[:, 1:] == -100).sum(dim=1).tolist()
    print("每行被忽略（-100）的目标个数:", ignored)
    print("被计分的目标一共:", int((eval_labels[:, 1:] != -100).sum()), "= 短文长度", len(document), "- 1")
    print(describe())  # 这门课此刻跑在哪个骨干网络上（见 README「已经有自己的 DIYModel？」）
    """),
    md("""
    第一行的目标全部计分；后面每一行只给前面的行没算过的目标计分，其余标成 -100。加起来每个「下一个字」正好算一次：
    短文 + `<eos>` 共 N 个 token，就有 N − 1 个目标。

    ## 1. 模型和优化器

    模型就是第一步 1.3 的 `DIYForCausalLM`（课程默认超参数）。优化器用 **AdamW**：它为每个参数记住梯度的滑动平均和梯度平方的滑动平均，
    按「梯度除以它平时的大小」来走一步，是训练 Transformer 的标准选择（W 指 weight decay——每一步把参数往 0 拉一点点——和梯度更新分开处理）。
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

    **签名**：`train_step(model, optimizer, input_ids, max_grad_norm=1.0) -> float`，`input_ids` 是 `(B, L)` 的一批窗口。

    **要满足的**：
    - 顺序和 1.2 的一步一样：前向 → loss → 清梯度 → 反向 → 更新；labels 就是 `input_ids` 本身（`causal_lm_loss` 在内部错开一位）；
    - 前向之前切到训练模式：评估之后模型可能还在 `eval` 模式；
    - 反向之后、更新之前，把梯度的总范数裁剪到 `max_grad_norm`（用传进来的值，不要写死）——为什么要裁剪，第 7 节用这次训练的数据来看；
    - 返回 Python 浮点数 `loss.item()`：训练循环会把每一步的 loss 存进列表，存张量的话每个张量都连着它那一步的整张计算图。

    可参考的代码片段（只作提示，空白处自己填）：

    ```python
    torch.nn.utils.clip_grad_norm_(____, max_grad_norm)   # 原地缩放每个参数的 .grad，返回缩放前的总范数
    ```

    **先猜一猜，再运行自检**：把清梯度放在一步的最后（`step()` 之后）而不是 `backward()` 之前，结果会不同吗？
    放在 `backward()` 和 `step()` 之间呢？（自检接受其中一种，另一种会被它点名。）
    """),
    exercise(
        solution="""
        # ✏️ 练习 2.2a
        def train_step(model, optimizer, input_ids, max_grad_norm=1.0):
            \"\"\"在一个 batch 上训练一步，返回这一步的 loss（浮点数）。\"\"\"
            model.train()
            logits = model(input_ids)                     # (B, L, V)
            loss = causal_lm_loss(logits, input_ids)      # labels 就是 input_ids：loss 在内部错位（这里没有 padding）
            optimizer.zero_grad()                         # 调用者可能留下了梯度（比如 1.2 里手动 backward 过）
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            return loss.item()
        """,
        stub="""
        # ✏️ 练习 2.2a
        def train_step(model, optimizer, input_ids, max_grad_norm=1.0):
            \"\"\"在一个 batch 上训练一步，返回这一步的 loss（浮点数）。\"\"\"
            raise NotImplementedError("✏️ 训练模式 → 前向 → loss → 清梯度 → 反向 → 裁剪 → 更新")
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

    **签名**：`evaluate(model, input_ids, labels) -> float`（评估 batch 自带 labels，不计分的目标是 -100）。

    **要满足的**：
    - 前向的那一刻 dropout 是关着的（同样的输入，同样的输出）；
    - 前向不记录计算图（评估不需要梯度，省时间也省内存）——离开时梯度计算要恢复原样，否则后面的训练什么都学不到；
    - 返回之后模型回到训练模式，接下来的训练步才开着 dropout；
    - 返回 `loss.item()`。

    **先猜一猜，再运行自检**：同一个模型，`evaluate` 得到的 loss 比 `train_step` 在同一批数据上报告的高还是低？为什么？
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
            raise NotImplementedError("✏️ 关 dropout → 不记录梯度地算 loss → 切回训练模式 → 浮点数")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    evaluate = check_evaluate(evaluate)
    """),
    md("""
    ## 5. ✏️ 练习 2.2c：训练循环

    现在把它们串起来。**签名**：`train_loop(model, tokens, eval_ids, eval_labels, config) -> History`，
    `config` 是 `TrainConfig`（步数 `steps`、学习率 `lr`、`batch_size`、`seq_len`、`eval_every`、`max_grad_norm`、种子 `seed`）。

    **要满足的**——和课程的 `diy.training.train` 一样，这样两者的结果才能一步不差：
    - 循环开始前：一个 `torch.Generator().manual_seed(config.seed)`，一个 `AdamW(model.parameters(), lr=config.lr)`；
    - 第 1 步到第 `config.steps` 步，每一步：用你的 `get_batch` 从 generator 取一个 `(batch_size, seq_len)` 的 batch，
      交给你的 `train_step`（带上 `config.max_grad_norm`），把步数和 loss 记进 `history.step` / `history.train_loss`；
    - 每 `eval_every` 步、以及最后一步，用你的 `evaluate` 算一次评估 loss，记进 `history.eval_step` / `history.eval_loss`；
    - 返回 `History()`（`from diy.training import History`，四个列表都从空开始）。

    可参考的代码片段（只作提示，空白处自己填）：

    ```python
    history = History()
    for step in range(____, ____):
        ...
        if step % config.eval_every == 0 or ____:
            ...
    ```

    **先猜一猜，再运行**：同样的 `config`、同样初始化的模型，你的循环和 `train` 给出的 history 会**完全**相等吗（不只是接近）？
    """),
    exercise(
        solution="""
        # ✏️ 练习 2.2c
        def train_loop(model, tokens, eval_ids, eval_labels, config):
            \"\"\"按 config 训练 model，返回 History：每步的 loss，和每 eval_every 步（及最后一步）的评估 loss。\"\"\"
            generator = torch.Generator().manual_seed(config.seed)      # 所有 batch 的随机起点都从它来
            optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
            history = History()
            for step in range(1, config.steps + 1):
                input_ids = get_batch(tokens, config.batch_size, config.seq_len, generator)  # (B, L)
                loss = train_step(model, optimizer, input_ids, config.max_grad_norm)
                history.step.append(step)
                history.train_loss.append(loss)
                if step % config.eval_every == 0 or step == config.steps:
                    history.eval_step.append(step)
                    history.eval_loss.append(evaluate(model, eval_ids, eval_labels))
            return history
        """,
        stub="""
        # ✏️ 练习 2.2c
        def train_loop(model, tokens, eval_ids, eval_labels, config):
            \"\"\"按 config 训练 model，返回 History：每步的 loss，和每 eval_every 步（及最后一步）的评估 loss。\"\"\"
            raise NotImplementedError("✏️ generator 和优化器 → 循环：取 batch → 训练一步 → 记录 → 隔几步评估")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    train_loop = check_train_loop(train_loop)
    """),
    md("""
    自检在一个小模型上比过了。再在课程的模型上亲眼看一次：同样的种子、同样的初始参数，**你的**循环和 `diy.training.train`
    （`python -m diy.train` 用的就是它；这里把你的 `train_step` 和 `evaluate` 交给它）各跑 6 步，每 3 步评估一次。
    """),
    code("""
    short = TrainConfig(steps=6, batch_size=4, eval_every=3)
    torch.manual_seed(0)
    mine = train_loop(DIYForCausalLM(DIYConfig()), tokens, eval_ids, eval_labels, short)
    torch.manual_seed(0)
    theirs = train(DIYForCausalLM(DIYConfig()), tokens, short, eval_tokens=document,
                   train_step=train_step, evaluate=evaluate, progress=False)
    print("你的循环，训练 loss:", [round(x, 2) for x in mine.train_loss])
    print("你的循环，评估 loss:", list(zip(mine.eval_step, [round(x, 2) for x in mine.eval_loss], strict=True)))
    print("两份 history 完全相等:", mine == theirs)
    """),
    md("""
    完全相等，连最后一位小数都一样：同样的种子给出同样的初始参数（`torch.manual_seed(0)`）和同样的 batch 序列（generator），
    同样的运算按同样的顺序做，结果就逐位相同。这也是可复现的意思。
    （如果你在 2.1 用的是 nanoGPT 的 `(x, y)` 写法，起点的范围少一个，batch 就不同，这里会是 `False`——那不是循环的错。）

    ## 6. 完整训练：70 步的 loss 曲线

    默认设置（`TrainConfig()`）：70 步、lr 3e-3、每步 8 个长 128 的窗口、每 10 步评估一次、`max_grad_norm=1.0`。
    在 2 核 CPU 上约 12 秒（机器忙时更久）。你的循环刚刚证明了和 `train` 一步不差，所以这里不再重跑：`course_run("clip")` 读取课程用**同一个配方**
    跑好的记录——每一步的 loss、每次评估的 loss，还有每一步的梯度范数。
    ⏳ 第一次调用时（课程缓存里还没有这份记录）它现场训练，然后存进缓存文件夹（`~/.cache/diy-llm`），之后的 notebook（包括 2.3）直接读取。

    「同一个配方」是指：`torch.manual_seed(TrainConfig().seed)` 之后紧接着新建模型（这决定初始参数和 dropout 的随机数），
    再用 `TrainConfig()` 训练。想亲手跑一遍，就照这个顺序：

    ```python
    torch.manual_seed(TrainConfig().seed)
    history = train_loop(DIYForCausalLM(DIYConfig()), tokens, eval_ids, eval_labels, TrainConfig())
    ```

    种子要设在**紧挨着**新建模型之前：中间每多抽一次全局随机数（比如上面几格新建过的模型），初始参数就不同了。
    下一格先读记录，再用你的循环照这个顺序只跑前 3 步（省时间），和记录的前 3 步对照。
    """),
    code("""
    run = course_run("clip")
    torch.manual_seed(TrainConfig().seed)
    first_three = train_loop(DIYForCausalLM(DIYConfig()), tokens, eval_ids, eval_labels, TrainConfig(steps=3))
    print("你的循环的前 3 步 = 记录的前 3 步（差 < 1e-4）:",
          all(abs(a - b) < 1e-4 for a, b in zip(first_three.train_loss, run.history.train_loss[:3], strict=True)))
    history = run.history
    print(f"第 1 步的训练 loss ≈ {history.train_loss[0]:.1f}（ln 6400 = {math.log(6400):.2f}）")
    print("每次评估的 loss:", [round(x, 2) for x in history.eval_loss])
    print("评估 loss 一路下降:", all(a > b for a, b in zip(history.eval_loss[:-1], history.eval_loss[1:], strict=True)))
    print("最后的评估 loss 低于 0.05:", history.eval_loss[-1] < 0.05)
    print("历史记录里存的是浮点数:", all(type(x) is float for x in history.train_loss))
    """),
    md("""
    第 1 步的 loss 比 ln 6400 略高一点：随机初始化的模型并不是完全均匀地猜（1.2 的选读里算过：约 ln V + σ²/2）。

    **困惑度（perplexity）**是 loss 的指数 e^loss，读作「模型平均在多少个字之间犹豫」：均匀地猜 6400 个字，loss 是 ln 6400，
    困惑度正好是 6400；loss 降到 0，困惑度就是 1——每一步都只有一个候选，毫不犹豫。
    """),
    code("""
    def perplexity(loss):
        \"\"\"e^loss，按大小取合适的精度（太多位数只是噪声）。\"\"\"
        p = math.exp(loss)
        return f"{p:.2f}" if p < 10 else f"{p:.0f}" if p < 1000 else f"≈ {float(f'{p:.2g}'):,.0f}"


    for name, loss in [("均匀瞎猜 ln 6400", math.log(6400)), ("第 1 步（训练）", history.train_loss[0]),
                       ("第 10 步（评估）", history.eval_loss[0]), ("第 70 步（评估）", history.eval_loss[-1])]:
        print(f"{name:12} loss {loss:5.2f} → 困惑度 {perplexity(loss)}")
    """),
    md("""
    画出来。纵轴用**对数刻度**：loss 从 8.8 降到 0.01，跨了近三个数量级，普通刻度下后半段会挤成一条贴着 0 的线。
    灰色虚线是起点 ln 6400（「均匀瞎猜」的 loss，困惑度 6400），绿色点线是目标 0.05（困惑度 ≈ 1.05）；右边的纵轴把同一条曲线读成困惑度：
    它的每个刻度 p 都画在左边 loss = ln p 的高度上（`diy.plotting.add_perplexity_axis`；`tests/test_plotting.py` 逐个刻度检查这一点）。
    """),
    code("""
    fig = plot_loss_curve(history)
    ax = fig.axes[0]
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=10)
    perplexity_axis = add_perplexity_axis(ax)              # 右边的纵轴：同一条曲线读成困惑度 e^loss
    fig.tight_layout()
    plt.show()
    print("右轴的刻度（困惑度）:", [f"{p:g}" for p in perplexity_axis.get_yticks()])
    print("对应的 loss = ln(困惑度):", [f"{math.log(p):.3f}" for p in perplexity_axis.get_yticks()])
    """),
    md("""
    训练 loss（蓝线）是每一步那个 batch 的 loss，开着 dropout，所以有毛刺；评估 loss（橙点）在整篇短文上、关着 dropout，更平滑，也更低。

    ## 7. 梯度裁剪在这次训练里做了什么

    `clip_grad_norm_` 把所有参数的梯度看成一个长向量：它的长度（L2 范数）超过 `max_grad_norm` 时，整体缩小到这个长度，方向不变。
    它返回缩放**之前**的范数，课程的记录里存着每一步的这个值。

    **先猜一猜，再运行**：70 步里，梯度范数超过 1.0（也就是裁剪真的动手了）的步数有多少？不裁剪的话，70 步后评估 loss 还能低于 0.05 吗？
    （`course_run("no_clip")` 是同一个配方、只去掉裁剪的记录；⏳ 第一次调用时也要现场训练，和第 6 节的一样长。）
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    no_clip = course_run("no_clip")
    clipped_steps = sum(norm > 1.0 for norm in run.grad_norm)
    print(f"梯度范数超过 1.0 的步数: 有裁剪 {clipped_steps} / 70，不裁剪 {sum(n > 1.0 for n in no_clip.grad_norm)} / 70")
    print("每次评估的 loss，不裁剪:", [round(x, 2) for x in no_clip.history.eval_loss])
    """),
    code("""
    # 上一格的准确数字在不同的机器上可能差一点（范数正好在 1.0 附近的步），自动测试只比较这一格的结论
    print(f"前 3 步的梯度范数: {[round(n, 1) for n in run.grad_norm[:3]]}")
    print("有裁剪的运行里，超过 1.0 的步数在 1/4 到 3/4 之间:", 70 / 4 < clipped_steps < 70 * 3 / 4)
    print("不裁剪，第 70 步的评估 loss 仍是目标 0.05 的 3 倍以上:", no_clip.history.eval_loss[-1] > 3 * 0.05)
    """),
    code("""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5))
    for record, name in [(run, zh_or_en("有裁剪（max_grad_norm=1）", "clipped at 1")),
                         (no_clip, zh_or_en("不裁剪", "not clipped"))]:
        left.plot(record.history.step, record.grad_norm, marker=".", linewidth=1, label=name)
        right.plot(record.history.eval_step, record.history.eval_loss, "o-", label=name)
    left.axhline(1.0, color="gray", linestyle="--", label="max_grad_norm = 1")
    left.set_yscale("log")
    left.set_ylabel(zh_or_en("梯度范数（裁剪前，对数刻度）", "grad norm before clipping (log)"))
    left.set_title(zh_or_en("每一步的梯度范数", "Gradient norm per step"))
    right.axhline(0.05, color="green", linestyle=":", label=zh_or_en("目标 0.05", "target 0.05"))
    right.set_yscale("log")
    right.set_ylabel(zh_or_en("评估 loss（对数刻度）", "eval loss (log scale)"))
    right.set_title(zh_or_en("有裁剪 / 不裁剪", "With / without clipping"))
    for ax in (left, right):
        ax.set_xlabel(zh_or_en("步数", "step"))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    plt.show()
    """),
    md("""
    裁剪不是「偶尔才起作用」的保险：这次训练里 1/4 到 3/4 的步数它都动了手，开头几步的梯度范数是 6 左右。去掉它，70 步后评估 loss
    还是目标 0.05 的 3 倍以上。

    为什么对 Adam 也有用？对 **SGD**，裁剪的作用很直接：一步走多远和梯度大小成正比，把梯度缩小就是把这一步缩短。
    **Adam** 不一样：它用梯度除以「梯度平方的滑动平均」的平方根，梯度整体大 10 倍，分子分母一起大 10 倍，一步还是约等于 lr——
    所以裁剪并不是为了缩短某一步。它改变的是 Adam 的**记忆**：梯度平方的滑动平均（`beta2 = 0.999`）记得约一千步，
    在这 70 步里，它差不多就是到目前为止所有步的平均。不裁剪时，开头几步范数 6 左右的梯度让这个平均一直偏大，后面的梯度被它一除，
    步子就只有 lr 的几分之一。粗略地算一下（把所有参数当成一个数，Adam 的一步 ≈ lr × 这一步的梯度范数 ÷ 到此为止梯度范数的均方根）：
    """),
    code("""
    def adam_step_in_lr(norms, t):
        \"\"\"粗略估计：第 t 步 Adam 走了几个 lr（所有参数当成一个，beta2 ≈ 1 时分母是到此为止的均方根）。\"\"\"
        return norms[t - 1] / math.sqrt(sum(n * n for n in norms[:t]) / t)


    clipped_norms = [min(n, 1.0) for n in run.grad_norm]   # 裁剪之后 Adam 看到的梯度范数
    for t in (10, 20):
        print(f"第 {t} 步，一步约为 lr 的几倍：有裁剪 {adam_step_in_lr(clipped_norms, t):.1f}，"
              f"不裁剪 {adam_step_in_lr(no_clip.grad_norm, t):.1f}")
    """),
    md("""
    不裁剪时，第 10～20 步的步子只有 lr 的五分之一左右，训练在这一段几乎停住了（右图橙线从第 10 步到第 20 步很平）；
    裁剪到 1 之后，每一步的梯度在 Adam 眼里都差不多大，步子一直约等于 lr，不再被开头那几步拖累。

    ## 8. 忘了 `zero_grad` 或 `step` 会怎样？

    忘了 `step()` 最好认：参数从不改变，loss 是一条平线（只有 dropout 带来的小抖动）——「loss 一动不动」先查这个。
    忘了 `zero_grad()` 就难认多了：每一步的梯度都加到了之前所有梯度的总和上。

    **先猜一猜，再运行**：在同一个 batch 上训练 20 步，比较「正确」和「忘了 `zero_grad`」，在四种组合下各是什么样：
    SGD（lr 1.0）或 AdamW（lr 3e-3），有或没有梯度裁剪。
    """),
    code("""
    def one_step(model, optimizer, input_ids, zero_grad=True, clip=True):
        model.train()
        loss = causal_lm_loss(model(input_ids), input_ids)
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss.item()


    combos = {}  # (优化器, 是否裁剪, 是否清梯度) -> 20 步的 loss
    for name, make in [("SGD", lambda params: torch.optim.SGD(params, lr=1.0)),
                       ("AdamW", lambda params: torch.optim.AdamW(params, lr=3e-3))]:
        for clip in (True, False):
            for zero_grad in (True, False):
                torch.manual_seed(0)
                demo = DIYForCausalLM(DIYConfig())
                demo_optimizer = make(demo.parameters())
                combos[name, clip, zero_grad] = [one_step(demo, demo_optimizer, one_batch, zero_grad, clip)
                                                 for _ in range(20)]
    print("算完了", len(combos), "条曲线")
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    for (name, clip, zero_grad), losses in combos.items():
        label = f"{name:5} {'有裁剪' if clip else '不裁剪'} {'正确' if zero_grad else '忘了 zero_grad'}"
        print(f"{label:24} 第 1 步 {losses[0]:.1f} → 第 20 步 {losses[-1]:.3g}（最高 {max(losses):.3g}）")
    """),
    code("""
    def looks_fine(name, clip):
        \"\"\"忘了 zero_grad，loss 照样降到第 1 步的一半以下：只看 loss 曲线，看不出错。\"\"\"
        losses = combos[name, clip, False]
        return losses[-1] < losses[0] / 2


    print("有裁剪，忘了 zero_grad 的 loss 照样降到一半以下：SGD", looks_fine("SGD", True), "  AdamW", looks_fine("AdamW", True))
    print("不裁剪：AdamW 忘了 zero_grad 明显更差（高出 1 以上）:",
          combos["AdamW", False, False][-1] > combos["AdamW", False, True][-1] + 1)
    print("不裁剪：SGD 忘了 zero_grad 发散（loss 超过 1000）:", max(combos["SGD", False, False]) > 1000)
    print("不裁剪：SGD 即使正确也不平稳（中途高于起点）:", max(combos["SGD", False, True]) > combos["SGD", False, True][0])
    """),
    code("""
    fig, axes = plt.subplots(1, 4, figsize=(13, 3), sharey=True)
    for ax, (name, clip) in zip(axes, [("SGD", True), ("SGD", False), ("AdamW", True), ("AdamW", False)], strict=True):
        for zero_grad in (True, False):
            ax.plot(range(1, 21), combos[name, clip, zero_grad], marker=".",
                    label=zh_or_en("正确", "correct") if zero_grad else zh_or_en("忘了 zero_grad", "no zero_grad"))
        ax.set_title(f"{name}, " + (zh_or_en("有裁剪", "clipped") if clip else zh_or_en("不裁剪", "not clipped")), fontsize=10)
        ax.set_yscale("log")
        ax.set_xlabel(zh_or_en("步数", "step"))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=9)
    axes[0].set_ylabel(zh_or_en("loss（对数刻度）", "loss (log scale)"))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    plt.show()
    """),
    md("""
    - **有裁剪时，两种优化器都把错误掩盖了**：累加起来的梯度越来越长，但裁剪每一步都把它缩回长度 1，
      于是「所有梯度之和的方向」照样是一个合理的下降方向（有点像带动量的梯度下降），loss 照样降到起点的一半以下，只看曲线分不出对错；
    - **不裁剪时，错误就露出来了**：SGD 的步子随着累加的梯度越来越大，loss 冲到上百万（lr = 1 的 SGD 不裁剪时，
      正确的那条也会颠簸，但不会发散）；AdamW 的步长虽然被它自己归一化了，但方向被过去所有梯度拖着，明显降得更慢。

    所以真正掩盖这个 bug 的主要是裁剪（外加 Adam 的归一化）。「loss 在降」不代表代码是对的。自检 2.2a 不看曲线，
    而是逐个比较参数，所以能抓住它。

    ## 小结

    你现在能：
    - 用「过拟合一个 batch」几秒钟验证训练代码；
    - 写出 `train_step`（含梯度裁剪，返回 `loss.item()`）、`evaluate`（关 dropout、不记录梯度，再切回训练模式）和训练循环 `train_loop`，
      并证明同一个种子下它和 `diy.training.train` 逐位相同；
    - 画出对数刻度的 loss 曲线，读懂训练 loss 与评估 loss 的区别，把 loss 换算成困惑度；
    - 用梯度范数的曲线说清楚裁剪在这次训练里做了什么，以及它为什么对 Adam 也重要；
    - 从曲线的样子认出「忘了 `step`」，并知道「忘了 `zero_grad`」为什么常常看不出来。

    **下一节 2.3**：用模型自己的输出证明它学会了——从短文开头 8 个字把整段背出来；再看它在没见过的句子上表现如何，并把模型存成检查点。
    """),
]

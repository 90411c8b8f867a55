"""Lesson 2.3: prove that it learned (greedy recitation), learning rates, checkpoints."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：用模型自己的输出证明它学会了：从短文开头 8 个字，一字不差地背出后面的全部内容；再把模型存成检查点，留给第三步。

    **学完后你能自测**：
    - [ ] 写出最简单的**贪心**续写（每一步只挑概率最大的那个字）：每次把（截断到最后 `max_seq_len` 个的）整段送进模型，取**最后一个位置**的 logits 做 argmax，接到末尾；
    - [ ] 训练前续写是一堆乱码，训练后与原文逐字相同；
    - [ ] 说出生成前为什么必须 `model.eval()`；
    - [ ] 看出学习率太大、太小时 loss 曲线的样子；
    - [ ] `save_pretrained` 保存、`from_pretrained` 读回，logits 完全一样；
    - [ ] 解释为什么「过拟合」在这里是好事，在真正的训练里却是坏事。
    """),
    md("""
    ## 0. 准备
    """),
    code("""
    import math
    import os

    import matplotlib.pyplot as plt
    import torch
    from matplotlib.ticker import MaxNLocator

    from diy import CharTokenizer, DIYConfig, DIYForCausalLM, get_batch, load_passage, training_stream
    from diy.backbone import describe
    from diy.classroom.checks import check_greedy_continue
    from diy.classroom.course_model import course_model
    from diy.classroom.course_runs import HELD_OUT, course_run
    from diy.plotting import zh_or_en
    from diy.training import train_step

    tokenizer = CharTokenizer()
    passage = load_passage()
    passage_ids = tokenizer.encode(passage)
    prompt = passage[:8]
    prompt_ids = torch.tensor([tokenizer.encode(prompt)])  # (1, 8)
    print("提示词:", prompt, " prompt_ids.shape:", tuple(prompt_ids.shape))
    print("它在短文里只出现一次:", passage.count(prompt) == 1)
    print(describe())  # 这门课此刻跑在哪个骨干网络上（见 README「已经有自己的 DIYModel？」）
    """),
    md("""
    ## 1. ✏️ 练习 2.3：贪心续写 greedy_continue

    生成是一个「一次一个 token」的循环。最简单的版本每一步都把**到目前为止的整段**重新送进模型（第三步会用 KV cache 省掉这些重复计算），
    每一步只挑概率最大的那个字——这叫**贪心**（greedy）。

    **签名**：`greedy_continue(model, input_ids, max_new_tokens) -> (B, L + max_new_tokens)`，`input_ids` 是 `(B, L)` 的 long 张量。

    **要满足的**：
    - 生成前关掉 dropout：同样的输入，同样的输出；不需要梯度；
    - 每一步：模型最多看 `model.config.max_seq_len` 个 token——整段更长时只送最后这么多个（用模型自己的配置，不要写死 128；
      自检会用一个 `max_seq_len` 更小的模型试你的函数）；
    - 位置 `t` 的 logits 预测的是第 `t+1` 个 token：我们要的是「整段之后」的下一个；
    - 新 token 接在每一行的末尾，返回 prompt + 新 token，dtype 仍是 long。

    可参考的代码片段（只作提示，空白处自己填）：

    ```python
    next_id = logits[____].argmax(dim=____, keepdim=True)   # (B, 1)
    input_ids = torch.cat([input_ids, next_id], dim=____)   # (B, L + 1)
    ```

    **先猜一猜，再运行自检**：`argmax` 沿哪一维？如果忘了只送最后 `max_seq_len` 个 token，续写到第几个字时会出错？
    """),
    exercise(
        solution="""
        # ✏️ 练习 2.3
        def greedy_continue(model, input_ids, max_new_tokens):
            \"\"\"input_ids (B, L) → (B, L + max_new_tokens)：每次取最后一个位置 argmax 的 token 接上。\"\"\"
            model.eval()
            max_seq_len = model.config.max_seq_len
            with torch.no_grad():
                for _ in range(max_new_tokens):
                    context = input_ids[:, -max_seq_len:]                       # (B, ≤ max_seq_len)
                    logits = model(context)                                     # (B, l, V)
                    next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)     # (B, 1)
                    input_ids = torch.cat([input_ids, next_id], dim=1)          # (B, L + 1)
            return input_ids
        """,
        stub="""
        # ✏️ 练习 2.3
        def greedy_continue(model, input_ids, max_new_tokens):
            \"\"\"input_ids (B, L) → (B, L + max_new_tokens)：每次取最后一个位置 argmax 的 token 接上。\"\"\"
            raise NotImplementedError("✏️ eval() → 循环：裁剪 → 前向 → 最后一个位置 argmax → 拼接")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    greedy_continue = check_greedy_continue(greedy_continue)
    """),
    md("""
    ## 2. 训练之前：乱码

    **先猜一猜，再运行**：一个刚初始化、什么都没学的模型，从「海边的小镇上有一」往下续写 30 个字，会写出什么？
    """),
    code("""
    torch.manual_seed(0)
    untrained = DIYForCausalLM(DIYConfig())
    before = greedy_continue(untrained, prompt_ids, 30)
    print("输出形状:", tuple(before.shape))
    print(tokenizer.decode(before[0]))
    """),
    md("""
    随机模型的分布几乎是均匀的（1.1 里见过），argmax 选中的只是随机初始化里碰巧最大的那个 id：和短文毫无关系，
    还常常卡在同一个字上反复输出——贪心的老毛病，3.2 的采样会再见到它。

    ## 3. 训练之后：背出整段

    `course_model()` 给出 2.2 第 6 节那次 70 步训练得到的模型：同样的种子、同样的 `TrainConfig()`、同样的短文，
    也就是你的 `train_loop` 用 `TrainConfig()` 会训练出来的模型（2.2 里它和 `train` 一步不差；这也是 `python -m diy.train` 默认做的事）。
    ⏳ 第一次运行时（课程缓存里还没有它）它现场训练（2 核 CPU 上约 12 秒，机器忙时更久），然后存进缓存文件夹（`~/.cache/diy-llm`），之后的 notebook（包括第三步）直接读取，不到一秒。
    """),
    code("""
    model = course_model()
    print("模型在 eval 模式:", not model.training)
    """),
    code("""
    new_tokens = len(passage_ids) - len(prompt) + 1        # 短文剩下的字，再加一个 <eos>
    after = greedy_continue(model, prompt_ids, new_tokens)
    recited = tokenizer.decode(after[0])
    print(recited)
    print()
    print("与原文逐字相同（最后是 <eos>）:", recited == passage + "<eos>")
    """),
    md("""
    三百多个字，一个都没错，最后还输出了 `<eos>`——它学到了「短文到这里结束」（2.1 拼 token 流时在每遍短文后面放了 `<eos>`）。

    **为什么要 `model.eval()`？** 训练模式下 dropout 每次随机丢掉一部分激活，同样的输入两次前向的 logits 都不一样，
    生成的结果也就每次不同。看一眼：
    """),
    code("""
    x = prompt_ids
    model.train()
    with torch.no_grad():
        print("train 模式，两次前向 logits 相同:", torch.equal(model(x), model(x)))
    model.eval()
    with torch.no_grad():
        print("eval 模式，两次前向 logits 相同: ", torch.equal(model(x), model(x)))
    """),
    md("""
    ## 4. 学习率：太大、太小、刚好

    用 2.2 的「过拟合一个 batch」设置，只换学习率，各训练 25 步（每次都从同样的初始参数开始）。
    **先猜一猜，再运行**：lr = 3e-5、3e-3、3e-1 三条曲线分别是什么样子？lr = 10 呢——loss 会变成 NaN 吗？
    """),
    code("""
    tokens = training_stream(passage_ids, tokenizer.eos_token_id, seq_len=128)
    one_batch = get_batch(tokens, 2, 64, torch.Generator().manual_seed(1))   # (2, 64)
    lr_curves = {}
    for lr, steps in ((3e-5, 25), (3e-3, 25), (3e-1, 25), (10.0, 10)):
        torch.manual_seed(0)
        demo = DIYForCausalLM(DIYConfig())
        demo_optimizer = torch.optim.AdamW(demo.parameters(), lr=lr)
        lr_curves[lr] = [train_step(demo, demo_optimizer, one_batch) for _ in range(steps)]
    start = lr_curves[3e-3][0]
    print("lr=3e-5：25 步后还在 5 以上（降得很慢）:", lr_curves[3e-5][-1] > 5)
    print("lr=3e-3：25 步后低于 0.5:", lr_curves[3e-3][-1] < 0.5)
    big = lr_curves[3e-1]
    print("lr=0.3：前 10 步里冲到起点的 2 倍以上:", max(big[:10]) > 2 * start)
    print("lr=0.3：之后往回落，但 25 步后仍高于起点:", big[-1] < max(big), big[-1] > start)
    print("lr=10：loss 冲到 1000 以上:", max(lr_curves[10.0]) > 1000)
    print("所有 loss 都是有限的数（没有 NaN / inf）:", all(math.isfinite(x) for losses in lr_curves.values() for x in losses))
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    for lr, losses in lr_curves.items():
        print(f"lr={lr:g}: 第 1 步 {losses[0]:.1f} → 第 {len(losses)} 步 {losses[-1]:.3g}（最高 {max(losses):.3g}）")
    """),
    code("""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for lr, losses in lr_curves.items():
        ax.plot(range(1, len(losses) + 1), losses, marker=".", label=f"lr = {lr:g}")
    ax.axhline(math.log(6400), color="gray", linestyle="--", label="ln 6400")
    ax.set_yscale("log")
    ax.set_xlabel(zh_or_en("步数", "step"))
    ax.set_ylabel(zh_or_en("loss（对数刻度）", "loss (log scale)"))
    ax.set_title(zh_or_en("同一个 batch，不同的学习率", "One batch, four learning rates"))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=10)
    ax.legend(fontsize=8)
    plt.show()
    """),
    md("""
    - **太小**（3e-5）：每一步只挪一点点，25 步后还在 5 以上，而 3e-3 已经低于 0.5——不是代码错了，只是太慢；
    - **刚好**（3e-3）：稳定、快速地下降；
    - **太大**（3e-1）：每一步都冲过了头，loss 不降反升：前几步就冲到起点的两倍以上，之后才慢慢往回落，25 步后仍高于起点
      （而 3e-3 已经低于 0.5）；lr = 10 时 loss 冲到 1000 以上。梯度裁剪也救不了：
      AdamW 每一步的步长大约就是 lr 本身，和梯度大小无关（2.2 第 7 节）。
    - **没有 NaN**：在这些运行里，loss 再大也还是有限的数（float32 最大能表示约 3.4e38）。NaN 要等到出现 inf − inf、0 / 0 这类运算才会冒出来，
      这里没有发生。`python -m diy.train` 仍然每一步都检查：loss 一旦不是有限的数，它就停下来，告诉你是哪个学习率、建议调小多少。

    ## 5. 保存与读回：检查点

    用 Hugging Face 的方法名：`save_pretrained(文件夹)` 写出 `config.json`（超参数）和 `model.safetensors`（权重），
    `DIYForCausalLM.from_pretrained(文件夹)` 读回来，得到一个 eval 模式的模型。每个文件先写到临时文件、再改名替换，
    中途被打断也不会留下写了一半的检查点。
    """),
    code("""
    folder = "checkpoints/step2"                     # 相对于这个 notebook 所在的文件夹；git 不跟踪 checkpoints/
    model.save_pretrained(folder)
    reloaded = DIYForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        same = torch.equal(model.eval()(prompt_ids), reloaded(prompt_ids))
    print("文件:", sorted(os.listdir(folder)))
    print("读回的配置:", reloaded.config.vocab_size, reloaded.config.hidden_size, reloaded.config.num_layers)
    print("读回的模型 logits 完全一样:", same)
    """),
    md("""
    ## 6. 过拟合：这里是好事，平时是坏事

    我们让模型在**一段**文字上训练到 loss ≈ 0——它把这段话背了下来，这叫**过拟合**（over-fitting）。
    在这里它正是我们想要的证明：数据 → token → batch → 前向 → loss → 反向 → 更新，整条链路是通的，模型「能学」。

    真正训练语言模型时，目标是对**没见过**的文字也预测得好（泛化）。那时要留一份训练时看不到的**验证集**。
    我们也留了两句：风格、用字都和短文相近，但短文里没有。2.2 的那次训练在每次评估时，也顺便算了模型在这两句上的 loss。

    **先猜一猜，再运行**：训练 loss 降到接近 0 的时候，没见过的句子上的 loss 是多少——比均匀瞎猜（ln 6400 ≈ 8.76）好还是差？
    """),
    code("""
    run = course_run("clip")
    print("留出的句子:", HELD_OUT)
    print("其中有一句出现在短文里:", any(sentence in passage for sentence in HELD_OUT.split("。") if sentence))
    print(" 步数  评估 loss（短文）  留出句子的 loss  留出句子的困惑度")
    for step, seen, unseen in zip(run.history.eval_step, run.history.eval_loss, run.held_out_loss, strict=True):
        print(f"{step:5} {seen:14.2f} {unseen:16.1f} {float(f'{math.exp(unseen):.2g}'):14,.0f}")   # 困惑度只取两位有效数字
    lowest = min(run.held_out_loss)
    print("留出句子的 loss 先降后升，最后比最低点高出 2 以上:", run.held_out_loss[-1] > lowest + 2)
    print("最后比均匀瞎猜还差（高于 ln 6400）:", run.held_out_loss[-1] > math.log(6400))
    """),
    md("""
    画出来。左图是三条 loss，纵轴用对数刻度（loss 从约 9 降到 0.01）；在这样的刻度上，留出句子从 7.7 升到 10.9 只是一小段，
    几乎看不出来。所以右图只画留出句子的 loss，用**普通刻度**：先降、后升，最后高过「均匀瞎猜」那条线。
    """),
    code("""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
    history = run.history
    unseen_label = zh_or_en("留出句子的 loss（没见过）", "held-out loss (unseen)")
    guess_label = zh_or_en("均匀瞎猜 ln 6400", "uniform guess ln 6400")
    left.plot(history.step, history.train_loss, linewidth=1, label=zh_or_en("训练 loss（每步的 batch）", "train loss"))
    left.plot(history.eval_step, history.eval_loss, "o-", label=zh_or_en("评估 loss（短文）", "eval loss (the passage)"))
    left.plot(history.eval_step, run.held_out_loss, "s-", color="C2", label=unseen_label)
    left.set_yscale("log")
    left.set_ylabel(zh_or_en("loss（对数刻度）", "loss (log scale)"))
    left.set_title(zh_or_en("背下来了，但没学会别的", "Memorised, not generalised"))
    right.plot(history.eval_step, run.held_out_loss, "s-", color="C2", label=unseen_label)
    right.set_ylabel(zh_or_en("loss（普通刻度）", "loss (linear scale)"))
    right.set_title(zh_or_en("只看留出的句子：先降后升", "Held-out only: down, then up"))
    for ax in (left, right):
        ax.axhline(math.log(6400), color="gray", linestyle="--", label=guess_label)
        ax.set_xlabel(zh_or_en("步数", "step"))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=10)
    left.legend(fontsize=8, loc="lower left")
    right.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    plt.show()
    """),
    md("""
    前 20 步，留出句子的 loss 也在降（8.0 → 7.7）：模型先学到了「哪些字常见、标点怎么用」这种对所有中文都成立的东西。之后短文的 loss 一路降到接近 0，
    留出句子的 loss 却掉头往上，最后比均匀瞎猜还差——模型对没见过的句子「自信地猜错」。这就是过拟合在曲线上的样子：
    训练集上越来越好，没见过的数据上越来越差。真正训练时，看到验证 loss 开始上升，就该停下来（或者换更多数据、更小的模型、更强的正则化）。

    用生成来看同一件事：从短文里没有的开头续写。**先猜一猜，再运行**：模型会写出新的句子吗？
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    openings = [HELD_OUT[:8], "从前有座山，山里"]
    continuations = {}
    for opening in openings:
        out = greedy_continue(model, torch.tensor([tokenizer.encode(opening)]), 30)
        continuations[opening] = tokenizer.decode(out[0, 8:])
        print(opening, "→", continuations[opening].replace("\\n", "⏎"))
    """),
    code("""
    def copied_share(text, n):
        \"\"\"text 的 n 字片段里，原样出现在短文里的比例。\"\"\"
        pieces = [text[i:i + n] for i in range(len(text) - n + 1)]
        return sum(piece in passage for piece in pieces) / len(pieces)


    for opening, text in continuations.items():
        print(f"「{opening}」的续写：每个字都出现在短文里 {copied_share(text, 1) == 1}，"
              f"八成以上的两字片段原样来自短文 {copied_share(text, 2) > 0.8}")
    """),
    md("""
    它不会写新句子：不管开头是什么，续写用的都是短文里的字和词——要么直接接上短文的某一句背下去，要么把几段拼在一起、再反复打转。
    模型只会这一段话；换个开头，它也只能把这段话搬出来。

    ## 小结

    你现在能：
    - 写出不用缓存的贪心续写（`eval()`、裁剪到 `max_seq_len`、最后一个位置 argmax、拼接）；
    - 证明模型学会了：训练前是乱码，训练后从开头 8 个字逐字背出整段，并以 `<eos>` 结束；
    - 从 loss 曲线认出学习率太大、太小（太大时 loss 爆炸，但不一定变成 NaN）；
    - 用 `save_pretrained` / `from_pretrained` 保存、读回模型，logits 完全一致；
    - 用留出句子的 loss 和换个开头的续写，亲眼看到过拟合，说清楚它在这里和在真正训练中的不同意义。

    ## 第二步汇总

    - 有一个分词器、一段训练短文、一个 `get_batch`、一个训练循环和一条下降到接近 0 的 loss 曲线；
    - 模型能从短文开头背出全文，并存成了检查点；命令行 `python -m diy.train` 做的是同一件事；
    - **下一步**：第三步用这个模型做生成——先把贪心循环换成带 KV cache 的版本，再学温度、top-k、top-p 采样。
    """),
]

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

    from diy import CharTokenizer, DIYConfig, DIYForCausalLM, get_batch, load_passage, training_stream
    from diy.checks import check_greedy_continue
    from diy.course_model import course_model
    from diy.plotting import zh_or_en
    from diy.training import train_step

    tokenizer = CharTokenizer()
    passage = load_passage()
    passage_ids = tokenizer.encode(passage)
    prompt = passage[:8]
    prompt_ids = torch.tensor([tokenizer.encode(prompt)])  # (1, 8)
    print("提示词:", prompt, " prompt_ids.shape:", tuple(prompt_ids.shape))
    print("它在短文里只出现一次:", passage.count(prompt) == 1)
    """),
    md("""
    ## 1. ✏️ 练习 2.3：贪心续写 greedy_continue

    生成是一个「一次一个 token」的循环。最简单的版本每一步都把**到目前为止的整段**重新送进模型（第三步会用 KV cache 省掉这些重复计算）：

    ```
    model.eval()                                            # 关掉 dropout：同样的输入，同样的输出
    max_seq_len = model.config.max_seq_len                  # 用模型自己的配置，不要写死 128
    重复 max_new_tokens 次：
        context = input_ids[:, -max_seq_len:]               # (B, ≤ max_seq_len)：模型最多看 max_seq_len 个 token
        logits = model(context)                             # (B, l, V)
        next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)   # (B, 1)：最后一个位置、沿词表取最大
        input_ids = torch.cat([input_ids, next_id], dim=1)  # (B, L + 1)
    return input_ids
    ```

    - **最后一个位置**：位置 `t` 的 logits 预测的是第 `t+1` 个 token，我们要的是「整段之后」的下一个，就是最后一个位置；
    - **截断**：短文有三百多字，超过了课程模型的 `max_seq_len = 128`，所以只送最后 `max_seq_len` 个 token（自检会用一个 `max_seq_len` 更小的模型试你的函数）；
    - 放在 `torch.no_grad()` 里更省内存（生成不需要梯度）。
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

    `course_model()` 给出**和 2.2 一模一样的训练**得到的模型：同样的种子、同样的 `TrainConfig()`、同样的短文
    （这也是 `python -m diy.train` 默认做的事）。第一次运行时它现场训练（2 核 CPU 上约 13 秒），
    然后存进缓存文件夹（`~/.cache/diy-llm`），之后的 notebook（包括第三步）直接读取，不到一秒。
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
    **先猜一猜，再运行**：lr = 3e-5、3e-3、3e-1 三条曲线分别是什么样子？
    """),
    code("""
    tokens = training_stream(passage_ids, tokenizer.eos_token_id, seq_len=128)
    one_batch = get_batch(tokens, 2, 64, torch.Generator().manual_seed(1))   # (2, 64)
    lr_curves = {}
    for lr in (3e-5, 3e-3, 3e-1):
        torch.manual_seed(0)
        demo = DIYForCausalLM(DIYConfig())
        demo_optimizer = torch.optim.AdamW(demo.parameters(), lr=lr)
        lr_curves[lr] = [train_step(demo, demo_optimizer, one_batch) for _ in range(25)]
    for lr, losses in lr_curves.items():
        print(f"lr={lr:g}: 第 1 步 {losses[0]:.1f} → 第 25 步 {losses[-1]:.1f}（最高 {max(losses):.1f}）")
    """),
    code("""
    fig, ax = plt.subplots(figsize=(7, 3))
    for lr, losses in lr_curves.items():
        ax.plot(range(1, 26), losses, marker=".", label=f"lr = {lr:g}")
    ax.axhline(math.log(6400), color="gray", linestyle="--", label="ln 6400")
    ax.set_yscale("log")
    ax.set_xlabel(zh_or_en("步数", "step"))
    ax.set_ylabel(zh_or_en("loss（对数刻度）", "loss (log scale)"))
    ax.set_title(zh_or_en("同一个 batch，不同的学习率", "One batch, three learning rates"))
    ax.legend()
    plt.show()
    """),
    md("""
    - **太小**（3e-5）：每一步只挪一点点，25 步只降到 6.7，而 3e-3 已经到 0.1——不是代码错了，只是太慢；
    - **刚好**（3e-3）：稳定、快速地下降；
    - **太大**（3e-1）：每一步都冲过了头，loss 不降反升、剧烈震荡（更大时会变成 NaN）。梯度裁剪也救不了：
      AdamW 每一步的步长大约就是 lr 本身，和梯度大小无关。`python -m diy.train` 发现 loss 变成 NaN 时会停下来，
      告诉你是哪个学习率、建议调小多少。

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

    真正训练语言模型时，目标是对**没见过**的文字也预测得好（泛化）。那时要留一份模型训练时看不到的验证集：
    训练 loss 继续下降、验证 loss 却开始上升，就是过拟合了——模型在背训练集，而不是学语言的规律。
    这段短文的模型换个开头就不会了，它只会这一段。

    ## 小结

    你现在能：
    - 写出不用缓存的贪心续写（`eval()`、裁剪到 `max_seq_len`、最后一个位置 argmax、拼接）；
    - 证明模型学会了：训练前是乱码，训练后从开头 8 个字逐字背出整段，并以 `<eos>` 结束；
    - 从 loss 曲线认出学习率太大、太小；
    - 用 `save_pretrained` / `from_pretrained` 保存、读回模型，logits 完全一致；
    - 说清楚过拟合在这里和在真正训练中的不同意义。

    ## 第二步汇总

    - 有一个分词器、一段训练短文、一个 `get_batch`、一个训练循环和一条下降到接近 0 的 loss 曲线；
    - 模型能从短文开头背出全文，并存成了检查点；命令行 `python -m diy.train` 做的是同一件事；
    - **下一步**：第三步用这个模型做生成——先把贪心循环换成带 KV cache 的版本，再学温度、top-k、top-p 采样。
    """),
]

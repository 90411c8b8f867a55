"""Lesson 4.3: what pretraining taught the model — ci written from a 词牌 (before / step 2's
model / after), 下一句 (the true next line among four), 格律 (phrase lengths), and copying."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：4.2 的课程模型在留出集上已经低于 bigram。数字之外，它到底学会了什么？这一节用三种办法看：
    让它按词牌写词（和训练前、和第二步背短文的模型比）；在**没见过的词**上做「下一句」四选一；数一数它写的词合不合**格律**。
    最后检查它是不是在抄训练集。

    **学完后你能自测**：
    - [ ] 写出 `line_log_prob`：已知上文时，一句候选的 log 概率，并用它做「下一句」四选一；
    - [ ] 写出 `meter`：一首词每个短句的字数，看懂「格律」的比较；
    - [ ] 说出为什么第二步过拟合的模型在这里很差，「下一句」的随机水平为什么是 25%；
    - [ ] 用「和训练集最长的相同片段」判断生成的词是不是抄来的。

    **怎么做练习**：带 ✏️ 的单元格自己写，写完运行它，再运行紧接着的**自检**单元格（✅ / ⏳ / ❌）。
    """),
    md("""
    ## 0. 准备
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    import re

    import numpy as np
    import torch

    from diy import CharTokenizer, load_passage
    from diy.backbone import describe
    from diy.classroom.checks import check_line_log_prob, check_meter
    from diy.classroom.course_model import course_model
    from diy.classroom.course_pretrain import build_model, course_pretrain, course_recipe
    from diy.pretraining.measures import (
        SharedRuns,
        ci_lines,
        next_line_questions,
        usual_meters,
        write_ci,
    )
    from diy.pretraining.songci import encode_quietly

    torch.manual_seed(0)
    print("torch", torch.__version__)   # 版本号随安装而不同，自动测试不比较这一格
    print(describe())
    """),
    md("""
    三个模型：4.2 的课程预训练（还没运行过 4.2 的话，这里第一次运行时要先训练它，2 核 CPU 上约 2 分钟，之后从缓存读取）；同一个模型**训练前**的样子（同样的初始权重）；
    第二步背下一段短文的课程模型（它用的是第二步的 6400 字词表）。
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    run = course_pretrain()
    data, tokenizer = run.data, run.tokenizer
    trained = run.model
    untrained = build_model(course_recipe(), len(tokenizer)).eval()
    step2, step2_tokenizer = course_model(), CharTokenizer()
    print(f"预训练后：留出集 {run.history.final_bpc:.2f} bits/字（{run.history.steps[-1]} 步）")
    """),
    md("""
    和 4.2 一样：训练出来的模型和你的 CPU、线程数有一点关系，所以下面打印生成结果和具体百分比的格子，数字可能和别人的略有不同；
    每一处结论都由紧跟着的一格打印（那一格在任何机器上都一样）。
    """),
    md("""
    ## 1. 按词牌写一首

    给模型一个词牌名和换行（`"浣溪沙\\n"`，和训练时每首词的第一行一样），让它接着写，写到空行（一首词的结尾）为止。
    用 3.2 的采样：温度 0.8、top-k 50，固定种子的 generator。
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    written = {}
    for label, model, tok in (("训练前", untrained, tokenizer), ("第二步的模型", step2, step2_tokenizer),
                              ("预训练后", trained, tokenizer)):
        written[label] = write_ci(model, tok, "浣溪沙", count=4)   # diy.pretraining.measures.write_ci
        print(f"—— {label} ——")
        print(written[label][0][:150])
    """),
    code("""
    passage = set(load_passage())   # 第二步背的那段短文
    def lines_of(texts):
        return [line for text in texts for line in text.split("\\n")[1:] if line]
    def ends_in_punctuation(texts):
        lines = lines_of(texts)
        return sum(line[-1] in "，。、？！；：" for line in lines) / max(1, len(lines))
    print("训练前：几乎没有一行以标点结尾:", ends_in_punctuation(written["训练前"]) < 0.2)
    step2_chars = "".join(written["第二步的模型"]).replace("浣溪沙", "")
    print("第二步的模型：写出的字九成以上出自它背的那段短文:",
          sum(ch in passage for ch in step2_chars) / max(1, len(step2_chars)) > 0.9)
    print("预训练后：大多数行以标点结尾:", ends_in_punctuation(written["预训练后"]) > 0.6)
    """),
    md("""
    - **训练前**：随机权重，每个字都差不多等可能，写出来是一串乱字；
    - **第二步的模型**：它只见过一段讲小镇和灯塔的白话文，不管开头给什么，都把话题拉回它背过的那段；
    - **预训练后**：一行一行，句号、逗号、换行的位置像一首词，用字也像宋词（风、花、春、月……）。

    读起来像，还不等于学会了。下面用两个能算出数字的测验。

    ## 2. ✏️ 「下一句」四选一

    从**留出集**的一首词里取词牌和前几行作上文，真正的下一行是答案；再从留出集的**别的**词里找三行**字数相同**的句子作干扰项。
    模型给四个候选各打一个分：已知上文时这一行的 **log 概率**，选分最高的。什么都没学会的模型只能碰运气：25%。

    字数相同很重要：log 概率是每个字的 log 概率之和（都是负数），长的句子总分自然更低，四个候选等长才公平。

    **练习 4.3a**：写 `line_log_prob(model, context_ids, candidate_ids)`。

    | 参数 | 内容 |
    | --- | --- |
    | `context_ids` | 上文的 id 列表（长度 `start`） |
    | `candidate_ids` | 候选句的 id 列表（长度 `n`） |
    | 返回 | `log P(候选 \\| 上文)`：候选句每个 token 的 log 概率之和（一个 Python 数，≤ 0） |

    **要满足的**：把两段拼成一条序列，前向**一次**；位置 `t` 的输出预测的是位置 `t + 1` 的 token，所以候选句第一个 token 的概率在位置 `start - 1`；
    用 `log_softmax`；不需要梯度（`torch.no_grad()`），模型由调用方放在 eval 模式，你的函数不要改它。

    提示：候选句第 j 个 token 的概率，在哪个位置的输出里？把这 n 个位置的 `(n, V)` 一次取出来，
    每一行只要候选 token 那一列——`torch.gather`（或高级索引）能按 id 逐行取值。
    """),
    exercise(
        solution="""
        # ✏️ 练习 4.3a
        def line_log_prob(model, context_ids, candidate_ids):
            \"\"\"log P(candidate | context)：候选句每个 token 的 log 概率之和。\"\"\"
            ids = torch.tensor([context_ids + candidate_ids])  # (1, start + n)
            with torch.no_grad():
                log_probs = torch.log_softmax(model(ids).float(), dim=-1)  # (1, T, V)
            start, n = len(context_ids), len(candidate_ids)
            targets = ids[0, start:]  # (n,)
            predicted = log_probs[0, start - 1:start - 1 + n]  # (n, V)：位置 t 预测 t + 1
            return float(predicted.gather(1, targets[:, None]).sum())
        """,
        stub="""
        # ✏️ 练习 4.3a
        def line_log_prob(model, context_ids, candidate_ids):
            \"\"\"log P(candidate | context)：候选句每个 token 的 log 概率之和。\"\"\"
            raise NotImplementedError("✏️ 拼起来前向一次 → log_softmax → 取候选 token 的值求和")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    line_log_prob = check_line_log_prob(line_log_prob)
    """),
    code("""
    questions = next_line_questions(list(data.held_out_cis), count=300, seed=0)
    context, candidates, answer = questions[0]
    print("上文:", context.replace("\\n", "⏎"))
    print("四个候选（✔ 是真正的下一行）:")
    for i, line in enumerate(candidates):
        print(f"  {'✔' if i == answer else ' '} {line}")
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    for i, line in enumerate(candidates):
        score = line_log_prob(trained, encode_quietly(tokenizer, context), encode_quietly(tokenizer, line))
        print(f"  {'✔' if i == answer else ' '} {line}  log P = {score:.1f}")
    """),
    md("""
    **先猜一猜，再运行**：300 道题（全部来自留出集），训练前的模型、第二步的模型、预训练后的模型各答对多少？
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    def accuracy(model, tok):
        \"\"\"答对的比例，和真正的下一行比三个干扰项平均高出的 log 概率。\"\"\"
        right, margins = 0, []
        for context, candidates, answer in questions:
            context_ids = encode_quietly(tok, context)   # 词表外的字变成 <unk>，不再逐个提醒
            scores = [line_log_prob(model, context_ids, encode_quietly(tok, line)) for line in candidates]
            right += int(np.argmax(scores) == answer)
            margins.append(scores[answer] - np.mean([s for i, s in enumerate(scores) if i != answer]))
        return right / len(questions), float(np.mean(margins))


    scores = {"训练前": accuracy(untrained, tokenizer), "第二步的模型": accuracy(step2, step2_tokenizer),
              "预训练后": accuracy(trained, tokenizer)}
    for label, (value, margin) in scores.items():
        print(f"{label:8} 答对 {value:.0%}；真句比干扰项的 log 概率平均高 {margin:+.2f}")
    print("随机猜      25%")
    """),
    code("""
    print("训练前、第二步的模型都在 25% 上下（19%～31%：300 道题的随机起伏）:",
          all(0.19 <= scores[k][0] <= 0.31 for k in ("训练前", "第二步的模型")))
    print("训练前、第二步的模型：真句并不比干扰项更可能（平均高出不到 0.5）:",
          all(scores[k][1] < 0.5 for k in ("训练前", "第二步的模型")))
    print("预训练后：真正的下一行平均比干扰项更可能（log 概率高出 1 以上）:", scores["预训练后"][1] > 1)
    """),
    md("""
    训练前的模型在碰运气。第二步的模型也一样：它把一段白话文背得一字不差，可对宋词一无所知——**背下训练数据不等于学会语言**，
    它在自己没见过的文字上什么也预测不了（这就是第二步结尾看到的「过拟合」）。

    预训练后的模型只训练了 600 步，四选一答对的比例只比碰运气高出十个百分点上下（上面那格的数字随机器略有不同）；
    更清楚的是 log 概率：它给真正下一行的 log 概率，平均比干扰项高出 1 以上（概率高出 e¹ ≈ 2.7 倍以上）：
    在一首它没读过的词里，它已经开始分辨哪一行更像接下来的那一句，只是常被同样像样的干扰项骗过。
    训练得更久，答对的比例就会明显上去（默认配方的实测见 README）。

    ## 3. ✏️ 格律：每个短句几个字

    词牌规定了每个短句的字数。比如浣溪沙是六个七字句：
    「一曲新词酒一杯，去年天气旧亭台。夕阳西下几时回。无可奈何花落去，似曾相识燕归来。小园香径独徘徊。」

    **练习 4.3b**：写 `meter(lines)`：一首词的各行（字符串列表）→ 各短句字数用「·」连起来的字符串，例如 `"7·7·7·7·7·7"`。

    **要满足的**：短句以标点结束（`，。、？！；：`，课程的 `diy.pretraining.measures.PHRASE_END` 还包括它们的半角形式）；
    行末没有标点的一段也算一个短句；空串不算；只看短句，不管在哪里换行（语料里分行并不统一）。

    提示：`re.split` 能在「一组字符中的任何一个」处把字符串切开（正则表达式的方括号）；切完可能留下空串。
    """),
    exercise(
        solution="""
        # ✏️ 练习 4.3b
        def meter(lines):
            \"\"\"各短句的字数，用「·」连起来：浣溪沙 → "7·7·7·7·7·7"。\"\"\"
            lengths = [len(phrase) for line in lines for phrase in re.split(r"[，。、？！；：,.?!;:]", line)
                       if phrase]
            return "·".join(str(n) for n in lengths)
        """,
        stub="""
        # ✏️ 练习 4.3b
        def meter(lines):
            \"\"\"各短句的字数，用「·」连起来：浣溪沙 → "7·7·7·7·7·7"。\"\"\"
            raise NotImplementedError("✏️ 按标点切开 → 数每段的字数 → 用「·」连起来")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    meter = check_meter(meter)
    """),
    md("""
    对每个词牌，训练集里最常见的那种字数排列就是它的「格律」。挑五个格律很固定的词牌：
    """),
    code("""
    usual = usual_meters(list(data.train_cis))
    chosen = ["浣溪沙", "鹧鸪天", "菩萨蛮", "西江月", "减字木兰花"]
    for name in chosen:
        form, count, total = usual[name]
        print(f"{name:6} {form:22}  训练集里 {count}/{total} 首是这样")
    """),
    md("""
    现在让预训练后的模型每个词牌写 8 首，数一数多少首的字数排列和格律**完全一样**（一个字都不能多、不能少）；
    再和留出集里这几个词牌的真词比：
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    real_total = real_match = gen_total = gen_match = 0
    samples = {}
    for index, name in enumerate(chosen):
        form = usual[name][0]
        real = [ci for ci in data.held_out_cis if ci.rhythmic == name]
        real_hits = sum(meter(ci.paragraphs) == form for ci in real)
        texts = write_ci(trained, tokenizer, name, seed=index, count=8)
        samples[name] = texts
        hits = sum(meter(ci_lines(text + "\\n\\n")) == form for text in texts)
        print(f"{name:6} 留出集的真词 {real_hits}/{len(real)}，模型写的 {hits}/8")
        real_total, real_match, gen_total, gen_match = (real_total + len(real), real_match + real_hits,
                                                        gen_total + 8, gen_match + hits)
    print(f"合格律的比例：真词 {real_match / real_total:.0%}，模型写的 {gen_match / gen_total:.0%}")
    """),
    code("""
    print(f"留出集的真词 {real_total} 首，九成以上合格律:", real_match / real_total > 0.9)
    print("模型写的词还远没学会格律（合格律的不到三成）:", gen_match / gen_total < 0.3)
    lines_per_ci = [len(ci_lines(text + "\\n\\n")) for texts in samples.values() for text in texts]
    print("但它写的词大多分了行（至少两行的超过一半）:", np.mean([n >= 2 for n in lines_per_ci]) > 0.5)
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    example = samples["浣溪沙"][0]
    print(example)
    print("字数:", meter(ci_lines(example + "\\n\\n")), " 格律:", usual["浣溪沙"][0])
    """),
    md("""
    真词几乎全都合格律（少数是异体或残缺）。课程模型用默认配方只训练了 600 步（训练集还没看完一遍）：
    写出来的词已经会分行、在句末用标点，但还数不准每句几个字。格律是一种跨越整首词的长距离规律，要见过更多的数据才学得会
    （默认配方的实测见 README）。

    ## 4. 它是不是在抄？

    写得像，也可能是因为它把训练集里的整句整段背了下来。检查办法：对生成的每首词，找出它和**训练集**共有的**最长片段**。
    作为对照，对留出集里的真词（模型没见过、也不是抄的）做同样的事——真词之间本来就会共用一些常见的说法。
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    shared = SharedRuns(data.train_text)   # 训练集每种长度的片段的哈希，算一次、反复用
    generated = [text.split("\\n", 1)[1] for texts in samples.values() for text in texts if "\\n" in text]
    real = ["\\n".join(ci.paragraphs) for ci in data.held_out_cis if ci.rhythmic in chosen][:40]
    lengths = {}
    for label, texts in (("模型写的", generated), ("留出集的真词", real)):
        runs = [shared.longest(text) for text in texts]
        lengths[label] = [len(run) for run in runs]
        print(f"{label}：{len(texts)} 首，最长共有片段的字数：中位数 {np.median(lengths[label]):.0f}，"
              f"最长 {max(lengths[label])}（{max(runs, key=len)!r}）")
    """),
    code("""
    print("模型写的词与训练集共有的片段，不比真词的长（中位数）:",
          np.median(lengths["模型写的"]) <= np.median(lengths["留出集的真词"]))
    print("没有一首整句照抄（共有片段都不到 12 个字）:", max(lengths["模型写的"]) < 12)
    """),
    md("""
    模型写的词和训练集共有的片段，和真词一样短：共用的是「东风」「何处」这样的常见说法、最多半句，没有整句整段照抄。
    它写的是训练集里**没有**的句子，只是用了宋词的字、宋词的句式——这正是「学会规律」的样子。

    ## 5. 想训练得更久

    课程的预训练是默认配方缩短到 600 步。完整的配方在命令行里运行（进度条显示 token/s、剩余时间和最新的留出集 bpc，
    每 250 步存一次检查点，Ctrl-C 会存好再停，`--resume` 从检查点接着训练）：

    ```bash
    .venv/bin/python -m diy.pretrain                          # 默认配方：3,000 步，2 核 CPU 上约十分钟
    .venv/bin/python -m diy.pretrain --minutes 3              # 先量速度，再定步数
    .venv/bin/python -m diy.pretrain --resume checkpoints/pretrain
    .venv/bin/python -m diy.generate --checkpoint checkpoints/pretrain --prompt 浣溪沙 --temperature 0.8 --top-k 50
    ```

    默认配方在这台机器上的结果（留出集 bpc、「下一句」、格律），以及在 GPU、多进程上怎么跑，见 README。

    ## 小结

    你现在能：
    - 用预训练的模型按词牌写词，并和训练前、和只会背短文的第二步模型对比；
    - 写出 `line_log_prob`，用「下一句」四选一量出模型在**没见过的词**上学到了多少（随机是 25%）；
    - 写出 `meter`，比较生成的词与真词合格律的比例；
    - 用「和训练集最长的相同片段」说明模型写的是新句子，不是抄来的。

    这门课到这里，你从 token id 出发，搭起了自己的 `DIYModel`，给它加上 `lm_head` 和 loss，写了训练循环和 `generate`，
    最后在两万首宋词上把它预训练成了一个会写词的模型。
    """),
]

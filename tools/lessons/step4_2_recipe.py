"""Lesson 4.2: the training recipe for a real corpus: warmup + cosine, gradient accumulation,
weight decay on matrices only, the unigram / bigram baselines, the course's pretraining run."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：第二步的训练循环只要让模型背下一段话。在两万首词上学「规律」，循环还要多几样东西：
    **学习率计划**（先 warmup，再余弦下降）、**梯度累积**（batch 比内存装得下的大）、**只对矩阵做权重衰减**，
    以及每隔一段时间在**留出集**上用 bits per character 打分，和两条基线比。

    **学完后你能自测**：
    - [ ] 写出 `lr_at(step, ...)`：起点、峰值、终点都对，并说出 warmup 为什么有用；
    - [ ] 写出梯度累积，并验证 k 个小 batch 的梯度和一次喂 k 倍大的 batch 相同（float32 舍入以内）；
    - [ ] 说出为什么权重衰减不加在 norm 的权重上；
    - [ ] 在 notebook 里算出 unigram、bigram 两条基线，并看到课程的模型训练几百步后就低于 bigram。

    **怎么做练习**：带 ✏️ 的单元格自己写，写完运行它，再运行紧接着的**自检**单元格（✅ / ⏳ / ❌）。
    """),
    md("""
    ## 0. 准备
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    import math

    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    import torch.nn.functional as F

    from diy.backbone import describe
    from diy.classroom.checks import check_accumulation, check_lr_schedule
    from diy.classroom.course_pretrain import build_model, course_pretrain, course_recipe
    from diy.plotting import plot_bpc_curve, zh_or_en
    from diy.pretraining import (
        PretrainConfig,
        bits_per_char,
        make_optimizer,
        param_groups,
        training_step,
        window_starts,
    )
    from diy.pretraining import lr_at as recipe_lr_at  # 课程的答案；你在 4.2a 写自己的 lr_at
    from diy.pretraining.baselines import bigram_bpc, unigram_bpc
    from diy.pretraining.packed import windows
    from diy.pretraining.songci import songci_data

    torch.manual_seed(0)
    print("torch", torch.__version__)   # 版本号随安装而不同，自动测试不比较这一格
    print(describe())
    """),
    md("""
    ## 1. 这一步的模型和数据

    数据就是 4.1 准备的：训练集的 token 流（uint16，存在课程的缓存里）和留出集的 id，词表是训练集自己的 6,047 个字。
    模型还是你在第零步写的那种，只是**窄一些**：`hidden_size` 128、4 层。
    """),
    code("""
    data = songci_data()
    recipe = PretrainConfig()   # python -m diy.pretrain 的默认配方
    model = build_model(recipe, len(data.tokenizer))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"训练 {len(data.stream):,} 个 token，留出 {len(data.held_out_ids):,} 个；词表 {len(data.tokenizer):,}")
    print(f"模型：hidden {recipe.hidden_size}、{recipe.num_layers} 层、{recipe.num_heads} 个头，{n_params:,} 个参数")
    print(f"默认配方：每步 {recipe.batch_size} × {recipe.seq_len} = {recipe.batch_size * recipe.seq_len:,} 个 token，"
          f"共 {recipe.steps:,} 步 = 训练集的 {recipe.steps * recipe.batch_size * recipe.seq_len / len(data.stream):.1f} 遍")
    """),
    md("""
    为什么比第二步的模型（hidden 256、2 层，490 万个参数）小？第二步只有一段话，模型再大也很快就背下来了；
    这里的限制是**计算时间**：笔记本电脑的 CPU 上训练十分钟。同样十分钟，窄一点的模型每步更快，能把训练集多看几遍；
    在这台 2 核机器上实测，窄的模型赢了，而层数从 3 加到 4 还有好处、加到 6 就没有了（怎么比出来的，见 README「默认配方的实测与它是怎么选出来的」）。

    先看一眼还没训练的模型：它在留出集上每个字要多少 bit？
    """),
    code("""
    before = bits_per_char(model, data.held_out_ids[:4096], seq_len=recipe.seq_len)
    print(f"训练前：{before:.2f} bits/字；均匀地在 {len(data.tokenizer):,} 个字里猜是 log2({len(data.tokenizer)}) = "
          f"{math.log2(len(data.tokenizer)):.2f}")
    """),
    md("""
    几乎正好是均匀地猜：`lm_head` 从 N(0, 0.02) 初始化，一开始的 logits 都很小、差不多一样大（1.2 讲过，logits 起伏越大，起点离均匀猜越远）。
    """),
    md("""
    ## 2. ✏️ 学习率：先 warmup，再余弦

    第二步一直用同一个学习率。预训练几乎都这样安排学习率：

    1. **warmup**：前 `warmup_steps` 步从很小线性升到 `max_lr`；
    2. **余弦下降**：之后沿半个余弦从 `max_lr` 平滑地降到 `min_lr`（通常是 `max_lr` 的十分之一），最后一步正好到 `min_lr`。

    为什么开头要慢？看 AdamW 的**第一步**：它用梯度除以梯度大小的估计来走，而第一步时这个估计只来自这一个梯度，
    于是**每个拿到了梯度的参数**都差不多正好挪动 `lr`——不管它的梯度是大是小、可不可靠
    （这个 batch 里没出现的字，embedding 的那一行梯度是 0，不动）：
    """),
    code("""
    probe = build_model(recipe, len(data.tokenizer))
    optimizer = torch.optim.AdamW(probe.parameters(), lr=3e-3, weight_decay=0.0)
    x, y = windows(data.stream, window_starts(0, 0, 16, len(data.stream), 128), 128)
    F.cross_entropy(probe(x).flatten(0, 1), y.flatten()).backward()
    old = [p.detach().clone() for p in probe.parameters()]
    optimizer.step()
    moved = torch.cat([(p.detach() - o).abs().flatten() for p, o in zip(probe.parameters(), old, strict=True)])
    moved = moved[moved > 0]
    total = sum(p.numel() for p in probe.parameters())
    print(f"第一步后，{total:,} 个参数里有 {moved.numel():,} 个动了；挪动的中位数 {moved.median():.2e}，"
          f"其中挪动接近 lr（> 0.9 × 3e-3）的占 {(moved > 0.9 * 3e-3).float().mean():.1%}")
    """),
    md("""
    动了的参数几乎都挪动了满满一个 `lr`，方向却只看了一个 batch。warmup 让最初几十步挪得小一些，等 Adam 对梯度大小的估计稳定了再加速。
    结尾降到很小，则让参数在最后「停稳」，不在 loss 的谷底来回晃。

    **练习 4.2a**：写 `lr_at(step, warmup_steps, total_steps, max_lr, min_lr)`，`step` 从 0 数。

    **要满足的**：
    - `step < warmup_steps` 时线性上升：第 0 步是 `max_lr / warmup_steps`（**不是 0**：第 0 步也要学到东西），第 `warmup_steps - 1` 步正好是 `max_lr`；
    - 之后用「进度」`p` 从 0 走到 1：第 `warmup_steps` 步 `p = 0`（学习率正好是 `max_lr`），最后一步 `total_steps - 1` 时 `p = 1`（正好是 `min_lr`）；
      中间沿**半个余弦**平滑下降：`p = 0.5` 时正好是 `max_lr` 和 `min_lr` 的平均，两头的下降都很缓；
    - 最后一步之后（如果还在训练）保持 `min_lr`；`warmup_steps = 0` 时直接从余弦开始。

    提示：`math.cos` 在 0 到 π 之间从 1 降到 −1。怎样把它变成一个从 1 降到 0 的系数，再用它在 `min_lr` 和 `max_lr` 之间取值？
    """),
    exercise(
        solution="""
        # ✏️ 练习 4.2a
        def lr_at(step, warmup_steps, total_steps, max_lr, min_lr):
            \"\"\"第 step 步（从 0 数）的学习率：线性 warmup，然后余弦降到 min_lr。\"\"\"
            if step < warmup_steps:
                return max_lr * (step + 1) / warmup_steps
            progress = min(1.0, (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps))
            return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)
        """,
        stub="""
        # ✏️ 练习 4.2a
        def lr_at(step, warmup_steps, total_steps, max_lr, min_lr):
            \"\"\"第 step 步（从 0 数）的学习率：线性 warmup，然后余弦降到 min_lr。\"\"\"
            raise NotImplementedError("✏️ warmup 阶段线性；之后按进度走半个余弦")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    lr_at = check_lr_schedule(lr_at)
    """),
    code("""
    course = course_recipe()   # 课程的预训练：同一个配方，总步数 600
    fig, ax = plt.subplots(figsize=(7, 3))
    for r, name in ((recipe, zh_or_en("默认配方", "default recipe")), (course, zh_or_en("课程的预训练", "course run"))):
        steps = np.arange(r.steps)
        ax.plot(steps, [lr_at(s, r.warmup_steps, r.steps, r.lr, r.min_lr) for s in steps],
                label=f"{name}：{r.steps} {zh_or_en('步', 'steps')}")
    ax.set_xlabel(zh_or_en("步数", "step"))
    ax.set_ylabel(zh_or_en("学习率", "learning rate"))
    ax.legend()
    fig.tight_layout()
    plt.show()
    print(f"默认配方：第 0 步 {lr_at(0, 100, 3000, 3e-3, 3e-4):.1e}，第 99 步 {lr_at(99, 100, 3000, 3e-3, 3e-4):.1e}，"
          f"第 2999 步 {lr_at(2999, 100, 3000, 3e-3, 3e-4):.1e}")
    """),
    md("""
    ## 3. ✏️ 梯度累积：内存装不下的大 batch

    更大的 batch 让每一步的梯度更准，可一次前向的激活值要占内存：batch 翻 4 倍，内存也差不多翻 4 倍。
    **梯度累积**把一个大 batch 拆成 k 个小 batch（micro-batch），一个一个地前向、反向，梯度在 `.grad` 里**加起来**，最后只 `step()` 一次。

    关键在于除以 k：一个大 batch 的 loss 是所有 token 的**平均**；k 个小 batch 的梯度直接相加是平均的 k 倍。
    每个小 batch 的 loss 先除以 k 再 `backward()`，加起来才正好是大 batch 的梯度。

    **练习 4.2b**：写 `accumulate_gradients(model, micro_batches)`。

    | 参数 | 内容 |
    | --- | --- |
    | `model` | 一个 `DIYForCausalLM`，`model(x)` 返回 logits `(b, L, V)` |
    | `micro_batches` | 列表，每项是 `(x, y)`，都是 `(b, L)`；`y` 已经错开一位（4.1c 的写法） |
    | 返回 | 这些 micro-batch 的**平均** loss（一个 Python 数） |

    **要满足的**：开头把旧的梯度清掉（只清一次）；每个 micro-batch 的 loss 是 `F.cross_entropy` 在 float32 上算的平均值，
    `backward()` 之前除以 micro-batch 的个数；**不要** `optimizer.step()`——更新参数是调用它的训练循环的事；
    返回值是 loss 本身的平均（不是除以 k 之后的）。

    提示：每个 micro-batch 的 loss 是它自己那几个窗口的平均。k 份梯度直接加在 `.grad` 里，加出来的是整批平均的几倍？
    `F.cross_entropy` 要的是 `(N, V)` 的 logits 和 `(N,)` 的目标。
    """),
    exercise(
        solution="""
        # ✏️ 练习 4.2b
        def accumulate_gradients(model, micro_batches):
            \"\"\"k 个 micro-batch 的梯度加进 .grad（等于一个大 batch 的梯度），返回平均 loss。\"\"\"
            model.zero_grad()
            k = len(micro_batches)
            total = 0.0
            for x, y in micro_batches:
                logits = model(x)  # (b, L, V)
                loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
                (loss / k).backward()
                total += loss.item()
            return total / k
        """,
        stub="""
        # ✏️ 练习 4.2b
        def accumulate_gradients(model, micro_batches):
            \"\"\"k 个 micro-batch 的梯度加进 .grad（等于一个大 batch 的梯度），返回平均 loss。\"\"\"
            raise NotImplementedError("✏️ 清零一次 → 每个 micro-batch：前向、loss / k、backward")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    accumulate_gradients = check_accumulation(accumulate_gradients)
    """),
    md("""
    **先猜一猜，再运行**：课程模型上，一次喂 16 个窗口，和拆成 4 个 4 窗口的 micro-batch 累加，梯度一样吗？
    """),
    code("""
    starts = window_starts(0, 7, 16, len(data.stream), 128)
    x, y = windows(data.stream, starts, 128)   # (16, 128) each
    accumulate_gradients(model, [(x, y)])
    big = torch.cat([p.grad.flatten() for p in model.parameters()])
    accumulate_gradients(model, list(zip(x.chunk(4), y.chunk(4), strict=True)))
    small = torch.cat([p.grad.flatten() for p in model.parameters()])
    print(f"{big.numel():,} 个梯度分量，最大差 < 1e-6: {bool((big - small).abs().max() < 1e-6)}；"
          f"梯度的最大值约 {big.abs().max():.1e}")
    """),
    md("""
    差别只在 float32 的舍入（加法换了顺序），小于百万分之一。`python -m diy.pretrain --micro-batch-size 4`
    就是这样训练的：`--batch-size 16` 不变，每步的梯度不变，占的内存少了。

    ## 4. 权重衰减只加在矩阵上

    AdamW 的权重衰减每一步把参数往 0 拉一点（乘以 `1 − lr × weight_decay`），让权重不要无缘无故地长大。
    这对 `Linear` 和 `Embedding` 的**矩阵**有用；但 RMSNorm 的 `weight` 是每一维的**增益**，初始值是 1：
    """),
    code("""
    decay, no_decay = param_groups(model, recipe.weight_decay)
    names = {id(p): n for n, p in model.named_parameters()}
    print(f"衰减：{len(decay['params'])} 个张量、{sum(p.numel() for p in decay['params']):,} 个参数"
          f"（例如 {names[id(decay['params'][1])]}）")
    print(f"不衰减：{len(no_decay['params'])} 个张量、{sum(p.numel() for p in no_decay['params']):,} 个参数"
          f"（{', '.join(names[id(p)] for p in no_decay['params'][:3])} ……）")
    shrink = math.prod(1 - recipe_lr_at(s, recipe) * recipe.weight_decay for s in range(recipe.steps))
    print(f"没有梯度推它时，默认配方的 {recipe.steps} 步衰减（按每步的学习率）把一个数乘以 {shrink:.2f}")
    """),
    md("""
    如果 norm 的增益也被衰减，`RMSNorm` 的输出会被整体往 0 拉——这不是「让模型更简单」，只是把信号调小，
    而下一层又得把它放大回来。所以惯例（nanoGPT、Llama 的训练代码都这样）是：**二维及以上的参数衰减，一维的（norm 权重、偏置）不衰减**。

    ## 5. 拼起来：你的零件就是预训练的一步

    `diy.pretraining.training_step` 是课程预训练的一步：按（种子, 步数）取 16 个窗口、设学习率、分成 micro-batch 累加梯度、裁剪、`step()`。
    用你的 `lr_at` 和 `accumulate_gradients` 加上 `param_groups` 自己拼一遍，和它并排走三步：
    """),
    code("""
    small = PretrainConfig(micro_batch_size=8)   # 每步 16 个窗口，分成 2 个 micro-batch
    mine, reference = build_model(small, len(data.tokenizer)), build_model(small, len(data.tokenizer))
    my_optimizer = torch.optim.AdamW(param_groups(mine, small.weight_decay), betas=(0.9, 0.95))
    reference_optimizer = make_optimizer(reference, small)
    for step in range(3):
        for group in my_optimizer.param_groups:
            group["lr"] = lr_at(step, small.warmup_steps, small.steps, small.lr, small.min_lr)
        x, y = windows(data.stream, window_starts(small.seed, step, small.batch_size, len(data.stream), small.seq_len),
                       small.seq_len)
        loss = accumulate_gradients(mine, list(zip(x.chunk(2), y.chunk(2), strict=True)))
        torch.nn.utils.clip_grad_norm_(mine.parameters(), small.max_grad_norm)
        my_optimizer.step()
        reference_loss = training_step(reference, reference_optimizer, data.stream, step, small)
        print(f"第 {step} 步：你的 loss {loss:.3f}，training_step 的 {reference_loss:.3f}")
    same = all(torch.allclose(a, b, atol=1e-5) for a, b in zip(mine.parameters(), reference.parameters(), strict=True))
    print("三步之后参数相同（< 1e-5）:", same)
    """),
    md("""
    `pretrain` 就是把这一步重复几千次，中间隔一段在留出集上打一次分。

    ## 6. 要打败的两条基线

    训练之前先想好：多好才算好？两个只会「数数」的模型：

    - **unigram**：每个字按它在训练集里的频率猜，不看上文（add-one：没见过的字也算出现 1 次）；
    - **bigram**：看上一个字猜下一个：`P(b | a) = 「a b」的次数 / a 的次数`，再和 unigram 混合，
      `λ·P(b | a) + (1 − λ)·P(b)`，λ = 0.8，这样训练集里没出现过的一对也不会是概率 0。

    在留出集上算它们每个字要多少 bit（和模型一样：留出集从第二个 token 起，每个 token 算一次）：
    """),
    code("""
    train_ids = np.asarray(data.stream, dtype=np.int64)
    held = np.asarray(data.held_out_ids, dtype=np.int64)
    V = len(data.tokenizer)
    unigram = (np.bincount(train_ids, minlength=V) + 1) / (len(train_ids) + V)   # (V,)
    uni_bits = -np.log2(unigram[held[1:]]).mean()

    pair_counts = {}
    for a, b in zip(train_ids[:-1].tolist(), train_ids[1:].tolist(), strict=True):
        pair_counts[(a, b)] = pair_counts.get((a, b), 0) + 1
    first_counts = np.bincount(train_ids[:-1], minlength=V)
    bits = [-math.log2(0.8 * pair_counts.get((a, b), 0) / max(first_counts[a], 1) + 0.2 * unigram[b])
            for a, b in zip(held[:-1].tolist(), held[1:].tolist(), strict=True)]
    bi_bits = sum(bits) / len(bits)
    print(f"unigram {uni_bits:.3f} bits/字，bigram {bi_bits:.3f} bits/字")
    print("与 diy.pretraining.baselines 相同:", math.isclose(uni_bits, unigram_bpc(train_ids, held, V), rel_tol=1e-9),
          math.isclose(bi_bits, bigram_bpc(train_ids, held, V), rel_tol=1e-9))
    """),
    md("""
    只看上一个字，就从 8.9 降到了 7.0。看看 bigram 学到的是什么：
    """),
    code("""
    for ch in ("。", "风", "明"):
        a = data.tokenizer.token_to_id[ch]
        followers = sorted(((count, b) for (x, b), count in pair_counts.items() if x == a), reverse=True)[:5]
        shown = "、".join(f"{data.tokenizer.id_to_token[b]!r} {count / first_counts[a]:.0%}" for count, b in followers)
        print(f"{ch!r} 后面：{shown}")
    """),
    md("""
    「。」后面几乎总是换行；「明」后面最常见的是「月」；「风」后面的字分散得多。光靠这些，每个字就省下将近 2 bit。
    模型要证明自己学到了更多，就得**明显低于 bigram**。

    ## 7. 课程的预训练

    把这些放在一起就是 `diy.pretraining.pretrain`：每一步从 token 流里按 `(种子, 步数)` 取窗口（所以能从任意一步接着训练），
    设好这一步的学习率，累加梯度，裁剪到 1.0，`step()`；每隔 `eval_every` 步在留出集的前 16,384 个 token 上算一次 bpc，最后在整个留出集上算一次。

    课程的预训练用同一个配方（同样的模型、batch、学习率和 warmup），只是总步数从 3,000 减到 600：学习率的余弦在 600 步里就降到底
    （上面学习率图里较短的那条）。**第一次运行下面这格时要现场训练**：在课程的 2 核测试机上，
    两个线程（Jupyter 里 torch 默认用所有核）约 2 分钟，一个线程约 3 分 45 秒，慢的笔记本电脑上可能要几倍；之后从缓存读取，一秒以内。训练出来的数字和你的 CPU、线程数有关（浮点数相加的顺序不同），
    所以这一格的数字和别人的会有一点出入；紧接着的一格只打印不随机器变的结论。
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    run = course_pretrain()
    history = run.history
    print(f"{len(history.steps)} 步（训练集的 {len(history.steps) * course.batch_size * course.seq_len / len(data.stream):.2f} 遍）；"
          f"每 {course.eval_every} 步在留出集（前 {course.eval_tokens:,} 个 token）上的 bpc:",
          " ".join(f"{b:.2f}" for b in history.eval_bpc))
    print(f"整个留出集：{history.final_bpc:.2f} bits/字；bigram {run.baselines['bigram']:.2f}，"
          f"unigram {run.baselines['unigram']:.2f}")
    train_bits = np.mean(history.losses[-50:]) / math.log(2)
    print(f"最后 50 步训练 batch 的平均：{train_bits:.2f} bits/字")
    """),
    code("""
    first = history.eval_bpc[0]
    print(f"第 {history.eval_steps[0]} 步的第一次评估已经低于 unigram:", first < run.baselines["unigram"])
    print("最后低于 bigram:", history.final_bpc < run.baselines["bigram"])
    print("训练 batch 和留出集差不到 0.5 bit（还谈不上背）:", abs(train_bits - history.final_bpc) < 0.5)
    """),
    code("""
    fig = plot_bpc_curve(history, {"unigram": run.baselines["unigram"], "bigram": run.baselines["bigram"]})
    plt.show()
    """),
    md("""
    从训练前的十二点几出发，第一次评估时已经低于 unigram；几百步后穿过 bigram 那条线——模型已经用上了比「上一个字」更长的上文。
    训练 batch 的曲线（浅色）和留出集的点贴得很近：训练集还没看完一遍，模型还谈不上「背」。

    完整的默认配方（`python -m diy.pretrain`，3,000 步）在 README 里：它比这条曲线走得远得多。
    下一节 4.3 用这个模型写词，看它学会了什么。

    ## 小结

    你现在能：
    - 写出 warmup + 余弦的学习率计划，并用 AdamW 第一步「拿到梯度的参数都挪动约 lr」说明 warmup 的用处；
    - 写出梯度累积，并验证它和大 batch 的梯度相同（差别只在 float32 舍入）；
    - 解释为什么权重衰减只加在矩阵上；
    - 算出 unigram、bigram 基线，看懂留出集上的 bpc 曲线：课程的模型几百步后低于 bigram。

    **下一节 4.3**：它学会了什么——按词牌写词、「下一句」四选一、格律、是不是在抄。
    """),
]

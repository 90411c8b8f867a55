"""Lesson 3.2: sampling with temperature, top-k and top-p."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：贪心每次都选概率最大的 token，同样的提示词永远得到同样的（常常是重复的）文字。
    **采样**按概率随机抽一个 token；三个旋钮控制「有多随机」：温度、top-k、top-p。

    **学完后你能自测**：
    - [ ] 说出温度 < 1、= 1、> 1 各把分布变成什么样，以及为什么 T = 0 不能直接除；
    - [ ] 说出 top-k 和 top-p 各保留哪些 token（top-p：累计概率**达到** p 的最小集合，至少保留 1 个），并自己写出 top-p；
    - [ ] 说出为什么顺序是 温度 → top-k → top-p，并举出两种顺序留下不同集合的例子；
    - [ ] 写出 `sample_next_token`：`top_k=1` 的采样等于贪心；同一个 generator 种子两次采样结果相同。
    """),
    md("""
    ## 0. 准备：一个真实的下一个 token 分布

    和 3.1 一样，`step3_model()` 用你在 2.3 存下的模型，没有就用课程模型。训练好的模型把整段短文背了下来：
    在短文中间，它对下一个字通常非常确定——下面第二格数了一数：四分之三以上的位置，它给下一个字的最大概率超过 0.99。要看到有意思的分布，
    选一个在短文里后面跟过**好几种**字的提示词：「灯」。
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    import matplotlib.pyplot as plt
    import torch

    from diy import CharTokenizer, load_passage
    from diy.backbone import describe
    from diy.classroom.checks import check_sample_next_token, check_top_p
    from diy.classroom.course_model import step3_model
    from diy.data import eval_batch
    from diy.generation import apply_top_k
    from diy.plotting import set_token_ticks, token_tick, zh_or_en

    model, which = step3_model()
    print("这一节用的模型:", which)
    print(describe())  # 这门课此刻跑在哪个骨干网络上（见 README「已经有自己的 DIYModel？」）
    """),
    code("""
    tokenizer = CharTokenizer()
    passage = load_passage()
    # 短文里的每个位置：模型给下一个字的最大概率（2.2 的评估 batch：每个「下一个字」算一次）
    eval_ids, eval_labels = eval_batch(torch.tensor(tokenizer.encode(passage) + [tokenizer.eos_token_id]), seq_len=128)
    with torch.no_grad():
        confidence = model(eval_ids).softmax(dim=-1)[:, :-1].amax(dim=-1)[eval_labels[:, 1:] != -100]   # (N − 1,)
    print(f"短文里的 {len(confidence)} 个位置：最大概率 > 0.99 的超过四分之三:", bool((confidence > 0.99).float().mean() > 0.75),
          " > 0.9 的超过 95%:", bool((confidence > 0.9).float().mean() > 0.95))
    followers = sorted({passage[i + 1] for i, ch in enumerate(passage[:-1]) if ch == "灯"})
    print("短文里「灯」后面跟过:", " ".join(followers).replace("\\n", "⏎"))
    prompt_ids = torch.tensor([tokenizer.encode("灯")])  # (1, 1)
    with torch.no_grad():
        logits = model(prompt_ids)[:, -1, :]               # (1, 6400)：「灯」之后的下一个 token
    probs = logits.softmax(dim=-1)[0]
    print("logits.shape:", tuple(logits.shape))
    """),
    md("""
    只给一个字的提示词，和训练时见过的上下文（前面总有一长串字）都不一样，所以模型也会给短文里没出现过的搭配一些概率。
    下面是你的模型给出的前 6 个（具体数字取决于模型）：
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    top = torch.topk(probs, 6)
    for p, i in zip(top.values, top.indices, strict=True):
        print(f"  {tokenizer.id_to_token[i].replace(chr(10), '⏎')}: p = {p:.3f}")
    """),
    md("""
    画出概率最大的 20 个 token（下面每张图都画这 20 个，按原始概率排序；换行符画成 ⏎）：
    """),
    code("""
    top20 = torch.topk(probs, 20).indices                  # 固定这 20 个 token 的顺序
    tick_labels = [token_tick(tokenizer.id_to_token[i], int(i)) for i in top20]


    def bar(ax, distribution, title):
        ax.bar(range(20), distribution[top20].tolist())
        set_token_ticks(ax, tick_labels, fontsize=9)           # ⏎ 是换行符
        ax.set_xlabel("token", fontsize=9)
        ax.set_ylabel(zh_or_en("概率", "probability"), fontsize=9)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 1)


    fig, ax = plt.subplots(figsize=(8, 2.8))
    bar(ax, probs, zh_or_en("「灯」之后：原始分布（T = 1）", "after the prompt: original (T = 1)"))
    fig.tight_layout()
    plt.show()
    """),
    md("""
    ## 1. 温度

    softmax 之前把 logits 除以温度 T：`softmax(logits / T)`。

    - **T < 1**：差距被放大，分布更尖，大概率的更大——越来越接近贪心；
    - **T > 1**：差距被缩小，分布更平，小概率的 token 也有机会；
    - **T → 0** 就是贪心，但 **T = 0 不能直接除**（除以 0 得到 inf / NaN）。

    **先猜一猜，再运行**：T = 0.5 时最大的概率是变大还是变小？T = 2 呢？
    """),
    code("""
    fig, axes = plt.subplots(1, 3, figsize=(12, 2.8))
    biggest = {}
    for ax, temperature in zip(axes, (0.5, 1.0, 2.0), strict=True):
        tempered = (logits / temperature).softmax(dim=-1)[0]
        biggest[temperature] = tempered.max()
        bar(ax, tempered, f"T = {temperature}")
    fig.tight_layout()
    plt.show()
    print("T = 0.5：最大的概率变大了:", bool(biggest[0.5] > biggest[1.0]))
    print("T = 2：最大的概率变小了:", bool(biggest[2.0] < biggest[1.0]))
    """),
    md("""
    温度要在 **softmax 之前**除 logits。如果先 softmax 再把概率除以 T，再归一化回去，分布一点都不会变——温度就没有作用了。

    ## 2. top-k 和 top-p

    - **top-k**：只保留概率最大的 k 个 token，其余的 logits 设为 **−inf**（softmax 后概率正好是 0；设成 0 不行，0 也是一个分数）。
      `diy.generation.apply_top_k(scores, k)` 就是它，下一格用它画图；
    - **top-p**（nucleus）：把 token 按概率从大到小排，累加，保留累计概率**达到** p（≥ p）的**最小**集合：
      让累计概率跨过 p 的那个 token 也留下，所以**至少保留 1 个**。k 是固定个数；p 按分布自适应：分布尖时只剩一两个，分布平时留很多。
    """),
    code("""
    fig, ax = plt.subplots(figsize=(8, 2.8))
    bar(ax, apply_top_k(logits, 5).softmax(dim=-1)[0], "top-k = 5")
    fig.tight_layout()
    plt.show()
    print("top-k = 5 之后正好留下 5 个:", int(torch.isfinite(apply_top_k(logits, 5)).sum()) == 5)
    """),
    md("""
    ## 3. ✏️ 练习 3.2a：apply_top_p

    `apply_top_p(scores, top_p)`：`scores` 是 `(B, V)` 的 logits（可能已经除过温度、做过 top-k），返回同形状的张量：
    每一行里 top-p 留下的 token 保持原来的分数，其余设为 `-inf`。要满足：

    - 每一行单独算：先 softmax 得到概率，留下累计概率达到 `top_p` 的最小集合（跨过 p 的那个也留下），**至少留 1 个**；
    - 词表里的 token **不是**按概率排好的：在排序后的顺序里决定删谁，最后要**放回词表的顺序**（`scatter`）；
    - 不改动传进来的 `scores`（不用 `masked_fill_` 这类原地操作）。

    **先猜一猜**：概率从大到小是 0.4、0.3、0.2、0.1 时，`top_p = 0.75` 留下几个？`top_p = 0.5` 呢？`top_p = 1e-6` 呢？

    提示（先想清楚再写）：
    - 按概率从大到小排好后，一个 token 留不留，取决于**哪一个**累计和：包括它自己的，还是排在它前面的那些？
      用上面的 0.4、0.3、0.2、0.1 和 `top_p = 0.5` 试一试：哪种写法让跨过 0.5 的那个（0.3）留下、又自动保证第一个永远留下？
    - `torch.sort` 除了排好的值，还返回每个值原来在词表里的下标：在排序后的顺序里算出「删谁」，再靠这些下标放回词表顺序
      （`scatter`，或者等价的写法）；
    - 「删」就是把分数设成 `-inf`，用不改动原张量的写法。
    """),
    exercise(
        solution="""
        # ✏️ 练习 3.2a
        def apply_top_p(scores, top_p):
            \"\"\"scores (B, V) → (B, V)：累计概率达到 top_p 的最小集合之外的设为 -inf。\"\"\"
            sorted_probs, order = torch.sort(scores.softmax(dim=-1), dim=-1, descending=True)   # (B, V)
            before = sorted_probs.cumsum(dim=-1) - sorted_probs     # 排在它前面的累计概率
            remove_sorted = before >= top_p                         # 前面已经够 p 了：删（第一个的 before = 0，永远留下）
            remove = remove_sorted.scatter(1, order, remove_sorted)  # 放回词表顺序
            return scores.masked_fill(remove, float("-inf"))
        """,
        stub="""
        # ✏️ 练习 3.2a
        def apply_top_p(scores, top_p):
            \"\"\"scores (B, V) → (B, V)：累计概率达到 top_p 的最小集合之外的设为 -inf。\"\"\"
            raise NotImplementedError("✏️ softmax → 降序排序 → 累计 → 决定删谁 → scatter 回词表顺序 → -inf")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    apply_top_p = check_top_p(apply_top_p)
    """),
    md("""
    用你的 `apply_top_p` 看「灯」之后的分布：p 越小，留下的越少；再小也至少留一个。
    """),
    code("""
    kept = {p: int(torch.isfinite(apply_top_p(logits, p)).sum()) for p in (0.99, 0.9, 0.5, 1e-6)}
    print("p 越小留下的越少:", kept[0.99] >= kept[0.9] >= kept[0.5] >= kept[1e-6])
    print("p = 1e-6 也至少留下一个:", kept[1e-6] == 1)
    fig, ax = plt.subplots(figsize=(8, 2.8))
    bar(ax, apply_top_p(logits, 0.9).softmax(dim=-1)[0], "top-p = 0.9")
    fig.tight_layout()
    plt.show()
    """),
    md("""
    ## 4. 顺序为什么要紧：温度 → top-k → top-p

    top-p 看的是**它拿到的分数**算出的概率。放在 top-k 之后，它在 top-k 留下的那几个 token 上**重新归一化**再累加；
    放在温度之后，它累加的是调过温度的概率。换一个顺序，留下的集合就可能不同。一个四个 token 的例子
    （概率 0.1、0.4、0.2、0.3，故意不按大小排）：

    **先猜一猜**：先 top-k = 3 再 top-p = 0.75，留下哪几个？反过来呢？
    """),
    code("""
    toy = torch.tensor([[0.1, 0.4, 0.2, 0.3]]).log()               # 4 个 token 的 logits


    def kept_ids(scores):
        return torch.isfinite(scores)[0].nonzero().flatten().tolist()


    print("先 top-k=3 再 top-p=0.75:", kept_ids(apply_top_p(apply_top_k(toy, 3), 0.75)),
          "（top-3 重新归一化后是 0.44、0.33、0.22：前两个已达到 0.75）")
    print("先 top-p=0.75 再 top-k=3:", kept_ids(apply_top_k(apply_top_p(toy, 0.75), 3)),
          "（原分布里要 0.4 + 0.3 + 0.2 才达到 0.75）")
    print("T=0.5 之后再 top-p=0.75:  ", kept_ids(apply_top_p(toy / 0.5, 0.75)),
          "（T=0.5 把分布变尖，两个就够了）")
    print("top-p=0.75 之后才除温度:   ", kept_ids(apply_top_p(toy, 0.75) / 0.5))
    """),
    md("""
    课程（和 transformers）的约定是 温度 → top-k → top-p：温度先决定分布的形状，top-k 先砍到最多 k 个，top-p 再在剩下的里面按累计概率挑。
    顺序不同不算「错」，但结果不同：和别的实现对照（3.3 里和 transformers 逐 id 对照）时，顺序必须一样。

    ## 5. ✏️ 练习 3.2b：sample_next_token

    `sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None)`：`logits` 形状 `(B, V)`，返回 `(B,)` 的 token id（`torch.long`）。要满足：

    - 顺序：温度 → top-k（可以用 `apply_top_k`，也可以自己写）→ top-p（用你的 `apply_top_p`）→ softmax → `torch.multinomial`；
    - `temperature == 0` 表示贪心（直接取 argmax，不能除以 0）。注意：这是**这个函数**的约定；`model.generate(do_sample=True, temperature=0)`
      会拒绝（transformers 的约定：要贪心就用 `do_sample=False`），3.3 里会看到；
    - 随机数**只**从传进来的 `generator` 里取：同一个种子两次结果相同；同一个 generator 连用两次，第二次接着往下抽（函数里不要重新设种子）；
      全局随机数（`torch.manual_seed` 管的那个）不受影响；batch 的每一行各抽各的；
    - 不改动传进来的 `logits`。

    **先猜一猜**：`top_k=1` 时采样结果和贪心一样吗？`top_p=1e-6` 呢？

    提示：`torch.multinomial` 要的是**概率**（非负、每行加起来为 1），不是 logits；它返回 `(B, 1)`，用 `.squeeze(1)`
    （不带参数的 `.squeeze()` 在 B = 1 时会把 batch 维也去掉）。
    """),
    exercise(
        solution="""
        # ✏️ 练习 3.2b
        def sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
            \"\"\"logits (B, V) → 采样得到的 token id (B,)。\"\"\"
            if temperature == 0:
                return logits.argmax(dim=-1)                                  # 贪心
            scores = logits / temperature                                     # (B, V)
            if top_k:
                kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]        # (B, 1) 第 k 大
                scores = scores.masked_fill(scores < kth, float("-inf"))
            if top_p is not None and top_p < 1:
                scores = apply_top_p(scores, top_p)
            probs = scores.softmax(dim=-1)                                    # (B, V)
            return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)   # (B,)
        """,
        stub="""
        # ✏️ 练习 3.2b
        def sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
            \"\"\"logits (B, V) → 采样得到的 token id (B,)。\"\"\"
            raise NotImplementedError("✏️ 温度 → top-k → top-p → softmax → multinomial")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    sample_next_token = check_sample_next_token(sample_next_token)
    """),
    md("""
    ## 6. 每个旋钮对文字的影响

    用你的 `sample_next_token` 和 3.1 的缓存循环写一个小小的采样生成器，从「老人」开始各写 40 个字。
    每次都用同一个种子的 generator，所以结果可以复现。**先猜一猜**：哪一组最像原文？哪一组最乱？
    """),
    code("""
    def sample_text(prompt, new_tokens=40, seed=0, **knobs):
        generator = torch.Generator().manual_seed(seed)
        ids = torch.tensor([tokenizer.encode(prompt)])
        with torch.no_grad():
            logits, past = model(ids, use_cache=True, is_training=False)
            for _ in range(new_tokens):
                next_id = sample_next_token(logits[:, -1, :], generator=generator, **knobs)[:, None]   # (1, 1)
                ids = torch.cat([ids, next_id], dim=1)
                logits, past = model(next_id, past_key_values=past, use_cache=True, is_training=False)
        return tokenizer.decode(ids[0]).replace("\\n", "⏎")


    print("同一个种子、同样的旋钮，两次写出的相同:",
          sample_text("老人", temperature=1.5, top_k=3) == sample_text("老人", temperature=1.5, top_k=3))
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    for knobs in ({"temperature": 0}, {"temperature": 0.7}, {"temperature": 1.5},
                  {"temperature": 1.5, "top_k": 3}, {"temperature": 1.5, "top_p": 0.8}):
        print(f"{str(knobs):40}", sample_text("老人", **knobs))
    """),
    md("""
    你的模型写出的字可能和别人的不同，但规律一样（用课程模型时正是这样）：

    - T = 0（贪心）：短文里「老人」出现在好几处（「老人笑着说」「老人提着油灯」……），两个字的上文分不清是哪一处，
      贪心常常把两处拼在一起；T = 0.7 偶尔走到另一处；
    - T = 1.5：小概率的字也被抽中，出现了短文里没有的搭配，越写越乱；
    - T = 1.5 加上 top-k = 3：每一步只在最可能的三个字里选，不再冒出完全无关的字，但会在短文的不同位置之间跳来跳去；
    - T = 1.5 加上 top-p = 0.8：模型很确定时只剩一个候选（等于贪心），不确定时才有选择，所以大段还是原文，偶尔拐个弯。

    实际使用中常把它们一起用（例如 T = 0.8、top-p = 0.9）：温度给变化，top-k / top-p 剪掉不靠谱的长尾。

    最后验证几条自测：
    """),
    code("""
    batch_logits = logits.repeat(8, 1)                                   # 8 行同样的分布
    greedy = batch_logits.argmax(dim=-1)
    print("top_k=1 的采样等于贪心:", torch.equal(sample_next_token(batch_logits, top_k=1), greedy))
    first = sample_next_token(batch_logits, 1.0, None, None, torch.Generator().manual_seed(42))
    again = sample_next_token(batch_logits, 1.0, None, None, torch.Generator().manual_seed(42))
    print("同一个种子两次采样相同:", torch.equal(first, again))
    print("top_p 再小也至少留一个 token:", int(torch.isfinite(apply_top_p(logits, 1e-6)).sum()) == 1)
    """),
    md("""
    ## 小结

    你现在能：
    - 解释温度（softmax 之前除 logits；T → 0 是贪心）、top-k（固定个数）、top-p（累计概率达到 p 的最小集合，至少留一个）；
    - 自己写出 top-p（排序、累加、放回词表顺序），说出为什么过滤的顺序会改变留下的集合；
    - 写出 `sample_next_token`：温度 → top-k → top-p → softmax → `multinomial`，用 generator 复现；
    - 从生成的文字里看出每个旋钮的作用。

    **下一节 3.3**：把这些零件收进一个 `generate`：遇到 `<eos>` 停下、不同长度的提示词一起批量生成、流式输出，
    并和 Hugging Face `transformers` 逐 id 对照。
    """),
]

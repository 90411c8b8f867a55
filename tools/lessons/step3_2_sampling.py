"""Lesson 3.2: sampling with temperature, top-k and top-p."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：贪心每次都选概率最大的 token，同样的提示词永远得到同样的（常常是重复的）文字。
    **采样**按概率随机抽一个 token；三个旋钮控制「有多随机」：温度、top-k、top-p。

    **学完后你能自测**：
    - [ ] 说出温度 < 1、= 1、> 1 各把分布变成什么样，以及为什么 T = 0 不能直接除；
    - [ ] 说出 top-k 和 top-p 各保留哪些 token（top-p 至少保留 1 个）；
    - [ ] 写出 `sample_next_token`：温度 → top-k → top-p → softmax → `torch.multinomial`；
    - [ ] `top_k=1` 的采样等于贪心；同一个 generator 种子两次采样结果相同。
    """),
    md("""
    ## 0. 准备：一个真实的下一个 token 分布

    训练好的模型把整段短文背了下来，所以在短文中间它几乎总是 99% 确定下一个字。要看到有意思的分布，
    选一个在短文里后面跟过**好几种**字的提示词：短文里「灯」后面跟过「塔」「点」「油」「光」「救」和逗号。
    只给一个字的提示词和训练时见过的上下文都不一样，所以模型也会给短文里从没出现过的搭配（比如句号）不小的概率。
    """),
    code("""
    import matplotlib.pyplot as plt
    import torch

    from diy import CharTokenizer
    from diy.checks import check_sample_next_token
    from diy.course_model import course_model
    from diy.generation import apply_top_k, apply_top_p
    from diy.plotting import chinese_font, zh_or_en

    model = course_model()
    tokenizer = CharTokenizer()
    prompt_ids = torch.tensor([tokenizer.encode("灯")])  # (1, 1)
    with torch.no_grad():
        logits = model(prompt_ids)[:, -1, :]               # (1, 6400)：「灯」之后的下一个 token
    probs = logits.softmax(dim=-1)[0]
    top = torch.topk(probs, 6)
    print("logits.shape:", tuple(logits.shape))
    for p, i in zip(top.values, top.indices, strict=True):
        print(f"  {tokenizer.id_to_token[i]!r}: p = {p:.3f}")
    """),
    md("""
    画出概率最大的 20 个 token（下面每张图都画这 20 个，按原始概率排序）：
    """),
    code("""
    top20 = torch.topk(probs, 20).indices                  # 固定这 20 个 token 的顺序
    # 横轴写字（有中文字体时）或 token id（没有时，免得汉字变成方框）
    tick_labels = [tokenizer.id_to_token[i] if chinese_font() else str(int(i)) for i in top20]


    def bar(ax, distribution, title):
        ax.bar(range(20), distribution[top20].tolist())
        ax.set_xticks(range(20), tick_labels, fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, 1)


    fig, ax = plt.subplots(figsize=(7, 2.5))
    bar(ax, probs, zh_or_en("「灯」之后：原始分布（T = 1）", "after the prompt: original (T = 1)"))
    plt.show()
    """),
    md("""
    ## 1. 温度

    softmax 之前把 logits 除以温度 T：`softmax(logits / T)`。

    - **T < 1**：差距被放大，分布更尖，大概率的更大——越来越接近贪心；
    - **T > 1**：差距被缩小，分布更平，小概率的 token 也有机会；
    - **T → 0** 就是贪心，但 **T = 0 不能直接除**（除以 0 得到 inf / NaN）：约定 T = 0 时直接取 argmax。

    **先猜一猜，再运行**：T = 0.5 时最大的概率是变大还是变小？T = 2 呢？
    """),
    code("""
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.5))
    for ax, temperature in zip(axes, (0.5, 1.0, 2.0), strict=True):
        tempered = (logits / temperature).softmax(dim=-1)[0]
        bar(ax, tempered, f"T = {temperature}")
        print(f"T = {temperature}: 最大概率 {tempered.max():.3f}，前 20 个加起来 {tempered[top20].sum():.3f}")
    fig.tight_layout()
    plt.show()
    """),
    md("""
    温度要在 **softmax 之前**除 logits。如果先 softmax 再把概率除以 T，再归一化回去，分布一点都不会变——温度就没有作用了。

    ## 2. top-k 和 top-p

    - **top-k**：只保留概率最大的 k 个 token，其余的 logits 设为 **−inf**（softmax 后概率正好是 0；设成 0 不行，0 也是一个分数）；
    - **top-p**（nucleus）：把 token 按概率从大到小排，累加，保留「累计概率刚好超过 p」的最小集合——越过阈值的那个也保留，
      所以**至少保留 1 个**。实现上常按**升序**排，累加，删掉累计 ≤ 1 − p 的那段「长尾」。

    k 是固定个数；p 是按分布自适应：分布尖时只剩一两个，分布平时留很多。
    """),
    code("""
    for name, scores in (("top_k=5", apply_top_k(logits, 5)), ("top_p=0.9", apply_top_p(logits, 0.9)),
                         ("top_p=0.5", apply_top_p(logits, 0.5))):
        kept = int(torch.isfinite(scores).sum())
        kept_probs = scores.softmax(dim=-1)[0]
        order = kept_probs.argsort(descending=True)[:kept]
        print(f"{name:10} 保留 {kept} 个:", " ".join(f"{tokenizer.id_to_token[i]!r}{kept_probs[i]:.2f}" for i in order))
    fig, axes = plt.subplots(1, 2, figsize=(10, 2.5))
    bar(axes[0], apply_top_k(logits, 5).softmax(dim=-1)[0], "top-k = 5")
    bar(axes[1], apply_top_p(logits, 0.9).softmax(dim=-1)[0], "top-p = 0.9")
    fig.tight_layout()
    plt.show()
    """),
    md("""
    ## 3. ✏️ 练习 3.2：sample_next_token

    `sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None)`：`logits` 形状 `(B, V)`，返回 `(B,)` 的 token id。

    1. `temperature == 0`：直接 `return logits.argmax(dim=-1)`（贪心）；
    2. `scores = logits / temperature`；
    3. 有 `top_k`：`kth = torch.topk(scores, top_k).values[:, -1:]`，`scores = scores.masked_fill(scores < kth, float("-inf"))`；
    4. 有 `top_p`（且 < 1）：可以直接用上面见过的 `apply_top_p(scores, top_p)`，也可以自己写；
    5. `probs = scores.softmax(dim=-1)`，`torch.multinomial(probs, num_samples=1, generator=generator)`，再 `.squeeze(1)`。

    `multinomial` 要的是**概率**（非负），不是 logits；随机数要从传进来的 `generator` 里取，同一个种子才能复现。
    """),
    exercise(
        solution="""
        # ✏️ 练习 3.2
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
        # ✏️ 练习 3.2
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
    ## 4. 每个旋钮对文字的影响

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


    for knobs in ({"temperature": 0}, {"temperature": 0.7}, {"temperature": 1.5},
                  {"temperature": 1.5, "top_k": 3}, {"temperature": 1.5, "top_p": 0.8}):
        print(f"{str(knobs):40}", sample_text("老人", **knobs))
    """),
    md("""
    - T = 0（贪心）：「老人笑着」接上了「油灯」——短文里有「老人笑着说」和「老人提着油灯」，两个字的上文分不清是哪一处，
      它把两处拼在了一起；T = 0.7 这一次正好逐字背对了一处；
    - T = 1.5：小概率的字也被抽中，出现了短文里没有的搭配，越写越乱；
    - T = 1.5 加上 top-k = 3：每一步只在最可能的三个字里选，不再冒出完全无关的字，但会在短文的不同位置之间跳来跳去；
    - T = 1.5 加上 top-p = 0.8：模型很确定时只剩一个候选（等于贪心），不确定时才有选择，所以大段还是原文，偶尔拐个弯。

    实际使用中常把它们一起用（例如 T = 0.8、top-p = 0.9）：温度给变化，top-k / top-p 剪掉不靠谱的长尾。

    最后验证两条自测：
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
    - 解释温度（softmax 之前除 logits；T → 0 是贪心）、top-k（固定个数）、top-p（自适应的累计概率，至少留一个）；
    - 写出 `sample_next_token`：温度 → top-k → top-p → softmax → `multinomial`，用 generator 复现；
    - 从生成的文字里看出每个旋钮的作用。

    **下一节 3.3**：把这些零件收进一个 `generate`：遇到 `<eos>` 停下、不同长度的提示词一起批量生成、流式输出，
    并和 Hugging Face `transformers` 逐 id 对照。
    """),
]

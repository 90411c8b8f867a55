"""Lesson 3.1: greedy decoding without and with the KV cache."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：生成是「一次一个 token」的循环。先写最直接的版本（每一步把整段重新送进模型），
    再写带 **KV cache** 的版本（提示词只算一次，之后每一步只送新 token），证明两者输出一模一样，并看到为什么缓存更快。

    **学完后你能自测**：
    - [ ] 两种循环输出逐 id 相同；
    - [ ] 说出缓存里每层存的是什么、形状 `(B, heads, 已有长度, head_dim)` 怎么随步数增长；
    - [ ] 说出为什么带缓存时不能再把整段送进去；
    - [ ] 从耗时图看出：不用缓存时每个新 token 越来越慢，用缓存时基本持平。
    """),
    md("""
    ## 0. 准备：第二步训练好的模型

    `course_model()` 就是第二步训练出的模型（第一次调用时训练约 13 秒并缓存，之后直接读取），已经是 eval 模式。
    """),
    code("""
    import time

    import matplotlib.pyplot as plt
    import torch

    from diy import CharTokenizer, load_passage
    from diy.checks import check_greedy_no_cache, check_greedy_with_cache
    from diy.course_model import course_model
    from diy.plotting import zh_or_en

    model = course_model()
    tokenizer = CharTokenizer()
    prompt_ids = torch.tensor([tokenizer.encode(load_passage()[:8])])  # (1, 8)
    print("prompt_ids.shape:", tuple(prompt_ids.shape), " 模型在 eval 模式:", not model.training)
    """),
    md("""
    ## 1. ✏️ 练习 3.1a：不用缓存的贪心循环

    和 2.3 的 `greedy_continue` 一样：每一步把**到目前为止的整段**送进模型，取最后一个位置的 logits 做 argmax，接到末尾。
    这一节生成的总长度不超过 `max_seq_len = 128`，所以不需要裁剪。别忘了 `model.eval()`。
    """),
    exercise(
        solution="""
        # ✏️ 练习 3.1a
        def greedy_no_cache(model, input_ids, max_new_tokens):
            \"\"\"每一步都把整段送进模型：input_ids (B, L) → (B, L + max_new_tokens)。\"\"\"
            model.eval()
            with torch.no_grad():
                for _ in range(max_new_tokens):
                    logits = model(input_ids)                                  # (B, L, V)：整段
                    next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)    # (B, 1)
                    input_ids = torch.cat([input_ids, next_id], dim=1)         # (B, L + 1)
            return input_ids
        """,
        stub="""
        # ✏️ 练习 3.1a
        def greedy_no_cache(model, input_ids, max_new_tokens):
            \"\"\"每一步都把整段送进模型：input_ids (B, L) → (B, L + max_new_tokens)。\"\"\"
            raise NotImplementedError("✏️ eval() → 循环：整段前向 → 最后一个位置 argmax → 拼接")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    greedy_no_cache = check_greedy_no_cache(greedy_no_cache)
    """),
    code("""
    no_cache_ids = greedy_no_cache(model, prompt_ids, 60)
    print("形状:", tuple(no_cache_ids.shape))
    print(tokenizer.decode(no_cache_ids[0]))
    """),
    md("""
    ## 2. 缓存里有什么？

    看上面的循环：第 100 步送进去 107 个 token，其中前 106 个的 key 和 value 之前都已经算过（提示词的 8 个已经各算了 99 遍）——
    它们只取决于这些 token 本身和它们的位置，新 token 不会改变它们（因果注意力里，前面的 token 看不到后面的）。
    **KV cache** 就是把每一层的 key、value 存下来：

    - **prefill**：第一次把整段提示词送进去，`model(ids, use_cache=True, is_training=False)` 返回 `(logits, presents)`
      （`is_training=False` 选的是推理路径；它不管 dropout——dropout 只看 `model.eval()`）；
      `presents` 是每层一个 `(k, v)`，形状都是 `(B, num_heads, 已有长度, head_dim)`；
    - **逐个生成（decode 阶段）**：之后每一步只送**新 token** `(B, 1)`，同时把上一步的 `presents` 作为 `past_key_values` 传进去；
      模型算出新 token 的 k、v，接在缓存后面，新 token 的位置（RoPE）从缓存长度接着数。

    **先猜一猜，再运行**：prefill 8 个 token 后，`presents` 有几项？每个 k 的形状是什么？再送一个新 token 呢？
    """),
    code("""
    with torch.no_grad():
        logits, presents = model(prompt_ids, use_cache=True, is_training=False)
        print("prefill:  logits", tuple(logits.shape), " presents 有", len(presents), "层，",
              "k", tuple(presents[0][0].shape), " v", tuple(presents[0][1].shape))
        next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)                    # (1, 1)
        logits, presents = model(next_id, past_key_values=presents, use_cache=True, is_training=False)
        print("生成一步: logits", tuple(logits.shape), " k", tuple(presents[0][0].shape))
    """),
    md("""
    缓存长度从 8 变成 9；logits 只有新 token 这一个位置 `(1, 1, 6400)`。

    ## 3. ✏️ 练习 3.1b：带缓存的贪心循环

    ```
    model.eval()
    logits, past = model(input_ids, use_cache=True, is_training=False)       # prefill：整段提示词，只这一次
    重复 max_new_tokens 次：
        next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)              # (B, 1)
        input_ids = torch.cat([input_ids, next_id], dim=1)
        logits, past = model(next_id, past_key_values=past, use_cache=True, is_training=False)   # 只送新 token
    return input_ids
    ```

    - 有了 `past` 之后**只送新 token**：再送整段的话，前面 token 的 key/value 会在缓存里出现两次，位置也接错了；
    - 每一步都用**这一步返回的** `past` 替换旧的：缓存要随步数增长；
    - （最后一步多算了一次前向，结果用不上；简单起见保留它。）
    """),
    exercise(
        solution="""
        # ✏️ 练习 3.1b
        def greedy_with_cache(model, input_ids, max_new_tokens):
            \"\"\"prefill 一次，之后每步只送新 token 和 past_key_values。\"\"\"
            model.eval()
            with torch.no_grad():
                logits, past = model(input_ids, use_cache=True, is_training=False)       # (B, L, V)
                for _ in range(max_new_tokens):
                    next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)              # (B, 1)
                    input_ids = torch.cat([input_ids, next_id], dim=1)                   # (B, L + 1)
                    logits, past = model(next_id, past_key_values=past, use_cache=True,
                                         is_training=False)                              # (B, 1, V)
            return input_ids
        """,
        stub="""
        # ✏️ 练习 3.1b
        def greedy_with_cache(model, input_ids, max_new_tokens):
            \"\"\"prefill 一次，之后每步只送新 token 和 past_key_values。\"\"\"
            raise NotImplementedError("✏️ prefill → 循环：argmax → 拼接 → 只送新 token + past")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    greedy_with_cache = check_greedy_with_cache(greedy_with_cache)
    """),
    code("""
    cache_ids = greedy_with_cache(model, prompt_ids, 60)
    print("形状:", tuple(cache_ids.shape))
    print("两种循环逐 id 相同:", torch.equal(cache_ids, no_cache_ids))
    """),
    md("""
    ## 4. 为什么更快：每个新 token 的耗时

    给两种循环的每一步单独计时，生成 110 个 token。不用缓存时，第 t 步要把 8 + t 个 token 全部重算一遍；
    用缓存时每一步只算 1 个 token（注意力要读的缓存变长了，但那部分很便宜）。
    计时每次运行都不一样，所以自动测试不比较这一格的输出，结论在下一格打印。
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    def time_each_token(step_fn, new_tokens=110):
        times = []
        with torch.no_grad():
            state = step_fn(None)
            for _ in range(new_tokens):
                start = time.perf_counter()
                state = step_fn(state)
                times.append((time.perf_counter() - start) * 1000)    # 毫秒
        return times


    def no_cache_step(ids):
        ids = prompt_ids if ids is None else ids
        next_id = model(ids)[:, -1, :].argmax(dim=-1, keepdim=True)    # 整段
        return torch.cat([ids, next_id], dim=1)


    def cache_step(state):
        if state is None:
            return model(prompt_ids, use_cache=True, is_training=False)  # prefill（不计时）
        logits, past = state
        next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)
        return model(next_id, past_key_values=past, use_cache=True, is_training=False)


    no_cache_ms = time_each_token(no_cache_step)
    cache_ms = time_each_token(cache_step)
    print(f"不用缓存：共 {sum(no_cache_ms):.0f} ms；用缓存：共 {sum(cache_ms):.0f} ms")
    """),
    code("""
    def average(ms):
        return sum(ms) / len(ms)


    first, last = slice(0, 20), slice(-20, None)
    print("不用缓存：最后 20 个 token 比最前 20 个慢:", average(no_cache_ms[last]) > average(no_cache_ms[first]))
    print("用缓存：总耗时比不用缓存少:", sum(cache_ms) < sum(no_cache_ms))
    print("用缓存：最后 20 个 token 不到最前 20 个的 2 倍（基本持平）:", average(cache_ms[last]) < 2 * average(cache_ms[first]))
    """),
    code("""
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(no_cache_ms, label=zh_or_en("不用缓存（整段重算）", "no cache (whole sequence)"))
    ax.plot(cache_ms, label=zh_or_en("KV cache（只算新 token）", "KV cache (new token only)"))
    ax.set_xlabel(zh_or_en("第 t 个新 token", "new token t"))
    ax.set_ylabel(zh_or_en("这一步的耗时（毫秒）", "time of this step (ms)"))
    ax.set_title(zh_or_en("每生成一个 token 要多久", "Time per generated token"))
    ax.set_ylim(bottom=0)
    ax.legend()
    plt.show()
    """),
    md("""
    不用缓存的曲线随位置上升（要重算的 token 越来越多）；缓存的曲线几乎是平的。这个小模型、短序列上差距是几倍；
    大模型、长上下文上差距是几十上百倍——所有实际的 LLM 推理都用 KV cache。代价是内存：缓存大小 =
    层数 × 2 × batch × 头数 × 长度 × head_dim 个浮点数；这个模型生成到 128 个 token 时是 2 × 2 × 1 × 4 × 128 × 64 = 131,072 个（512 KB）。

    ## 小结

    你现在能：
    - 写出不用缓存和带缓存的贪心循环，并证明它们逐 id 相同（缓存只是优化，不改变结果）；
    - 说出 `presents` / `past_key_values` 里存的是每层的 k、v，形状 `(B, heads, 已有长度, head_dim)`，每步长 1；
    - 解释为什么有了缓存就只能送新 token；从耗时图读出缓存为什么快。

    **下一节 3.2**：贪心总是选概率最大的那个；采样让输出有变化——温度、top-k、top-p 三个旋钮。
    """),
]

"""Lesson 3.1: greedy decoding without and with the KV cache."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：生成是「一次一个 token」的循环。先写最直接的版本（每一步把整段重新送进模型），
    再写带 **KV cache** 的版本（提示词只算一次，之后每一步只送新 token），证明两者输出一模一样，并弄清楚缓存**为什么**是对的、
    为什么更快、什么东西随长度增长。

    **学完后你能自测**：
    - [ ] 两种循环输出逐 id 相同；
    - [ ] 说出缓存为什么是对的：不是「K/V 只取决于 token 本身和它的位置」（第 0 层之后就不成立），而是**因果性**——
      位置 t 的 K/V 只取决于位置 ≤ t 的那些 token；
    - [ ] 说出缓存里每层存的是什么、形状 `(B, heads, 已有长度, head_dim)` 怎么随步数增长；为什么带缓存时不能再把整段送进去；
    - [ ] 从耗时图看出：不用缓存时每个新 token 越来越慢，用缓存时基本持平；说出上下文很长时随长度增长的是什么；
    - [ ] 说出 `generate` 为什么不像 2.3 的循环那样裁剪上下文、一直写下去：不是因为 RoPE 的位置，而是第 1 层起缓存里的 K/V 都「看过」被裁掉的 token。
    """),
    md("""
    ## 0. 准备：你在第二步训练的模型

    `step3_model()` 读回 2.3 用 `save_pretrained` 存下的 `checkpoints/step2`（相对于这个 notebook 所在的文件夹）；
    没有这个文件夹（没跑过 2.3，或者在别的目录里打开）就用 `course_model()`——同样的配方训练出的课程模型。它会告诉你用的是哪一个。
    两个模型背的是同一段短文，但权重不一定相同，所以下面生成的具体文字可能和别人的不一样；打印出来要对照的结论（True / False）两者都成立。
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    import time

    import matplotlib.pyplot as plt
    import torch
    from matplotlib.ticker import MaxNLocator

    from diy import CharTokenizer, load_passage
    from diy.backbone import describe
    from diy.classroom.checks import check_greedy_no_cache, check_greedy_with_cache
    from diy.classroom.course_model import step3_model
    from diy.errors import DIYInputError
    from diy.plotting import zh_or_en

    model, which = step3_model()
    print("这一节用的模型:", which)
    print(describe())  # 这门课此刻跑在哪个骨干网络上（见 README「已经有自己的 DIYModel？」）
    """),
    code("""
    tokenizer = CharTokenizer()
    passage = load_passage()
    prompt_ids = torch.tensor([tokenizer.encode(passage[:8])])  # (1, 8)
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
    print("形状:", tuple(no_cache_ids.shape), " dtype:", no_cache_ids.dtype)
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    print(tokenizer.decode(no_cache_ids[0]).replace("\\n", "⏎"))
    """),
    md("""
    ## 2. 为什么可以把 key / value 存起来？

    看上面的循环：第 50 步送进去 57 个 token，前 56 个的 key 和 value 之前都已经算过（提示词的 8 个已经各算了 49 遍），
    而且每次算出来都一样。为什么一样？

    一个常见的说法是「K/V 只取决于 token 本身和它的位置」。这只在**第 0 层**成立：第 0 层的输入就是 token 的 embedding，
    再按位置旋转（RoPE）。从第 1 层起，一个 token 的输入是上一层注意力的输出，已经混进了**它前面所有 token** 的信息。
    真正的原因是**因果性**：位置 t 的 K/V 只取决于位置 0..t 的 token（因果注意力里，前面的看不到后面的）。
    生成只在右边追加 token，已有的前缀从不改变，所以前缀的 K/V 也从不改变——算一次、存下来就行。

    **先猜一猜，再运行**：只改掉第 0 个 token，第 5 个位置在第 0 层的 K 会变吗？第 1 层呢？只改掉最后一个 token，前面 7 个位置的 K/V 呢？
    """),
    code("""
    def keys_and_values(ids):
        \"\"\"每层的 (k, v)，各 (1, heads, 8, head_dim)。\"\"\"
        with torch.no_grad():
            _, presents = model(ids, use_cache=True, is_training=False)
        return presents


    other = tokenizer.encode("灯")[0]
    first_changed, last_changed = prompt_ids.clone(), prompt_ids.clone()
    first_changed[0, 0] = other                                   # 只改第 0 个 token
    last_changed[0, -1] = other                                   # 只改最后一个 token
    base, changed_first, changed_last = map(keys_and_values, (prompt_ids, first_changed, last_changed))
    for layer in range(len(base)):
        same = torch.allclose(base[layer][0][:, :, 5], changed_first[layer][0][:, :, 5], atol=1e-6)
        print(f"只改第 0 个 token：第 {layer} 层、第 5 个位置的 K 不变: {same}")
    prefix_same = all(torch.allclose(base[layer][i][:, :, :7], changed_last[layer][i][:, :, :7], atol=1e-6)
                      for layer in range(len(base)) for i in (0, 1))
    print("只改最后一个 token：每一层前 7 个位置的 K 和 V 都不变:", prefix_same)
    """),
    md("""
    第 1 层的 K 变了：它不只取决于「这个 token 和它的位置」。但改后面的 token，前面位置的 K/V 一点都不动——这就是缓存成立的原因。
    （反过来，如果模型能「往后看」，比如 BERT 那样的双向注意力，每接一个新 token，前面所有的 K/V 都要重算，缓存就不成立了。）

    **KV cache** 就是把每一层的 key、value 存下来：

    - **prefill**：第一次把整段提示词送进去，`model(ids, use_cache=True, is_training=False)` 返回 `(logits, presents)`
      （`is_training=False` 选的是推理路径；它不管 dropout——dropout 只看 `model.eval()`）；
      `presents` 是每层一个 `(k, v)`，形状都是 `(B, num_heads, 已有长度, head_dim)`；
    - **逐个生成（decode 阶段）**：之后每一步只送**新 token** `(B, 1)`，同时把上一步的 `presents` 作为 `past_key_values` 传进去；
      模型算出新 token 的 k、v，接在缓存后面，新 token 的位置（RoPE）从缓存长度接着数。

    **先猜一猜，再运行**：prefill 8 个 token 后，`presents` 有几项？每个 k 的形状是什么？再带着缓存送一个 token
    （这里送短文的第 9 个字）呢？它的 logits 和把 9 个字整段送进去时最后一个位置的 logits 一样吗？
    """),
    code("""
    ninth = torch.tensor([tokenizer.encode(passage[8])])                          # (1, 1) 短文的第 9 个字
    with torch.no_grad():
        logits, presents = model(prompt_ids, use_cache=True, is_training=False)
        print("prefill:    logits", tuple(logits.shape), " presents 有", len(presents), "层，",
              "k", tuple(presents[0][0].shape), " v", tuple(presents[0][1].shape))
        logits, presents = model(ninth, past_key_values=presents, use_cache=True, is_training=False)
        print("带缓存送 1 个: logits", tuple(logits.shape), " k", tuple(presents[0][0].shape))
        whole = model(torch.cat([prompt_ids, ninth], dim=1))                       # (1, 9, V) 不用缓存
    print("与整段送进去时最后一个位置的 logits 相同:", torch.allclose(logits[:, -1], whole[:, -1], atol=1e-4))
    """),
    md("""
    缓存长度从 8 变成 9；logits 只有新送进去的这一个位置 `(1, 1, 6400)`，和不用缓存时整段的最后一个位置相同。

    ## 3. ✏️ 练习 3.1b：带缓存的贪心循环

    `greedy_with_cache(model, input_ids, max_new_tokens)`：输入 `(B, L)`，返回 `(B, L + max_new_tokens)`，和 3.1a 的结果**逐 id 相同**。要满足：

    - 提示词只送进模型**一次**（prefill，此时还没有缓存）；
    - 之后每一次调用只送 `(B, 1)` 的新 token，并带上**上一步返回的**缓存：各次调用看到的缓存长度是 L、L+1、L+2……；
    - eval 模式、不求梯度；返回的 id 是 `torch.long`。

    **先猜一猜**：生成 `max_new_tokens = n` 个 token，你的循环一共调用模型几次？如果第二次调用又送了整段，缓存长度和位置会变成什么样？

    提示（先想清楚再写）：
    - 第一个新 token 从哪次调用的哪个位置的 logits 里来？之后的每一个呢？
    - 每一次调用之后，手里要留下哪两样东西，下一次调用才用得上？
    - 返回的是「提示词 + 新 token」：新 token 要一边生成一边接到哪里？

    （3.3 会见到一种预先分配好的缓存 `diy.kv_cache.PreallocatedKV`，用它写这个循环也可以。）
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
            raise NotImplementedError("✏️ prefill → 循环：选出新 token → 拼接 → 只送新 token + past")
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

    给两种循环的每一步单独计时，生成 80 个 token。不用缓存时，第 t 步要把 8 + t 个 token 全部重算一遍；
    用缓存时每一步只送 1 个 token。机器上别的程序会随时抢走 CPU，单次计时里的尖刺是它们造成的，不是模型：
    所以整段跑 2 遍，每一步取**最短**的那次（最接近这一步本身的耗时）。计时每次运行都不一样，自动测试不比较这一格的输出，结论在下一格打印。
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    def time_each_token(step_fn, new_tokens=80, repeats=2):
        best = [float("inf")] * new_tokens
        with torch.no_grad():
            for _ in range(repeats):
                state = step_fn(None)
                for t in range(new_tokens):
                    start = time.perf_counter()
                    state = step_fn(state)
                    best[t] = min(best[t], (time.perf_counter() - start) * 1000)    # 毫秒
        return best


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
    steps = range(1, len(no_cache_ms) + 1)
    ax.plot(steps, no_cache_ms, label=zh_or_en("不用缓存（整段重算）", "no cache (whole sequence)"))
    ax.plot(steps, cache_ms, label=zh_or_en("KV cache（只算新 token）", "KV cache (new token only)"))
    ax.set_xlabel(zh_or_en("第 t 个新 token（step）", "new token t (step)"), fontsize=10)
    ax.set_ylabel(zh_or_en("这一步的耗时（毫秒，2 次中较短的）", "time of this step (ms, best of 2)"), fontsize=10)
    ax.set_title(zh_or_en("每生成一个 token 要多久", "Time per generated token"))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=9)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=9)
    plt.show()
    """),
    md("""
    不用缓存的曲线随位置上升（要重算的 token 越来越多）；缓存的曲线在这里几乎是平的。但「读缓存几乎不花时间」只在**短**上下文里成立。
    每生成一个 token，有的工作量是固定的（q/k/v/o 投影、MLP、`lm_head`：和已有多长无关），有的随已有长度 t 增长：
    新 token 的 query 要和缓存里 t 个 key 做点积，再对 t 个 value 加权求和，每层都要把整个缓存读一遍；缓存本身的内存也随 t 线性增长。
    下面按这个模型的形状算一算（假设它能处理更长的上下文）：
    """),
    code("""
    config = model.config
    C, F, V, n_layers = config.hidden_size, config.intermediate_size, config.vocab_size, config.num_layers
    fixed = n_layers * (4 * C * C + 3 * C * F) + C * V            # 每个新 token 的乘加数：投影、MLP、lm_head
    for t in (128, 4096, 32768):
        attention = n_layers * 2 * t * C                          # q·K（t 个 key）和 权重·V（t 个 value）
        cache_bytes = n_layers * 2 * t * C * 4                    # 每层 k、v 各 (1, heads, t, head_dim)，float32
        print(f"已有 {t:>6} 个 token：注意力占每步计算的 {attention / (attention + fixed):5.1%}，"
              f"缓存 {cache_bytes / 2**20:7.1f} MiB")
    # 对照：Llama-2-7B 的形状（32 层、4096 维，float16 每个数 2 字节），一条 4096 个 token 的序列
    print(f"Llama-2-7B、4096 个 token 的缓存: {32 * 2 * 4096 * 4096 * 2 / 2**30:.1f} GiB")
    """),
    md("""
    在 128 个 token 以内，注意力不到每步计算的十分之一，所以上面的曲线是平的；到几千、几万个 token，它就成了大头，
    而且每一步都要把越来越大的缓存从内存里读一遍——长上下文推理慢，主要慢在这里（大模型更明显：上面最后一行，
    一条 4096 个 token 的序列，缓存就有 2 GiB）。缓存省掉的是**重算**，省不掉**读**。

    ## 5. 为什么 `generate` 到 `max_seq_len` 就停

    2.3 的 `greedy_continue` 每一步只送最后 `max_seq_len` 个 token，可以一直写下去；3.3 的 `generate` 却拒绝「提示词 + 新 token」超过
    `max_seq_len`。两个原因：

    1. **位置用完了**：RoPE 的 cos/sin 表只算到位置 `max_seq_len − 1`（0.2a 打印过：`rope.cos` 是 `(128, 64)`），
       模型也只在这些位置上训练过。
    2. **带缓存时不能「丢掉最前面的 token、接着写」**。常听到的理由是「缓存里的 key 按各自的位置旋转过，丢掉一个 token 后位置都变了，
       要按新位置重算」——这**不是**原因。0.2 第 7 节说过，旋转后的点积只看 m − n：位置整体挪一格不改变任何分数；
       真要让位置从 0 重新数起，也只是把每个缓存的 key 再转回一格（0.2 的 `apply_rotary`，一次乘法），用不着重算模型。
       真正的原因是第 2 节那件事：从第 1 层起，缓存里每个 token 的 K/V 都是在**看得见它前面所有 token**（包括要丢掉的那个）时算出来的。
       丢掉最前面的 token 之后，这些 K/V 里仍然带着它的信息，和「只看裁剪后的文字」时算出来的不一样。

    做个实验：8 个字的提示词先 prefill，丢掉缓存里第 0 个 token 的 K/V，把留下的 key 转回一格（位置从 0 重新数），再送第 9 个字；
    与不用缓存、直接把裁剪后的 8 个字（第 1…8 个）整段送进去比较最后一个位置的 logits。模型有两个：训练好的模型原样（2 层），
    和只保留它第 0 层的 1 层模型（同样的词嵌入、第 0 层、最终 norm 和 `lm_head`）。**先猜一猜**：哪个相同？
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    # 准确的差在不同机器上不同（浮点误差），自动测试只比较下一格的结论
    from diy import DIYConfig, DIYForCausalLM
    from diy.backbone import supports
    from diy.model import RotaryEmbedding, apply_rotary


    def crop_then_continue(m, ids, next_id):
        \"\"\"带缓存：丢掉第 0 个 token 的 K/V，留下的 key 转回一格，再只送 next_id；返回最后一个位置的 logits。\"\"\"
        config = m.config
        rope = RotaryEmbedding(config.head_dim, config.max_seq_len, config.rope_theta)
        with torch.no_grad():
            _, past = m(ids, use_cache=True, is_training=False)
            back = [(apply_rotary(k[:, :, 1:], rope.cos[1], -rope.sin[1]), v[:, :, 1:])   # 每个 key 反着转一个位置
                    for k, v in past]
            logits, _ = m(next_id, past_key_values=back, use_cache=True, is_training=False)
        return logits[:, -1]


    def cropped_without_cache(m, ids, next_id):
        \"\"\"不用缓存：把裁剪后的整段（去掉第 0 个 token，接上 next_id）送进去；返回最后一个位置的 logits。\"\"\"
        with torch.no_grad():
            return m(torch.cat([ids[:, 1:], next_id], dim=1))[:, -1]


    gaps = {}
    if supports(model, "transformers"):  # 要 Llama 的模块名和 RoPE；你的骨干（DIY_BACKBONE）不是时跳过
        one_layer = DIYForCausalLM(DIYConfig(num_layers=1)).eval()
        one_layer.load_state_dict({name: w for name, w in model.state_dict().items()
                                   if not name.startswith("model.layers.1.")})        # 词嵌入、第 0 层、norm、lm_head
        for name, m in (("1 层", one_layer), ("2 层", model)):
            gaps[name] = (crop_then_continue(m, prompt_ids, ninth) - cropped_without_cache(m, prompt_ids, ninth)).abs().max()
            print(f"{name}：裁剪缓存接着写 vs 不用缓存，logits 最大差 {gaps[name]:.1e}")
    """),
    code("""
    if gaps:
        print("1 层：相同（差 < 1e-4，只是浮点误差）:", bool(gaps["1 层"] < 1e-4))
        print("2 层：不同（差 > 1e-2）:", bool(gaps["2 层"] > 1e-2))
    """),
    md("""
    1 层的模型里，每个 K/V 只取决于它自己那个 token 和位置，丢掉第 0 个 token、把位置转回一格，和从头算一样（差只是浮点误差）；
    2 层的模型就不一样了——第 1 层缓存里的 K/V 还带着被丢掉的那个 token，差比浮点误差大得多。要得到正确的结果，
    只能把裁剪后的整段重新算一遍，那就等于不用缓存。所以 `generate` 在计算之前就拒绝超过 `max_seq_len` 的长度，并说明原因：
    """),
    code("""
    try:
        model.generate(prompt_ids, max_new_tokens=model.config.max_seq_len)
    except DIYInputError as error:
        print("generate 拒绝了:", error.problem)
    """),
    md("""
    要写得更长，就用 2.3 那种每步裁剪、不带缓存的循环（或者换一个 `max_seq_len` 更大的模型）。
    transformers 的 `generate` 在这里做法不同：给了 `max_new_tokens` 时它并不拒绝，3.3 第 1 节会看到它做了什么。

    ## 小结

    你现在能：
    - 写出不用缓存和带缓存的贪心循环，并证明它们逐 id 相同（缓存只是优化，不改变结果）；
    - 用因果性解释缓存为什么正确（第 1 层起 K/V 依赖整个前缀，但从不依赖后面的 token）；
    - 说出 `presents` / `past_key_values` 里存的是每层的 k、v，形状 `(B, heads, 已有长度, head_dim)`，每步长 1；为什么有了缓存就只能送新 token；
    - 从耗时图读出缓存为什么快，并说出长上下文里随长度增长的是什么（注意力读缓存的计算和缓存的内存）；
    - 说出 `generate` 为什么不能裁剪缓存继续写：RoPE 的位置不是障碍，第 1 层起的 K/V 带着被裁掉的 token 才是（1 层相同、2 层不同）。

    **下一节 3.2**：贪心总是选概率最大的那个；采样让输出有变化——温度、top-k、top-p 三个旋钮。
    """),
]

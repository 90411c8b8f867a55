"""Lesson 2.1: text -> token ids -> batches of random windows."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：模型吃进去的是整数 id。这一节把一段真实的中文短文变成一条 id 序列，再从里面随机切出一批批等长的窗口——
    第二步的训练就吃这些窗口。

    **学完后你能自测**：
    - [ ] 用分词器 `encode` 一句话得到 id、`decode` 还原；说出词表大小、`pad` / `eos` 的 id，和词表外的字会怎样；
    - [ ] 说清楚为什么把短文重复拼成一条「token 流」、中间用 `eos` 隔开；
    - [ ] 写出 `get_batch`：batch 形状是 `(B, L)`、dtype 是 `long`、每个窗口都在文本之内；
    - [ ] 同一个种子的 `torch.Generator` 两次取到同一个 batch。

    **怎么做练习**：带 ✏️ 的单元格自己写，写完运行它，再运行紧接着的**自检**单元格（✅ / ⏳ / ❌）。
    还没写完也可以一路运行到底——自检会让后面的单元格先用参考答案继续。
    """),
    md("""
    ## 0. 准备
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    import warnings

    import torch

    from diy import CharTokenizer, load_passage, training_stream
    from diy.backbone import describe
    from diy.classroom.checks import check_get_batch

    torch.manual_seed(0)
    print("torch", torch.__version__)   # 版本号随安装而不同（+cpu、+cu130……），自动测试不比较这一格
    print(describe())  # 这门课此刻跑在哪个骨干网络上（见 README「已经有自己的 DIYModel？」）
    """),
    md("""
    ## 1. 分词器：字 ↔ id

    真实的大模型用 **BPE**（byte-level Byte Pair Encoding）分词：从大量文本里统计出常见的「字节片段」当作词表，
    一个 id 可能是半个汉字、一个字或一个词。比如 MiniMind 的词表也只有 6400 个条目，但那是在它的语料上训练出来的。
    本课程用最直观的办法：**一个字一个 id**。词表固定 6400 个，不用下载任何文件，按顺序由标准的字符表生成：

    | id | 内容 |
    | --- | --- |
    | 0～3 | 特殊 token：`<pad>`（padding）、`<unk>`（词表外的字）、`<bos>`、`<eos>`（一段文字结束） |
    | 4～ | 换行和可打印 ASCII（英文字母、数字、标点） |
    | 之后 | 常用中文标点（，。！？“”……） |
    | 之后 | GB2312 一级汉字 3755 个（最常用的字），再用二级汉字补满 6400 |

    好处是每个 id 都能读出来是哪个字，`decode(encode(文本)) == 文本`；代价是序列更长、每个 id 携带的信息更少。
    """),
    code("""
    tokenizer = CharTokenizer()
    print(tokenizer)
    ids = tokenizer.encode("从前有座山")
    print("encode('从前有座山') =", ids)
    print("decode 回来:", tokenizer.decode(ids))
    print("前 8 个 id 对应:", [tokenizer.id_to_token[i] for i in range(8)])
    """),
    md("""
    **先猜一猜，再运行**：「灯塔🗼」编码后有几个 id？词表里没有的字会被丢掉吗？
    """),
    code("""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = tokenizer.encode("灯塔🗼")
    print("ids:", ids, " 个数:", len(ids))
    print("decode:", tokenizer.decode(ids))
    print("分词器的提醒:", caught[0].message)
    """),
    md("""
    不认识的字变成 `<unk>`（id 1），**不会被悄悄丢掉**，分词器还会提醒你是哪些字、各几个。
    （`warnings.catch_warnings` 只是把提醒接住打印出来；平时它会显示成一条警告。）

    ## 2. 整篇短文 → 一条 id 序列

    课程准备了一段三百多字的短文（随 `diy` 包一起安装，`load_passage()` 读出来）。第二步的目标就是让模型把它背下来。
    """),
    code("""
    passage = load_passage()
    print(passage)
    """),
    code("""
    passage_ids = tokenizer.encode(passage)
    print("字符数:", len(passage), " id 数:", len(passage_ids), " 不同的字:", len(set(passage)))
    print("不在词表里的字:", dict(tokenizer.unknown_characters(passage)))
    print("前 20 个 (id, 字):", [(i, tokenizer.id_to_token[i]) for i in passage_ids[:20]])
    """),
    md("""
    ## 3. 拼成一条 token 流

    真实的预训练把成千上万篇文档各自加上 `<eos>`，首尾相接拼成一条极长的 token 流，再从里面随机切窗口。
    我们只有一篇，就把它（加上 `<eos>`）**重复几遍**拼起来。这样做有两个好处：

    1. 短文的每一部分——包括开头——都会以大致相同的频率出现在窗口的各个位置；如果只用一遍，开头几个字几乎只在「起点正好是 0」的窗口里出现；
    2. 模型顺便学会：短文最后一个字之后是 `<eos>`。第三步生成时，看到 `<eos>` 就停。

    `training_stream` 一直重复到 token 流的总长度至少是 8 × `seq_len`：
    """),
    code("""
    seq_len = 128
    tokens = training_stream(passage_ids, tokenizer.eos_token_id, seq_len)
    eos_at = (tokens == tokenizer.eos_token_id).nonzero().flatten().tolist()
    print("tokens.shape:", tuple(tokens.shape), tokens.dtype)
    print("重复了", len(eos_at), "遍；<eos> 在位置", eos_at)
    print("第一个 <eos> 前后:", repr(tokenizer.decode(tokens[eos_at[0] - 5:eos_at[0] + 6])))
    """),
    md("""
    ## 4. ✏️ 练习 2.1：get_batch

    从 `tokens`（形状 `(N,)`）里随机取 `batch_size` 个起点 `s`，每个窗口是 `tokens[s:s + seq_len]`，叠成 `(B, L)`：

    | 张量 | 形状 |
    | --- | --- |
    | `tokens` | `(N,)` |
    | 起点 `starts` | `(B,)`，取值范围 `0 ≤ s ≤ N - seq_len` |
    | 返回的 `input_ids` | `(B, seq_len)`，dtype `long` |

    **要满足的**：
    1. 每个窗口都在文本之内，而且**每个**合法起点都可能被取到——包括让窗口正好到文本末尾的那个最后的起点；
    2. 随机数只从传进来的 `generator` 里取：同一个种子的 generator 取到同一个 batch；同一个 generator 接着取，得到新的 batch；
       notebook 别处的（全局）随机数不受影响；
    3. 不需要 `y`：和第一步一样，`causal_lm_loss` 会在内部错开一位，所以窗口本身既是输入也是 labels。
       （nanoGPT 的写法是取 `seq_len + 1` 长的窗口，返回 `x = w[:-1]`、`y = w[1:]`——那样也对，自检都接受。）

    可参考的代码片段（只作提示，空白处自己填）：

    ```python
    starts = torch.randint(0, ____, (batch_size,), generator=generator)   # (B,)；注意 size 是元组
    ```

    **先猜一猜，再写**：`torch.randint(low, high, ...)` 取得到 `high` 吗？`N` 个 token、窗口长 `seq_len` 时，最后一个合法起点是多少？
    """),
    exercise(
        solution="""
        # ✏️ 练习 2.1
        def get_batch(tokens, batch_size, seq_len, generator=None):
            \"\"\"从 tokens (N,) 里随机取 batch_size 个长 seq_len 的窗口，返回 (B, seq_len)。\"\"\"
            starts = torch.randint(0, len(tokens) - seq_len + 1, (batch_size,), generator=generator)  # (B,)
            windows = [tokens[s:s + seq_len] for s in starts.tolist()]  # B 个 (seq_len,)
            return torch.stack(windows)  # (B, seq_len)
        """,
        stub="""
        # ✏️ 练习 2.1
        def get_batch(tokens, batch_size, seq_len, generator=None):
            \"\"\"从 tokens (N,) 里随机取 batch_size 个长 seq_len 的窗口，返回 (B, seq_len)。\"\"\"
            raise NotImplementedError("✏️ 随机起点 → 切窗口 → torch.stack")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    get_batch = check_get_batch(get_batch)
    """),
    md("""
    ## 5. 看一个 batch

    取 4 个长 16 的小窗口，打印形状，再把每一行解码回文字（换行显示成 ⏎）：
    """),
    code("""
    generator = torch.Generator().manual_seed(0)
    batch = get_batch(tokens, 4, 16, generator)
    print("batch.shape:", tuple(batch.shape), batch.dtype)
    for row in batch:
        print(" ", tokenizer.decode(row).replace("\\n", "⏎"))
    """),
    md("""
    和第一步 1.2 的错位一模一样：窗口里位置 `t` 的字，要预测的是位置 `t+1` 的字。把第一行列成「输入字 → 目标字」：
    """),
    code("""
    row = batch[0].tolist()
    for t in range(8):
        print(f"位置 {t}: 输入 {tokenizer.id_to_token[row[t]]!r:6} → 目标 {tokenizer.id_to_token[row[t + 1]]!r}")
    print("……最后一个位置没有目标（它的下一个字不在窗口里）。")
    """),
    md("""
    **先猜一猜，再运行**：用同一个种子的 generator 再取一次，结果一样吗？换一个种子呢？同一个 generator 接着再取一次呢？
    """),
    code("""
    same = get_batch(tokens, 4, 16, torch.Generator().manual_seed(0))
    other = get_batch(tokens, 4, 16, torch.Generator().manual_seed(1))
    print("同一个种子，batch 相同:", torch.equal(batch, same))
    print("换一个种子，batch 相同:", torch.equal(batch, other))
    generator = torch.Generator().manual_seed(0)
    first, second = get_batch(tokens, 4, 16, generator), get_batch(tokens, 4, 16, generator)
    print("同一个 generator 接着取第二次，batch 相同:", torch.equal(first, second))
    """),
    md("""
    同一个种子从头开始，取到的 batch 一样——这就是可复现；同一个 generator 接着取，它的状态已经往前走了，取到的是新的 batch——
    训练循环每一步要的正是这个。如果 `get_batch` 在里面重新设种子，每一步都会拿到同一个 batch（自检会抓住这种写法）。
    """),
    md("""
    ## 小结

    你现在能：
    - 用字符级分词器在文字和 id 之间来回转换，知道 `<pad>`=0、`<eos>`=3，词表外的字变成 `<unk>` 并被报告；
    - 说出真实 LLM 用 BPE、本课程用「一字一 id」的取舍；
    - 把短文加 `<eos>` 重复拼成 token 流，并解释这样做的两个理由；
    - 写出 `get_batch`：随机起点、不越界、`(B, L)`、用 generator 可复现。

    **下一节 2.2**：把第一步的「一步训练」重复几十次——训练循环、评估、loss 曲线。
    """),
]

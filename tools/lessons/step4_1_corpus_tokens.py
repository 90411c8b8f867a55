"""Lesson 4.1: a real corpus (21,053 宋词), the split by document, characters vs byte-level BPE,
bits per character, the packed token stream and its random windows."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：第二步的模型只背了一段 302 个字的短文。从这一步起，它要读两万多首宋词，并在**没读过的词**上变好。
    这一节先把语料准备好：看看真实的语料长什么样，把它按「首」分成训练集和留出集，决定用什么当 token（字，还是 BPE？），
    定下比较模型的单位（每个字多少 bit），最后把训练集压成一条存在磁盘上的 token 流，从里面随机取窗口。

    **学完后你能自测**：
    - [ ] 说出为什么留出集要按**首**划分，而不是把整条字流随机切成窗口再分两份；
    - [ ] 自己写出字节级 BPE 的两步（数相邻对、合并最频繁的一对）和 encode / decode，合并顺序与 Hugging Face `tokenizers` 相同；
    - [ ] 解释为什么 BPE 在古诗词上几乎不省 token；
    - [ ] 说出 bits per character 的算法（总 loss ÷ 字数 ÷ ln 2）、它和困惑度的关系，以及为什么不同分词器之间要比它；
    - [ ] 写出从 uint16 token 流里取 `(x, y)` 窗口的 `get_batch`。

    **怎么做练习**：带 ✏️ 的单元格自己写，写完运行它，再运行紧接着的**自检**单元格（✅ / ⏳ / ❌）。
    还没写完也可以一路运行到底——自检会让后面的单元格先用参考答案继续。
    """),
    md("""
    ## 0. 准备
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    import json
    import tempfile
    from collections import Counter
    from pathlib import Path

    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from tokenizers.pre_tokenizers import ByteLevel

    from diy import CharTokenizer
    from diy.backbone import describe
    from diy.classroom.checks import check_bpe_codec, check_bpe_merge, check_stream_batch
    from diy.classroom.course_pretrain import course_bpe
    from diy.plotting import zh_or_en
    from diy.pretraining.bpe import ByteBPE, best_pair, gpt2_byte_order
    from diy.pretraining.corpus import format_ci, is_held_out, load_songci, split_songci

    torch.manual_seed(0)
    print("torch", torch.__version__)   # 版本号随安装而不同（+cpu、+cu130……），自动测试不比较这一格
    print(describe())
    """),
    md("""
    ## 1. 两万首宋词

    语料来自开源项目 chinese-poetry（npm 包 `chinese-poetry` 2.0.1，MIT 许可；词本身是古人的作品，属于公有领域）。
    课程把处理好的语料压缩后放在仓库里（`diy/corpora/songci.jsonl.xz`，2.2 MB，出处和许可证就在旁边），
    所以不需要联网；`load_songci()` 读它之前先核对文件的 sha256，文件坏了会直接告诉你怎么修。
    """),
    code("""
    cis = load_songci()
    text_chars = sum(len(line) for ci in cis for line in ci.paragraphs)
    distinct = len({ch for ci in cis for line in ci.paragraphs for ch in line})
    print(f"{len(cis):,} 首词，正文 {text_chars:,} 个字，{distinct:,} 个不同的字")
    su_shi = next(ci for ci in cis if ci.paragraphs[0].startswith("明月几时有"))
    print(su_shi.rhythmic, "·", su_shi.author)
    print(su_shi.paragraphs[:3])
    """),
    md("""
    每首词有**词牌**（`rhythmic`，规定了句子的字数和押韵，像一个曲谱）、作者和一行行的正文。
    模型看到的是一段纯文字。这一步里所有的数（基线、训练、留出集上的分数）都用同一种格式：
    **词牌一行，然后每行正文，最后空一行**（`format_ci`）。词与词首尾相接，空行告诉模型「一首结束了」。
    """),
    code("""
    print(format_ci(su_shi), end="")
    print("……最后是空行：", repr(format_ci(su_shi)[-12:]))
    """),
    code("""
    names = Counter(ci.rhythmic for ci in cis)
    print(f"{len(names):,} 个不同的词牌；最常见的：")
    for name, count in names.most_common(6):
        print(f"  {name}  {count} 首")
    """),
    md("""
    ## 2. 训练集和留出集：按「首」分

    要知道模型是真学会了写词，还是背下了训练集，必须在它**从没见过**的词上打分（留出集，held-out）。
    课程用每首词**正文的哈希**决定它去哪边（`is_held_out`：sha256 的前 8 个字节对 100 取余，小于 5 就留出），
    所以划分是固定的、可复现的，谁运行都一样。

    **先猜一猜，再运行**：如果不按首分，而是把所有词拼成一条长字流，切成 128 字的窗口，随机拿 5% 的窗口当留出集，
    有多少个留出窗口的那首词，在训练窗口里也出现了一部分？
    """),
    code("""
    stream = "".join(format_ci(ci) for ci in cis)
    owner = np.repeat(np.arange(len(cis)), [len(format_ci(ci)) for ci in cis])  # 每个字属于哪首词
    n_windows = len(stream) // 128
    held_windows = np.random.default_rng(0).random(n_windows) < 0.05
    window_owners = [set(owner[w * 128:(w + 1) * 128]) for w in range(n_windows)]
    train_owners = set().union(*(o for o, held in zip(window_owners, held_windows, strict=True) if not held))
    leaked = sum(bool(o & train_owners) for o, held in zip(window_owners, held_windows, strict=True) if held)
    print(f"留出的窗口 {held_windows.sum():,} 个，其中 {leaked / held_windows.sum():.1%} 的词在训练窗口里也有一部分")
    """),
    md("""
    几乎每个留出窗口都「漏」了：窗口切在一首词的中间，这首词的上半首在训练集里，模型背下上半首，就能把下半首猜得很准——
    留出集上的分数会高估它真正的本事。按首划分就没有这个问题：
    """),
    code("""
    train, held_out = split_songci(cis)
    train_bodies = {"\\n".join(ci.paragraphs) for ci in train}
    print(f"训练 {len(train):,} 首，留出 {len(held_out):,} 首（{len(held_out) / len(cis):.2%}）")
    print("留出的词，正文出现在训练集里的:", sum("\\n".join(ci.paragraphs) in train_bodies for ci in held_out))
    """),
    md("""
    为什么哈希的是**正文**，而不是「词牌 + 作者 + 正文」？《全宋词》里有的词挂在两位作者名下（同一首词，两种说法），
    语料里有几十处这样的重复。哈希正文，几份拷贝就一定落在同一边：
    """),
    code("""
    by_body = {}
    for ci in cis:
        by_body.setdefault("\\n".join(ci.paragraphs), []).append(ci)
    copies = [group for group in by_body.values() if len(group) > 1]
    example = next(group for group in copies if len({ci.author for ci in group}) > 1)
    print("重复的正文:", len(copies), "处；例如", [f"{ci.rhythmic}·{ci.author}" for ci in example])
    print("每组拷贝都在同一边:", all(len({is_held_out(ci) for ci in group}) == 1 for group in copies))
    """),
    md("""
    ## 3. 字频：少数字用得极多

    数一数训练集里每个字出现几次，按次数从高到低排，画在**对数坐标**上。自然语言里这条线几乎是一条斜线（齐夫定律，Zipf）：
    第 r 常见的字，出现次数大约和 1/r 成正比（宋词的头部——换行、句号、逗号——比这条线还多，尾部的生僻字掉得更快）。
    """),
    code("""
    train_text = "".join(format_ci(ci) for ci in train)
    held_text = "".join(format_ci(ci) for ci in held_out)
    counts = Counter(train_text)
    ranked = counts.most_common()
    print("最常见的 12 个:", " ".join(f"{ch!r}:{n}" for ch, n in ranked[:12]))
    total = len(train_text)
    for top in (100, 1000, 3000):
        print(f"最常见的 {top:>4} 个字占全部字数的 {sum(n for _, n in ranked[:top]) / total:.1%}")
    """),
    code("""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.loglog(range(1, len(ranked) + 1), [n for _, n in ranked], linewidth=1.5)
    ax.loglog([1, len(ranked)], [ranked[0][1], ranked[0][1] / len(ranked)], "--", color="gray",
              label=zh_or_en("次数 ∝ 1/排名", "count ∝ 1/rank"))
    ax.set_xlabel(zh_or_en("排名（对数）", "rank (log)"))
    ax.set_ylabel(zh_or_en("出现次数（对数）", "count (log)"))
    ax.set_title(zh_or_en("宋词的字频", "Character frequencies in 宋词"))
    ax.legend()
    fig.tight_layout()
    plt.show()
    """),
    md("""
    **词表够不够？** 第二步的 `CharTokenizer()` 是固定的 6400 个 id（ASCII、标点、GB2312 的常用字），
    是为现代白话文准备的。宋词里有不少生僻字和繁体字形（下面的「□」是语料里原书缺字的地方）：
    """),
    code("""
    course_vocab = CharTokenizer()
    unknown = course_vocab.unknown_characters(train_text)
    print(f"课程的 6400 词表：训练集里 {sum(unknown.values()):,} 个字（{sum(unknown.values()) / total:.2%}，"
          f"{len(unknown):,} 种）不认识，例如 {''.join(ch for ch, _ in unknown.most_common(10))}")
    songci_vocab = CharTokenizer.from_text(train_text)
    unseen = songci_vocab.unknown_characters(held_text)
    print(f"从训练集建的词表：{len(songci_vocab):,} 个 id；训练集全认识，"
          f"留出集里 {sum(unseen.values())} 个字（{sum(unseen.values()) / len(held_text):.3%}）没见过")
    """),
    md("""
    所以第四步用**从训练集建的词表**（`CharTokenizer.from_text`：4 个特殊 token，然后训练集里的每个字，最常见的在前），
    6,047 个 id，和 6400 差不多大。留出集里只有几十个字训练时从没出现过，它们变成 `<unk>`——这是任何分词器都要面对的：
    模型总会遇到没见过的东西。

    ## 4. ✏️ 字节级 BPE：自己写

    真实的大模型（GPT-2、Llama 3、MiniMind）不用「一字一 id」，而是用 **BPE**（Byte Pair Encoding）学一个词表：

    1. 从文本的 **UTF-8 字节**开始：id 0～255 就是 256 个字节，任何文字都能写出来，没有不认识的字；
    2. 数出所有**相邻的一对** id 各出现几次；
    3. 把出现最多的那一对，在所有地方换成一个新 id（256、257……），记下这次「合并」；
    4. 回到第 2 步，直到合并了想要的次数。

    一个汉字是 3 个字节，所以前面的合并多半在把字节拼回汉字，之后才可能把常见的两个字拼成一个 token。

    **练习 4.1a**：写出 BPE 的两个动作。

    | 函数 | 输入 | 返回 | 例子 |
    | --- | --- | --- | --- |
    | `count_pairs(ids)` | id 的列表 | `{(左, 右): 次数}`（dict 或 `Counter`） | `[1, 2, 1, 2]` → `{(1, 2): 2, (2, 1): 1}` |
    | `merge(ids, pair, new_id)` | 列表、一对、新 id | **新**列表，每处 `pair` 换成 `new_id` | `[1, 2, 3, 1, 2]`、`(1, 2)`、`9` → `[9, 3, 9]` |

    **要满足的**：相邻对是**重叠**的（`[5, 5, 5]` 里 `(5, 5)` 出现 2 次）；`merge` 从左往右扫，一对用掉的两个 id 不能再参与别的配对
    （`[5, 5, 5]` 合并 `(5, 5)` 得 `[new, 5]`）；两个函数都不改动传进来的 `ids`。

    提示：`zip` 能把两个列表一项一项地配成对——要配出所有相邻对，第二个列表该从哪里开始？
    `merge` 用一个下标 `i` 和 `while` 循环，配上了走 ____ 步，没配上走 ____ 步。
    """),
    exercise(
        solution="""
        # ✏️ 练习 4.1a
        def count_pairs(ids):
            \"\"\"每一对相邻 id 出现的次数：{(左, 右): 次数}。\"\"\"
            return Counter(zip(ids, ids[1:], strict=False))  # ids[1:] 少一个：最后一对就是末尾


        def merge(ids, pair, new_id):
            \"\"\"新列表：ids 里每处 pair（从左到右、不重叠）换成 new_id。\"\"\"
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            return out
        """,
        stub="""
        # ✏️ 练习 4.1a
        def count_pairs(ids):
            \"\"\"每一对相邻 id 出现的次数：{(左, 右): 次数}。\"\"\"
            raise NotImplementedError("✏️ 数出每一对相邻的 id")


        def merge(ids, pair, new_id):
            \"\"\"新列表：ids 里每处 pair（从左到右、不重叠）换成 new_id。\"\"\"
            raise NotImplementedError("✏️ 从左往右扫，配上就换成 new_id")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    count_pairs, merge = check_bpe_merge(count_pairs, merge)
    """),
    md("""
    有了这两个动作，训练就是一个循环（下面这个函数用的是你的 `count_pairs` 和 `merge`）。只剩一个细节要约定：
    **两对出现次数一样多时选哪一对**（并列，tie）。短文本里并列很常见，选法不同，学出的词表就不同。
    课程选「最小的那一对」：先比左边的 id，再比右边的（`best_pair`）。
    """),
    code("""
    def train_bpe(text, num_merges, byte_order=None):
        ids = list(text.encode("utf-8"))
        merges = []
        for new_id in range(256, 256 + num_merges):
            counts = Counter(count_pairs(ids))
            pair = best_pair(counts, byte_order)   # 次数最多；并列时取最小的一对
            if counts[pair] < 2:                   # 没有重复的对了：再合并也省不了什么
                break
            ids = merge(ids, pair, new_id)
            merges.append(pair)
        return merges


    def show(token_bytes):
        \"\"\"一个 token 代表的字节：能解码就显示文字，否则显示十六进制（半个汉字）。\"\"\"
        try:
            return repr(token_bytes.decode("utf-8"))
        except UnicodeDecodeError:
            return token_bytes.hex(" ")


    sample = "".join(format_ci(ci) for ci in train[:200])
    merges = train_bpe(sample, 300)
    vocab = ByteBPE(merges).vocab   # 每个 id 代表的字节（课程的 ByteBPE，只用来显示）
    print(f"样本 {len(sample):,} 个字（{len(sample.encode()):,} 个字节），学到 {len(merges)} 次合并，前 10 次：")
    for i in range(10):
        print(f"  id {256 + i}: {show(vocab[256 + i])}")
    def kind(token_bytes):
        try:
            return "一个字" if len(token_bytes.decode("utf-8")) == 1 else "两个字以上（含换行）"
        except UnicodeDecodeError:
            return "半个字"


    print("这些合并得到的 token:", dict(Counter(kind(vocab[i]) for i in range(256, 256 + len(merges)))))
    """),
    md("""
    最先合并的是句号「。」的三个字节（`e3 80 82`）和它后面的换行（`0a`），然后是逗号「，」（`ef bc 8c`）、顿号「、」，
    以及很多汉字共用的前两个字节（`e4 b8`、`e4 ba`）。300 次合并里，大部分在把字节拼回单个的字，或者还停在半个字，
    跨过一个字的只有两个（都带着换行）。

    **练习 4.1b**：用学到的 `merges` 编码、解码。

    | 函数 | 输入 → 返回 |
    | --- | --- |
    | `encode(text, merges)` | 文字 → id 的列表；`merges[i]` 是第 i 次合并的那一对，它生成的新 id 是 `256 + i` |
    | `decode(ids, merges)` | id 的列表 → 文字 |

    **要满足的**：
    - encode 的结果和训练时对这段文字做的一样：从 UTF-8 字节出发，合并的顺序和学到的顺序一致（后学的合并要用到先学的合并生成的 id）；
    - `decode(encode(t)) == t`，对训练文本以外的文字（英文、雪人 ☃）也成立；
    - 只解码半个汉字（比如只有它的第一个字节）时不能报错，要得到 `�`（模型生成时完全可能只生成半个字）。

    提示：decode 时每个 id 要展开成它代表的字节——一个合并出来的 id 代表的字节，和它的那一对有什么关系？
    `bytes.decode` 的 `errors=` 参数管的正是不完整的字节。
    """),
    exercise(
        solution="""
        # ✏️ 练习 4.1b
        def encode(text, merges):
            \"\"\"文字 → id：先是 UTF-8 字节，再按学到的顺序做每一次合并。\"\"\"
            ids = list(text.encode("utf-8"))
            for i, pair in enumerate(merges):
                ids = merge(ids, pair, 256 + i)
            return ids


        def decode(ids, merges):
            \"\"\"id → 文字：每个 id 展开成它代表的字节，拼起来按 UTF-8 解码。\"\"\"
            vocab = {i: bytes([i]) for i in range(256)}
            for i, (a, b) in enumerate(merges):
                vocab[256 + i] = vocab[a] + vocab[b]
            return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")
        """,
        stub="""
        # ✏️ 练习 4.1b
        def encode(text, merges):
            \"\"\"文字 → id：先是 UTF-8 字节，再按学到的顺序做每一次合并。\"\"\"
            raise NotImplementedError("✏️ 字节 → 依次合并")


        def decode(ids, merges):
            \"\"\"id → 文字：每个 id 展开成它代表的字节，拼起来按 UTF-8 解码。\"\"\"
            raise NotImplementedError("✏️ 建 vocab → 拼字节 → 解码")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    encode, decode = check_bpe_codec(encode, decode)
    """),
    code("""
    lines = [line for ci in train[:200] for line in ci.paragraphs]
    line = max(lines, key=lambda text: len(text.encode()) / len(encode(text, merges)))
    ids = encode(line, merges)
    print("样本里合并得最多的一行:", line)
    print(f"{len(line)} 个字 = {len(line.encode())} 个字节 → {len(ids)} 个 token:", ids)
    print("每个 token:", " | ".join(show(vocab[i]) for i in ids))
    print("decode 还原:", decode(ids, merges) == line)
    """),
    md("""
    ### 和 Hugging Face `tokenizers` 比一比

    `tokenizers` 的 `BpeTrainer` 是 GPT-2 以来大家实际在用的实现（Rust 写的，很快）。同一段样本、同样 300 次合并，它学到的合并和我们的一样吗？
    （`use_regex=False`：不按空格和标点预先切词，和我们的循环一样把整段当一个序列。）
    """),
    code("""
    def hf_merges(text, num_merges):
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        trainer = trainers.BpeTrainer(vocab_size=256 + num_merges, initial_alphabet=ByteLevel.alphabet(),
                                      min_frequency=2, show_progress=False)
        tokenizer.train_from_iterator([text], trainer)
        # tokenizers 把每个字节写成一个可打印字符（GPT-2 的映射），这里换回字节 id
        byte_of = dict(zip(sorted(ByteLevel.alphabet()), gpt2_byte_order(), strict=True))
        ids, out = {bytes([b]): b for b in range(256)}, []
        for merged in json.loads(tokenizer.to_str())["model"]["merges"]:
            left, right = merged if isinstance(merged, list) else merged.split(" ")
            a, b = (bytes(byte_of[ch] for ch in piece) for piece in (left, right))
            out.append((ids[a], ids[b]))
            ids[a + b] = 255 + len(out)
        return out


    theirs = hf_merges(sample, 300)
    first_difference = next(i for i, (x, y) in enumerate(zip(merges, theirs, strict=True)) if x != y)
    print("300 次合并完全相同:", merges == theirs, "；第一处不同在第", first_difference, "次合并")
    """),
    md("""
    注意最后的「。」被拆成了 `e3 80` 和 `82`：样本里「。」后面几乎总跟着换行，BPE 学到的是「。⏎」合在一起的 token，
    单独一个「。」反而没有自己的 token——BPE 的词表完全由训练文本里什么常挨在一起决定。

    前面一段一样，然后分开了——不是谁错了，而是**并列时的选法**不同。`BpeTrainer` 也选「最小的那一对」，
    但它给 256 个字节编号的顺序不是字节值本身：它先把每个字节映射成一个可打印字符（GPT-2 的做法），再按这些字符排序编号。
    把这个顺序（`gpt2_byte_order()`）交给我们的循环：
    """),
    code("""
    same_rule = train_bpe(sample, 300, byte_order=gpt2_byte_order())
    print("用 tokenizers 的字节顺序，300 次合并完全相同:", same_rule == theirs)
    """),
    md("""
    ## 5. BPE 在宋词上省了多少？

    用 `tokenizers` 在整个训练集上学一个 **6400 个条目**的 BPE 词表（和课程的字词表一样大；第一次运行约 15 秒，之后从缓存读取），
    再数一数：留出集的文字，编码成多少个 token？

    **先猜一猜，再运行**：宋词里一个 BPE token 平均几个字？比 1 多多少？
    """),
    code("""
    bpe = course_bpe()
    bpe_tokens = len(bpe.encode(held_text).ids)
    print(f"留出集 {len(held_text):,} 个字：按字 {len(held_text):,} 个 token（1.00 字/token），"
          f"BPE {bpe_tokens:,} 个 token（{len(held_text) / bpe_tokens:.2f} 字/token）")
    """),
    md("""
    只省了 14%。看看这 6400 个条目都是什么：
    """),
    code("""
    kinds = {"单个字节": 0, "半个字（不完整的字节）": 0, "一个字": 0, "两个字以上": 0}
    multi = []
    for i in range(bpe.get_vocab_size()):
        piece = bpe.decode([i])
        if i < 256:
            kinds["单个字节"] += 1
        elif "\\ufffd" in piece:
            kinds["半个字（不完整的字节）"] += 1
        elif len(piece) == 1:
            kinds["一个字"] += 1
        else:
            kinds["两个字以上"] += 1
            multi.append(piece)
    print(kinds)
    common_pairs = Counter(held_text[i:i + 2] for i in range(len(held_text) - 1))
    print("两个字以上的条目，留出集里最常见的:", sorted(multi, key=lambda p: (-common_pairs[p], p))[:12])
    """),
    md("""
    词表里多字的条目不少，可编码一段真实的文字时，它们用上了多少？把留出集编码后的每个 token 归类：
    """),
    code("""
    kind_of = {}
    for i in range(bpe.get_vocab_size()):
        piece = bpe.decode([i])
        kind_of[i] = "字节或半个字" if i < 256 or "\\ufffd" in piece else "一个字" if len(piece) == 1 else "两个字以上"
    used = Counter(kind_of[i] for i in bpe.encode(held_text).ids)
    chars_in_multi = sum(len(bpe.decode([i])) for i in bpe.encode(held_text).ids if kind_of[i] == "两个字以上")
    print({kind: used[kind] for kind in ("一个字", "两个字以上", "字节或半个字")})
    print(f"落在多字 token 里的字：{chars_in_multi / len(held_text):.0%}")
    """),
    md("""
    两个原因：

    1. **每个汉字要 3 个字节**：6,400 个条目里，256 个是单字节，几百个是拼到一半的「半个字」，只有两千多个字有自己的 token；
       宋词用到 6,000 多个不同的字，其余的字要用两三个 token 拼出来（上面：一万多个 token 只是字节或半个字），把多字 token 省下的又花掉一部分；
    2. **多字的条目省下的有限**：「东风」「何处」会重复，但古诗词几乎没有固定的多字「词」，一首词里大多数两字组合在整个语料里也只出现几次，
       编码留出集时，只有三成左右的字落在多字 token 里。

    BPE 在字母文字上省得多：字母只有几十个，一个常用词（几个字母）在语料里出现成千上万次，合成一个 token 就省掉好几个。
    所以第四步的模型**用字当 token**：每个 id 可读，生成时不会出现半个字，代价是序列比 BPE 长 16%。

    ## 6. 比较的单位：每个字多少 bit

    换了分词器，每个 token 的 loss 就不能比了：BPE 的一个 token 平均 1.16 个字，它的 loss 自然比一个字的 loss 大。
    公平的比法是把整段文字的总 loss 摊到**每个字**上，再换成 bit（以 2 为底）：

    $$\\text{bits per character} = \\frac{\\text{所有 token 的 loss 之和（nats）}}{\\text{字数} \\times \\ln 2}$$

    它的意思是：平均每个字要用多少个 bit 才能写下来（压缩）。每个字的困惑度就是 $2^{\\text{bpc}}$：
    bpc = 8 相当于每一步在 256 个字里等可能地猜。

    用最简单的模型算一次：**unigram**，每个 token 按它在训练集里出现的频率猜，不看上文（add-one 平滑：没见过的 token 也记 1 次）。
    两种分词器下各算一次：
    """),
    code("""
    def unigram_total_bits(train_ids, test_ids, vocab_size):
        counts = np.bincount(train_ids, minlength=vocab_size) + 1
        p = counts / counts.sum()
        return -np.log2(p[test_ids]).sum()


    char_train = np.array([songci_vocab.token_to_id.get(ch, 1) for ch in train_text])
    char_held = np.array([songci_vocab.token_to_id.get(ch, 1) for ch in held_text])
    bpe_train = np.array(bpe.encode(train_text).ids)
    bpe_held = np.array(bpe.encode(held_text).ids)
    for name, bits, n_tokens in (
            ("按字", unigram_total_bits(char_train, char_held, len(songci_vocab)), len(char_held)),
            ("BPE", unigram_total_bits(bpe_train, bpe_held, bpe.get_vocab_size()), len(bpe_held))):
        print(f"{name:4}：每个 token {bits / n_tokens:.2f} bit，每个字 {bits / len(held_text):.2f} bit")
    """),
    md("""
    同样两个 unigram，按「每个 token」比，BPE 更差（每个 token 要的 bit 更多）；按「每个字」比，BPE 反而更好
    （它的多字 token 顺带记住了一些常见的字组合）。**按 token 比，结论是反的**——因为 BPE 的一个 token 装着不止一个字。
    （BPE 的 unigram 更好，不等于 BPE 的模型更好：能看上文的模型，「东风」这样的组合靠上一个字就学得到。）
    所以之后的基线、课程的模型、你自己的模型，都按 bits per character 在**同一份留出集、同一种格式**上比。

    ## 7. ✏️ 存在磁盘上的 token 流

    训练集按 `format_ci` 的格式有 189 万个字，编码后就是 189 万个 id。真实的预训练语料有几千亿个 token，内存装不下，所以做法是：**编码一次**，
    把 id 作为 `uint16`（每个 2 字节，能表示 0～65535）一个接一个写进一个文件；训练时用 `numpy.memmap` 把文件「映射」进来——
    看起来像一个数组，实际只有用到的那几页才从磁盘读进内存。
    """),
    code("""
    folder = Path(tempfile.mkdtemp())
    train_ids = np.array([songci_vocab.token_to_id[ch] for ch in train_text], dtype=np.uint16)
    train_ids.tofile(folder / "train.bin")
    stream = np.memmap(folder / "train.bin", dtype=np.uint16, mode="r")
    print(f"train.bin：{(folder / 'train.bin').stat().st_size:,} 字节 = {len(stream):,} 个 uint16")
    print("stream:", type(stream).__name__, stream.dtype, stream.shape)
    print("开头解码:", repr(songci_vocab.decode(stream[:24].tolist())))
    """),
    md("""
    **练习 4.1c**：从 `stream` 里随机取 `batch_size` 个窗口，返回 `(x, y)`。和第二步的 `get_batch` 不同，
    这里照 nanoGPT 的写法**自己错一位**：每个窗口取 `seq_len + 1` 个 token，`x` 是前 `seq_len` 个，`y` 是后 `seq_len` 个——
    这样每个位置都有目标，loss 直接算 `cross_entropy(logits, y)`，不用再错位。

    | 张量 | 形状 | dtype |
    | --- | --- | --- |
    | `stream` | `(N,)` | `uint16`（numpy） |
    | 起点 | `(B,)`，取值 `0 ≤ s ≤ N - seq_len - 1` | — |
    | `x`、`y` | `(B, seq_len)` | `torch.long` |

    **要满足的**：`y[:, t]` 是 `x[:, t]` 的下一个 token；每个合法起点（包括最后一个）都可能取到；随机数只从 `generator` 里取
    （同一个种子 → 同一个 batch；numpy 和 torch 的全局随机数都不动）；`x`、`y` 是 int64 的 torch 张量
    （embedding 不收 uint16）。

    提示：起点用 `torch.randint(0, ____, (batch_size,), generator=generator)`；
    `stream[starts[:, None] + np.arange(____)]` 一次取出所有窗口，`.astype(np.int64)` 再 `torch.from_numpy`。
    """),
    exercise(
        solution="""
        # ✏️ 练习 4.1c
        def get_batch(stream, batch_size, seq_len, generator=None):
            \"\"\"从 uint16 的 stream (N,) 里随机取窗口：x、y 都是 (B, seq_len)，y 是 x 往后错一位。\"\"\"
            starts = torch.randint(0, len(stream) - seq_len, (batch_size,), generator=generator)  # (B,)
            rows = stream[starts.numpy()[:, None] + np.arange(seq_len + 1)]  # (B, seq_len + 1)
            rows = torch.from_numpy(rows.astype(np.int64))
            return rows[:, :-1], rows[:, 1:]  # (B, seq_len) each
        """,
        stub="""
        # ✏️ 练习 4.1c
        def get_batch(stream, batch_size, seq_len, generator=None):
            \"\"\"从 uint16 的 stream (N,) 里随机取窗口：x、y 都是 (B, seq_len)，y 是 x 往后错一位。\"\"\"
            raise NotImplementedError("✏️ 随机起点 → 取 seq_len + 1 个 → 错一位")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    get_batch = check_stream_batch(get_batch)
    """),
    code("""
    x, y = get_batch(stream, 4, 24, torch.Generator().manual_seed(0))
    print("x:", tuple(x.shape), x.dtype, " y:", tuple(y.shape), y.dtype)
    for row_x, row_y in zip(x[:2], y[:2], strict=True):
        print("  x:", songci_vocab.decode(row_x.tolist()).replace("\\n", "⏎"))
        print("  y:", songci_vocab.decode(row_y.tolist()).replace("\\n", "⏎"))
    del stream  # 关掉映射，再删临时文件夹
    import shutil

    shutil.rmtree(folder)
    """),
    md("""
    窗口会跨过词与词之间的空行（⏎⏎），下一首的词牌就在窗口里：模型正是这样学到「一首词在哪里结束、下一首怎么开头」的。

    ## 小结

    你现在能：
    - 读入两万首宋词，按**首**划分训练集和留出集，并说出随机切窗口会怎样高估模型；
    - 看出字频的齐夫分布，算出词表的覆盖率，从训练集建一个字词表；
    - 自己写出字节级 BPE（数对、合并、encode、decode），并和 `tokenizers` 的 `BpeTrainer` 对上每一次合并（包括并列的选法）；
    - 解释 BPE 为什么在古诗词上几乎不省 token，为什么模型之间要比 **bits per character**；
    - 把训练集存成 uint16 的 token 流，用 `numpy.memmap` 读，随机取 `(x, y)` 窗口。

    **下一节 4.2**：训练配方——学习率的 warmup 和余弦、梯度累积、权重衰减，以及要打败的两条基线。
    """),
]

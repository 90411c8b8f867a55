"""Lesson 3.3: one generate for everything; the learner's own small generate equals it, and
both equal transformers."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：把 3.1 和 3.2 的零件收进一个 `DIYForCausalLM.generate`。它的参数名和行为都和 Hugging Face `transformers` 一样（只有长度上限不同，第 1 节会讲），
    以后换成真正的大模型，习惯可以直接带过去。然后你自己写一个小小的 `generate`，证明它和课程的逐 id 相同。

    **学完后你能自测**：
    - [ ] 用 `generate` 复现 3.1 的贪心和 3.2 的采样，并在 `<eos>` 处停下；说出 `temperature=0` 在两处的不同约定；
    - [ ] 看到重复惩罚改变了输出，并说出它是怎么改的；
    - [ ] 说出批量生成为什么要在**左侧** padding，写出 `left_pad` 和每行自己的位置编号，并说出位置编号对 RoPE 和对绝对位置编码的模型各意味着什么；
    - [ ] 自己写一个小 `generate`（prefill、每步挑一个、遇到 eos 的行停下、返回提示词 + 新 token），与 `model.generate` 逐 id 相同；
    - [ ] 给自己的骨干加上 `attention_mask`（3.3d）：左 padding 的行和它单独运行时相同，带缓存也一样；
    - [ ] 流式输出：每生成一个 token 就交出去；
    - [ ] 同一份权重装进 `transformers.LlamaForCausalLM`，贪心和同一随机种子下的采样都逐 id 相同。
    """),
    md("""
    ## 0. 准备

    和 3.1、3.2 一样，`step3_model()` 用你在 2.3 存下的模型，没有就用课程模型。
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    import torch

    from diy import CharTokenizer, load_passage
    from diy.backbone import describe, supports
    from diy.classroom.checks import check_left_pad, check_my_generate, check_position_ids
    from diy.classroom.course_model import step3_model, tiny_gpt2
    from diy.errors import DIYInputError
    from diy.generation import apply_repetition_penalty, sample_next_token
    from diy.model import left_padding_mask

    model, which = step3_model()
    print("这一节用的模型:", which)
    print(describe())  # 这门课此刻跑在哪个骨干网络上（见 README「已经有自己的 DIYModel？」）
    """),
    code("""
    tokenizer = CharTokenizer()
    passage = load_passage()
    prompt_ids = torch.tensor([tokenizer.encode(passage[:8])])  # (1, 8)
    print("prompt_ids.shape:", tuple(prompt_ids.shape))
    """),
    md("""
    ## 1. 一个 generate

    ```
    model.generate(input_ids, max_new_tokens, do_sample=False, temperature=1.0, top_k=None, top_p=None,
                   repetition_penalty=1.0, eos_token_id=None, attention_mask=None, use_cache=True,
                   generator=None, streamer=None)  →  (B, L + 新 token 数)
    ```

    内部就是 3.1 的缓存循环：每一步取最后一个位置的分数，依次经过「重复惩罚 → 温度 → top-k → top-p」（后三个只在采样时），
    贪心取 argmax、采样用 `multinomial`。`use_cache=False` 得到同样的结果，只是更慢。

    和 3.1 只有一处不同：缓存是**预先分配**的（`diy.kv_cache.PreallocatedKV`，每层一块能装下「提示词 + max_new_tokens」
    个位置的张量），每一步把新的 k、v 写到已有内容的后面，而不是像 3.1 那样用 `torch.cat` 把整个缓存复制一遍。
    数字完全一样，只是省掉了每步的复制（transformers 的 `StaticCache` 也是这个思路）。另外整个循环在
    `torch.inference_mode()` 里运行：和 `torch.no_grad()` 一样不求梯度，还省掉了 autograd 的全部记录，更快一些。

    **长度上限是和 transformers 不一样的地方。** 「提示词 + `max_new_tokens`」超过 `max_seq_len` 时，课程的 `generate` 在计算之前就拒绝
    （3.1 第 5 节：RoPE 的 cos/sin 表只算到位置 `max_seq_len − 1`；缓存也不能丢掉最前面的 token 接着写，因为第 1 层起的 K/V
    都看过那个 token）。transformers 的 `generate`（这里装的是 5.24）给了 `max_new_tokens` 就照做：长度超过模型的
    `max_position_embeddings` 也照样生成，只在日志里提醒一次（它的 RoPE 是按位置现算的，算得下去，只是模型没在那些位置上训练过）；
    只有**不给** `max_new_tokens`、用默认的 `max_length` 时，它才把总长度截到 `max_position_embeddings`。
    用一个 `max_position_embeddings=16` 的随机小 Llama 看一眼（它的提醒走 Python 的 `logging`，这里收进一个列表再打印）：
    """),
    code("""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message="IProgress not found")  # transformers 导入时关于进度条的提示，与课程无关
    from transformers import LlamaConfig, LlamaForCausalLM


    class Collect(logging.Handler):
        def emit(self, record):
            reminders.append(record.getMessage())


    reminders = []
    hf_log = logging.getLogger("transformers.generation.stopping_criteria")   # 长度提醒从这里发出
    hf_log.addHandler(Collect())
    hf_log.propagate = False                                                   # 不再打到 stderr
    torch.manual_seed(0)
    small_llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=16, bos_token_id=None, eos_token_id=None)).eval()
    start = torch.zeros(1, 8, dtype=torch.long)                                # 8 个 token 的提示词
    longer = small_llama.generate(start, max_new_tokens=20, do_sample=False)
    print("max_position_embeddings=16，提示词 8 + max_new_tokens 20 →", longer.shape[1], "个 token，没有报错")
    print("日志里的提醒:", reminders)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                                        # 「没给 max_new_tokens」的 UserWarning
        capped = small_llama.generate(start, do_sample=False)
    print("不给 max_new_tokens（默认 max_length=20）→", capped.shape[1], "个 token：截到了 max_position_embeddings")
    """),
    md("""
    课程选择在计算之前拒绝：它的 RoPE 表到 `max_seq_len` 就没有了，而且一个只在 128 个位置上训练过的小模型，
    在更远的位置上写出什么都没有根据。
    """),
    code("""
    greedy = model.generate(prompt_ids, max_new_tokens=40)                 # 3.1 的贪心
    plain = model.generate(prompt_ids, max_new_tokens=40, use_cache=False)
    print("形状:", tuple(greedy.shape), " use_cache=False 结果相同:", torch.equal(greedy, plain))
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    print(tokenizer.decode(greedy[0]).replace("\\n", "⏎"))
    """),
    md("""
    采样（3.2）：`do_sample=True` 加上温度、top-k、top-p；传一个 generator 就能复现。

    **温度为 0**：3.2 的 `sample_next_token(temperature=0)` 约定为贪心；`generate(do_sample=True, temperature=0)` 却会拒绝——
    这是 transformers 的约定：要贪心就写 `do_sample=False`，不让「采样」和「除以 0」混在一起。两者在这里相遇：
    """),
    code("""
    try:
        model.generate(prompt_ids, max_new_tokens=5, do_sample=True, temperature=0)
    except DIYInputError as error:
        print("generate 拒绝了:", error.problem, error.fix)
    with torch.no_grad():
        first_scores = model(prompt_ids)[:, -1, :]
    print("sample_next_token(temperature=0) = do_sample=False 的第一个新 token:",
          torch.equal(sample_next_token(first_scores, temperature=0), greedy[:, 8]))
    """),
    md("""
    **重复惩罚**：小模型最常见的毛病是复读。`repetition_penalty` > 1 时，每一步先把**已经出现过的** token 的分数压低
    （正分数除以它、负分数乘以它），再挑下一个。从「灯」开始贪心续写 40 个字，其中不少字在前文已经出现过
    （短文本身就有「干干净净」「天天」这样的重复）。下面从 1.3 起找第一个改变了输出的惩罚强度，并打印分叉那一步的前三名。
    **先猜一猜**：第一处改变会出现在什么样的 token 上？
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    lamp = torch.tensor([tokenizer.encode("灯")])
    plain_text = model.generate(lamp, max_new_tokens=40)
    for penalty in (1.3, 1.5, 2.0, 3.0):                     # 第一个改变了输出的惩罚强度
        penalised = model.generate(lamp, max_new_tokens=40, repetition_penalty=penalty)
        if not torch.equal(penalised, plain_text):
            break
    differ = (penalised[0] != plain_text[0]).nonzero()
    fork = int(differ[0]) if len(differ) else plain_text.shape[1] - 1   # 第一个不同的位置
    print(f"不加惩罚:            {tokenizer.decode(plain_text[0]).replace(chr(10), '⏎')}")
    print(f"repetition_penalty={penalty}: {tokenizer.decode(penalised[0]).replace(chr(10), '⏎')}")
    with torch.no_grad():
        scores = model(plain_text[:, :fork])[:, -1, :]        # 分叉那一步的分数
    after = apply_repetition_penalty(scores, plain_text[:, :fork], penalty)
    print(f"第 {fork} 个位置的前三名（惩罚前 → 后）:")
    for i in scores[0].topk(3).indices:
        seen = "（前文出现过）" if i in plain_text[0, :fork] else ""
        print(f"  {tokenizer.id_to_token[i]!r}: {scores[0, i]:.2f} → {after[0, i]:.2f} {seen}")
    """),
    code("""
    chosen = plain_text[0, fork]
    print("加惩罚后输出变了:", not torch.equal(penalised, plain_text))
    print("分叉处不加惩罚选中的 token 在前文出现过:", bool((plain_text[0, :fork] == chosen).any()))
    print("惩罚把它的分数压到了别的 token 之下:", bool(after[0, chosen] < after[0].max()))
    """),
    md("""
    惩罚只压低出现过的 token（没出现过的分数不变），所以输出只可能在「本来要选一个出现过的 token」的那一步改变：
    这个 token 的分数被压到了另一个之下。代价也在上面：原文里本来就该重复的字（比如「干干净净」）也被压掉了，
    背熟的句子被改坏。惩罚治的是「没完没了地复读」，常用 1.1～1.3，而且只在模型真的复读时才值得加。

    **遇到 `eos_token_id` 就停**：给了 `eos_token_id`，一行生成了它就结束。先用一个看得见的例子：把上面贪心输出里的某个 token 当作「结束符」，
    生成就停在它第一次出现的地方：
    """),
    code("""
    stop_id = int(greedy[0, 8 + 4])                                       # 贪心的第 5 个新 token
    stopped = model.generate(prompt_ids, max_new_tokens=40, eos_token_id=stop_id)
    first_hit = int((greedy[0, 8:] == stop_id).nonzero()[0])               # 它第一次出现在第几个新 token
    print("停在它第一次出现的地方:", stopped.shape[1] == 8 + first_hit + 1 and int(stopped[0, -1]) == stop_id)
    print("停下之前与贪心相同:", torch.equal(stopped[0], greedy[0, :stopped.shape[1]]))
    """),
    md("""
    真正的 `<eos>`：模型在短文结尾学会了输出 `<eos>`（2.1 拼 token 流时放的）。从短文最后一句开始续写，它写完这句话就停下：
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    ending = torch.tensor([tokenizer.encode(passage[-28:-20])])
    out = model.generate(ending, max_new_tokens=50, eos_token_id=tokenizer.eos_token_id)
    print(tokenizer.decode(out[0]))
    print("生成了", out.shape[1] - ending.shape[1], "个 token（上限 50），最后一个是 <eos>:",
          int(out[0, -1]) == tokenizer.eos_token_id)
    """),
    md("""
    ## 2. 批量生成：为什么要**左** padding

    几条长度不同的提示词放进一个 batch，要补成一样长。生成是在**右边**接新 token 的，而每一步取的是**最后一个位置**的 logits：

    - 右 padding：短提示词的最后一个位置是 `<pad>`，它的 logits 毫无意义，新 token 还会接在 padding 后面；
    - **左 padding**：每一行的最后一个位置都是真实的 token，新 token 紧接在后面。再配一个 `attention_mask`
      （transformers 的约定：1 = 真实 token，0 = padding），模型就让真实 token 看不到 padding。

    第一步的训练用的是右 padding（`seq_lengths`）：训练时不往后接 token，右 padding 更简单；生成时就要换成左边。

    ## 3. ✏️ 练习 3.3a：left_pad

    `left_pad(prompts, pad_token_id)`：`prompts` 是几条长度不同的一维张量，返回 `(input_ids, attention_mask)`，形状都是 `(B, 最长长度)`：
    第 i 行 = 若干个 `pad_token_id` + 第 i 条提示词；`attention_mask` 在提示词的位置是 1，padding 的位置是 0（dtype `long`）。
    """),
    exercise(
        solution="""
        # ✏️ 练习 3.3a
        def left_pad(prompts, pad_token_id):
            \"\"\"几条一维提示词 → (input_ids, attention_mask)，都是 (B, 最长长度)，padding 在左边。\"\"\"
            width = max(len(p) for p in prompts)
            input_ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
            attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
            for row, prompt in enumerate(prompts):
                input_ids[row, width - len(prompt):] = prompt       # 右对齐
                attention_mask[row, width - len(prompt):] = 1
            return input_ids, attention_mask
        """,
        stub="""
        # ✏️ 练习 3.3a
        def left_pad(prompts, pad_token_id):
            \"\"\"几条一维提示词 → (input_ids, attention_mask)，都是 (B, 最长长度)，padding 在左边。\"\"\"
            raise NotImplementedError("✏️ 先全填 pad，再把每条提示词放到最右边；mask 同理")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    left_pad = check_left_pad(left_pad)
    """),
    code("""
    texts = [passage[:8], passage[60:63], passage[120:125]]
    prompts = [torch.tensor(tokenizer.encode(t)) for t in texts]
    input_ids, attention_mask = left_pad(prompts, tokenizer.pad_token_id)
    print("input_ids:", tuple(input_ids.shape))
    print(input_ids)
    print(attention_mask)
    """),
    md("""
    ## 4. ✏️ 练习 3.3b：每一行自己的位置编号

    RoPE 按位置旋转 q 和 k。单独运行时，一条提示词的第一个 token 在位置 0；左 padding 之后，它前面多了几个 `<pad>`。
    课程的模型（和 transformers）从 `attention_mask` 算出**每一行自己的**位置：第一个真实 token 是 0，往后逐个加 1。

    `position_ids_from_mask(attention_mask)`：`(B, L)` 的 0/1（或 bool）→ `(B, L)` 的 `torch.long`：真实 token 的位置从这一行的第一个真实 token 数起；
    padding 的位置随便给一个**合法**的编号（不能是负数，它的输出没人读）。

    **先猜一猜**：`[[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]` 的位置是什么？

    提示：对 mask 沿每一行累加（`cumsum`）会得到什么？再减去 ____、再把 ____ 的截到 0。
    """),
    exercise(
        solution="""
        # ✏️ 练习 3.3b
        def position_ids_from_mask(attention_mask):
            \"\"\"attention_mask (B, L) → 每行自己的位置 (B, L)：第一个真实 token 是 0。\"\"\"
            return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)
        """,
        stub="""
        # ✏️ 练习 3.3b
        def position_ids_from_mask(attention_mask):
            \"\"\"attention_mask (B, L) → 每行自己的位置 (B, L)：第一个真实 token 是 0。\"\"\"
            raise NotImplementedError("✏️ 沿每一行累加 → 减 1 → padding 处截到 0")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    position_ids_from_mask = check_position_ids(position_ids_from_mask)
    """),
    md("""
    **这些位置有多重要？先猜一猜，再运行**：把上面的 batch 送进模型，每一行真实 token 的 logits 和它单独运行时相同吗？
    如果不用每行自己的位置、而是整个 batch 都从 0 数到 7 呢？

    下面的 `forward_with_positions` 就是骨干的前向（没有缓存），只是位置编号从外面给（`diy/model.py` 里是用同一个公式算的）。
    它只用 0.4 的零件（`embed_tokens`、`layers`、`norm`、RoPE 表 `rotary.cos` / `rotary.sin`），所以你 0.4 导出的骨干也能跑：
    """),
    code("""
    def forward_with_positions(model, input_ids, attention_mask, position_ids):
        \"\"\"骨干的前向（没有缓存），位置编号从外面给：(B, L) → logits (B, L, V)。\"\"\"
        backbone = model.model
        x = backbone.embed_tokens(input_ids)                                     # (B, L, C)
        cos = backbone.rotary.cos[position_ids][:, None]                         # (B, 1, L, D)：每行按自己的位置取
        sin = backbone.rotary.sin[position_ids][:, None]
        mask = left_padding_mask(attention_mask.bool(), 0, input_ids.shape[1])  # 真实 token 不看 padding
        for layer in backbone.layers:
            x, _ = layer(x, cos, sin, mask, None)
        return model.lm_head(backbone.norm(x))                                   # (B, L, V)


    def rows_equal_alone(logits_fn, input_ids, attention_mask, position_ids):
        \"\"\"batch 里每一行真实 token 的 logits 是否与这一行单独运行时相同（浮点误差内）。\"\"\"
        with torch.no_grad():
            batch = logits_fn(input_ids, attention_mask, position_ids)
            width = input_ids.shape[1]
            return [torch.allclose(batch[row, width - len(p):], logits_fn(p[None], torch.ones(1, len(p)),
                                                                         torch.arange(len(p))[None])[0], atol=1e-4)
                    for row, p in enumerate(prompts)]


    def course(ids, mask, positions):
        return forward_with_positions(model, ids, mask, positions)


    own = position_ids_from_mask(attention_mask)
    counted = torch.arange(input_ids.shape[1]).expand_as(input_ids)              # 每行都从 0 数到 7
    print("每行自己的位置:", own.tolist())
    if supports(model, "0.4_parts"):  # 骨干没有 0.4 的这些零件（DIY_BACKBONE 换成了别的结构）时跳过
        print("课程模型（RoPE）：每行自己的位置，各行与单独运行相同:", rows_equal_alone(course, input_ids, attention_mask, own))
        print("课程模型（RoPE）：都从 0 数，      各行与单独运行相同:", rows_equal_alone(course, input_ids, attention_mask, counted))
    """),
    md("""
    两种位置都对！这不是巧合：RoPE 里 q·k 只取决于两个位置的**差**（旋转 m 和旋转 n 的点积，只和 m − n 有关）。
    一行整体往后挪几格，行内所有的差都不变，所以结果不变（只差浮点舍入）。对课程的模型，真正不可少的是 `attention_mask`
    （不让真实 token 看到 padding）；每行自己的位置让数字和单独运行时一模一样地从 0 开始，也和 transformers 的做法一致。

    换一个用**绝对位置**的模型就不一样了：GPT-2 把「第几个位置」的向量直接加到 token 的 embedding 上，挪一格就是另一个输入。
    下面是一个随机初始化的小 GPT-2（transformers 的 `GPT2LMHeadModel`，它的 forward 也接受 `position_ids`）：
    """),
    code("""
    gpt2 = tiny_gpt2()


    def absolute(ids, mask, positions):
        return gpt2(ids, attention_mask=mask, position_ids=positions).logits


    print("GPT-2（绝对位置）：每行自己的位置，各行与单独运行相同:", rows_equal_alone(absolute, input_ids, attention_mask, own))
    print("GPT-2（绝对位置）：都从 0 数，      各行与单独运行相同:", rows_equal_alone(absolute, input_ids, attention_mask, counted))
    """),
    md("""
    第 0 行没有 padding，两种数法一样；第 1、2 行在 GPT-2 上只有用每行自己的位置才和单独运行相同。所以批量生成的通用做法
    （transformers 的 `generate` 也是）是从 `attention_mask` 算位置——换成什么模型都对。

    ## 5. ✏️ 练习 3.3c：自己写一个小 generate

    `my_generate(model, input_ids, max_new_tokens, pick, attention_mask=None, eos_token_id=None, pad_token_id=0)`：

    - `pick(scores)`：`scores` 是 `(B, V)` 的最后一个位置的 logits，返回 `(B,)` 的下一个 token——传 argmax 就是贪心，传 3.2 的 `sample_next_token` 就是采样；
    - **prefill 一次**，之后每一步只送新 token 和缓存（3.1b）；有 `attention_mask` 时每次都传给模型，并且每接一个新 token，mask 也要在右边接一列 1；
    - 有 `eos_token_id` 时：一行生成了它，这一行就结束了，之后这一行只接 `pad_token_id`；**所有行**都结束就提前停下；
    - 返回**提示词 + 新 token**，`(B, L + n)`，n ≤ `max_new_tokens`，dtype `long`；eval 模式、不求梯度。

    **先猜一猜**：两行、第 0 行在第 3 步生成了 eos、第 1 行一直没有，`max_new_tokens = 10`，返回的形状是什么？第 0 行最后 7 个是什么？

    可参考的代码片段（只作提示，空白处自己填）：
    ```
    unfinished = torch.ones(____, dtype=torch.bool)              # (B,) 哪些行还没结束
    ……
        next_id = torch.where(unfinished, next_id, ____)         # 结束了的行接 padding
        unfinished &= ____
    ```
    """),
    exercise(
        solution="""
        # ✏️ 练习 3.3c
        def my_generate(model, input_ids, max_new_tokens, pick, attention_mask=None, eos_token_id=None,
                        pad_token_id=0):
            \"\"\"prefill 一次，每步 pick 一个 token、只送新 token；遇到 eos 的行接 padding；返回 (B, L + n)。\"\"\"
            model.eval()
            ids, mask = input_ids, attention_mask                                  # (B, L)
            unfinished = torch.ones(ids.shape[0], dtype=torch.bool)                # (B,)
            with torch.no_grad():
                logits, past = model(ids, use_cache=True, is_training=False, attention_mask=mask)
                for _ in range(max_new_tokens):
                    next_id = pick(logits[:, -1, :])                               # (B,)
                    if eos_token_id is not None:
                        next_id = torch.where(unfinished, next_id, torch.full_like(next_id, pad_token_id))
                        unfinished &= next_id != eos_token_id
                    ids = torch.cat([ids, next_id[:, None]], dim=1)                # (B, L + 1)
                    if not unfinished.any():
                        break
                    if mask is not None:
                        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                    logits, past = model(next_id[:, None], past_key_values=past, use_cache=True,
                                         is_training=False, attention_mask=mask)   # (B, 1, V)
            return ids
        """,
        stub="""
        # ✏️ 练习 3.3c
        def my_generate(model, input_ids, max_new_tokens, pick, attention_mask=None, eos_token_id=None,
                        pad_token_id=0):
            \"\"\"prefill 一次，每步 pick 一个 token、只送新 token；遇到 eos 的行接 padding；返回 (B, L + n)。\"\"\"
            raise NotImplementedError("✏️ eval → prefill → 循环：pick → 结束的行接 pad → 拼接 → 全部结束就停 → 只送新 token")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    my_generate = check_my_generate(my_generate)
    """),
    md("""
    ### ✏️ 练习 3.3d：给你自己的骨干加上 attention_mask

    上面的左 padding 要骨干的 `forward` 收 `attention_mask`。课程的骨干 `diy.DIYModel` 有；0.4 导出的 `DIYModel.py` 只认右 padding 的
    `seq_lengths`（0.4 的符合性检查里 ⚠️ 的那一项就是它）。用你自己的骨干（`DIY_BACKBONE`）学到这里，写完这个练习它就有了；
    用课程的骨干，自检照样检查你写的（只是不用写进文件）。

    写一个子类 `DIYModelWithMask(DIYModel)`（`DIYModel` 是此刻的骨干类，下一格取出来），只重写 `forward`，多一个关键字参数
    `attention_mask=None`：
    - `attention_mask` 是 None：原样交给 `super().forward(...)`——训练、右 padding、一次一条的生成都不变；
    - 否则它是 `(B, P + L)` 的 0/1（P 是缓存里已有的长度，L 是这次新送进来的 token 数）。第 4 节的 `forward_with_positions`
      是没有缓存时的做法；这里位置、cos/sin 和 mask 都要**接着缓存**算，每层还要拿自己的 `past_key_values[i]`，
      `use_cache=True` 时返回 `(hidden_states, presents)`。

    不变量：只算新的 L 个 token；3.3b 的 `position_ids_from_mask(attention_mask)` 给的是全部 P + L 个位置；
    `left_padding_mask(key_mask, past_len, length)` 的行是新 token、列是缓存加新 token。
    自检先整批 prefill，再一次喂 2 个、再喂 1 个新 token，每次在 mask 右边接上 1，和每一行单独一次算完比较。

    提示：`past_len` 从缓存的哪一维读？新 token 的位置是 `position_ids_from_mask(...)` 的哪几列？
    """),
    code("""
    from diy.backbone import backbone_class
    from diy.classroom.checks import check_forward_with_mask
    from diy.classroom.checks.backbone_mask import add_attention_mask

    DIYModel = backbone_class()  # 此刻的骨干类：你的 DIYModel.py（DIY_BACKBONE），或课程的 diy.DIYModel
    print(describe())
    """),
    exercise(
        solution="""
        # ✏️ 练习 3.3d
        class DIYModelWithMask(DIYModel):
            \"\"\"你的骨干，加上 attention_mask（左 padding）：每行的位置从自己的第一个真实 token 数起，padding 谁也看不见。\"\"\"

            def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False, is_training=True,
                        attention_mask=None):
                if attention_mask is None:                                          # 没有左 padding：原来的前向
                    return super().forward(input_ids, seq_lengths, past_key_values, use_cache, is_training)
                B, L = input_ids.shape
                past_len = 0 if past_key_values is None else past_key_values[0][0].shape[2]
                positions = position_ids_from_mask(attention_mask)[:, past_len:]       # (B, L)：只要新 token 的
                cos = self.rotary.cos[positions][:, None]                              # (B, 1, L, D)
                sin = self.rotary.sin[positions][:, None]
                mask = left_padding_mask(attention_mask.bool(), past_len, L)           # (B, 1, L, P+L)
                x = self.embed_tokens(input_ids)                                       # (B, L, C)
                presents = []
                for i, layer in enumerate(self.layers):
                    past_kv = None if past_key_values is None else past_key_values[i]
                    x, present = layer(x, cos, sin, mask, past_kv)
                    presents.append(present)
                hidden_states = self.norm(x)                                           # (B, L, C)
                return (hidden_states, presents) if use_cache else hidden_states
        """,
        stub="""
        # ✏️ 练习 3.3d
        class DIYModelWithMask(DIYModel):
            \"\"\"你的骨干，加上 attention_mask（左 padding）：每行的位置从自己的第一个真实 token 数起，padding 谁也看不见。\"\"\"

            def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False, is_training=True,
                        attention_mask=None):
                if attention_mask is None:                                          # 没有左 padding：原来的前向
                    return super().forward(input_ids, seq_lengths, past_key_values, use_cache, is_training)
                raise NotImplementedError("✏️ past_len → 新 token 的位置 → cos/sin → mask → 逐层（带各自的缓存）→ norm")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    DIYModelWithMask = check_forward_with_mask(DIYModelWithMask)
    """),
    md("""
    自检 ✅ 之后，下一格把它（连同 3.3b 的 `position_ids_from_mask`）追加到你的 `DIYModel.py` 末尾，并让文件里的 `DIYModel`
    指向它（再运行会替换上次追加的那一段）；然后重新读一次 2.3 的模型：骨干文件改过了，会提示一句，参数照样装上
    （没有 2.3 的检查点时，课程模型要按新文件重新训练一次，十几秒）。用课程的骨干时，这一格什么也不写。
    """),
    code("""
    if add_attention_mask(position_ids_from_mask, DIYModelWithMask):
        model, which = step3_model()           # 重新读：骨干类换成了加上 attention_mask 的那个
        print("这一节用的模型:", which)
    print("现在的骨干收 attention_mask:", supports(model, "attention_mask"))
    """),
    md("""
    **先猜一猜，再运行**：你的 `my_generate` 和 `model.generate` 逐 id 相同吗？贪心、左 padding 的 batch、遇到 eos 停下、同一个种子的采样，四种都试：
    """),
    code("""
    def argmax(scores):
        return scores.argmax(dim=-1)


    print("贪心:", torch.equal(my_generate(model, prompt_ids, 40, argmax), model.generate(prompt_ids, max_new_tokens=40)))
    if supports(model, "attention_mask"):  # 你的骨干（DIY_BACKBONE）没有 attention_mask 时跳过
        mine = my_generate(model, input_ids, 20, argmax, attention_mask=attention_mask)
        print("左 padding 的 batch:", torch.equal(mine, model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=20)))
        stop = int(mine[0, -15])                                              # 第 0 行的第 6 个新 token 当作结束符
        print("遇到 eos 停下:", torch.equal(my_generate(model, input_ids, 20, argmax, attention_mask=attention_mask, eos_token_id=stop),
                                        model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=20, eos_token_id=stop)))
        g = torch.Generator().manual_seed(0)
        sampled_mine = my_generate(model, input_ids, 20, lambda s: sample_next_token(s, 1.5, 3, None, g), attention_mask=attention_mask)
        sampled = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=20, do_sample=True, temperature=1.5,
                                 top_k=3, generator=torch.Generator().manual_seed(0))
        print("同一个种子的采样:", torch.equal(sampled_mine, sampled))
    """),
    md("""
    `generate` 里没有别的魔法：多出来的只是参数检查、预先分配的缓存、流式输出和重复惩罚。它也直接接受一组不同长度的提示词（列表），
    在内部做同样的左 padding：`model.generate(prompts, max_new_tokens=20)`。

    ## 6. 流式输出

    聊天界面里的字是一个一个冒出来的：每生成一个 token 就交出去。`streamer` 可以是一个函数（每一步收到新 token，形状 `(B,)`），
    也可以是 transformers 风格、有 `put` / `end` 方法的对象（`put` 先收到提示词，然后是每个新 token）。
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    received = []


    def print_token(new_ids):                     # new_ids: (B,)，这里 B = 1
        received.append(new_ids)
        print(tokenizer.decode(new_ids).replace("\\n", "⏎"), end="", flush=True)


    print(tokenizer.decode(prompt_ids[0]), end="")
    streamed = model.generate(prompt_ids, max_new_tokens=30, streamer=print_token)
    print()
    """),
    code("""
    print("一个一个收到的 token 拼起来就是 generate 的结果:", torch.equal(torch.stack(received, dim=1), streamed[:, 8:]))
    """),
    md("""
    命令行里也一样：`python -m diy.generate --prompt 海边的小镇上有一` 一个字一个字地打印。它默认读 `python -m diy.train`
    写到当前文件夹 `checkpoints/` 里的检查点；2.3 里 `save_pretrained("checkpoints/step2")` 存的模型，`--checkpoint notebooks/checkpoints/step2` 就能用。

    ## 7. 和 transformers 对照

    骨干的模块名和 Hugging Face 的 Llama 一致，所以同一份权重可以原样装进 `transformers.LlamaForCausalLM`
    （`diy.hf.to_llama_for_causal_lm`）。在 eval 模式下它们是同一个函数（训练时不完全一样：课程骨干的残差 dropout 在 Llama 里没有）。

    **先猜一猜，再运行**：贪心结果会一样吗？同一个随机种子下的采样呢？
    """),
    code("""
    from diy.hf import to_llama_for_causal_lm

    llama_like = supports(model, "transformers")  # 你的骨干（DIY_BACKBONE）不是 Llama 形状时跳过
    if llama_like:
        hf_model = to_llama_for_causal_lm(model).eval()
        ours = model.generate(prompt_ids, max_new_tokens=40)
        theirs = hf_model.generate(prompt_ids, max_new_tokens=40, do_sample=False, pad_token_id=0)
        print("贪心逐 id 相同:", torch.equal(ours, theirs))

    if llama_like and supports(model, "attention_mask"):
        knobs = dict(do_sample=True, temperature=1.5, top_k=20, top_p=0.9)
        torch.manual_seed(7)
        ours = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=30, **knobs)
        torch.manual_seed(7)
        theirs = hf_model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=30,
                                   pad_token_id=0, **knobs)
        print("左 padding 的 batch、同一种子采样，逐 id 相同:", torch.equal(ours, theirs))
    """),
    md("""
    采样也一样，因为两边按同样的顺序处理分数（3.2：温度 → top-k → top-p），并且都用 `torch.multinomial` 从全局随机数里抽
    （`torch.manual_seed` 相同，抽到的就相同）；批量时两边都从 `attention_mask` 算每行的位置。

    想把模型交给只认 transformers 的工具？`python -m diy.hf.export --checkpoint checkpoints --out hf_model` 写出一个文件夹，
    `AutoModelForCausalLM.from_pretrained` 和 `AutoTokenizer.from_pretrained` 都能直接读取，
    `transformers.pipeline("text-generation", model="hf_model")` 贪心续写的结果和 `python -m diy.generate` 一字不差。

    ## 小结

    你现在能：
    - 用一个 `generate` 做贪心、采样、在 `<eos>` 处停下、流式输出；说出 `temperature=0` 在 `sample_next_token` 和 `generate` 里的不同约定；
    - 看到重复惩罚怎样改变输出（只压低出现过的 token）以及它的代价；
    - 写出左 padding 和每行自己的位置；说出 RoPE 只看位置差、绝对位置编码的模型却离不开每行自己的位置；
    - 自己写出一个小 `generate`，与 `model.generate` 逐 id 相同；
    - 给自己的骨干加上 `attention_mask`：每行的位置、看不见 padding 的 mask，带着缓存也对；
    - 用 transformers 在同一份权重上验证：贪心和同种子采样都逐 id 相同。

    ## 第三步汇总

    - 你自己写了带 KV cache 的贪心循环、top-p、采样函数、左 padding、位置编号和一个小 `generate`，结果与不用缓存时相同、与课程的 `generate` 相同，也与 `transformers` 相同；
    - 你训练的模型能按提示词续写，采样旋钮的作用看得见、说得清；
    - 整门课走完了一遍：骨干 → `lm_head` 与 loss → 训练循环 → 生成。接下来可以换更大的语料、更大的模型，或者把 `diy` 的零件换成 `transformers` 的。
    """),
]

"""Lesson 3.3: one generate for everything, checked against transformers."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：把 3.1 和 3.2 的零件收进一个 `DIYForCausalLM.generate`。它的参数名和行为都和 Hugging Face `transformers` 一样，
    以后换成真正的大模型，习惯可以直接带过去。

    **学完后你能自测**：
    - [ ] 用 `generate` 复现 3.1 的贪心和 3.2 的采样，并在 `<eos>` 处停下；
    - [ ] 说出批量生成为什么要在**左侧** padding，并写出 `left_pad`；
    - [ ] 批量生成的每一行与单独生成时相同；
    - [ ] 流式输出：每生成一个 token 就打印出来；
    - [ ] 同一份权重装进 `transformers.LlamaForCausalLM`，贪心和同一随机种子下的采样都逐 id 相同。
    """),
    md("""
    ## 0. 准备
    """),
    code("""
    import torch

    from diy import CharTokenizer, load_passage
    from diy.checks import check_left_pad
    from diy.course_model import course_model
    from diy.generation import sample_next_token

    model = course_model()
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
    """),
    code("""
    greedy = model.generate(prompt_ids, max_new_tokens=40)                 # 3.1 的贪心
    print(tokenizer.decode(greedy[0]))
    plain = model.generate(prompt_ids, max_new_tokens=40, use_cache=False)
    print("use_cache=False 结果相同:", torch.equal(greedy, plain))
    """),
    md("""
    采样（3.2）：`do_sample=True` 加上温度、top-k、top-p；传一个 generator 就能复现。
    `repetition_penalty`（重复惩罚）> 1 时，已经出现过的 token 的分数会被压低（正分数除以它、负分数乘以它），减少贪心的复读。
    """),
    code("""
    sampled = model.generate(prompt_ids, max_new_tokens=40, do_sample=True, temperature=1.5, top_k=3,
                             generator=torch.Generator().manual_seed(0))
    print(tokenizer.decode(sampled[0]))
    penalised = model.generate(prompt_ids, max_new_tokens=40, repetition_penalty=1.3)
    print(tokenizer.decode(penalised[0]))
    """),
    md("""
    **对照 3.1 和 3.2**：`generate` 里没有新东西。下面是 3.1 的缓存循环写成的最短样子，每一步由 `pick` 从最后一个位置的
    分数 `(B, V)` 里选出下一个 token：传 argmax 就是 3.1 的贪心，传 3.2 的 `sample_next_token`（这里用包里的同名函数，
    同样的温度、top-k 和同一个种子的 generator）就是采样。

    先预测：这两个循环的结果和上面 `generate` 的 `greedy`、`sampled` 逐 id 相同吗？
    """),
    code("""
    def cached_loop(model, input_ids, max_new_tokens, pick):
        \"\"\"3.1 的缓存循环：prefill 一次，之后每步只喂新 token；pick(scores (B, V)) → (B,)。\"\"\"
        model.eval()
        ids = input_ids
        with torch.no_grad():
            logits, past = model(ids, use_cache=True, is_training=False)            # prefill
            for step in range(max_new_tokens):
                next_id = pick(logits[:, -1, :])[:, None]                          # (B, 1)
                ids = torch.cat([ids, next_id], dim=1)                             # (B, L + 1)
                if step + 1 < max_new_tokens:                                      # 最后一个不必再算
                    logits, past = model(next_id, past_key_values=past, use_cache=True,
                                         is_training=False)                        # (B, 1, V)
        return ids

    loop_greedy = cached_loop(model, prompt_ids, 40, lambda scores: scores.argmax(dim=-1))
    print("generate 的贪心 = 3.1 的循环:", torch.equal(greedy, loop_greedy))
    g = torch.Generator().manual_seed(0)
    loop_sampled = cached_loop(model, prompt_ids, 40,
                               lambda scores: sample_next_token(scores, temperature=1.5, top_k=3,
                                                                generator=g))
    print("generate 的采样 = 3.2 的 sample_next_token 循环:", torch.equal(sampled, loop_sampled))
    """),
    md("""
    **遇到 `<eos>` 就停**：模型在短文结尾学会了输出 `<eos>`（2.1 拼 token 流时放的）。从短文最后一句开始续写，
    给 `eos_token_id`，它写完这句话就停下，不会用满 `max_new_tokens`：
    """),
    code("""
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
      （transformers 的约定：1 = 真实 token，0 = padding），模型就让真实 token 看不到 padding，
      并让每一行的位置从它自己的第一个真实 token 开始数——所以每一行的结果和单独生成时一样。

    第一步的训练用的是右 padding（`seq_lengths`）：训练时不往后接 token，右 padding 更简单；生成时就要换成左边。

    ## 3. ✏️ 练习 3.3：left_pad

    `left_pad(prompts, pad_token_id)`：`prompts` 是几条长度不同的一维张量，返回 `(input_ids, attention_mask)`，形状都是 `(B, 最长长度)`：
    第 i 行 = 若干个 `pad_token_id` + 第 i 条提示词；`attention_mask` 在提示词的位置是 1，padding 的位置是 0（dtype `long`）。
    """),
    exercise(
        solution="""
        # ✏️ 练习 3.3
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
        # ✏️ 练习 3.3
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
    一起生成，再和每一条单独生成对照：
    """),
    code("""
    batch = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=20)
    width = input_ids.shape[1]
    for row, prompt in enumerate(prompts):
        alone = model.generate(prompt[None], max_new_tokens=20)[0]
        same = torch.equal(batch[row, width - len(prompt):], alone)
        print(f"第 {row} 行与单独生成相同: {same}  ", tokenizer.decode(alone).replace("\\n", "⏎"))
    """),
    md("""
    `generate` 也直接接受一组不同长度的提示词（列表），在内部做同样的左 padding：`model.generate(prompts, max_new_tokens=20)`。

    ## 4. 流式输出

    聊天界面里的字是一个一个冒出来的：每生成一个 token 就交出去。`streamer` 可以是一个函数（每一步收到新 token，形状 `(B,)`），
    也可以是 transformers 风格、有 `put` / `end` 方法的对象（`put` 先收到提示词，然后是每个新 token）。
    """),
    code("""
    def print_token(new_ids):                     # new_ids: (B,)，这里 B = 1
        print(tokenizer.decode(new_ids), end="", flush=True)


    print(tokenizer.decode(prompt_ids[0]), end="")
    streamed = model.generate(prompt_ids, max_new_tokens=30, streamer=print_token)
    print()
    """),
    md("""
    命令行里也一样：`python -m diy.generate --prompt 海边的小镇上有一` 一个字一个字地打印。它默认读 `python -m diy.train`
    写到当前文件夹 `checkpoints/` 里的检查点；notebook 里用的 `course_model()` 是同样训练出的模型，存在缓存文件夹里；
    2.3 里 `save_pretrained("checkpoints/step2")` 存的也是它，`--checkpoint notebooks/checkpoints/step2` 就能用。

    ## 5. 和 transformers 对照

    骨干的模块名和 Hugging Face 的 Llama 一致，所以同一份权重可以原样装进 `transformers.LlamaForCausalLM`
    （`diy.hf.to_llama_for_causal_lm`）。在 eval 模式下它们是同一个函数（训练时不完全一样：课程骨干的残差 dropout 在 Llama 里没有）。

    **先猜一猜，再运行**：贪心结果会一样吗？同一个随机种子下的采样呢？
    """),
    code("""
    from diy.hf import to_llama_for_causal_lm

    hf_model = to_llama_for_causal_lm(model).eval()
    ours = model.generate(prompt_ids, max_new_tokens=40)
    theirs = hf_model.generate(prompt_ids, max_new_tokens=40, do_sample=False, pad_token_id=0)
    print("贪心逐 id 相同:", torch.equal(ours, theirs))

    knobs = dict(do_sample=True, temperature=1.5, top_k=20, top_p=0.9)
    torch.manual_seed(7)
    ours = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=30, **knobs)
    torch.manual_seed(7)
    theirs = hf_model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=30,
                               pad_token_id=0, **knobs)
    print("左 padding 的 batch、同一种子采样，逐 id 相同:", torch.equal(ours, theirs))
    """),
    md("""
    采样也一样，因为两边按同样的顺序处理分数，并且都用 `torch.multinomial` 从全局随机数里抽（`torch.manual_seed` 相同，抽到的就相同）。

    想把模型交给只认 transformers 的工具？`python -m diy.export --checkpoint checkpoints --out hf_model` 写出一个文件夹，
    `AutoModelForCausalLM.from_pretrained` 和 `AutoTokenizer.from_pretrained` 都能直接读取，
    `transformers.pipeline("text-generation", model="hf_model")` 贪心续写的结果和 `python -m diy.generate` 一字不差。

    ## 小结

    你现在能：
    - 用一个 `generate` 做贪心、采样、在 `<eos>` 处停下、流式输出；
    - 解释并写出左 padding，证明批量生成的每一行与单独生成相同；
    - 用 transformers 在同一份权重上验证：贪心和同种子采样都逐 id 相同。

    ## 第三步汇总

    - 有一个带 KV cache、支持贪心和采样、支持批量和流式输出的 `generate`，结果与不用缓存时相同，也与 `transformers` 相同；
    - 你训练的模型能按提示词续写，采样旋钮的作用看得见、说得清；
    - 整门课走完了一遍：骨干 → `lm_head` 与 loss → 训练循环 → 生成。接下来可以换更大的语料、更大的模型，或者把 `diy` 的零件换成 `transformers` 的。
    """),
]

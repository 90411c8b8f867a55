"""Lesson 0.1: token embeddings and RMSNorm."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：第零步从零搭出后面三步都要用的骨干网络 `DIYModel`。这一节做它的第一块和最常用的一块：
    token id 怎样变成向量（词嵌入），以及为什么每个子层之前都要把向量「拉回」同一个尺度（RMSNorm）。

    **学完后你能自测**：
    - [ ] `input_ids (2, 10)` 经过词嵌入变成 `(2, 10, 256)`，说得出词嵌入就是「按 id 取表里的一行」；
    - [ ] 你的 `RMSNorm` 与 `torch.nn.RMSNorm(256, eps=1e-6)`、`transformers` 的 `LlamaRMSNorm` 结果相同；
    - [ ] 说得出 RMSNorm 与 LayerNorm 的两处不同（不减均值、没有 bias）。

    **怎么做练习**：带 ✏️ 的单元格是你要自己敲的代码。写完运行它，再运行紧接着的**自检**单元格：
    它会打印 ✅（通过）、⏳（还没写）或 ❌（哪里错了、怎么改）。还没写完也可以一路运行到底——
    自检会让后面的单元格先用参考答案继续。
    """),
    md("""
    ## 0. 准备

    课程默认的超参数（后面三步都用这一组）。`diy` 是课程的共享包：分词器、短文、自检都在里面。
    """),
    code("""
    import warnings

    import matplotlib.pyplot as plt
    import torch
    from torch import nn

    warnings.filterwarnings("ignore", message="IProgress not found")  # transformers 导入时关于进度条的提示，与课程无关
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    from diy import CharTokenizer, load_passage
    from diy.classroom.checks import check_rms_norm
    from diy.plotting import zh_or_en  # 图中文字：有中文字体用中文，没有就用英文

    torch.manual_seed(0)
    vocab_size, hidden_size, eps = 6400, 256, 1e-6
    print(f"vocab_size={vocab_size}, hidden_size={hidden_size}, eps={eps}")
    """),
    md("""
    ## 1. 词嵌入：按 id 取表里的一行

    `nn.Embedding(vocab_size, hidden_size)` 里存着一张 `(V, C)` 的表 `weight`，每个 token id 对应一行。
    「嵌入」一批 id，就是把每个 id 换成它那一行：`(B, L)` 的整数 → `(B, L, C)` 的浮点数。
    """),
    code("""
    embed_tokens = nn.Embedding(vocab_size, hidden_size)
    input_ids = torch.randint(0, vocab_size, (2, 10))      # (B, L)
    x = embed_tokens(input_ids)                            # (B, L, C)
    print("embed_tokens.weight:", tuple(embed_tokens.weight.shape))
    print("input_ids:", tuple(input_ids.shape), input_ids.dtype, "→ x:", tuple(x.shape), x.dtype)
    print("x[0, 3] 就是第", input_ids[0, 3].item(), "行:",
          torch.equal(x[0, 3], embed_tokens.weight[input_ids[0, 3]]))
    """),
    md("""
    换成一句真实的中文。课程的分词器一个字一个 id（第二步会细讲），这里只用它把文字变成 id。
    """),
    code("""
    tokenizer = CharTokenizer()
    sentence = load_passage().splitlines()[0][:12]
    ids = torch.tensor([tokenizer.encode(sentence)])       # (1, L)
    vectors = embed_tokens(ids)                            # (1, L, C)
    print("句子:", sentence)
    print("ids:", ids.tolist()[0])
    print("ids.shape:", tuple(ids.shape), "→ vectors.shape:", tuple(vectors.shape))
    first, second = sentence.index("的"), sentence.rindex("的")
    print(f"位置 {first} 和位置 {second} 都是「的」，向量相同:", torch.equal(vectors[0, first], vectors[0, second]))
    """),
    md("""
    同一个字，不管出现在哪里，查到的都是同一行：词嵌入本身**不知道位置**。位置要靠 0.2 的 RoPE。

    ## 2. 为什么要归一化：残差越加越大

    解码层的残差写法是 `x = x + 子层(x)`：每层都往 x 上**加**东西。先猜一猜：把 8 个随机的「子层输出」
    一个个加到 x 上，每个位置向量的 RMS（均方根，`sqrt(mean(x²))`）会怎样变？

    想好了再运行。
    """),
    code("""
    def rms(t):
        return t.pow(2).mean(dim=-1).sqrt()                 # (B, L)：每个位置一个数

    h = torch.randn(2, 10, hidden_size)                     # (B, L, C)，RMS ≈ 1
    growth = [rms(h).mean().item()]
    for _ in range(8):
        h = h + torch.randn(2, 10, hidden_size)             # 一个随机的「残差分支」
        growth.append(rms(h).mean().item())
    print("每加一层后的平均 RMS:", " ".join(f"{g:.2f}" for g in growth))
    """),
    md("""
    RMS 大约按 √(层数 + 1) 增长：加了 8 次，尺度是开始的 3 倍。真正的网络里每层的输出还和输入相关，增长可能更快。
    如果每个子层直接吃这样的 x，越深的层看到的数越大，训练就不稳。办法：**每个子层之前**先把每个位置的向量缩放到 RMS ≈ 1，
    再乘一个可学的逐维缩放 `weight`。这就是 RMSNorm。
    """),
    code("""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(range(len(growth)), growth, "o-", label=zh_or_en("残差累加后的 RMS", "RMS after adding residuals"))
    ax.plot(range(len(growth)), [(n + 1) ** 0.5 for n in range(len(growth))], "--",
            label="sqrt(n + 1)")
    ax.set_xlabel(zh_or_en("加了几个残差分支", "residual branches added"))
    ax.set_ylabel("RMS")
    ax.set_title(zh_or_en("不归一化：尺度越堆越大", "Without normalisation the scale keeps growing"))
    ax.legend()
    plt.show()
    """),
    md("""
    ## 3. ✏️ 练习 0.1：RMSNorm

    公式（对**每个位置**各自算，沿最后一维，即 `hidden_size` 那一维）：

    $$\\mathrm{RMSNorm}(x) = \\frac{x}{\\sqrt{\\mathrm{mean}(x^2) + \\epsilon}} \\cdot \\text{weight}$$

    要求：
    - `RMSNorm(hidden_size, eps=1e-6)` 是 `nn.Module`；唯一的参数叫 `weight`，形状 `(hidden_size,)`，**初始全 1**
      （名字要和 `transformers` 一样，0.4 才能互相装载权重）；
    - `forward(x)`：`x` 形状 `(..., hidden_size)`，输出形状相同；在 float32 里算（`x.float()`），算完转回输入的 dtype，再乘 `weight`；
    - eps 加在开方**之前**；全 0 的输入不能得到 NaN。

    提示（先想清楚再写）：
    - 均方要对每个位置各算一个数：沿哪一维求平均？`x` 是 `(2, 10, 256)` 时，均方应该是什么形状，才能和 `x` 逐元素相除（广播）？
    - 除以平方根可以写成乘以 `torch.rsqrt(...)`；eps 要在开方之前加进去——为什么这样全 0 的输入就不会得到 NaN？
    - 哪几步在 float32 里做，哪一步之后转回输入的 dtype，`weight` 在转回之前还是之后乘？（第 7 节会看到这个顺序决定了输出的 dtype。）

    用 `torch.nn.RMSNorm` 也可以（比如继承它），但要把 `eps` **显式**传进去——它的默认值不是 1e-6。
    """),
    exercise(
        solution="""
        # ✏️ 练习 0.1
        class RMSNorm(nn.Module):
            \"\"\"x / sqrt(mean(x², 最后一维) + eps) * weight，在 float32 里算。\"\"\"

            def __init__(self, hidden_size, eps=1e-6):
                super().__init__()
                self.weight = nn.Parameter(torch.ones(hidden_size))  # (C,)
                self.eps = eps

            def forward(self, x):
                x32 = x.float()                                      # (..., C)
                mean_square = x32.pow(2).mean(dim=-1, keepdim=True)  # (..., 1)
                normed = x32 * torch.rsqrt(mean_square + self.eps)   # (..., C)，每个位置 RMS ≈ 1
                return normed.to(x.dtype) * self.weight              # (..., C)
        """,
        stub="""
        # ✏️ 练习 0.1
        class RMSNorm(nn.Module):
            \"\"\"x / sqrt(mean(x², 最后一维) + eps) * weight，在 float32 里算。\"\"\"

            def __init__(self, hidden_size, eps=1e-6):
                super().__init__()
                raise NotImplementedError("✏️ 在这里创建 weight（全 1）并存下 eps")

            def forward(self, x):
                raise NotImplementedError("✏️ 在这里写 RMSNorm 的前向")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    RMSNorm = check_rms_norm(RMSNorm)
    """),
    md("""
    ## 4. 归一化之后：每个位置的 RMS ≈ 1

    把第 2 节那个尺度已经变大的 `h` 送进你的 RMSNorm（或者参考答案），再看每个位置的 RMS。
    """),
    code("""
    norm = RMSNorm(hidden_size, eps=eps)
    out = norm(h)                                           # (B, L, C)
    print("h.shape:", tuple(h.shape), "→ out.shape:", tuple(out.shape))
    print(f"归一化前 RMS 的范围: {rms(h).min().item():.2f} … {rms(h).max().item():.2f}")
    print(f"归一化后 RMS 的范围: {rms(out).min().item():.4f} … {rms(out).max().item():.4f}")
    print("weight 全 1:", torch.all(norm.weight == 1).item(), " 参数:", list(norm.state_dict()))
    """),
    md("""
    ## 5. 与 PyTorch 和 transformers 对照

    给 `weight` 随机赋值（全 1 时看不出 weight 有没有乘上），装进三个实现，同一输入比较。
    `torch.nn.RMSNorm` 的 eps 要显式写 1e-6。
    """),
    code("""
    torch_norm = nn.RMSNorm(hidden_size, eps=eps)
    llama_norm = LlamaRMSNorm(hidden_size, eps=eps)
    with torch.no_grad():
        random_weight = torch.rand(hidden_size) + 0.5
        for module in (norm, torch_norm, llama_norm):
            module.weight.copy_(random_weight)
    x = torch.randn(2, 10, hidden_size) * 3 + 1
    mine = norm(x)
    print("与 torch.nn.RMSNorm 相同:", torch.allclose(mine, torch_norm(x), atol=1e-6))
    print("与 LlamaRMSNorm 相同:    ", torch.allclose(mine, llama_norm(x), atol=1e-6))
    print("全 0 输入没有 NaN:      ", torch.isfinite(norm(torch.zeros(1, 2, hidden_size))).all().item())
    """),
    md("""
    ## 6. RMSNorm 与 LayerNorm 差在哪

    LayerNorm 先**减均值**、再除以标准差，还有一个 **bias**；RMSNorm 不减均值、没有 bias，少算一次归约，Llama 系模型都用它。
    先猜：对一个均值明显不为 0 的向量，两者的输出一样吗？哪一个的输出均值是 0？
    """),
    code("""
    layer_norm = nn.LayerNorm(hidden_size, eps=eps)
    rms_norm = RMSNorm(hidden_size, eps=eps)
    v = torch.randn(1, 1, hidden_size) + 2.0                # 均值约为 2
    print(f"输入:      均值 {v.mean().item():.3f}  RMS {rms(v).item():.3f}")
    for name, module in (("LayerNorm", layer_norm), ("RMSNorm", rms_norm)):
        y = module(v)
        print(f"{name:9s}: 均值 {y.mean().item():.3f}  RMS {rms(y).item():.3f}")
    print("LayerNorm 的参数:", list(layer_norm.state_dict()), " RMSNorm 的参数:", list(rms_norm.state_dict()))
    """),
    md("""
    LayerNorm 把均值拉到 0、标准差拉到 1；RMSNorm 只把 RMS 拉到 1。它把整个向量除以同一个数（这个位置的 RMS；
    `weight` 还是全 1），所以向量的**方向**不变；均值并没有「保留」，而是跟着除以了同一个数（上面 2.066 → 0.896）。
    LayerNorm 先减了均值，方向就变了。验证一下：
    """),
    code("""
    scale = rms(v).item()                                   # RMSNorm 除以的那个数（eps 小到可以忽略）
    print(f"RMSNorm 的输出均值 {rms_norm(v).mean().item():.3f} = 输入均值 / RMS = {v.mean().item():.3f} / {scale:.3f}"
          f" = {v.mean().item() / scale:.3f}")
    for name, module in (("LayerNorm", layer_norm), ("RMSNorm", rms_norm)):
        cosine = torch.cosine_similarity(module(v).flatten(), v.flatten(), dim=0).item()
        print(f"{name:9s}: 输出与输入的夹角余弦 {cosine:.3f}（1 = 方向不变）")
    """),
    md("""
    ## 7. 低精度输入：在 float32 里算

    训练大模型时常用 bfloat16。均方是很多数的平方的平均，用 float32 算更稳；算完再转回输入的 dtype。
    先猜：bfloat16 的输入，输出是什么 dtype？（提示：转回 bfloat16 之后还要乘一个 float32 的 `weight`。）
    """),
    code("""
    x16 = torch.randn(2, 3, hidden_size).to(torch.bfloat16)
    y16 = rms_norm(x16)
    print("输入:", x16.dtype, "→ 输出:", y16.dtype, tuple(y16.shape))
    print("与 LlamaRMSNorm 同样的 dtype:", y16.dtype == LlamaRMSNorm(hidden_size, eps=eps)(x16).dtype)
    """),
    md("""
    和 transformers 的 Llama 一样：转回 bfloat16 后乘 float32 的 `weight`，按 PyTorch 的类型提升规则得到 float32。
    整个模型都用 bfloat16 时 `weight` 也是 bfloat16，输出就是 bfloat16。

    ## 常见错误

    | 症状 | 原因 | 修复 |
    | --- | --- | --- |
    | 自检说「沿错了维」 | `mean(dim=1)` 是沿序列 | `mean(dim=-1, keepdim=True)` |
    | 全 0 输入得到 NaN | 忘了 eps | `torch.rsqrt(ms + self.eps)` |
    | 自检说「忘了开方」 | 除以了均方 | 除以均方**根** |
    | 自检说「你写的是 LayerNorm」 | 先减了均值、用了方差 | RMSNorm 不减均值 |
    | 输出全是 0 | `weight` 初始化成 0 | `torch.ones(hidden_size)` |
    | 自检说 eps 不是 1e-6 | `nn.RMSNorm` 没传 eps | `nn.RMSNorm(hidden_size, eps=eps)` |

    ## 小结

    你现在能：
    - 用 `nn.Embedding` 把 `(B, L)` 的 id 变成 `(B, L, C)` 的向量，并说出它只是「按 id 取一行」、不含位置信息；
    - 解释残差累加为什么让尺度变大，写出 RMSNorm，并证明它与 `torch.nn.RMSNorm`、`LlamaRMSNorm` 相同；
    - 说出 RMSNorm 与 LayerNorm 的两处不同：不减均值、没有 bias。

    **下一节 0.2**：RoPE——让注意力知道谁在前、谁在后、隔多远。
    """),
]

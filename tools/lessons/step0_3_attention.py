"""Lesson 0.3: causal self-attention and the KV cache."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：每个位置按相关程度，从它自己和它之前的位置取回信息（因果自注意力）；再把它改成「一次只喂新 token」
    也能算对的形式（KV cache），为第三步的生成做准备。

    **学完后你能自测**：
    - [ ] 你的注意力与 `F.scaled_dot_product_attention`、`transformers` 的 `LlamaAttention`（同一组权重）结果相同；
    - [ ] 改第 t 个 token，位置 0…t−1 的输出完全不变；
    - [ ] 前 7 个 token 一次算、其余逐个喂并传回缓存，拼起来与整段一次算相同，缓存长度每步 +1；
    - [ ] 行尾补 padding 并给出 `seq_lengths`，真实位置的输出不变，也没有 NaN。
    """),
    md("""
    ## 0. 准备

    0.2 写的 RoPE 在课程包里也有一份（`diy.model` 的 `RotaryEmbedding`、`apply_rotary`，和你写的逐元素相同），这一节直接用它。
    """),
    code("""
    import math
    import warnings

    import matplotlib.pyplot as plt
    import torch
    import torch.nn.functional as F
    from torch import nn

    warnings.filterwarnings("ignore", message="IProgress not found")  # transformers 导入时关于进度条的提示，与课程无关
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaAttention

    from diy import CharTokenizer, load_passage
    from diy.classroom.checks import check_attention, check_causal_mask
    from diy.model import RotaryEmbedding, apply_rotary
    from diy.plotting import set_token_ticks, token_tick, zh_or_en

    torch.manual_seed(0)
    hidden_size, num_heads, max_seq_len, dropout = 256, 4, 128, 0.1
    head_dim = hidden_size // num_heads
    rope = RotaryEmbedding(head_dim, max_seq_len, 10000.0)
    print(f"hidden_size={hidden_size}, num_heads={num_heads}, head_dim={head_dim}, dropout={dropout}")
    """),
    md("""
    ## 1. 投影与分头

    四个投影 `q_proj`、`k_proj`、`v_proj`、`o_proj` 都是 `nn.Linear(C, C, bias=False)`——名字和「不带 bias」都照 Llama，
    0.4 才能和 `transformers` 互相装载权重。q、k、v 各 `(B, L, C)`，再切成 H 个头，每个头 `D = C / H` 维：

    `(B, L, C)` → `view(B, L, H, D)` → `transpose(1, 2)` → `(B, H, L, D)`
    """),
    code("""
    B, L, C, H, D = 2, 10, hidden_size, num_heads, head_dim
    q_proj = nn.Linear(C, C, bias=False)
    x = torch.randn(B, L, C)                                 # (B, L, C)
    q_flat = q_proj(x)                                       # (B, L, C)
    q = q_flat.view(B, L, H, D).transpose(1, 2)              # (B, H, L, D)
    print("x:", tuple(x.shape), "→ q_proj(x):", tuple(q_flat.shape), "→ 分头:", tuple(q.shape))
    print("q_proj 的参数:", list(q_proj.state_dict()), tuple(q_proj.weight.shape))
    print("头 1、位置 3 = q_proj(x) 第 3 行的第 64…127 维:", torch.equal(q[0, 1, 3], q_flat[0, 3, 64:128]))
    """),
    md("""
    先猜：如果直接 `view(B, H, L, D)`（不先 view 成 `(B, L, H, D)` 再 transpose），形状一样，内容一样吗？
    """),
    code("""
    wrong = q_flat.view(B, H, L, D)                          # 形状对，内容错
    print("形状相同:", wrong.shape == q.shape, " 内容相同:", torch.equal(wrong, q))
    print("错的「头 0、位置 1」其实是位置 0 的第 64…127 维:", torch.equal(wrong[0, 0, 1], q_flat[0, 0, 64:128]))
    """),
    md("""
    形状检查抓不到这个错：它把不同位置的数混进了同一个「头」。分头永远是先 view 出 `(B, L, H, D)`、再把 H 换到前面。

    ## 2. 分数与 √D

    头 h 里，位置 i 对位置 j 的分数是 `q_i · k_j / √D`，`(B, H, L, L)`。为什么除以 √D？两个 D 维随机向量的点积，方差约为 D。
    """),
    code("""
    a, b = torch.randn(10000, D), torch.randn(10000, D)
    dots = (a * b).sum(-1)
    print(f"D = {D}: 点积的方差 ≈ {dots.var().item():.1f}，除以 √D 之后 ≈ {(dots / math.sqrt(D)).var().item():.2f}")
    scores = torch.randn(1, D) @ torch.randn(D, 8)           # 一个 query 对 8 个 key
    print(f"不缩放时 softmax 的最大权重: {scores.softmax(-1).max().item():.3f}")
    print(f"除以 √D 后 softmax 的最大权重: {(scores / math.sqrt(D)).softmax(-1).max().item():.3f}")
    """),
    md("""
    不缩放，分数的尺度随 D 变大，softmax 几乎变成 one-hot（过尖）。过尖的 softmax 对分数几乎不敏感：分数动一点，权重几乎不动，
    反向传播时经过它的梯度也就很小。量一量：softmax 的输出对输入分数的导数是矩阵 diag(p) − p pᵀ（雅可比矩阵），
    取它的大小（范数），看 1000 个随机 query（各对 8 个 key）的中位数：
    """),
    code("""
    many = torch.randn(1000, 1, D) @ torch.randn(1000, D, 8)              # (1000, 1, 8)：不缩放的分数
    for name, s in (("不缩放  ", many[:, 0]), ("除以 √D", many[:, 0] / math.sqrt(D))):
        p = s.softmax(dim=-1)                                             # (1000, 8)
        jacobian = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]     # (1000, 8, 8)：d 权重 / d 分数
        print(f"{name}: 最大权重的中位数 {p.amax(dim=-1).median().item():.2f}，"
              f"雅可比矩阵范数的中位数 {jacobian.flatten(1).norm(dim=1).median().item():.2f}")
    """),
    md("""
    不缩放时，一半的 query 把 96% 以上的权重给了一个 key，经过 softmax 的梯度（0.07）只有缩放后（0.37）的五分之一左右：
    这些位置几乎学不动。
    除以 √D 把分数的方差拉回 1 左右，不管 D 多大都一样。

    ## 3. ✏️ 练习 0.3a：因果 mask 与 padding mask

    mask 是一个 bool 张量，**True = 能看**。规则：
    - **因果**：query 只能看 key 位置 ≤ 自己的位置，**包括它自己**（对角线上是 True）；
    - **带缓存**：缓存里已有 `past_len` 个 key，这次新来 `length` 个 query。第 i 个新 query 的绝对位置是 `past_len + i`，
      key 一共 `past_len + length` 个，所以 mask 是 `(length, past_len + length)`；
    - **padding**：`seq_lengths[b]` 是第 b 行的真实长度（右 padding）。key 位置 ≥ `seq_lengths[b]` 的都不能看。
      两个条件取「都允许才能看」。

    要求：`causal_mask(seq_lengths, past_len, length)` 返回 bool 张量；`seq_lengths` 为 None 时形状 `(1, 1, L, P+L)`，
    否则 `(B, 1, L, P+L)`——第 1 维留给「头」，这样能和 `(B, H, L, P+L)` 的分数广播。

    提示（先想清楚再写）：
    - mask 的第 (i, j) 格只取决于两个数：第 i 个新 query 的**绝对位置**、第 j 个 key 的位置。先把这两组位置各写成一个一维张量；
    - 用广播一次比出整张 `(L, P+L)` 的表，不要写循环：一个张量加一个长度为 1 的维变成「列」，另一个变成「行」；
      对角线（自己看自己）要是 True，用哪个比较符？
    - padding 那一条只看 key 的位置和这一行的 `seq_lengths[b]`，是一张 `(B, P+L)` 的表；要在哪里插入长度为 1 的维，
      才能和因果那张表合成 `(B, 1, L, P+L)`？
    """),
    exercise(
        solution="""
        # ✏️ 练习 0.3a
        def causal_mask(seq_lengths, past_len, length):
            \"\"\"True = 能看。None → (1, 1, L, P+L)；给了 seq_lengths (B,) → (B, 1, L, P+L)。\"\"\"
            query_pos = torch.arange(past_len, past_len + length)          # (L,) 新 query 的绝对位置
            key_pos = torch.arange(past_len + length)                      # (P+L,)
            allowed = key_pos[None, :] <= query_pos[:, None]               # (L, P+L) 含对角线
            allowed = allowed[None, None]                                  # (1, 1, L, P+L)
            if seq_lengths is not None:
                real_key = key_pos[None, :] < seq_lengths[:, None]         # (B, P+L)
                allowed = allowed & real_key[:, None, None, :]             # (B, 1, L, P+L)
            return allowed
        """,
        stub="""
        # ✏️ 练习 0.3a
        def causal_mask(seq_lengths, past_len, length):
            \"\"\"True = 能看。None → (1, 1, L, P+L)；给了 seq_lengths (B,) → (B, 1, L, P+L)。\"\"\"
            raise NotImplementedError("✏️ 在这里构造因果 mask，再与 padding mask 取「都允许」")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    causal_mask = check_causal_mask(causal_mask)
    """),
    code("""
    print("不带缓存、L = 5（1 = 能看）:")
    print(causal_mask(None, 0, 5)[0, 0].int())
    print("缓存里已有 3 个、再来 2 个:")
    print(causal_mask(None, 3, 2)[0, 0].int())
    print("右 padding，第 1 行真实长度 3:")
    print(causal_mask(torch.tensor([5, 3]), 0, 5)[1, 0].int())
    """),
    md("""
    注意最后一个：padding 位置（第 3、4 行）仍然能看到前面的真实 token，所以每一行至少有一个 True，softmax 不会得到 NaN。
    （要是某一行一个 key 都不能看——比如**左** padding 的 padding 位置——整行 −inf 经 softmax 就是 NaN，还会传染给后面的层。
    第三步处理左 padding 时，让每个位置至少能看到它自己。）

    ## 4. ✏️ 练习 0.3b：完整的注意力模块（带 KV cache）

    把前面的零件装起来。顺序：

    1. 投影、分头：q、k、v 各 `(B, H, L, D)`；
    2. q、k 用 `apply_rotary(·, cos, sin)` 旋转（v 不转）；`cos`/`sin` 由调用者按正确的位置给出（带缓存时已经带上偏移）；
    3. 有 `past_kv = (past_k, past_v)`（各 `(B, H, P, D)`，k 已旋转过）时，把新的 k、v 接在后面（沿序列那一维）；
    4. 分数除以 √D，用 mask 把不能看的位置填成 −inf，**再** softmax（沿 key 那一维）；
    5. 只在 `self.training` 时对注意力权重做 dropout；乘 v，合并各头回到 `(B, L, C)`，过 `o_proj`；
    6. 返回 `(输出, present)`，`present = (k, v)` 是拼接之后的完整缓存，各 `(B, H, P+L, D)`。

    要求：`DIYAttention(hidden_size, num_heads, dropout=0.0)`；`forward(x, cos, sin, mask, past_kv=None)`。
    四个投影的名字 `q_proj`、`k_proj`、`v_proj`、`o_proj`，都不带 bias。用 `F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=...)`
    代替第 4、5 步的手写版也可以（它的 bool mask 也是 True = 能看），但 `is_causal=True` 不能和显式 mask 一起用；
    query 比 key 短时（带缓存）它的因果三角也对不齐——所以这里总是传我们自己的 mask。
    """),
    exercise(
        solution="""
        # ✏️ 练习 0.3b
        class DIYAttention(nn.Module):
            \"\"\"因果多头自注意力：RoPE、mask、只在 train 模式下的 dropout、KV cache。\"\"\"

            def __init__(self, hidden_size, num_heads, dropout=0.0):
                super().__init__()
                self.num_heads, self.head_dim, self.dropout = num_heads, hidden_size // num_heads, dropout
                self.q_proj = nn.Linear(hidden_size, hidden_size, bias=False)
                self.k_proj = nn.Linear(hidden_size, hidden_size, bias=False)
                self.v_proj = nn.Linear(hidden_size, hidden_size, bias=False)
                self.o_proj = nn.Linear(hidden_size, hidden_size, bias=False)

            def forward(self, x, cos, sin, mask, past_kv=None):
                B, L, C = x.shape
                H, D = self.num_heads, self.head_dim
                q = self.q_proj(x).view(B, L, H, D).transpose(1, 2)      # (B, H, L, D)
                k = self.k_proj(x).view(B, L, H, D).transpose(1, 2)      # (B, H, L, D)
                v = self.v_proj(x).view(B, L, H, D).transpose(1, 2)      # (B, H, L, D)
                q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
                if past_kv is not None:
                    past_k, past_v = past_kv                             # (B, H, P, D) each
                    k = torch.cat((past_k, k), dim=2)                    # (B, H, P+L, D)
                    v = torch.cat((past_v, v), dim=2)                    # (B, H, P+L, D)
                scores = q @ k.transpose(-2, -1) / math.sqrt(D)          # (B, H, L, P+L)
                scores = scores.masked_fill(~mask, float("-inf"))
                weights = F.dropout(scores.softmax(dim=-1), p=self.dropout, training=self.training)
                y = (weights @ v).transpose(1, 2).reshape(B, L, C)       # (B, L, C)
                return self.o_proj(y), (k, v)
        """,
        stub="""
        # ✏️ 练习 0.3b
        class DIYAttention(nn.Module):
            \"\"\"因果多头自注意力：RoPE、mask、只在 train 模式下的 dropout、KV cache。\"\"\"

            def __init__(self, hidden_size, num_heads, dropout=0.0):
                super().__init__()
                raise NotImplementedError("✏️ 在这里存下头数、每头维度、dropout，建四个投影")

            def forward(self, x, cos, sin, mask, past_kv=None):
                raise NotImplementedError("✏️ 在这里写注意力；返回 (输出, (k, v))")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    DIYAttention = check_attention(DIYAttention)
    """),
    md("""
    ## 5. 与 SDPA 和 transformers 对照

    eval 模式、没有 padding 时，把同样的 q、k、v 交给 `F.scaled_dot_product_attention(..., is_causal=True)`；
    再把你的四个投影权重装进 `transformers` 的 `LlamaAttention`，传同样的 `position_embeddings=(cos, sin)`。
    """),
    code("""
    attn = DIYAttention(hidden_size, num_heads, dropout).eval()
    cos, sin = rope(0, L)                                    # (L, D) each
    mask = causal_mask(None, 0, L)                           # (1, 1, L, L)
    with torch.no_grad():
        out, (k, v) = attn(x, cos, sin, mask)
        q = apply_rotary(attn.q_proj(x).view(B, L, H, D).transpose(1, 2), cos, sin)
        sdpa = F.scaled_dot_product_attention(q, k, v, is_causal=True)         # (B, H, L, D)
        sdpa = attn.o_proj(sdpa.transpose(1, 2).reshape(B, L, C))
        config = LlamaConfig(hidden_size=C, num_attention_heads=H, num_key_value_heads=H, attention_bias=False)
        config._attn_implementation = "eager"
        llama = LlamaAttention(config, layer_idx=0).eval()
        llama.load_state_dict(attn.state_dict(), strict=True)                  # 名字一样才装得进
        additive = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))   # transformers 要「加到分数上」的 mask
        llama_out = llama(x, position_embeddings=(cos[None], sin[None]), attention_mask=additive)[0]
    print("out:", tuple(out.shape), " present:", tuple(k.shape), tuple(v.shape))
    print("与 F.scaled_dot_product_attention 相同:", torch.allclose(out, sdpa, atol=1e-6))
    print("与 LlamaAttention 相同:               ", torch.allclose(out, llama_out, atol=1e-6))
    """),
    md("""
    ## 6. 未来的 token 不影响过去

    先猜：只改第 6 个位置的输入，哪些位置的输出会变？
    """),
    code("""
    changed = x.clone()
    changed[:, 6] = torch.randn(B, C)
    with torch.no_grad():
        out2, _ = attn(changed, cos, sin, mask)
    moved = (out2 - out).abs().amax(dim=(0, 2))              # (L,) 每个位置最大的变化
    print("每个位置输出的最大变化:", " ".join(f"{m:.3f}" for m in moved.tolist()))
    print("位置 0…5 完全不变:", torch.equal(out2[:, :6], out[:, :6]))
    """),
    md("""
    只有位置 6 及之后变了。训练时正是这一点让「预测下一个 token」不能偷看答案。

    ## 7. 注意力热力图：真实的一句话

    用课程的分词器编码短文里的一句话，画每个头 `(L, L)` 的注意力权重。模块只返回输出，所以这里用它的 `q_proj`、`k_proj`
    照第 4 节的步骤把权重单独算出来（eval 模式，没有 dropout）。先用**随机**权重画一次（词嵌入也是随机的）。
    """),
    code("""
    tokenizer = CharTokenizer()
    text = load_passage().splitlines()[1][:16]
    ids = torch.tensor([tokenizer.encode(text)])             # (1, T)
    T = ids.shape[1]

    def attention_weights(attn, h):
        \"\"\"每个头的注意力权重 (H, T, T)，eval 模式。\"\"\"
        c, s = rope(0, T)
        q = apply_rotary(attn.q_proj(h).view(1, T, H, D).transpose(1, 2), c, s)
        k = apply_rotary(attn.k_proj(h).view(1, T, H, D).transpose(1, 2), c, s)
        scores = (q @ k.transpose(-2, -1) / math.sqrt(D)).masked_fill(~causal_mask(None, 0, T), float("-inf"))
        return scores.softmax(dim=-1)[0]

    def plot_heads(weights, title):
        labels = [token_tick(tokenizer.id_to_token[i], i) for i in ids[0].tolist()]
        fig, axes = plt.subplots(1, H, figsize=(15, 4), layout="constrained")
        for head, ax in enumerate(axes):
            image = ax.imshow(weights[head], cmap="Blues", vmin=0, vmax=1)
            set_token_ticks(ax, labels, fontsize=7)
            ax.set_yticks(range(T), labels, fontsize=7)
            ax.set_xlabel(zh_or_en("被看的 token（key）", "attended token (key)"), fontsize=8)
            ax.set_title(zh_or_en(f"头 {head}", f"head {head}"), fontsize=9)
        axes[0].set_ylabel(zh_or_en("在看的 token（query）", "attending token (query)"), fontsize=8)
        fig.colorbar(image, ax=axes, shrink=0.8, label=zh_or_en("注意力权重", "attention weight"))
        fig.suptitle(title)
        plt.show()

    with torch.no_grad():
        random_weights = attention_weights(attn, nn.Embedding(6400, C)(ids))
    print("句子:", text, " T =", T, " weights:", tuple(random_weights.shape))
    print("每行的和都是 1:", torch.allclose(random_weights.sum(-1), torch.ones(H, T), atol=1e-5))
    print("对角线以上全是 0:", torch.equal(random_weights.triu(diagonal=1), torch.zeros(H, T, T)))
    plot_heads(random_weights, zh_or_en("随机权重", "Random weights"))
    """),
    md("""
    再把课程已经训练好的模型（第二步会训练它：它能背出这段短文）**第 0 层**的注意力权重装进你的模块，同一句话再画一次。
    `load_state_dict(strict=True)` 能成功，说明你的名字和课程的一样。

    ⏳ 下一格第一次运行时（课程缓存里还没有训练好的模型），`course_model()` 要现场训练它（2 核 CPU 上约 12 秒，机器忙时更久），
    然后存进缓存文件夹（`~/.cache/diy-llm`），之后的 notebook 直接读取，不到一秒。
    """),
    code("""
    from diy.classroom.course_model import course_model

    trained = course_model().model                           # 课程的 DIYModel（已训练，eval 模式）
    attn.load_state_dict(trained.layers[0].self_attn.state_dict(), strict=True)
    with torch.no_grad():
        h0 = trained.layers[0].input_layernorm(trained.embed_tokens(ids))   # 第 0 层注意力的输入 (1, T, C)
        trained_weights = attention_weights(attn, h0)
    print("装进了第 0 层的权重；每行的和都是 1:", torch.allclose(trained_weights.sum(-1), torch.ones(H, T), atol=1e-5))
    plot_heads(trained_weights, zh_or_en("训练后的第 0 层", "Trained layer 0"))
    """),
    md("""
    对比两张图：随机权重把注意力大致平均分给前面的位置；训练后的头把权重集中在少数几个位置上。用一个数概括：
    每一行**最大的那个权重**的平均值（从第 1 行起）。平均分的话，第 i 行的最大权重是 1/(i+1)。
    """),
    code("""
    # NBVAL_IGNORE_OUTPUT
    uniform = sum(1 / (i + 1) for i in range(1, T)) / (T - 1)
    peak_random = random_weights[:, 1:].amax(dim=-1).mean(dim=-1)        # (H,)
    peak_trained = trained_weights[:, 1:].amax(dim=-1).mean(dim=-1)      # (H,)
    print(f"平均分时: {uniform:.2f}")
    for head in range(H):
        print(f"头 {head}: 每行最大权重的平均  随机 {peak_random[head].item():.2f}  →  训练后 {peak_trained[head].item():.2f}")
    """),
    code("""
    print("训练后每个头都比随机时更集中:", bool((peak_trained > peak_random).all()))
    """),
    md("""
    （具体数字取决于训练出来的权重，不同机器上可能略有不同，所以上一格不参与比较；结论那一行在哪里都成立。）

    ## 8. KV cache：只喂新 token

    生成时每一步只多一个 token。把已经算过的 k、v 存起来（k 已经旋转过），新 token 只算它自己的 q、k、v，
    把 k、v 接在缓存后面，RoPE 的位置和 mask 的行从缓存长度 P 开始。先猜：前 7 个一次算，其余 3 个逐个喂，
    拼起来与整段一次算一样吗？缓存每步多长？
    """),
    code("""
    attn = DIYAttention(hidden_size, num_heads, dropout).eval()
    with torch.no_grad():
        full, _ = attn(x, cos, sin, mask)                    # 整段一次算 (B, 10, C)
        pieces, past = [], None
        for start, end in ((0, 7), (7, 8), (8, 9), (9, 10)):
            c, s = rope(start, end - start)                  # 位置接在缓存后面
            piece, past = attn(x[:, start:end], c, s, causal_mask(None, start, end - start), past)
            pieces.append(piece)
            print(f"输入位置 {start}…{end - 1}: 输出 {tuple(piece.shape)}，缓存 k {tuple(past[0].shape)}")
    print("带缓存 ≡ 一次算完:", torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5))
    """),
    md("""
    ## 9. 右 padding：真实位置不变，没有 NaN
    """),
    code("""
    seq_lengths = torch.tensor([10, 6])                      # 第 1 行只有 6 个真实 token，后面是 padding
    with torch.no_grad():
        padded, _ = attn(x, cos, sin, causal_mask(seq_lengths, 0, L))
        alone, _ = attn(x[1:, :6], *rope(0, 6), causal_mask(None, 0, 6))
    print("没有 NaN:", torch.isfinite(padded).all().item())
    print("第 1 行的真实位置与不补 padding 时相同:", torch.allclose(padded[1, :6], alone[0], atol=1e-5))
    """),
    md("""
    ## 10. dropout 只在 train 模式

    `dropout` 只由 `model.train()` / `model.eval()` 控制。先猜：train 模式下同样的输入算两次，结果一样吗？eval 呢？
    """),
    code("""
    with torch.no_grad():
        attn.train()
        train_same = torch.equal(attn(x, cos, sin, mask)[0], attn(x, cos, sin, mask)[0])
        attn.eval()
        eval_same = torch.equal(attn(x, cos, sin, mask)[0], attn(x, cos, sin, mask)[0])
    print("train 模式两次相同:", train_same, "  eval 模式两次相同:", eval_same)
    """),
    md("""
    ## 常见错误

    | 症状 | 原因 | 修复 |
    | --- | --- | --- |
    | 训练 loss 降得异常快；自检说没有用 mask | 没加 mask，偷看了答案 | softmax 之前 `masked_fill(~mask, -inf)` |
    | 自检说 mask 连对角线也遮住了 | 用了 `key_pos < query_pos` | 用 `<=`：自己也能看 |
    | 自检说除以了 D / 没有除以 √D | 缩放不对 | `/ math.sqrt(D)` |
    | 自检说 softmax 沿错了维 | `softmax(dim=-2)` | `softmax(dim=-1)`：对 key 归一化 |
    | 自检说分头 / 合并头的顺序错了 | 直接 `view(B, H, L, D)` | `view(B, L, H, D).transpose(1, 2)`；合并时先 transpose 回来 |
    | 自检说 mask 加在 softmax 之后 | 先 softmax 再乘 mask | 先填 −inf 再 softmax |
    | eval 下两次结果不同 | `F.dropout` 默认 `training=True` | `training=self.training` |
    | 带缓存的结果不同 | 忘了拼接缓存，或 RoPE 没有偏移 | `cat(..., dim=2)`；`rope(P, L)` |

    ## 小结

    你现在能：
    - 写出多头因果自注意力：投影、分头、RoPE、√D、mask、softmax、dropout、合并、`o_proj`，名字与 Llama 相同；
    - 构造因果 + padding 的 mask，说出为什么包含对角线、为什么右 padding 不会产生 NaN；
    - 用 KV cache 一次只喂新 token，并证明与一次算完相同；
    - 在真实的句子上画出注意力，并把训练好的权重装进自己的模块。

    **下一节 0.4**：SwiGLU、解码层，把所有零件装成完整的 `DIYModel`，存成你自己的 `DIYModel.py`。
    """),
]

"""Lesson 0.2: rotary position embeddings (RoPE)."""

from tools.notebook_builder import check, code, exercise, md

CELLS = [
    md("""
    **目标**：让注意力知道「谁在前、谁在后、隔多远」。RoPE 的做法：把每个头的 q、k 按所在位置旋转一个角度，
    旋转后的点积 q·k 只取决于两者的**相对距离**。

    **学完后你能自测**：
    - [ ] 你的 cos/sin 表、`rotate_half`、旋转结果与 `transformers` 的 `LlamaRotaryEmbedding` + `apply_rotary_pos_emb` 相同；
    - [ ] 带缓存时的偏移正确：整段旋转后的第 7…9 个位置 = 用 `start=7` 单独旋转最后 3 个位置；
    - [ ] 从图上看出：m − n 相同，旋转后的点积就相同；
    - [ ] 说得出「前后两半」与「相邻交错」两种约定的区别，以及为什么装载别人的权重时约定必须一致。
    """),
    md("""
    ## 0. 准备
    """),
    code("""
    import warnings

    import matplotlib.pyplot as plt
    import torch
    from torch import nn

    warnings.filterwarnings("ignore", message="IProgress not found")  # transformers 导入时关于进度条的提示，与课程无关
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    from diy.classroom.checks import check_apply_rotary, check_rotary
    from diy.plotting import integer_ticks, zh_or_en

    torch.manual_seed(0)
    hidden_size, num_heads, max_seq_len, theta = 256, 4, 128, 10000.0
    head_dim = hidden_size // num_heads
    print(f"hidden_size={hidden_size}, num_heads={num_heads}, head_dim={head_dim}, "
          f"max_seq_len={max_seq_len}, theta={theta:g}")
    """),
    md("""
    ## 1. 注意力本身不知道顺序

    先做一个小实验：一层**不加位置信息、也不加因果 mask** 的注意力（随机投影），把输入的顺序打乱。
    先猜：输出会怎样？
    """),
    code("""
    C = 16
    Wq, Wk, Wv = (torch.randn(C, C) for _ in range(3))

    def plain_attention(x):                                 # x (L, C)，没有位置、没有 mask
        q, k, v = x @ Wq, x @ Wk, x @ Wv                    # (L, C) each
        weights = (q @ k.T / C ** 0.5).softmax(dim=-1)      # (L, L)
        return weights @ v                                  # (L, C)

    x = torch.randn(5, C)                                   # 5 个 token（比如「我 爱 你 ！ 。」）
    perm = torch.tensor([2, 1, 0, 3, 4])                    # 打乱成「你 爱 我 ！ 。」
    out, out_perm = plain_attention(x), plain_attention(x[perm])
    print("x.shape:", tuple(x.shape), "→ out.shape:", tuple(out.shape))
    print("打乱输入 = 输出跟着同样打乱:", torch.allclose(out_perm, out[perm], atol=1e-5))
    """),
    md("""
    注意力是**置换等变**的：「我爱你」和「你爱我」里，每个字看到的是同一袋字，只是换了座位。
    要让模型分清语序，就得把位置信息放进 q、k。

    ## 2. 频率：前面的维转得快，后面的维转得慢

    对每个头的 `D = 64` 维，两两配成 32 对，第 i 对的角速度是

    $$\\text{inv\\_freq}[i] = \\theta^{-2i/D}, \\quad i = 0, \\dots, D/2 - 1$$

    位置 p 处第 i 对旋转的角度是 `p · inv_freq[i]`。先在纸上估一估：第 0 对每个位置转多少弧度？第 31 对呢
    （θ = 10000，D = 64）？把 `cos(位置 · inv_freq[i])` 随位置画出来，i = 0 和 i = 16 的曲线哪条变化得快？
    写完下面的练习，就能从你的表里读出答案。

    ## 3. ✏️ 练习 0.2a：cos/sin 表

    位置 0 … `max_seq_len − 1` 与 `inv_freq` 做外积，得到 `(T, D/2)` 的角度；在最后一维**拼成两份**得到 `(T, D)`
    （第 i 列和第 i + D/2 列是同一个角度：它们是一对），再取 cos、sin。

    要求：
    - `RotaryEmbedding(head_dim, max_seq_len, theta=10000.0)` 是 `nn.Module`；
    - 表用 `self.register_buffer("cos", ..., persistent=False)`（sin 同理）保存：它们由超参推出，**不进 state_dict**
      （否则 0.4 装进 `transformers` 时 `strict=True` 会报多余的键），但会跟着 `.to(device)` 走；
    - `forward(start, length)` 返回位置 `start … start + length − 1` 的 `(cos, sin)`，各 `(length, D)`，float32。
      带 KV cache 时 `start` = 缓存长度：新 token 的位置接在缓存后面，不从 0 重数。

    提示（先想清楚再写）：
    - 指数里的 `2i` 取 0, 2, 4, …, D − 2：`torch.arange` 的哪几个参数直接给出这 D/2 个数？整数张量要先变成浮点数再做除法和乘方；
    - 「每个位置 × 每个频率」得到一张 `(T, D/2)` 的表：这种两两相乘叫外积（`torch.outer`）；
    - 为什么是把整张角度表**拼成两份**，而不是把每个角度**重复两次**（`repeat_interleave`）？想想第 i 维和哪一维配对。
    """),
    exercise(
        solution="""
        # ✏️ 练习 0.2a
        class RotaryEmbedding(nn.Module):
            \"\"\"位置 0 … max_seq_len−1 的 cos/sin 表（前后两半约定），各 (T, D)。\"\"\"

            def __init__(self, head_dim, max_seq_len, theta=10000.0):
                super().__init__()
                inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)  # (D/2,)
                angles = torch.outer(torch.arange(max_seq_len).float(), inv_freq)          # (T, D/2)
                angles = torch.cat((angles, angles), dim=-1)                                # (T, D)
                self.register_buffer("cos", angles.cos(), persistent=False)                 # (T, D)
                self.register_buffer("sin", angles.sin(), persistent=False)                 # (T, D)

            def forward(self, start, length):
                \"\"\"位置 start … start+length−1 的 (cos, sin)，各 (length, D)。\"\"\"
                return self.cos[start:start + length], self.sin[start:start + length]
        """,
        stub="""
        # ✏️ 练习 0.2a
        class RotaryEmbedding(nn.Module):
            \"\"\"位置 0 … max_seq_len−1 的 cos/sin 表（前后两半约定），各 (T, D)。\"\"\"

            def __init__(self, head_dim, max_seq_len, theta=10000.0):
                super().__init__()
                raise NotImplementedError("✏️ 在这里算 inv_freq、角度，注册 cos / sin 两个 buffer")

            def forward(self, start, length):
                \"\"\"位置 start … start+length−1 的 (cos, sin)，各 (length, D)。\"\"\"
                raise NotImplementedError("✏️ 在这里从表里切出 length 行")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    RotaryEmbedding = check_rotary(RotaryEmbedding)
    """),
    code("""
    rope = RotaryEmbedding(head_dim, max_seq_len, theta)
    cos, sin = rope(0, 10)
    print("rope.cos:", tuple(rope.cos.shape), " forward(0, 10) → cos", tuple(cos.shape), "sin", tuple(sin.shape))
    print("state_dict 的键:", list(rope.state_dict()), "（空：表不保存）")
    print("位置 0 不旋转: cos = 1", torch.all(cos[0] == 1).item(), " sin = 0", torch.all(sin[0] == 0).item())
    print("第 i 列与第 i + D/2 列相同:", torch.equal(cos[:, :head_dim // 2], cos[:, head_dim // 2:]))
    """),
    md("""
    回到第 2 节的两个问题，答案就在你的表里：位置 1 那一行的角度就是每一对的 `inv_freq[i]`（位置 1 × 频率）。
    """),
    code("""
    per_position = torch.atan2(rope.sin[1], rope.cos[1])[:head_dim // 2]   # (D/2,) 位置 1 的角度 = inv_freq
    print(f"第 0 对每个位置转 {per_position[0].item():.4f} 弧度，第 31 对只转 {per_position[-1].item():.6f} 弧度")
    print(f"第 31 对转一整圈要约 {round(2 * torch.pi / per_position[-1].item(), -2):,.0f} 个位置")
    fig, ax = plt.subplots(figsize=(8, 3))
    for i in (0, 4, 8, 16, 31):
        ax.plot(range(max_seq_len), rope.cos[:, i], label=f"i = {i}")
    ax.set_xlabel(zh_or_en("位置", "position"))
    ax.set_ylabel("cos(position · inv_freq[i])")
    ax.set_title(zh_or_en("不同维度对的旋转速度", "Rotation speed of different dimension pairs"))
    ax.legend(loc="lower left", fontsize=8)
    plt.show()
    """),
    md("""
    前面的对转得快，能分辨相邻的位置；后面的对转得慢，在整个 128 的长度上几乎不动，适合表示「很远」。
    """),
    md("""
    ## 4. ✏️ 练习 0.2b：rotate_half 与旋转

    把二维向量 (a, b) 旋转角度 φ：(a cos φ − b sin φ, b cos φ + a sin φ)。对 D 维向量，我们把**第 i 维和第 i + D/2 维**
    配成一对一起转。把最后一维切成前后两半 x1（前 D/2 维）、x2（后 D/2 维），套用二维公式，旋转之后应当是：

    - 前一半：x1·cos − x2·sin
    - 后一半：x2·cos + x1·sin

    （cos、sin 取这一对所在位置的角度：你的表里第 i 列和第 i + D/2 列是同一个角度，所以整行 cos 可以直接和整个向量逐元素相乘。）

    要求：
    - `rotate_half(x)`：沿最后一维切成前后两半 (x1, x2)，返回同形状的 (−x2, x1)；用 `x.shape[-1]`，不写死 64；
    - `apply_rotary(x, cos, sin)`：`x` 是 `(B, H, L, D)` 的 q 或 k，`cos`/`sin` 是 `(L, D)`（自动广播），返回同形状；
    - 都不改动传进来的 `x`。

    提示：`x * cos` 已经给出了上面两行里带 cos 的那两项。带 sin 的两项是「某个向量 × sin」——那个向量的前一半是什么、后一半是什么？
    `rotate_half` 就是为它准备的。
    """),
    exercise(
        solution="""
        # ✏️ 练习 0.2b
        def rotate_half(x):
            \"\"\"最后一维的 (x1, x2) → (−x2, x1)。\"\"\"
            half = x.shape[-1] // 2
            x1, x2 = x[..., :half], x[..., half:]
            return torch.cat((-x2, x1), dim=-1)


        def apply_rotary(x, cos, sin):
            \"\"\"把 x (B, H, L, D) 的每一对 (i, i + D/2) 按所在位置旋转；cos/sin (L, D)。\"\"\"
            return x * cos + rotate_half(x) * sin
        """,
        stub="""
        # ✏️ 练习 0.2b
        def rotate_half(x):
            \"\"\"最后一维的 (x1, x2) → (−x2, x1)。\"\"\"
            raise NotImplementedError("✏️ 在这里切成前后两半，再拼回去")


        def apply_rotary(x, cos, sin):
            \"\"\"把 x (B, H, L, D) 的每一对 (i, i + D/2) 按所在位置旋转；cos/sin (L, D)。\"\"\"
            raise NotImplementedError("✏️ 在这里写一行旋转公式")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    rotate_half, apply_rotary = check_apply_rotary(rotate_half, apply_rotary)
    """),
    md("""
    ## 5. 与 transformers 对照

    `LlamaRotaryEmbedding(config)(x, position_ids)` 返回形状 `(B, L, D)` 的 cos、sin；`apply_rotary_pos_emb(q, k, cos, sin)`
    一次旋转 q 和 k。装同样的超参，比较。
    """),
    code("""
    config = LlamaConfig(hidden_size=hidden_size, num_attention_heads=num_heads, max_position_embeddings=max_seq_len,
                         rope_parameters={"rope_type": "default", "rope_theta": theta})
    llama_rope = LlamaRotaryEmbedding(config)
    B, H, L = 2, num_heads, 10
    q, k = torch.randn(B, H, L, head_dim), torch.randn(B, H, L, head_dim)   # (B, H, L, D)
    position_ids = torch.arange(L)[None].expand(B, L)                        # (B, L)
    llama_cos, llama_sin = llama_rope(q, position_ids)                       # (B, L, D) each
    cos, sin = rope(0, L)                                                    # (L, D) each
    llama_q, llama_k = apply_rotary_pos_emb(q, k, llama_cos, llama_sin)
    print("llama cos:", tuple(llama_cos.shape), " 我的 cos:", tuple(cos.shape))
    print("cos/sin 表相同:", torch.allclose(cos, llama_cos[0], atol=1e-6) and torch.allclose(sin, llama_sin[0], atol=1e-6))
    print("旋转后的 q、k 相同:", torch.allclose(apply_rotary(q, cos, sin), llama_q, atol=1e-6)
          and torch.allclose(apply_rotary(k, cos, sin), llama_k, atol=1e-6))
    """),
    md("""
    ## 6. 旋转不改变长度；带缓存时的偏移

    旋转只改变方向，不改变每个向量的长度。带 KV cache 生成时，前面的 token 已经算过、存在缓存里，
    新来的 token 要用**它自己的位置**旋转：`rope(start=缓存长度, length=新 token 数)`。

    先猜：整段 10 个位置一起旋转后取第 7…9 个，与用 `rope(7, 3)` 单独旋转最后 3 个，相同吗？如果忘了偏移、用 `rope(0, 3)` 呢？
    """),
    code("""
    whole = apply_rotary(q, *rope(0, L))                    # (B, H, 10, D)
    tail = apply_rotary(q[:, :, 7:], *rope(7, 3))           # (B, H, 3, D)
    wrong = apply_rotary(q[:, :, 7:], *rope(0, 3))          # 忘了偏移：新 token 又从位置 0 数
    print("长度不变:", torch.allclose(whole.norm(dim=-1), q.norm(dim=-1), atol=1e-5))
    print("整段的第 7…9 个 = rope(7, 3) 单独旋转:", torch.allclose(whole[:, :, 7:], tail, atol=1e-6))
    print("整段的第 7…9 个 = rope(0, 3) 单独旋转:", torch.allclose(whole[:, :, 7:], wrong, atol=1e-6))
    """),
    md("""
    ## 7. 点积只取决于相对位置

    固定一对向量 q、k。把 q 放在位置 m、k 放在位置 n，旋转后算点积。先猜：(m, n) = (5, 2) 和 (40, 37) 的点积一样吗？
    """),
    code("""
    q1, k1 = torch.randn(head_dim), torch.randn(head_dim)   # (D,) 一个头里的一个 q、一个 k

    def rotated_dot(m, n):
        qm = apply_rotary(q1, rope.cos[m], rope.sin[m])     # q 放在位置 m
        kn = apply_rotary(k1, rope.cos[n], rope.sin[n])     # k 放在位置 n
        return (qm @ kn).item()

    pairs = [(5, 2), (40, 37), (100, 97), (5, 5), (60, 60)]
    for m, n in pairs:
        print(f"m={m:3d}, n={n:3d}, m−n={m - n}: 点积 {rotated_dot(m, n):8.4f}")
    print("m−n 相同时点积相同:", abs(rotated_dot(5, 2) - rotated_dot(100, 97)) < 1e-4
          and abs(rotated_dot(5, 5) - rotated_dot(60, 60)) < 1e-4)
    """),
    md("""
    **为什么？** 把一对维度的旋转写成 2×2 矩阵 R_m（转 m 个位置的角度）。旋转矩阵有两条性质：转置就是反着转（R_mᵀ = R_{−m}），
    两次旋转角度相加（R_{−m} R_n = R_{n−m}）。于是

    $$(R_m q) \\cdot (R_n k) = q^\\top R_m^\\top R_n k = q^\\top R_{n-m}\\, k$$

    m 和 n 只以 n − m 的形式留下来。每一对维度都是这样，32 对加起来还是这样。等式右边也可以读成「k 不动、只把 q 转 m − n 个位置」，
    算出来应当就是上面的点积：
    """),
    code("""
    for m, n in ((5, 2), (40, 37), (100, 97)):
        only_q = apply_rotary(q1, rope.cos[m - n], rope.sin[m - n]) @ k1     # q 转 m − n 个位置，k 不转
        print(f"m={m:3d}, n={n:3d}: (R_m q)·(R_n k) = {rotated_dot(m, n):8.4f}   (R_(m−n) q)·k = {only_q.item():8.4f}")
    """),
    md("""
    把 n 固定在 0、30、60，让 m 走一遍。左图横轴是 q 的位置 m：三条曲线形状一样，只是各自往右挪了 n；
    右图横轴换成 m − n：三条曲线完全叠在一起（画成三种线型：粗的浅色线上压着虚线和点线），说明点积只看 m − n。
    """),
    code("""
    curves = {n: [rotated_dot(m, n) for m in range(n, max_seq_len)] for n in (0, 30, 60)}
    styles = {0: {"linewidth": 4, "alpha": 0.35}, 30: {"linewidth": 1.5, "linestyle": "--"},
              60: {"linewidth": 1, "linestyle": ":", "color": "black"}}
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3), sharey=True)
    for n, dots in curves.items():
        left.plot(range(n, max_seq_len), dots, label=f"n = {n}", **styles[n])
        right.plot(range(max_seq_len - n), dots, label=f"n = {n}", **styles[n])
    left.set_xlabel(zh_or_en("q 的位置 m", "position m of q"))
    left.set_title(zh_or_en("横轴是 m：同样的形状，各挪了 n", "Against m: one shape, shifted by n"))
    right.set_xlabel("m − n")
    right.set_title(zh_or_en("横轴是 m − n：三条叠在一起", "Against m − n: the three coincide"))
    left.set_ylabel(zh_or_en("旋转后的 q·k", "rotated q·k"))
    for ax in (left, right):
        integer_ticks(ax)
        ax.legend(fontsize=8)
    fig.tight_layout()
    plt.show()
    overlap = max_seq_len - 60                              # 三条曲线都画到的 m − n：0 … 67
    gap = max(abs(curves[n][d] - curves[0][d]) for n in (30, 60) for d in range(overlap))
    print(f"m − n = 0…{overlap - 1} 上，三条曲线的最大差 < 1e-4:", gap < 1e-4)
    """),
    md("""
    ## 8. 「前后两半」与「相邻交错」

    RoPE 的原始论文把相邻的 `(2i, 2i+1)` 配成一对（「相邻交错」）；`transformers` 的 Llama 把 `(i, i + D/2)` 配成一对（「前后两半」）。
    两种写法数学上等价：把 q 的维度重新排个序，一种就变成另一种。但**同一份 `q_proj`/`k_proj` 权重**在两种写法下算出的结果不同——
    要用别人训练好的权重，约定必须和训练时一样。下面用同一个 q 验证这两句话。
    """),
    code("""
    def apply_rotary_interleaved(x, cos, sin):              # 相邻交错：(2i, 2i+1) 一对
        half = x.shape[-1] // 2
        c, s = cos[..., :half].repeat_interleave(2, -1), sin[..., :half].repeat_interleave(2, -1)
        pairs = x.unflatten(-1, (half, 2))
        rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return x * c + rotated * s

    order = torch.arange(head_dim).view(2, head_dim // 2).T.flatten()   # 0, 32, 1, 33, …：把每一对排到相邻
    half_split = apply_rotary(q, cos, sin)
    interleaved = apply_rotary_interleaved(q, cos, sin)
    print("同样的 q，两种约定结果相同:", torch.allclose(half_split, interleaved, atol=1e-5))
    print("把 q 的维度重排后，交错 = 前后两半再重排:",
          torch.allclose(apply_rotary_interleaved(q[..., order], cos, sin), half_split[..., order], atol=1e-5))
    """),
    md("""
    所以从「交错」约定训练的模型导入权重时，要把 `q_proj`、`k_proj` 的输出行重排。按哪个排列？上一格说的是
    交错(q[order]) = 前后两半(q)[order]。交错模型算出的 q 记作 q_i，令 q_h = q_i[order.argsort()]（`argsort` 给出 `order` 的逆排列，
    所以 q_h[order] = q_i），代进去：交错(q_i) = 前后两半(q_h)[order]。k 也一样；q、k 的维度同样重排，点积不变。
    所以行要按 **`order.argsort()`** 重排，不是按 `order` 本身。先猜：按 `order` 重排会怎样？用一个「交错约定」的头的随机权重验证：
    """),
    code("""
    tokens_x = torch.randn(L, hidden_size)                                   # 10 个 token 的输入
    Wq = torch.randn(head_dim, hidden_size) / hidden_size ** 0.5             # 交错约定下训练的 q_proj（一个头的输出行）
    Wk = torch.randn(head_dim, hidden_size) / hidden_size ** 0.5             # 同上，k_proj
    scores_interleaved = (apply_rotary_interleaved(tokens_x @ Wq.T, cos, sin)
                          @ apply_rotary_interleaved(tokens_x @ Wk.T, cos, sin).T)   # (L, L)


    def half_split_scores(rows):
        \"\"\"把两个权重的输出行按 rows 重排，再用前后两半约定算分数 (L, L)。\"\"\"
        return apply_rotary(tokens_x @ Wq[rows].T, cos, sin) @ apply_rotary(tokens_x @ Wk[rows].T, cos, sin).T


    print("行按 order 重排，分数与交错模型相同:          ",
          torch.allclose(half_split_scores(order), scores_interleaved, atol=1e-4))
    print("行按 order.argsort() 重排，分数与交错模型相同:",
          torch.allclose(half_split_scores(order.argsort()), scores_interleaved, atol=1e-4))
    print("order 的前 6 个:", order[:6].tolist(), " order.argsort() 的前 6 个:", order.argsort()[:6].tolist())
    hf_permute = Wq.view(1, head_dim // 2, 2, hidden_size).transpose(1, 2).reshape(head_dim, hidden_size)
    print("transformers 转换脚本的 permute（一个头）= 按 order.argsort() 取行:", torch.equal(hf_permute, Wq[order.argsort()]))
    """),
    md("""
    最后一行里的 `view(头数, D/2, 2, C).transpose(1, 2).reshape(...)` 就是 transformers 仓库里把 Meta 原始 Llama 权重转成
    Hugging Face 格式的脚本（`convert_llama_weights_to_hf.py`）对 `q_proj`、`k_proj` 做的 `permute`：它做的正是按逆排列重排。

    ## 9. 想一想：为什么只旋转 q 和 k，不旋转 v？

    位置应该影响「看谁、看多少」（注意力权重由 q·k 决定），不该改变取回来的内容（v）。如果也旋转 v，
    同一个字在不同位置取回的内容就被转成了不同的向量，后面的层还得再把位置「转回去」。

    这个错误**不会**破坏「带缓存 ≡ 一次算完」：每个 v 只按它自己那个固定的位置旋转，整段一起转和分段带偏移地转，得到的是同一批数。
    它改变的是注意力取回的内容，所以结果和 Llama（只转 q、k）不同。先猜，再运行：
    """),
    code("""
    v = torch.randn(B, H, L, head_dim)                                        # (B, H, L, D)
    whole_v = apply_rotary(v, *rope(0, L))                                    # 整段一起旋转
    pieces_v = [apply_rotary(v[:, :, :7], *rope(0, 7))] + [apply_rotary(v[:, :, t:t + 1], *rope(t, 1)) for t in range(7, L)]
    weights = torch.randn(B, H, L, L).softmax(dim=-1)                         # 随便一组注意力权重
    print("旋转了 v：整段一起转 = 先 7 个、再逐个带偏移地转:", torch.allclose(whole_v, torch.cat(pieces_v, dim=2), atol=1e-6))
    print("旋转了 v：取回的内容 weights @ v 与不旋转时相同:", torch.allclose(weights @ whole_v, weights @ v, atol=1e-3))
    """),
    md("""
    所以这个错误在 0.3 里不会表现为「缓存和不缓存不一致」，而是和参考答案、`LlamaAttention` 的输出对不上——0.3b 的自检会指出来。

    ## 常见错误

    | 症状 | 原因 | 修复 |
    | --- | --- | --- |
    | 自检说「相邻交错」 | `repeat_interleave` 或配对 (2i, 2i+1) | 角度 `cat((a, a), -1)`；`rotate_half` 切前后两半 |
    | 自检说指数差一个因子 | `theta^(−i/D)` 或忘了除以 D | `arange(0, D, 2) / D` |
    | 自检说位置从 1 开始 | `arange(1, T + 1)` | `arange(T)` |
    | 自检说忽略了 start | 带缓存时新 token 在位置 0 | `cos[start:start + length]` |
    | 自检说表进了 state_dict | 普通 `register_buffer` | `persistent=False` |
    | 0.3b 自检说「RoPE 也加到了 v 上」：输出与参考答案、`LlamaAttention` 不同（cache ≡ no cache 却照样成立） | 把 RoPE 也加到了 v 上 | 只旋转 q、k |

    ## 小结

    你现在能：
    - 用置换实验说明注意力本身不知道顺序；
    - 算出 `inv_freq`、`(T, D)` 的 cos/sin 表，写出 `rotate_half` 和旋转，并与 transformers 逐元素对照；
    - 说明带缓存时偏移的作用，以及为什么旋转后点积只取决于 m − n；
    - 说出前后两半与相邻交错的区别：数学等价，权重的行序不同。

    **下一节 0.3**：因果自注意力——用这一节的旋转处理 q、k，再加上 mask 和 KV cache。
    """),
]

"""Lesson 0.4: SwiGLU, the decoder layer and the whole DIYModel, saved to the learner's DIYModel.py."""

from tools.lessons import step0_1_norm, step0_2_rope, step0_3_attention
from tools.notebook_builder import check, code, exercise, md


def _parts_solution() -> str:
    """The solutions of 0.1–0.3, as the learner pastes them in (without their ✏️ headers)."""
    cells = [c for lesson in (step0_1_norm, step0_2_rope, step0_3_attention)
             for c in lesson.CELLS if c.stub is not None]
    bodies = ["\n".join(line for line in c.source.splitlines() if not line.startswith("# ✏️"))
              .strip("\n") for c in cells]
    return "# ✏️ 练习 0.4a：0.1～0.3 的零件\n" + "\n\n\n".join(bodies)


PARTS_STUB = '''
# ✏️ 练习 0.4a：0.1～0.3 的零件——把你在前三节写好、自检 ✅ 的代码粘贴进来，替换下面的占位
class RMSNorm(nn.Module):                                    # 0.1
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        raise NotImplementedError("✏️ 粘贴 0.1 的 RMSNorm")


class RotaryEmbedding(nn.Module):                            # 0.2a
    def __init__(self, head_dim, max_seq_len, theta=10000.0):
        super().__init__()
        raise NotImplementedError("✏️ 粘贴 0.2a 的 RotaryEmbedding")


def rotate_half(x):                                          # 0.2b
    raise NotImplementedError("✏️ 粘贴 0.2b 的 rotate_half")


def apply_rotary(x, cos, sin):                               # 0.2b
    raise NotImplementedError("✏️ 粘贴 0.2b 的 apply_rotary")


def causal_mask(seq_lengths, past_len, length):              # 0.3a
    raise NotImplementedError("✏️ 粘贴 0.3a 的 causal_mask")


class DIYAttention(nn.Module):                               # 0.3b
    def __init__(self, hidden_size, num_heads, dropout=0.0):
        super().__init__()
        raise NotImplementedError("✏️ 粘贴 0.3b 的 DIYAttention")
'''

CELLS = [
    md("""
    **目标**：把前三节的零件装成 Llama 式的骨干网络 `DIYModel`：接口和后面三步用的一样，名字和 `transformers` 一样；
    最后把它存成**你自己的** `DIYModel.py`。

    **学完后你能自测**：
    - [ ] 你的 `DIYModel` 能 `strict=True` 装进课程参考实现的权重，eval 下 `hidden_states` 与参考实现和 `transformers` 的 `LlamaModel` 差 < 1e-5；
    - [ ] 手算出参数量 3,245,312，并说出它由哪几块组成；
    - [ ] 带缓存逐个解码与一次算完相同；train 模式下每个参数都有梯度；
    - [ ] 你的 `DIYModel.py` 通过了课程的符合性检查。
    """),
    md("""
    ## 0. 准备
    """),
    code("""
    import math
    import warnings

    import torch
    import torch.nn.functional as F
    from torch import nn

    warnings.filterwarnings("ignore", message="IProgress not found")  # transformers 导入时关于进度条的提示，与课程无关
    from transformers import LlamaConfig, LlamaModel

    import diy
    from diy.classroom.checks import (
        check_backbone_parts,
        check_decoder_layer,
        check_diy_model,
        check_mlp,
    )
    from diy.classroom.checks.export import export_backbone

    torch.manual_seed(0)
    vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout = 6400, 2, 256, 4, 128, 0.1
    print(f"vocab_size={vocab_size}, num_layers={num_layers}, hidden_size={hidden_size}, "
          f"num_heads={num_heads}, max_seq_len={max_seq_len}, dropout={dropout}")
    """),
    md("""
    ## 1. ✏️ 练习 0.4a：把 0.1～0.3 的零件带过来

    每个 notebook 有自己的 kernel，前三节定义的类这里没有。把你在 0.1～0.3 写好（自检 ✅）的
    `RMSNorm`、`RotaryEmbedding`、`rotate_half`、`apply_rotary`、`causal_mask`、`DIYAttention` 从那几个 notebook 里复制过来，
    粘贴到下面的单元格，替换占位代码。最后导出的 `DIYModel.py` 就由这些代码和这一节你写的三个类组成。
    """),
    exercise(solution=_parts_solution(), stub=PARTS_STUB),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌（把 0.1～0.3 的自检再跑一遍）
    RMSNorm, RotaryEmbedding, rotate_half, apply_rotary, causal_mask, DIYAttention = check_backbone_parts(
        RMSNorm, RotaryEmbedding, rotate_half, apply_rotary, causal_mask, DIYAttention)
    """),
    md("""
    ## 2. SwiGLU：MLP 的宽度为什么是 704

    经典的 Transformer MLP 是两个矩阵：`C → 4C → C`，中间过一个激活函数。Llama 的 SwiGLU 用**三个**矩阵：
    `gate_proj`、`up_proj` 把 `C` 变宽到 `F`，`gate` 那一路过 `silu`，与 `up` 那一路逐元素相乘，再由 `down_proj` 变回 `C`。
    三个矩阵比两个多，所以把宽度从 4C 降到 8/3 · C：2 × C × 4C = 3 × C × (8/3 · C)，参数量正好一样。8/3 · C 一般不是整数，
    还要向上取整到某个数的**倍数**：矩阵乘法在硬件上是按固定大小的块（tile）算的（NVIDIA 的《Matrix Multiplication Background》
    指南专门讲这一点），宽度不是块大小的倍数时，最后一排块里只有一部分是有用的计算。

    取多大的倍数是各家自己定的。Llama 的原始代码取 **256** 的倍数（`multiple_of=256`）：7B 模型 8/3 × 4096 = 10922.7 → 11008。
    这门课取 **64** 的倍数：256 → 682.7 → **704**。对这个小模型，256 的倍数会是 768，比 8/3 · C 多出 12.5%；64 的倍数只多 3.1%。
    先猜：两种 MLP 的参数量差多少？
    """),
    code("""
    raw = 8 * hidden_size / 3
    intermediate_size = 64 * math.ceil(int(raw) / 64)
    classic = 2 * hidden_size * 4 * hidden_size
    swiglu = 3 * hidden_size * intermediate_size
    print(f"8/3 × {hidden_size} = {raw:.1f} → 课程：向上取到 64 的倍数 {intermediate_size}"
          f"（Llama 的 256 的倍数会是 {256 * math.ceil(int(raw) / 256)}）")
    llama_7b = LlamaConfig()                                # transformers 的默认配置就是 Llama 7B 的形状
    print(f"Llama 7B：8/3 × {llama_7b.hidden_size} = {8 * llama_7b.hidden_size / 3:.1f} → 256 的倍数 "
          f"{256 * math.ceil(int(8 * llama_7b.hidden_size / 3) / 256)}；LlamaConfig() 的 intermediate_size = {llama_7b.intermediate_size}")
    print(f"经典 4 倍宽 MLP: 2 × {hidden_size} × {4 * hidden_size} = {classic:,} 个参数")
    print(f"SwiGLU:          3 × {hidden_size} × {intermediate_size} = {swiglu:,} 个参数（多 {swiglu / classic - 1:.1%}）")
    print("silu(x) = x · sigmoid(x)，例如 silu(-1), silu(0), silu(2) = "
          + ", ".join(f"{F.silu(torch.tensor(v)).item():.3f}" for v in (-1.0, 0.0, 2.0)))
    """),
    md("""
    ## 3. ✏️ 练习 0.4b：DIYMLP

    要求：`DIYMLP(hidden_size, intermediate_size)`；三个 `nn.Linear`，名字 `gate_proj`、`up_proj`（`C → F`）、`down_proj`（`F → C`），
    都不带 bias；`forward(x)`：`(B, L, C)` → `(B, L, C)`，**只有 gate 那一路**过 `F.silu`。
    """),
    exercise(
        solution="""
        # ✏️ 练习 0.4b
        class DIYMLP(nn.Module):
            \"\"\"SwiGLU：down_proj(silu(gate_proj(x)) * up_proj(x))。\"\"\"

            def __init__(self, hidden_size, intermediate_size):
                super().__init__()
                self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
                self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
                self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

            def forward(self, x):
                gate = F.silu(self.gate_proj(x))            # (B, L, F)
                return self.down_proj(gate * self.up_proj(x))  # (B, L, C)
        """,
        stub="""
        # ✏️ 练习 0.4b
        class DIYMLP(nn.Module):
            \"\"\"SwiGLU：down_proj(silu(gate_proj(x)) * up_proj(x))。\"\"\"

            def __init__(self, hidden_size, intermediate_size):
                super().__init__()
                raise NotImplementedError("✏️ 在这里建 gate_proj、up_proj、down_proj")

            def forward(self, x):
                raise NotImplementedError("✏️ 在这里写 SwiGLU 的前向")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    DIYMLP = check_mlp(DIYMLP)
    """),
    md("""
    ## 4. ✏️ 练习 0.4c：解码层（pre-norm 残差）

    一个解码层做两件事，每件都是「先归一化、再进子层、结果加回 x」：

    1. `input_layernorm` → `self_attn` → dropout → 加回 x；
    2. `post_attention_layernorm` → `mlp` → dropout → 加回 x。

    **先归一化再进子层**（pre-norm），残差这条路（x 本身）从不归一化——这是深层网络训得稳的关键。
    另一种写法 post-norm（先加残差、再归一化，原始 Transformer 那样）用的是同样的四个子模块，名字和形状都一样，
    所以 Llama 的权重 `strict=True` 照样装得进去——只是算出来的结果不同（练习之后验证）。名字只管「装得进」，不管「怎么用」。

    要求：`DIYDecoderLayer(hidden_size, num_heads, intermediate_size, dropout=0.0, eps=1e-6)`；子模块名字 `input_layernorm`、
    `self_attn`、`post_attention_layernorm`、`mlp`（与 `transformers` 相同）；残差分支的 dropout 用 `nn.Dropout`（只在 train 模式生效）；
    `forward(x, cos, sin, mask, past_kv=None)` 返回 `(x, present)`，`present` 就是注意力返回的 `(k, v)`。
    """),
    exercise(
        solution="""
        # ✏️ 练习 0.4c
        class DIYDecoderLayer(nn.Module):
            \"\"\"pre-norm：x + dropout(attn(norm(x)))，再 x + dropout(mlp(norm(x)))。\"\"\"

            def __init__(self, hidden_size, num_heads, intermediate_size, dropout=0.0, eps=1e-6):
                super().__init__()
                self.input_layernorm = RMSNorm(hidden_size, eps)
                self.self_attn = DIYAttention(hidden_size, num_heads, dropout)
                self.post_attention_layernorm = RMSNorm(hidden_size, eps)
                self.mlp = DIYMLP(hidden_size, intermediate_size)
                self.dropout = nn.Dropout(dropout)

            def forward(self, x, cos, sin, mask, past_kv=None):
                h, present = self.self_attn(self.input_layernorm(x), cos, sin, mask, past_kv)
                x = x + self.dropout(h)                                           # (B, L, C)
                x = x + self.dropout(self.mlp(self.post_attention_layernorm(x)))  # (B, L, C)
                return x, present
        """,
        stub="""
        # ✏️ 练习 0.4c
        class DIYDecoderLayer(nn.Module):
            \"\"\"pre-norm：x + dropout(attn(norm(x)))，再 x + dropout(mlp(norm(x)))。\"\"\"

            def __init__(self, hidden_size, num_heads, intermediate_size, dropout=0.0, eps=1e-6):
                super().__init__()
                raise NotImplementedError("✏️ 在这里建两个 RMSNorm、注意力、MLP 和 dropout")

            def forward(self, x, cos, sin, mask, past_kv=None):
                raise NotImplementedError("✏️ 在这里写两个 pre-norm 残差；返回 (x, present)")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    DIYDecoderLayer = check_decoder_layer(DIYDecoderLayer)
    """),
    md("""
    **post-norm 装得进、算得不同。** 下面的 `PostNormLayer` 用同样的子模块，只把顺序换成「先加残差、再归一化」。
    先猜：`strict=True` 装你的层的权重会报错吗？两者的输出一样吗？每个位置输出的 RMS 各是多少？
    """),
    code("""
    class PostNormLayer(nn.Module):
        \"\"\"post-norm：x = norm(x + attn(x))，再 x = norm(x + mlp(x))（eval 下看，不加 dropout）。\"\"\"

        def __init__(self, hidden_size, num_heads, intermediate_size):
            super().__init__()
            self.input_layernorm = RMSNorm(hidden_size)
            self.self_attn = DIYAttention(hidden_size, num_heads)
            self.post_attention_layernorm = RMSNorm(hidden_size)
            self.mlp = DIYMLP(hidden_size, intermediate_size)

        def forward(self, x, cos, sin, mask, past_kv=None):
            h, present = self.self_attn(x, cos, sin, mask, past_kv)
            x = self.input_layernorm(x + h)
            return self.post_attention_layernorm(x + self.mlp(x)), present


    pre_layer = DIYDecoderLayer(hidden_size, num_heads, intermediate_size).eval()
    post_layer = PostNormLayer(hidden_size, num_heads, intermediate_size).eval()
    post_layer.load_state_dict(pre_layer.state_dict(), strict=True)             # 同样的名字和形状：装得进
    x = torch.randn(2, 10, hidden_size) * 3                                    # RMS 约为 3 的输入
    cos, sin = RotaryEmbedding(hidden_size // num_heads, max_seq_len)(0, 10)
    with torch.no_grad():
        pre_out = pre_layer(x, cos, sin, causal_mask(None, 0, 10))[0]
        post_out = post_layer(x, cos, sin, causal_mask(None, 0, 10))[0]
    print("post-norm 的层 strict=True 装进了 pre-norm 层的权重:", list(post_layer.state_dict()) == list(pre_layer.state_dict()))
    print("同样的权重、同样的输入，输出相同:", torch.allclose(pre_out, post_out, atol=1e-4))
    for name, out in (("pre-norm ", pre_out), ("post-norm", post_out)):
        rms = out.pow(2).mean(dim=-1).sqrt()
        print(f"{name} 输出每个位置的 RMS: {rms.min().item():.2f} … {rms.max().item():.2f}")
    """),
    md("""
    post-norm 每层最后都归一化，输出的 RMS 总是 1；pre-norm 的残差这条路从不归一化，输出的尺度就是「输入 + 各子层输出」加出来的
    （这里约为输入的 3，0.1 第 2 节还看到它随层数变大）。所以 pre-norm 的模型在所有层之后还需要一个 **final norm**：
    把交给 `lm_head` 的向量拉回同一个尺度。下一个练习里它就是 `DIYModel` 的 `norm`。
    """),
    md("""
    ## 5. ✏️ 练习 0.4d：完整的 DIYModel

    数据流：`input_ids` → `embed_tokens` → `num_layers` 个解码层 → `norm` → `hidden_states (B, L, C)`。

    要求（接口与第一步起用的相同）：
    - `DIYModel(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)`，六个位置参数；
      `head_dim = hidden_size // num_heads`；MLP 宽度按第 2 节的规则算（256 → 704）；
    - 子模块：`embed_tokens`、`layers`（`nn.ModuleList`，每层一个**新的** `DIYDecoderLayer`）、`norm`；RoPE 表在模型里建一份
      （比如 `self.rotary`），各层共用；
    - 初始化：每个 `nn.Linear`、`nn.Embedding` 的 weight 用 N(0, 0.02)（`self.apply(...)`），RMSNorm 的 weight 保持 1；
    - `forward(input_ids, seq_lengths=None, past_key_values=None, use_cache=False, is_training=True)`：
      缓存长度 `past_len` = 第 0 层缓存里 k 的长度（没有缓存时 0）；cos/sin 和 mask 都从 `past_len` 起算；
      第 i 层拿 `past_key_values[i]`；`use_cache=True` 时返回 `(hidden_states, presents)`（每层一个 `(k, v)` 的列表），否则只返回 `hidden_states`。
      `is_training` 只选计算路径，dropout 由 `train()` / `eval()` 决定。

    **dropout 和 `is_training`**：学习计划的训练调用是 `model(input_ids, is_training=True)`，于是有人把 dropout 写成
    `F.dropout(x, p, training=is_training)`。课程里两种都能用：课程调用骨干时 `is_training` 总是和模式一致（`train()` 时 `True`，
    `eval()` 和带缓存的推理时 `False`），0.4 的符合性检查和第一～三步都按这个规矩调用。这里按 PyTorch 的惯例写：
    dropout 只看 `self.training`（`nn.Dropout` 自己就是这样），`is_training` 只选路径——0.4d 的自检检查的是这种写法，
    所以 eval 下 `is_training` 取什么都不改变输出。
    """),
    exercise(
        solution="""
        # ✏️ 练习 0.4d
        class DIYModel(nn.Module):
            \"\"\"embed_tokens → layers → norm；返回 hidden_states (B, L, C)。\"\"\"

            def __init__(self, vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout):
                super().__init__()
                if hidden_size % num_heads != 0 or (hidden_size // num_heads) % 2 != 0:
                    raise ValueError(f"hidden_size={hidden_size} 要能被 num_heads={num_heads} 整除，且每个头的维度是偶数")
                intermediate_size = 64 * math.ceil(int(8 * hidden_size / 3) / 64)   # 256 → 704
                self.embed_tokens = nn.Embedding(vocab_size, hidden_size)
                self.layers = nn.ModuleList(
                    DIYDecoderLayer(hidden_size, num_heads, intermediate_size, dropout) for _ in range(num_layers))
                self.norm = RMSNorm(hidden_size)
                self.rotary = RotaryEmbedding(hidden_size // num_heads, max_seq_len)   # 各层共用
                self.apply(self._init_weights)

            def _init_weights(self, module):
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(module.weight, mean=0.0, std=0.02)

            def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False, is_training=True):
                B, L = input_ids.shape
                past_len = 0 if past_key_values is None else past_key_values[0][0].shape[2]
                x = self.embed_tokens(input_ids)                      # (B, L, C)
                cos, sin = self.rotary(past_len, L)                   # (L, D) each，接在缓存后面
                mask = causal_mask(seq_lengths, past_len, L)          # (1 或 B, 1, L, P+L)
                presents = []
                for i, layer in enumerate(self.layers):
                    past_kv = None if past_key_values is None else past_key_values[i]
                    x, present = layer(x, cos, sin, mask, past_kv)    # (B, L, C)
                    presents.append(present)
                hidden_states = self.norm(x)                          # (B, L, C)
                if use_cache:
                    return hidden_states, presents
                return hidden_states
        """,
        stub="""
        # ✏️ 练习 0.4d
        class DIYModel(nn.Module):
            \"\"\"embed_tokens → layers → norm；返回 hidden_states (B, L, C)。\"\"\"

            def __init__(self, vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout):
                super().__init__()
                raise NotImplementedError("✏️ 在这里建 embed_tokens、layers、norm、RoPE 表，并初始化")

            def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False, is_training=True):
                raise NotImplementedError("✏️ 在这里写前向；use_cache=True 时返回 (hidden_states, presents)")
        """,
    ),
    check("""
    # 自检：运行后看 ✅ / ⏳ / ❌
    DIYModel = check_diy_model(DIYModel)
    """),
    md("""
    ## 6. 参数量：先手算，再打印

    - embedding：`6400 × 256`；
    - 每层：注意力 `4 × 256 × 256`，MLP `3 × 256 × 704`，两个 RMSNorm 各 `256`；
    - 最终 norm：`256`。RoPE 表不是参数。
    """),
    code("""
    model = DIYModel(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)
    per_layer = 4 * hidden_size ** 2 + 3 * hidden_size * intermediate_size + 2 * hidden_size
    by_hand = vocab_size * hidden_size + num_layers * per_layer + hidden_size
    counted = sum(p.numel() for p in model.parameters())
    print(f"embedding {vocab_size * hidden_size:,} + {num_layers} × 每层 {per_layer:,} + 最终 norm {hidden_size} = {by_hand:,}")
    print(f"model.parameters() 数出来: {counted:,}   相同: {by_hand == counted}")
    """),
    md("""
    ## 7. 名字：与 transformers 一一对应
    """),
    code("""
    keys = list(model.state_dict())
    print(len(keys), "个键:")
    for key in keys[:11] + ["…"] + keys[-1:]:
        print("  ", key)
    print("没有 cos / sin:", not any(k.endswith(("cos", "sin")) for k in keys))
    """),
    md("""
    ## 8. 装进课程的参考权重，与参考实现和 transformers 对照

    课程的参考实现 `diy.DIYModel` 用同样的超参、固定随机种子构造；它的权重 `strict=True` 装进你的模型（名字多一个少一个都会报错），
    再装进 `transformers` 的 `LlamaModel`。eval 模式、float32 下比较三者的 `hidden_states`（只在 eval 下比：`transformers` 的 Llama
    没有残差分支的 dropout）。
    """),
    code("""
    torch.manual_seed(0)
    reference = diy.DIYModel(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    model.eval()
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
                         num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
                         max_position_embeddings=max_seq_len, rms_norm_eps=1e-6,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                         attention_bias=False, mlp_bias=False)
    llama = LlamaModel(config).eval()
    llama.load_state_dict(model.state_dict(), strict=True)
    tokenizer = diy.CharTokenizer()
    input_ids = torch.tensor([tokenizer.encode(diy.load_passage()[:24])])   # (1, 24)
    with torch.no_grad():
        mine = model(input_ids, is_training=False)             # eval：is_training 和模式一致
        theirs_diy = reference(input_ids, is_training=False)
        theirs_llama = llama(input_ids=input_ids).last_hidden_state
    print("hidden_states:", tuple(mine.shape), mine.dtype)
    print("与 diy.DIYModel 相同（< 1e-5）:", torch.allclose(mine, theirs_diy, atol=1e-5))
    print("与 LlamaModel 相同（< 1e-5）:  ", torch.allclose(mine, theirs_llama, atol=1e-5))
    """),
    md("""
    ## 9. 带缓存 ≡ 一次算完；dropout 跟着 train() / eval()

    eval 下先 prefill 前 6 个，其余逐个喂、把 `presents` 传回去；再比较 train 模式下两次前向。先猜：train 模式下两次前向相同吗？
    """),
    code("""
    with torch.no_grad():
        hidden, presents = model(input_ids[:, :6], is_training=False, use_cache=True)
        pieces = [hidden]
        for t in range(6, input_ids.shape[1]):
            hidden, presents = model(input_ids[:, t:t + 1], past_key_values=presents, is_training=False, use_cache=True)
            pieces.append(hidden)
        print("presents:", len(presents), "层，第 0 层 k", tuple(presents[0][0].shape))
        print("带缓存 ≡ 一次算完（< 1e-5）:", torch.allclose(torch.cat(pieces, dim=1), mine, atol=1e-5))
        print("eval 下两次相同:", torch.equal(model(input_ids, is_training=False), model(input_ids, is_training=False)))
        model.train()
        print("train 下两次相同:", torch.equal(model(input_ids), model(input_ids)))
    """),
    md("""
    ## 10. 每个参数都有梯度
    """),
    code("""
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(input_ids)                                   # (1, 24, 256)
    (out * torch.randn(out.shape)).sum().backward()          # 随便造一个标量
    no_grad = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    print(f"{len(list(model.parameters()))} 个参数张量，没有梯度的: {no_grad}")
    """),
    md("""
    ## 11. 先猜一猜：`[layer] * 2`

    有人这样建层：`nn.ModuleList([DIYDecoderLayer(...)] * 2)`。先猜：它的参数量是多少？两层的权重是不是同一份？
    """),
    code("""
    layer = DIYDecoderLayer(hidden_size, num_heads, intermediate_size, dropout)
    shared = nn.ModuleList([layer] * 2)
    fresh = nn.ModuleList(DIYDecoderLayer(hidden_size, num_heads, intermediate_size, dropout) for _ in range(2))
    print(f"[layer] * 2: {sum(p.numel() for p in shared.parameters()):,} 个参数，两层是同一个对象: {shared[0] is shared[1]}")
    print(f"每层新建:    {sum(p.numel() for p in fresh.parameters()):,} 个参数，两层是同一个对象: {fresh[0] is fresh[1]}")
    """),
    md("""
    `[layer] * 2` 只是把**同一个**对象放了两次：看起来两层，其实共用一份权重，`parameters()` 也只数一次。
    用 Python 列表（不用 `nn.ModuleList`）更糟：里面的层根本没有注册，`parameters()` 和 `state_dict()` 里都没有它们，优化器也看不见。

    ## 12. 存成你自己的 DIYModel.py

    下一格把你在这个 notebook 里定义的 `RMSNorm`、`RotaryEmbedding`、`rotate_half`、`apply_rotary`、`causal_mask`、`DIYAttention`、
    `DIYMLP`、`DIYDecoderLayer`、`DIYModel` 的**源代码**（你写的那些单元格里的原文）写进这个 notebook 所在文件夹的 `DIYModel.py`。
    只有全部自检 ✅ 才会写：还在用参考答案的零件不会被抄进你的文件。改了代码就重新运行练习、自检和这一格。
    """),
    code("""
    exported = export_backbone([RMSNorm, RotaryEmbedding, rotate_half, apply_rotary, causal_mask, DIYAttention,
                                DIYMLP, DIYDecoderLayer, DIYModel], "DIYModel.py")
    """),
    md("""
    ## 13. 课程的符合性检查

    后面三步对骨干网络的全部要求（构造、训练路径、缓存路径、因果、padding、cache ≡ no cache、dropout、梯度、最长序列），
    用课程的短文逐项检查你的文件。✅ 是必须满足的；⚠️ 是可选的：`attention_mask`（左 padding 的批量生成）你还没有做——
    第三步 3.3 讲左 padding，它的练习 3.3d 带你把 `attention_mask` 加进这个文件，之后 3.3 的每一段都能在你的骨干上跑。
    """),
    code("""
    from diy.backbone import BackboneSpec
    from diy.classroom.conformance import passed, run

    if exported:
        items = run(BackboneSpec.parse("DIYModel.py"))
        for item in items:
            print(item.render())
        print("必须满足的都满足了:", passed(items))
    else:
        print("还没有导出 DIYModel.py：先让上面的自检全部 ✅，再从练习单元格起重新运行。")
    """),
    md("""
    在终端里也能跑同样的检查：在仓库根目录运行 `.venv/bin/python -m diy.classroom.doctor --backbone notebooks/DIYModel.py`。

    ## 常见错误

    | 症状 | 原因 | 修复 |
    | --- | --- | --- |
    | 自检说 post-norm | 先加残差再归一化 | `x = x + attn(norm(x))` |
    | 自检说没有 `norm.weight` | 最后忘了 `norm` | `hidden_states = self.norm(x)` |
    | 自检说 `[layer] * n` | 各层共用一个对象 | `nn.ModuleList(... for _ in range(n))` |
    | 自检说 Python 列表 | 参数没注册 | `nn.ModuleList` |
    | 自检说 silu 加在了 up_proj 上 | gate 和 up 弄反了 | `silu(gate_proj(x)) * up_proj(x)` |
    | `strict=True` 报缺少/多余的键 | 名字与 transformers 不同（`blocks`、`attn`、`wq`……） | 照本节的名字 |
    | 带缓存的结果不同 | 没有从 `past_len` 起算位置和 mask | `self.rotary(past_len, L)`、`causal_mask(..., past_len, L)` |

    ## 小结（第零步）

    你现在有：
    - 自己写的 `DIYModel.py`：RMSNorm、RoPE、因果自注意力（带 KV cache）、SwiGLU、pre-norm 解码层和 `DIYModel`；
    - 与课程参考实现和 `transformers` 的 `LlamaModel` 在同一份权重上相同的 `hidden_states`，3,245,312 个参数，名字一一对应；
    - 与后面三步一致的接口：`DIYModel(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)`；训练路径返回 `hidden_states`，
      推理且 `use_cache=True` 时返回 `(hidden_states, presents)`。

    **下一步**：让课程用你的骨干网络——关掉 JupyterLab，在仓库根目录运行 `make lab BACKBONE=notebooks/DIYModel.py`
    （或设置环境变量 `DIY_BACKBONE=完整路径/notebooks/DIYModel.py`；README 的「已经有自己的 DIYModel？」一节），它会打开 **第一步 1.1**：在 `hidden_states` 上加 `lm_head`，得到 logits。
    """),
]

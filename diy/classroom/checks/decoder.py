"""Self-checks of 0.4a-c: the parts of 0.1-0.3 re-checked where they are pasted in (0.4a),
the SwiGLU MLP (0.4b) and the pre-norm decoder layer (0.4c)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ... import model as reference_model
from ...errors import describe_value
from .attention import (
    ATTENTION_NAMES,
    ReferenceAttention,
    check_attention_once,
    check_mask_once,
    reference_causal_mask,
)
from .norm import ReferenceRMSNorm, check_rms_norm_once
from .parts import (
    EPS,
    close,
    require_shape,
    require_unchanged,
    returned_tensor,
)
from .report import Failed, Todo, call_learner, mistake_matcher, run_check
from .rope import (
    ReferenceRotaryEmbedding,
    check_apply_rotary_alone,
    check_rotary_once,
    check_rotate_half,
    check_tables_follow_to,
    reference_apply_rotary,
    reference_rotate_half,
)

# ---------------------------------------------------------------------- 0.4a parts, re-checked

def check_backbone_parts(RMSNorm, RotaryEmbedding, rotate_half, apply_rotary, causal_mask,
                         DIYAttention):
    """Check exercise 0.4a (the parts of 0.1–0.3 pasted in); return the six to use from here on."""
    parts = (RMSNorm, RotaryEmbedding, rotate_half, apply_rotary, causal_mask, DIYAttention)
    reference = (ReferenceRMSNorm, ReferenceRotaryEmbedding, reference_rotate_half,
                 reference_apply_rotary, reference_causal_mask, ReferenceAttention)

    def body() -> str:
        for name, lesson, test in (
                ("RMSNorm", "0.1", lambda: check_rms_norm_once(RMSNorm, 256)),
                ("RotaryEmbedding", "0.2a", lambda: (check_rotary_once(RotaryEmbedding, 64, 128, 10000.0),
                                                     check_tables_follow_to(RotaryEmbedding))),
                ("rotate_half", "0.2b", lambda: check_rotate_half(rotate_half)),
                ("apply_rotary", "0.2b", lambda: check_apply_rotary_alone(apply_rotary)),
                ("causal_mask", "0.3a", lambda: [check_mask_once(causal_mask, *case, 3) for case in (
                    (None, 0, 6), (None, 4, 3), (torch.tensor([9, 7]), 4, 5))]),
                ("DIYAttention", "0.3b", lambda: check_attention_once(DIYAttention, 32, 4, 0.1))):
            try:
                test()
            except Todo as todo:
                raise Todo(f"{name}（{lesson}）：{todo}") from None
            except Failed as failed:
                raise Failed(f"{name}（{lesson}）：{failed.problem}", failed.fix) from None
        return "RMSNorm、RotaryEmbedding、rotate_half、apply_rotary、causal_mask、DIYAttention 都再次通过了 0.1～0.3 的自检。"

    return run_check("0.4a", body, parts, reference)


# --------------------------------------------------------------------------------- 0.4b MLP

class ReferenceMLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


MLP_NAMES = ("gate_proj.weight", "up_proj.weight", "down_proj.weight")
MLP_HINTS = {
    "silu_on_up": ("silu 加在了 up_proj 上：门控（gate_proj）那一路才过 silu。",
                   "down_proj(F.silu(gate_proj(x)) * up_proj(x))。"),
    "no_silu": ("没有 silu：两路直接相乘（那是不带激活的 bilinear）。", "down_proj(F.silu(gate_proj(x)) * up_proj(x))。"),
    "gelu": ("激活函数用的是 GELU，Llama 的 SwiGLU 用 SiLU。", "F.silu(gate_proj(x))（= x * sigmoid(x)）。"),
    "relu": ("激活函数用的是 ReLU，Llama 的 SwiGLU 用 SiLU。", "F.silu(gate_proj(x))。"),
    "sigmoid": ("门用的是 sigmoid（GLU），SwiGLU 用 silu（x · sigmoid(x)）。", "F.silu(gate_proj(x))。"),
    "silu_after": ("silu 加在了乘积之后：应只作用在 gate_proj 那一路。", "down_proj(F.silu(gate_proj(x)) * up_proj(x))。"),
    "no_up": ("没有用 up_proj：SwiGLU 是两路（gate、up）相乘。", "down_proj(F.silu(gate_proj(x)) * up_proj(x))。"),
}


def check_mlp(DIYMLP):
    """Check exercise 0.4b; return the MLP class to use from here on."""

    def body() -> str:
        for C, F_ in ((32, 96), (256, 704)):
            _check_mlp_once(DIYMLP, C, F_)
        return ("gate_proj、up_proj (C → 704)、down_proj (704 → C) 都不带 bias；"
                "输出 = down_proj(silu(gate_proj(x)) * up_proj(x))；MLP 参数 540,672 个。")

    return run_check("0.4b", body, DIYMLP, ReferenceMLP)


def _check_mlp_once(DIYMLP, C, F_):
    if DIYMLP is None:
        raise Todo("DIYMLP 还没有定义。")

    def diagnose(exc):
        if isinstance(exc, TypeError) and "argument" in str(exc):
            return (f"构造 DIYMLP({C}, {F_}) 失败：{exc}。", "__init__(self, hidden_size, intermediate_size)。")
        return None

    mlp = call_learner(DIYMLP, C, F_, name="DIYMLP(...)", diagnose=diagnose)
    if not isinstance(mlp, nn.Module):
        raise Failed(f"DIYMLP(...) 得到的是 {describe_value(mlp)}，应是 nn.Module。", "class DIYMLP(nn.Module): ...")
    state = mlp.state_dict()
    if any(k.endswith("bias") for k in state):
        raise Failed("MLP 的线性层带了 bias。", "nn.Linear(..., bias=False)：Llama 的 MLP 不带 bias。")
    if set(state) != set(MLP_NAMES):
        raise Failed(f"参数的名字是 {sorted(state)}，应为 {list(MLP_NAMES)}。",
                     "self.gate_proj、self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)；"
                     "self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)。")
    for name, want in (("gate_proj.weight", (F_, C)), ("up_proj.weight", (F_, C)), ("down_proj.weight", (C, F_))):
        if tuple(state[name].shape) != want:
            raise Failed(f"{name} 的形状是 {tuple(state[name].shape)}，应为 {want}"
                         f"（hidden_size={C}，intermediate_size={F_}）。",
                         "gate/up：nn.Linear(hidden_size, intermediate_size)；down：nn.Linear(intermediate_size, hidden_size)。")
    w = {k: v.detach() for k, v in state.items()}
    g = torch.Generator().manual_seed(C)
    x = torch.randn(2, 5, C, generator=g)
    before = x.clone()
    with torch.no_grad():
        out = returned_tensor(call_learner(mlp, x, name="DIYMLP.forward"), "DIYMLP.forward")
    require_unchanged(before, x, "DIYMLP.forward")
    require_shape(out, x.shape, "输出", "down_proj 把 intermediate_size 变回 hidden_size。")
    gate, up = x @ w["gate_proj.weight"].T, x @ w["up_proj.weight"].T
    down = w["down_proj.weight"].T
    if not close(out, (F.silu(gate) * up) @ down, 1e-5):
        name = mistake_matcher(out, {
            "silu_on_up": (gate * F.silu(up)) @ down, "no_silu": (gate * up) @ down,
            "gelu": (F.gelu(gate) * up) @ down, "relu": (F.relu(gate) * up) @ down,
            "sigmoid": (torch.sigmoid(gate) * up) @ down, "silu_after": F.silu(gate * up) @ down,
            "no_up": F.silu(gate) @ down}, atol=1e-5)
        if name is not None:
            raise Failed(*MLP_HINTS[name])
        raise Failed("输出与 down_proj(silu(gate_proj(x)) * up_proj(x)) 不同。",
                     "down_proj(F.silu(gate_proj(x)) * up_proj(x))。")


# ------------------------------------------------------------------------ 0.4c decoder layer

class ReferenceDecoderLayer(nn.Module):
    """Pre-norm: x + dropout(attn(norm(x))), then x + dropout(mlp(norm(x)))."""

    def __init__(self, hidden_size, num_heads, intermediate_size, dropout=0.0, eps=EPS):
        super().__init__()
        self.input_layernorm = ReferenceRMSNorm(hidden_size, eps)
        self.self_attn = ReferenceAttention(hidden_size, num_heads, dropout)
        self.post_attention_layernorm = ReferenceRMSNorm(hidden_size, eps)
        self.mlp = ReferenceMLP(hidden_size, intermediate_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, cos, sin, mask, past_kv=None):
        h, present = self.self_attn(self.input_layernorm(x), cos, sin, mask, past_kv)
        x = x + self.dropout(h)  # (B, L, C)
        x = x + self.dropout(self.mlp(self.post_attention_layernorm(x)))  # (B, L, C)
        return x, present


LAYER_NAMES = ("input_layernorm.weight", "post_attention_layernorm.weight",
               *(f"self_attn.{n}" for n in ATTENTION_NAMES), *(f"mlp.{n}" for n in MLP_NAMES))
LAYER_HINTS = {
    "post_norm": ("这是 post-norm（先加残差再归一化）：课程和 Llama 用 pre-norm，残差这条路本身不归一化。",
                  "x = x + dropout(self_attn(input_layernorm(x), ...))；再 x = x + dropout(mlp(post_attention_layernorm(x)))。"),
    "normed_residual": ("残差加在了归一化之后的 x 上：残差这条路本身不该归一化。",
                        "h = self.input_layernorm(x) 只交给子层；残差用原来的 x：x = x + dropout(attn_out)。"),
    "no_residual": ("没有残差：子层的输出直接替换了 x。", "x = x + dropout(子层输出)：两个子层都要加回 x。"),
    "swapped_norms": ("两个 RMSNorm 用反了：注意力前是 input_layernorm，MLP 前是 post_attention_layernorm。",
                      "self_attn(self.input_layernorm(x))；mlp(self.post_attention_layernorm(x))。"),
    "one_norm": ("MLP 前也用了 input_layernorm（post_attention_layernorm 没用上）。",
                 "mlp(self.post_attention_layernorm(x))。"),
    "parallel": ("MLP 用的是进入这一层时的 x（并行），不是加完注意力残差之后的 x。",
                 "先 x = x + attn_out，再用新的 x：x = x + mlp(post_attention_layernorm(x))。"),
}


def check_decoder_layer(DIYDecoderLayer):
    """Check exercise 0.4c; return the decoder-layer class to use from here on."""

    def body() -> str:
        _check_layer_once(DIYDecoderLayer, 32, 4, 96, 0.0)
        _check_layer_once(DIYDecoderLayer, 256, 4, 704, 0.1)
        return ("名字与 transformers 的 LlamaDecoderLayer 相同；pre-norm 的两个残差、"
                "present 原样返回；带缓存 ≡ 一次算完；dropout 只在 train() 时起作用。")

    return run_check("0.4c", body, DIYDecoderLayer, ReferenceDecoderLayer)


def _layer_variants(ref, x, cos, sin, mask):
    attn = lambda h: ref.self_attn(h, cos, sin, mask)[0]  # noqa: E731
    n1, n2, mlp = ref.input_layernorm, ref.post_attention_layernorm, ref.mlp
    h = x + attn(n1(x))
    post = n1(x + attn(x))
    normed = n1(x)
    return {
        "post_norm": n2(post + mlp(post)),
        "normed_residual": (lambda y: (lambda z: z + mlp(n2(z)))(y))(normed + attn(normed)),
        "no_residual": mlp(n2(attn(n1(x)))),
        "swapped_norms": (lambda y: y + mlp(n1(y)))(x + attn(n2(x))),
        "one_norm": h + mlp(n1(h)),
        "parallel": x + attn(n1(x)) + mlp(n2(x)),
    }


def _check_layer_once(DIYDecoderLayer, C, H, F_, p):
    if DIYDecoderLayer is None:
        raise Todo("DIYDecoderLayer 还没有定义。")

    def diagnose(exc):
        if isinstance(exc, TypeError) and "argument" in str(exc):
            return (f"构造 DIYDecoderLayer({C}, {H}, {F_}, {p}) 失败：{exc}。",
                    "__init__(self, hidden_size, num_heads, intermediate_size, dropout=0.0, eps=1e-6)。")
        return None

    layer = call_learner(DIYDecoderLayer, C, H, F_, p, name="DIYDecoderLayer(...)", diagnose=diagnose)
    if not isinstance(layer, nn.Module):
        raise Failed(f"DIYDecoderLayer(...) 得到的是 {describe_value(layer)}，应是 nn.Module。",
                     "class DIYDecoderLayer(nn.Module): ...")
    keys = set(layer.state_dict())
    if keys != set(LAYER_NAMES):
        missing, extra = sorted(set(LAYER_NAMES) - keys), sorted(keys - set(LAYER_NAMES))
        raise Failed(f"参数的名字与 Llama 的解码层不同：缺少 {missing[:3]}，多出 {extra[:3]}。",
                     "self.input_layernorm、self.self_attn、self.post_attention_layernorm、self.mlp"
                     "（两个 RMSNorm、DIYAttention、DIYMLP）。")
    ref = ReferenceDecoderLayer(C, H, F_, p).eval()
    g = torch.Generator().manual_seed(C + 1)
    with torch.no_grad():
        for name, t in ref.state_dict().items():  # random norm weights too: swapped norms show
            t.copy_(torch.rand(t.shape, generator=g) + 0.5 if "layernorm" in name
                    else torch.randn(t.shape, generator=g) * 0.05)
    layer.load_state_dict(ref.state_dict(), strict=True)
    layer.eval()
    rope = reference_model.RotaryEmbedding(C // H, 64, 10000.0)
    B, L = 2, 9
    x = torch.randn(B, L, C, generator=g)
    cos, sin = rope(0, L)
    mask = reference_causal_mask(None, 0, L)

    def call(*args):
        out = call_learner(layer, *args, name="DIYDecoderLayer.forward")
        if not (isinstance(out, tuple) and len(out) == 2):
            raise Failed(f"forward 应返回 (x, present) 两个值，实际返回 {describe_value(out)}。",
                         "return x, present：present 是注意力返回的 (k, v)，原样交出去。")
        return returned_tensor(out[0], "DIYDecoderLayer.forward 的第一个返回值"), out[1]

    before = x.clone()
    with torch.no_grad():
        y, present = call(x, cos, sin, mask)
        again, _ = call(x, cos, sin, mask)
        want, want_present = ref(x, cos, sin, mask)
    require_unchanged(before, x, "DIYDecoderLayer.forward")
    if not torch.equal(y, again):
        raise Failed("eval() 之后同样的输入两次输出不同：残差分支的 dropout 在 eval 下还在起作用。",
                     "用 nn.Dropout 子模块（跟随 train()/eval()），或 F.dropout(..., training=self.training)。")
    require_shape(y, (B, L, C), "输出", "解码层不改变形状。")
    if not close(y, want, 1e-5):
        with torch.no_grad():
            name = mistake_matcher(y, _layer_variants(ref, x, cos, sin, mask), atol=1e-5)
        if name is not None:
            raise Failed(*LAYER_HINTS[name])
        raise Failed("输出与 pre-norm 解码层不同。",
                     "x = x + dropout(self_attn(input_layernorm(x), cos, sin, mask, past_kv)[0])；"
                     "x = x + dropout(mlp(post_attention_layernorm(x)))。")
    if not (isinstance(present, tuple | list) and len(present) == 2
            and all(isinstance(t, torch.Tensor) and close(t, w, 1e-6)
                    for t, w in zip(present, want_present, strict=True))):
        raise Failed("返回的 present 不是注意力给出的 (k, v)。",
                     "h, present = self.self_attn(...)；最后 return x, present。")
    try:
        with torch.no_grad():
            first, past = call(x[:, :6], *rope(0, 6), reference_causal_mask(None, 0, 6))
            rest, _ = call(x[:, 6:], *rope(6, 3), reference_causal_mask(None, 6, 3), past)
    except Failed as failed:
        raise Failed(f"带缓存（先 6 个、再 3 个）时出错（{failed.problem}）：past_kv 没有交给注意力？",
                     "self.self_attn(self.input_layernorm(x), cos, sin, mask, past_kv)。") from None
    if not close(torch.cat((first, rest), 1), y, 1e-5):
        raise Failed("带缓存（先 6 个、再 3 个）与一次算完不同：past_kv 没有交给注意力。",
                     "self.self_attn(self.input_layernorm(x), cos, sin, mask, past_kv)。")
    if p > 0:
        layer.train()
        with torch.no_grad():
            ref.train()
            a, _ = call(x, cos, sin, mask)
            b, _ = call(x, cos, sin, mask)
        layer.eval()
        if torch.equal(a, b):
            raise Failed(f"train() 时 dropout={p} 没有起作用。", "残差分支上加 nn.Dropout(dropout)。")
        _check_residual_dropout(layer, ref, call, (x, cos, sin, mask), p)


def _check_residual_dropout(layer, ref, call, args, p) -> None:
    """Each residual branch's dropout, one at a time. Two train-mode outputs differ as soon as
    any dropout is on (the attention's own is enough), so each branch is isolated: the other
    branch's output projection set to 0 (its residual adds nothing) and the attention's own
    dropout off (self_attn.eval()); what still varies between two calls is that branch's."""
    state = {name: t.clone() for name, t in ref.state_dict().items()}
    for branch, silenced in (("注意力", "mlp.down_proj.weight"), ("MLP", "self_attn.o_proj.weight")):
        weights = dict(state)
        weights[silenced] = torch.zeros_like(state[silenced])
        layer.load_state_dict(weights, strict=True)
        layer.train()
        layer.self_attn.eval()  # the attention's own dropout off
        with torch.no_grad():
            a, _ = call(*args)
            b, _ = call(*args)
        layer.eval()
        if torch.equal(a, b):
            raise Failed(f"{branch}那条残差分支上没有 dropout：train() 时只有注意力内部的 dropout 在起作用"
                         f"（两次输出不同只是因为它）。关掉它、只留{branch}分支时，两次输出完全相同。",
                         f"x = x + self.dropout({'h' if branch == '注意力' else 'self.mlp(...)'})："
                         "两个残差分支都过 nn.Dropout(dropout)（或 F.dropout(..., training=self.training)）。")
    layer.load_state_dict(state, strict=True)



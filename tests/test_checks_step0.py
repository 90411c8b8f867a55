"""Step 0's self-checks: the reference passes, the placeholder is ⏳, every mistake of the study
plan's 常见错误 gets its own hint, correct but different answers pass, nothing raises."""

import pytest
import torch
from torch import nn

from diy import model as reference_model
from diy.classroom.checks import (
    check_apply_rotary,
    check_attention,
    check_backbone_parts,
    check_causal_mask,
    check_decoder_layer,
    check_diy_model,
    check_mlp,
    check_rms_norm,
    check_rotary,
)
from diy.classroom.checks.attention import ReferenceAttention, reference_causal_mask
from diy.classroom.checks.decoder import ReferenceDecoderLayer, ReferenceMLP
from diy.classroom.checks.export import export_backbone
from diy.classroom.checks.norm import ReferenceRMSNorm
from diy.classroom.checks.rope import (
    ReferenceRotaryEmbedding,
    reference_apply_rotary,
    reference_rotate_half,
)
from tests.check_helpers import assert_caught, placeholder, verdict


def passes(capsys, returned, learner, exercise):
    assert returned is learner or returned == learner
    text = verdict(capsys)
    assert text.startswith(f"✅ 练习 {exercise} 通过"), text
    return text


# ------------------------------------------------------------------------------ 0.1 RMSNorm

def rms_norm_class(forward=None, weight=torch.ones, eps_attr=True, extra=None):
    """A learner RMSNorm: the right one unless a part is replaced."""

    class RMSNorm(nn.Module):
        def __init__(self, hidden_size, eps=1e-6):
            super().__init__()
            self.weight = nn.Parameter(weight(hidden_size))
            self.eps = eps
            if extra:
                extra(self, hidden_size)

        def forward(self, x):
            if forward is not None:
                return forward(self, x)
            x32 = x.float()
            ms = x32.pow(2).mean(dim=-1, keepdim=True)
            return (x32 * torch.rsqrt(ms + self.eps)).to(x.dtype) * self.weight

    return RMSNorm


def _norm(dim=-1, eps=True, sqrt=True):
    def forward(self, x):
        x32 = x.float()
        ms = x32.pow(2).mean(dim=dim, keepdim=True)
        if not sqrt:
            return (x32 / (ms + self.eps)).to(x.dtype) * self.weight
        return (x32 * torch.rsqrt(ms + (self.eps if eps else 0))).to(x.dtype) * self.weight
    return forward


def _layer_norm(self, x):
    x32 = x.float()
    centred = x32 - x32.mean(-1, keepdim=True)
    return centred * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class TorchRMSNorm(nn.RMSNorm):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__(hidden_size, eps=eps)


class TorchRMSNormDefaultEps(nn.RMSNorm):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__(hidden_size)


class PlainRMSNorm(nn.Module):  # no float32 round trip: x² overflows float16
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x):
        return self.weight * x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps)


class WeightNotParameter(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = torch.ones(hidden_size)
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class InPlace(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x):
        x.mul_(torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))
        return x * self.weight


RMS_MISTAKES = {
    "mean over the sequence": (rms_norm_class(_norm(dim=1)), "沿错了维"),
    "missing eps": (rms_norm_class(_norm(eps=False)), "忘了 eps"),
    "missing sqrt": (rms_norm_class(_norm(sqrt=False)), "忘了开方"),
    "LayerNorm": (rms_norm_class(_layer_norm), "LayerNorm"),
    "weight zeros": (rms_norm_class(weight=torch.zeros), "初始化成了 0"),
    "weight random": (rms_norm_class(weight=torch.randn), "全 1"),
    "weight not applied": (rms_norm_class(lambda self, x: x * torch.rsqrt(
        x.pow(2).mean(-1, keepdim=True) + self.eps)), "没有乘可学的 weight"),
    "hard-coded eps 1e-5": (rms_norm_class(lambda self, x: x * torch.rsqrt(
        x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight), "1e-5"),
    "nn.RMSNorm default eps": (TorchRMSNormDefaultEps, "显式传进去"),
    "L2 norm": (rms_norm_class(lambda self, x: x / x.norm(dim=-1, keepdim=True) * self.weight),
                "L2 范数"),
    "a bias": (rms_norm_class(extra=lambda self, n: setattr(self, "bias", nn.Parameter(
        torch.zeros(n)))), "没有 bias"),
    "weight not a Parameter": (WeightNotParameter, "nn.Parameter"),
    "in place": (InPlace, "原地修改"),
    "returns None": (rms_norm_class(lambda self, x: None), "return"),
    "returns a tuple": (rms_norm_class(lambda self, x: (x, x)), "tuple"),
    "float64 output": (rms_norm_class(lambda self, x: (x.double() * torch.rsqrt(
        x.double().pow(2).mean(-1, keepdim=True) + self.eps)) * self.weight), "float64"),
    "wrong constructor": (lambda hidden_size: None, "__init__(self, hidden_size, eps=1e-6)"),
    "computed in the input dtype": (PlainRMSNorm, "float32"),
}


@pytest.mark.parametrize("mistake", RMS_MISTAKES)
def test_rms_norm_mistakes(capsys, mistake):
    cls, words = RMS_MISTAKES[mistake]
    assert_caught(capsys, check_rms_norm(cls), ReferenceRMSNorm, "0.1", words)


@pytest.mark.parametrize("cls", [ReferenceRMSNorm, TorchRMSNorm, rms_norm_class()],
                         ids=["reference", "nn.RMSNorm", "float32"])
def test_rms_norm_correct_alternatives_pass(capsys, cls):
    passes(capsys, check_rms_norm(cls), cls, "0.1")


def test_rms_norm_placeholder_and_rng(capsys):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    assert check_rms_norm(placeholder) is ReferenceRMSNorm
    assert torch.equal(torch.rand(3), expected)
    assert verdict(capsys).startswith("⏳ 练习 0.1 待完成")


# --------------------------------------------------------------------------------- 0.2 RoPE

def rope_class(inv=None, positions=None, interleaved=False, persistent=False, offset=True,
               half_table=False, swap=False, parameter=False):
    class RotaryEmbedding(nn.Module):
        def __init__(self, head_dim, max_seq_len, theta=10000.0):
            super().__init__()
            D = head_dim
            inv_freq = inv(D, theta) if inv else 1.0 / theta ** (torch.arange(0, D, 2).float() / D)
            pos = positions(max_seq_len) if positions else torch.arange(max_seq_len).float()
            angles = torch.outer(pos.float(), inv_freq)
            if not half_table:
                angles = (angles.repeat_interleave(2, -1) if interleaved
                          else torch.cat((angles, angles), -1))
            if parameter:
                self.cos = nn.Parameter(angles.cos())
                self.sin = nn.Parameter(angles.sin())
            else:
                self.register_buffer("cos", angles.cos(), persistent=persistent)
                self.register_buffer("sin", angles.sin(), persistent=persistent)

        def forward(self, start, length):
            if not offset:
                start = 0
            cos, sin = self.cos[start:start + length], self.sin[start:start + length]
            return (sin, cos) if swap else (cos, sin)

    return RotaryEmbedding


class EinsumRope(nn.Module):  # a different but correct way: einsum, float64 then float32
    def __init__(self, head_dim, max_seq_len, theta=10000.0):
        super().__init__()
        i = torch.arange(head_dim // 2, dtype=torch.float64)
        inv_freq = theta ** (-2 * i / head_dim)
        angles = torch.einsum("t,f->tf", torch.arange(max_seq_len, dtype=torch.float64), inv_freq)
        angles = angles.repeat(1, 2).float()
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, start, length):
        return self.cos.narrow(0, start, length), self.sin.narrow(0, start, length)


ROPE_MISTAKES = {
    "interleaved": (rope_class(interleaved=True), "相邻交错"),
    "exponent -i/D": (rope_class(inv=lambda D, t: 1.0 / t ** (torch.arange(0, D // 2).float() / D)),
                      "指数差了一个因子 2"),
    "no division by D": (rope_class(inv=lambda D, t: 1.0 / t ** torch.arange(0, D, 2).float()),
                         "忘了除以 D"),
    "positive exponent": (rope_class(inv=lambda D, t: t ** (torch.arange(0, D, 2).float() / D)),
                          "少了倒数"),
    "positions from 1": (rope_class(positions=lambda T: torch.arange(1, T + 1)), "从 1 开始"),
    "offset ignored": (rope_class(offset=False), "忽略了 start"),
    "persistent buffers": (rope_class(persistent=True), "persistent=False"),
    "tables as parameters": (rope_class(parameter=True), "nn.Parameter"),
    "half table": (rope_class(half_table=True), "拼成两份"),
    "cos and sin swapped": (rope_class(swap=True), "返回反了"),
}


@pytest.mark.parametrize("mistake", ROPE_MISTAKES)
def test_rope_mistakes(capsys, mistake):
    cls, words = ROPE_MISTAKES[mistake]
    assert_caught(capsys, check_rotary(cls), ReferenceRotaryEmbedding, "0.2a", words)


@pytest.mark.parametrize("cls", [ReferenceRotaryEmbedding, EinsumRope, rope_class()],
                         ids=["reference", "einsum", "learner"])
def test_rope_correct_alternatives_pass(capsys, cls):
    passes(capsys, check_rotary(cls), cls, "0.2a")


def interleaved_rotate_half(x):
    pairs = x.unflatten(-1, (x.shape[-1] // 2, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), -1).flatten(-2)


ROTATE_MISTAKES = {
    "interleaved rotate_half": (interleaved_rotate_half, reference_apply_rotary, "相邻交错"),
    "sign": (lambda x: torch.cat((x[..., x.shape[-1] // 2:], -x[..., :x.shape[-1] // 2]), -1),
             reference_apply_rotary, "负号放错了"),
    "no swap": (lambda x: torch.cat((x[..., :x.shape[-1] // 2], -x[..., x.shape[-1] // 2:]), -1),
                reference_apply_rotary, "没有交换"),
    "hard-coded 32": (lambda x: torch.cat((-x[..., 32:], x[..., :32]), -1),
                      reference_apply_rotary, "不要写死"),
    "minus in apply": (reference_rotate_half,
                       lambda x, c, s: x * c - reference_rotate_half(x) * s, "符号错了"),
    "cos and sin swapped": (reference_rotate_half,
                            lambda x, c, s: x * s + reference_rotate_half(x) * c, "用反了"),
    "only cos": (reference_rotate_half, lambda x, c, s: x * c, "只乘了 cos"),
    "in place": (reference_rotate_half,
                 lambda x, c, s: x.mul_(c).add_(reference_rotate_half(x) * s), "原地修改"),
    "returns None": (reference_rotate_half, lambda x, c, s: None, "None"),
}


@pytest.mark.parametrize("mistake", ROTATE_MISTAKES)
def test_rotate_mistakes(capsys, mistake):
    rotate_half, apply_rotary, words = ROTATE_MISTAKES[mistake]
    assert_caught(capsys, check_apply_rotary(rotate_half, apply_rotary),
                  (reference_rotate_half, reference_apply_rotary), "0.2b", words)


def chunk_rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def einsum_apply(x, cos, sin):  # the 2x2 rotation written out on the pairs
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[..., :half], sin[..., :half]
    return torch.cat((x1 * c - x2 * s, x2 * c + x1 * s), dim=-1)


@pytest.mark.parametrize("pair", [(reference_rotate_half, reference_apply_rotary),
                                  (chunk_rotate_half, einsum_apply)], ids=["reference", "chunk"])
def test_rotate_correct_alternatives_pass(capsys, pair):
    passes(capsys, check_apply_rotary(*pair), pair, "0.2b")


def test_rope_placeholders(capsys):
    assert check_rotary(placeholder) is ReferenceRotaryEmbedding
    assert verdict(capsys).startswith("⏳ 练习 0.2a 待完成")
    assert check_apply_rotary(placeholder, placeholder) == (reference_rotate_half,
                                                            reference_apply_rotary)
    assert verdict(capsys).startswith("⏳ 练习 0.2b 待完成")


# ------------------------------------------------------------------------- 0.3a causal mask

def mask_fn(diagonal=True, offset=True, padding=True, invert=False, rows=False, dtype=None,
            three_d=False):
    def causal_mask(seq_lengths, past_len, length):
        start = past_len if offset else 0
        q = torch.arange(start, start + length)[:, None]
        k = torch.arange(past_len + length)[None, :]
        mask = (k <= q) if diagonal else (k < q)
        mask = mask[None, None]
        if seq_lengths is not None and padding:
            if rows:
                mask = mask & (q[None] < seq_lengths[:, None, None])[:, None]
            else:
                mask = mask & (k < seq_lengths[:, None])[:, None, None, :]
        if invert:
            mask = ~mask
        if three_d and seq_lengths is not None:
            mask = mask[:, 0]
        return mask.to(dtype) if dtype else mask
    return causal_mask


def tril_mask(seq_lengths, past_len, length):  # a different correct way: tril with an offset
    total = past_len + length
    mask = torch.ones(length, total, dtype=torch.bool).tril(diagonal=past_len)
    if seq_lengths is None:
        return mask
    keys = torch.arange(total).expand(len(seq_lengths), total) < seq_lengths[:, None]
    return mask[None, None] & keys[:, None, None]


MASK_MISTAKES = {
    "diagonal hidden": (mask_fn(diagonal=False), "对角线"),
    "inverted": (mask_fn(invert=True), "反了"),
    "no offset": (mask_fn(offset=False), "past_len"),
    "padding ignored": (mask_fn(padding=False), "没有遮 padding"),
    "padding on queries": (mask_fn(rows=True), "遮 key"),
    "float mask": (mask_fn(dtype=torch.float32), "bool"),
    "(B, L, P+L)": (mask_fn(three_d=True), "(B, 1, L, P+L)"),
    "no past columns": (lambda sl, p, n: torch.ones(n, n, dtype=torch.bool).tril(),
                        "past_len + length"),
    "returns None": (lambda sl, p, n: None, "None"),
}


@pytest.mark.parametrize("mistake", MASK_MISTAKES)
def test_mask_mistakes(capsys, mistake):
    fn, words = MASK_MISTAKES[mistake]
    assert_caught(capsys, check_causal_mask(fn), reference_causal_mask, "0.3a", words)


@pytest.mark.parametrize("fn", [reference_causal_mask, mask_fn(), tril_mask],
                         ids=["reference", "learner", "tril"])
def test_mask_correct_alternatives_pass(capsys, fn):
    passes(capsys, check_causal_mask(fn), fn, "0.3a")


# ---------------------------------------------------------------------------- 0.3b attention

def attention_class(scale="sqrt", softmax_dim=-1, use_mask=True, heads="view_transpose",
                    merge="transpose", rope_v=False, sdpa=False, bias=False, names="hf",
                    dropout_mode="self.training", present="cat", fill=float("-inf"),
                    invert_mask=False, einsum=False):
    class DIYAttention(nn.Module):
        def __init__(self, hidden_size, num_heads, dropout=0.0):
            super().__init__()
            self.num_heads, self.head_dim = num_heads, hidden_size // num_heads
            self.dropout = dropout
            C = hidden_size
            n = (("q_proj", "k_proj", "v_proj", "o_proj") if names == "hf"
                 else ("wq", "wk", "wv", "wo"))
            for name in n:
                setattr(self, name, nn.Linear(C, C, bias=bias))
            self.n = n

        def forward(self, x, cos, sin, mask, past_kv=None):
            B, L, C = x.shape
            H, D = self.num_heads, self.head_dim
            qp, kp, vp, op = (getattr(self, name) for name in self.n)
            if heads == "view_transpose":
                q, k, v = (p(x).view(B, L, H, D).transpose(1, 2) for p in (qp, kp, vp))
            else:
                q, k, v = (p(x).reshape(B, H, L, D) for p in (qp, kp, vp))
            q, k = reference_apply_rotary(q, cos, sin), reference_apply_rotary(k, cos, sin)
            if rope_v:
                v = reference_apply_rotary(v, cos, sin)
            if past_kv is not None:
                if present == "cat":
                    k = torch.cat((past_kv[0], k), dim=2)
                    v = torch.cat((past_kv[1], v), dim=2)
                elif present == "cat_dim1":
                    k = torch.cat((past_kv[0], k), dim=1)
                    v = torch.cat((past_kv[1], v), dim=1)
            p = self.dropout if self.training else 0.0
            if sdpa:
                y = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                                     dropout_p=p)
            else:
                if einsum:
                    scores = torch.einsum("bhld,bhmd->bhlm", q, k)
                else:
                    scores = q @ k.transpose(-2, -1)
                scores = scores / {"sqrt": D ** 0.5, "d": D, "none": 1}[scale]
                if use_mask:
                    scores = scores.masked_fill(mask if invert_mask else ~mask, fill)
                w = scores.softmax(dim=softmax_dim)
                if dropout_mode == "self.training":
                    w = torch.nn.functional.dropout(w, p=self.dropout, training=self.training)
                elif dropout_mode == "always":
                    w = torch.nn.functional.dropout(w, p=self.dropout)
                y = w @ v
            y = y.transpose(1, 2).reshape(B, L, C) if merge == "transpose" else y.reshape(B, L, C)
            return op(y), (k, v)

    return DIYAttention


ATTENTION_MISTAKES = {
    "no mask": (attention_class(use_mask=False), "没有用 mask"),
    "mask inverted": (attention_class(invert_mask=True), "反了"),
    "divides by D": (attention_class(scale="d"), "除以了 D"),
    "no scale": (attention_class(scale="none"), "没有除以 √D"),
    "softmax over queries": (attention_class(softmax_dim=-2), "softmax 沿错了维"),
    "view mixes heads": (attention_class(heads="reshape"), "先 view 再 transpose"),
    "merge without transpose": (attention_class(merge="reshape"), "先 transpose"),
    "RoPE on v": (attention_class(rope_v=True), "RoPE 也加到了 v"),
    "masked with 0": (attention_class(fill=0.0), "−inf"),
    "bias": (attention_class(bias=True), "bias"),
    "other names": (attention_class(names="llama-meta"), "q_proj"),
    "dropout in eval": (attention_class(dropout_mode="always"), "training=self.training"),
    "no dropout": (attention_class(dropout_mode="none"), "没有起作用"),
    "past ignored": (attention_class(present="ignore"), "past_kv 没有"),
    "cache on the wrong dim": (attention_class(present="cat_dim1"), "dim=2"),
    "wrong constructor": (lambda hidden_size: None, "__init__(self, hidden_size, num_heads"),
}


@pytest.mark.parametrize("mistake", ATTENTION_MISTAKES)
def test_attention_mistakes(capsys, mistake):
    cls, words = ATTENTION_MISTAKES[mistake]
    assert_caught(capsys, check_attention(cls), ReferenceAttention, "0.3b", words)


@pytest.mark.parametrize("cls", [ReferenceAttention, attention_class(),
                                 attention_class(sdpa=True), attention_class(einsum=True)],
                         ids=["reference", "manual", "sdpa", "einsum"])
def test_attention_correct_alternatives_pass(capsys, cls):
    passes(capsys, check_attention(cls), cls, "0.3b")


def test_attention_placeholder(capsys):
    assert check_attention(placeholder) is ReferenceAttention
    assert verdict(capsys).startswith("⏳ 练习 0.3b 待完成")


# ------------------------------------------------------------------------------- 0.4 DIYModel
# The lesson's own solution code, and mistakes made by editing one line of it.

def solution_code() -> str:
    from tools.lessons import step0_4_model

    return "\n\n".join(c.source for c in step0_4_model.CELLS if c.stub is not None)


PRELUDE = "import math\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n"


def learner_namespace(*edits, filename="<step0_4 cell>"):
    """Execute the solution (with ``edits``: (old, new) replacements) as notebook code: a
    __main__ namespace whose source linecache knows, as IPython's cells are."""
    import linecache

    code = solution_code()
    for old, new in edits:
        assert old in code, old
        code = code.replace(old, new)
    source = PRELUDE + code
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"__name__": "__main__"}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - the lesson's own code
    return namespace


PARTS = ("RMSNorm", "RotaryEmbedding", "rotate_half", "apply_rotary", "causal_mask",
         "DIYAttention")


def test_parts_solution_passes_and_a_broken_part_is_named(capsys):
    ns = learner_namespace()
    parts = tuple(ns[n] for n in PARTS)
    passes(capsys, check_backbone_parts(*parts), parts, "0.4a")
    broken = learner_namespace(("return torch.cat((-x2, x1), dim=-1)",
                                "return torch.cat((x2, -x1), dim=-1)"))
    reference = (ReferenceRMSNorm, ReferenceRotaryEmbedding, reference_rotate_half,
                 reference_apply_rotary, reference_causal_mask, ReferenceAttention)
    assert_caught(capsys, check_backbone_parts(*(broken[n] for n in PARTS)), reference, "0.4a",
                  "rotate_half（0.2b）")
    assert check_backbone_parts(*([placeholder] * 6)) == reference
    assert verdict(capsys).startswith("⏳ 练习 0.4a 待完成")


MLP_LINE = "return self.down_proj(gate * self.up_proj(x))"
MLP_MISTAKES = {
    "silu on up": ([("gate = F.silu(self.gate_proj(x))", "gate = self.gate_proj(x)"),
                    (MLP_LINE, "return self.down_proj(gate * F.silu(self.up_proj(x)))")],
                   "up_proj 上"),
    "no silu": ([("gate = F.silu(self.gate_proj(x))", "gate = self.gate_proj(x)")], "没有 silu"),
    "gelu": ([("gate = F.silu(self.gate_proj(x))", "gate = F.gelu(self.gate_proj(x))")], "GELU"),
    "silu after the product": ([("gate = F.silu(self.gate_proj(x))", "gate = self.gate_proj(x)"),
                                (MLP_LINE,
                                 "return self.down_proj(F.silu(gate * self.up_proj(x)))")],
                               "乘积之后"),
    "bias": ([("self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)",
               "self.up_proj = nn.Linear(hidden_size, intermediate_size)")], "bias"),
}


@pytest.mark.parametrize("mistake", MLP_MISTAKES)
def test_mlp_mistakes(capsys, mistake):
    edits, words = MLP_MISTAKES[mistake]
    assert_caught(capsys, check_mlp(learner_namespace(*edits)["DIYMLP"]), ReferenceMLP,
                  "0.4b", words)


def test_mlp_other_names(capsys):
    class MLP(nn.Module):
        def __init__(self, hidden_size, intermediate_size):
            super().__init__()
            self.w1 = nn.Linear(hidden_size, intermediate_size, bias=False)
            self.w3 = nn.Linear(hidden_size, intermediate_size, bias=False)
            self.w2 = nn.Linear(intermediate_size, hidden_size, bias=False)

        def forward(self, x):
            return self.w2(torch.nn.functional.silu(self.w1(x)) * self.w3(x))

    assert_caught(capsys, check_mlp(MLP), ReferenceMLP, "0.4b", "gate_proj")


RESIDUAL_1 = "x = x + self.dropout(h)                                           # (B, L, C)"
RESIDUAL_2 = "x = x + self.dropout(self.mlp(self.post_attention_layernorm(x)))  # (B, L, C)"
ATTN_CALL = "h, present = self.self_attn(self.input_layernorm(x), cos, sin, mask, past_kv)"
LAYER_MISTAKES = {
    "post-norm": ([(ATTN_CALL, "h, present = self.self_attn(x, cos, sin, mask, past_kv)"),
                   (RESIDUAL_1, "x = self.input_layernorm(x + self.dropout(h))"),
                   (RESIDUAL_2,
                    "x = self.post_attention_layernorm(x + self.dropout(self.mlp(x)))")],
                  "post-norm"),
    "residual normalised": ([(ATTN_CALL, "x = self.input_layernorm(x)\n        h, present = "
                              "self.self_attn(x, cos, sin, mask, past_kv)")],
                            "残差加在了归一化之后"),
    "no residual": ([(RESIDUAL_1, "x = self.dropout(h)"),
                     (RESIDUAL_2, "x = self.dropout(self.mlp(self.post_attention_layernorm(x)))")],
                    "没有残差"),
    "norms swapped": ([(ATTN_CALL, ATTN_CALL.replace("input_layernorm",
                                                     "post_attention_layernorm")),
                       (RESIDUAL_2, RESIDUAL_2.replace("post_attention_layernorm",
                                                       "input_layernorm"))], "用反了"),
    "one norm twice": ([(RESIDUAL_2, RESIDUAL_2.replace("post_attention_layernorm",
                                                        "input_layernorm"))],
                       "post_attention_layernorm 没用上"),
    "other names": ([("self.self_attn", "self.attn")], "self_attn"),
    "dropout in eval": ([(RESIDUAL_1, "x = x + F.dropout(h, p=0.1)")], "eval"),
    "present dropped": ([("return x, present\n", "return x, None\n")], "present"),
    "past_kv not passed": ([(ATTN_CALL, ATTN_CALL.replace("mask, past_kv)", "mask)"))],
                           "past_kv 没有交给注意力"),
}


@pytest.mark.parametrize("mistake", LAYER_MISTAKES)
def test_layer_mistakes(capsys, mistake):
    edits, words = LAYER_MISTAKES[mistake]
    assert_caught(capsys, check_decoder_layer(learner_namespace(*edits)["DIYDecoderLayer"]),
                  ReferenceDecoderLayer, "0.4c", words)


LAYERS = ("self.layers = nn.ModuleList(\n"
          "            DIYDecoderLayer(hidden_size, num_heads, intermediate_size, dropout) "
          "for _ in range(num_layers))")
MODEL_MISTAKES = {
    "[layer] * n": ([(LAYERS, "self.layers = nn.ModuleList([DIYDecoderLayer(hidden_size, "
                      "num_heads, intermediate_size, dropout)] * num_layers)")], "[layer] * n"),
    "Python list": ([(LAYERS, "self.layers = [DIYDecoderLayer(hidden_size, num_heads, "
                      "intermediate_size, dropout) for _ in range(num_layers)]")], "Python 列表"),
    "no final norm": ([("self.norm = RMSNorm(hidden_size)", "pass"),
                       ("hidden_states = self.norm(x)", "hidden_states = x")], "忘了 norm"),
    "other names": ([("self.layers", "self.blocks")], "名字"),
    "RoPE tables saved": ([('persistent=False)                 # (T, D)', ')')], "RoPE 的表"),
    "no cache offset": ([("cos, sin = self.rotary(past_len, L)",
                          "cos, sin = self.rotary(0, L)")],
                        "没有从 past_len 开始"),
    "no init": ([("self.apply(self._init_weights)", "pass")], "N(0, 0.02)"),
    "presents always": ([("        if use_cache:\n            return hidden_states, presents\n",
                          "        return hidden_states, presents\n")], "只返回 hidden_states"),
    "presents missing": ([("return hidden_states, presents", "return hidden_states")],
                         "(hidden_states, presents)"),
    "a detached embedding": ([("x = self.embed_tokens(input_ids)  ",
                               "x = self.embed_tokens(input_ids).detach()  ")], "梯度"),
    "wrong constructor": ([("def __init__(self, vocab_size, num_layers, hidden_size, num_heads, "
                            "max_seq_len, dropout):", "def __init__(self, config):")],
                          "六个位置参数"),
}


@pytest.mark.parametrize("mistake", MODEL_MISTAKES)
def test_model_mistakes(capsys, mistake):
    edits, words = MODEL_MISTAKES[mistake]
    assert_caught(capsys, check_diy_model(learner_namespace(*edits)["DIYModel"]),
                  reference_model.DIYModel, "0.4d", words)


@pytest.mark.parametrize("variant", ["solution", "reference", "sdpa attention"])
def test_model_correct_alternatives_pass(capsys, variant):
    if variant == "reference":
        cls = reference_model.DIYModel
    elif variant == "solution":
        cls = learner_namespace()["DIYModel"]
    else:
        cls = learner_namespace(("weights = F.dropout(scores.softmax(dim=-1), p=self.dropout, "
                                 "training=self.training)", "weights = None"), (
            "y = (weights @ v).transpose(1, 2).reshape(B, L, C)",
            "y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout "
            "if self.training else 0.0).transpose(1, 2).reshape(B, L, C)"))["DIYModel"]
    passes(capsys, check_diy_model(cls), cls, "0.4d")


def test_solution_layer_and_mlp_pass(capsys):
    ns = learner_namespace()
    passes(capsys, check_mlp(ns["DIYMLP"]), ns["DIYMLP"], "0.4b")
    passes(capsys, check_decoder_layer(ns["DIYDecoderLayer"]), ns["DIYDecoderLayer"], "0.4c")


def test_exported_solution_backbone_passes_conformance(tmp_path, capsys):
    """The learner's classes, written to DIYModel.py by the lesson's export, pass every required
    item of the course's conformance check (and transformers parity)."""
    from diy.backbone import BackboneSpec
    from diy.classroom.conformance import passed, run

    ns = learner_namespace()
    path = tmp_path / "DIYModel.py"
    assert export_backbone([ns[n] for n in (*PARTS, "DIYMLP", "DIYDecoderLayer", "DIYModel")],
                              path)
    assert verdict(capsys).startswith("✅ 写出了")
    text = path.read_text(encoding="utf-8")
    assert "class DIYModel(nn.Module):" in text and "def rotate_half(x):" in text
    items = run(BackboneSpec.parse(str(path)))
    assert passed(items), [item.render() for item in items]
    assert {item.name for item in items if not item.ok} == {"attention_mask"}


def test_export_refuses_the_references(tmp_path, capsys):
    path = tmp_path / "DIYModel.py"
    assert not export_backbone([ReferenceRMSNorm, reference_model.DIYModel], path)
    assert verdict(capsys).startswith("⏳ 还不能导出") and not path.exists()


def test_step0_checks_leave_the_notebooks_random_numbers_and_grad_mode_alone(capsys):
    ns = learner_namespace()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    with torch.no_grad():
        check_rms_norm(ns["RMSNorm"])
        check_attention(ns["DIYAttention"])
        check_diy_model(ns["DIYModel"])
        assert not torch.is_grad_enabled()
    assert torch.equal(torch.rand(3), expected)
    assert verdict(capsys).count("✅") == 3


def test_the_exported_solution_backbone_runs_steps_1_to_3(tmp_path, capsys, monkeypatch):
    """DIY_BACKBONE pointing at the lesson's export: the course trains it and generates with it
    (cached = uncached), as it would the learner's own file."""
    from diy import CharTokenizer
    from diy.backbone import ENV
    from diy.training import TrainConfig, train_on_text

    ns = learner_namespace()
    path = tmp_path / "DIYModel.py"
    export_backbone([ns[n] for n in (*PARTS, "DIYMLP", "DIYDecoderLayer", "DIYModel")], path)
    monkeypatch.setenv(ENV, str(path))
    model, history = train_on_text(config=TrainConfig(steps=4), progress=False)
    assert type(model.model).__module__.startswith("diy_backbone_")  # the file, not diy.model
    assert history.eval_loss[-1] < 7.0  # measured 5.41 after 4 steps; 8.76 untrained
    ids = torch.tensor([CharTokenizer().encode("海边的小镇上有一")])
    assert torch.equal(model.generate(ids, max_new_tokens=20),
                       model.generate(ids, max_new_tokens=20, use_cache=False))

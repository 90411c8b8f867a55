"""Self-checks of step 0: the learner builds the backbone (RMSNorm, RoPE, attention, DIYModel).

Each check builds the learner's part, compares it with the course's reference (diy/model.py)
and with PyTorch's or transformers' own version on the same numbers, and names the known
mistake when the numbers match one (``mistake_matcher``). It returns the learner's part when it
passed, the reference otherwise, so the notebook runs on either way.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import math
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import model as reference_model
from .lm_head import describe
from .report import Failed, Todo, call_learner, mistake_matcher, run_check

EPS = 1e-6


def _llama():
    """transformers' Llama modules (imported on first use: importing transformers takes ~2 s)."""
    with warnings.catch_warnings():  # tqdm's "IProgress not found" in a notebook: not ours
        warnings.filterwarnings("ignore", message="IProgress not found")
        from transformers.models.llama import modeling_llama

    return modeling_llama


def _llama_config(hidden_size: int, num_heads: int, max_seq_len: int, theta: float = 10000.0,
                  dropout: float = 0.0, num_layers: int = 1, vocab_size: int = 97):
    from ..config import DIYConfig
    from ..hf import llama_config

    config = DIYConfig(vocab_size=vocab_size, num_layers=num_layers, hidden_size=hidden_size,
                       num_heads=num_heads, max_seq_len=max_seq_len, dropout=dropout,
                       rope_theta=theta)
    return llama_config(config)


def _tensor(value, name: str) -> torch.Tensor:
    if value is None:
        raise Failed(f"{name} 返回了 None：forward 最后少了 return。", "在 forward 的最后写 return ...。")
    if isinstance(value, tuple):
        raise Failed(f"{name} 返回了 {len(value)} 个值的 tuple，应返回一个张量。",
                     "只 return 结果张量。")
    if not isinstance(value, torch.Tensor):
        raise Failed(f"{name} 应返回张量，实际返回的是 {describe(value)}。", "return 结果张量。")
    return value


def _shape(value: torch.Tensor, want: tuple, name: str, fix: str) -> None:
    if tuple(value.shape) != tuple(want):
        raise Failed(f"{name} 的形状是 {tuple(value.shape)}，应为 {tuple(want)}。", fix)


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a.detach().float(), b.detach().float(),
                                                 atol=atol, rtol=1e-4)


def _unchanged(before: torch.Tensor, after: torch.Tensor, name: str) -> None:
    if not torch.equal(before, after):
        raise Failed(f"{name} 原地修改了传进来的输入张量（调用之后它的值变了）。",
                     "不要对输入做 x += ...、x.mul_(...) 之类的原地运算；写成 x = x * ... 生成新张量。")


# ------------------------------------------------------------------------------ 0.1 RMSNorm

class ReferenceRMSNorm(reference_model.RMSNorm):
    """The course's RMSNorm with the exercise's signature: RMSNorm(hidden_size, eps=1e-6)."""

    def __init__(self, hidden_size: int, eps: float = EPS):
        super().__init__(hidden_size, eps)


def _rms_mistakes(x: torch.Tensor, w: torch.Tensor) -> dict:
    """What the typical wrong RMSNorms compute on x with weight w."""
    x = x.float()
    ms = x.pow(2).mean(-1, keepdim=True)
    mistakes = {
        "dim": x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + EPS) * w if x.dim() == 3 else None,
        "all_dims": x * torch.rsqrt(x.pow(2).mean() + EPS) * w,
        "no_sqrt": x / (ms + EPS) * w,
        "layernorm": (x - x.mean(-1, keepdim=True)) * torch.rsqrt(x.var(-1, keepdim=True,
                                                                           unbiased=False) + EPS) * w,
        "l2": x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12) * w,
        "no_weight": x * torch.rsqrt(ms + EPS),
        "eps_1e-5": x * torch.rsqrt(ms + 1e-5) * w,
        "eps_default": x * torch.rsqrt(ms + torch.finfo(torch.float32).eps) * w,
        "no_eps": x * torch.rsqrt(ms) * w,
        "eps_outside": x / (ms.sqrt() + EPS) * w,
    }
    return mistakes


RMS_HINTS = {
    "dim": ("均方沿错了维：你在序列那一维（dim=1）上求了平均，不同位置互相影响了。",
            "沿最后一维（每个位置自己的 hidden_size 个数）求：x.pow(2).mean(dim=-1, keepdim=True)。"),
    "all_dims": ("均方是对整个张量求的（mean() 没写 dim），所有位置共用了一个缩放。",
                 "每个位置各自归一化：x.pow(2).mean(dim=-1, keepdim=True)。"),
    "no_sqrt": ("忘了开方：你除以的是均方，而不是均方根（RMS）。",
                "乘 torch.rsqrt(ms + eps)（= 1 / sqrt(ms + eps)），或除以 torch.sqrt(ms + eps)。"),
    "layernorm": ("你写的是 LayerNorm：先减了均值、用的是方差。RMSNorm 不减均值。",
                  "直接用 x 的平方的均值：ms = x.pow(2).mean(dim=-1, keepdim=True)，不要 x - x.mean(...)。"),
    "l2": ("你除以的是向量的 L2 范数（x.norm()），少了 1/hidden_size 的平均：结果的 RMS 不是 1。",
           "用均值而不是求和：ms = x.pow(2).mean(dim=-1, keepdim=True)，再乘 torch.rsqrt(ms + eps)。"),
    "no_weight": ("归一化对了，但没有乘可学的 weight。", "最后乘 self.weight（形状 (hidden_size,)，初始全 1）。"),
    "eps_1e-5": ("eps 用的是 1e-5，不是传进来的 eps（课程和 Llama 用 1e-6）。",
                 "在 __init__ 里存下参数：self.eps = eps，forward 里用 self.eps。"),
    "eps_default": ("eps 不是 1e-6：torch.nn.RMSNorm 不传 eps 时用的是 float32 的机器精度（约 1.19e-7）。",
                    "把 eps 显式传进去：nn.RMSNorm(hidden_size, eps=eps)，或自己写 ms + self.eps。"),
    "no_eps": ("忘了 eps：全 0 的向量会得到 0 / 0 = NaN。",
               "在开方之前加上 eps：torch.rsqrt(ms + self.eps)。"),
    "eps_outside": ("eps 加在了开方之后（sqrt(ms) + eps）：很小的输入上与 Llama 的结果不同。",
                    "把 eps 加在开方之前：torch.rsqrt(ms + self.eps)。"),
}


def check_rms_norm(RMSNorm):
    """Check exercise 0.1; return the RMSNorm class to use from here on."""

    def body() -> str:
        for size in (256, 48):
            _check_rms_norm_once(RMSNorm, size)
        return ("RMSNorm(256, eps=1e-6) 与 torch.nn.RMSNorm(256, eps=1e-6)、transformers 的 "
                "LlamaRMSNorm 在随机 weight 上相同（差 < 1e-6）；全 0 输入没有 NaN；"
                "换成 hidden_size=48 也正确。")

    return run_check("0.1", body, RMSNorm, ReferenceRMSNorm)


def _build_rms_norm(RMSNorm, size: int):
    if RMSNorm is None:
        raise Todo("RMSNorm 还没有定义。")

    def diagnose(exc):
        if isinstance(exc, TypeError) and "argument" in str(exc):
            return (f"构造 RMSNorm({size}, eps=1e-6) 失败：{exc}。",
                    "__init__(self, hidden_size, eps=1e-6)：两个参数，eps 有默认值。")
        return None

    norm = call_learner(RMSNorm, size, eps=EPS, name="RMSNorm(...)", diagnose=diagnose)
    if not isinstance(norm, nn.Module):
        raise Failed(f"RMSNorm(...) 得到的是 {describe(norm)}，应是 nn.Module。",
                     "class RMSNorm(nn.Module): ...，__init__ 第一行 super().__init__()。")
    params = dict(norm.named_parameters())
    if "weight" not in params:
        found = "、".join(params) or "没有任何参数"
        hint = ("weight 不是 nn.Parameter，优化器看不到它，state_dict 里也没有它。"
                if isinstance(getattr(norm, "weight", None), torch.Tensor) else
                f"没有名为 weight 的参数（现有：{found}）。")
        raise Failed(hint, "self.weight = nn.Parameter(torch.ones(hidden_size))：名字必须是 weight，"
                           "才能和 transformers 的 LlamaRMSNorm 互相装载。")
    extra = sorted(set(norm.state_dict()) - {"weight"})
    if extra:
        bias = any("bias" in k for k in extra)
        raise Failed(f"state_dict 里除了 weight 还有 {extra}"
                     + ("：RMSNorm 没有 bias（那是 LayerNorm 的）。" if bias else "。"),
                     "RMSNorm 只有一个参数 weight（形状 (hidden_size,)）；"
                     "别的张量用普通属性或 register_buffer(..., persistent=False)。")
    weight = params["weight"]
    _shape(weight, (size,), "weight", "nn.Parameter(torch.ones(hidden_size))，用参数 hidden_size，不要写死 256。")
    if torch.all(weight == 0):
        raise Failed("weight 初始化成了 0：输出会全是 0。", "初始全 1：nn.Parameter(torch.ones(hidden_size))。")
    if not torch.all(weight == 1):
        raise Failed("weight 的初始值不是全 1。", "nn.Parameter(torch.ones(hidden_size))：一开始不缩放。")
    return norm


def _check_rms_norm_once(RMSNorm, size: int) -> None:
    norm = _build_rms_norm(RMSNorm, size)
    llama = _llama().LlamaRMSNorm(size, eps=EPS)
    torch_norm = nn.RMSNorm(size, eps=EPS)
    g = torch.Generator().manual_seed(size)
    w = torch.rand(size, generator=g) + 0.5  # random weight: a missing weight shows
    with torch.no_grad():
        for module in (norm, llama, torch_norm):
            module.weight.copy_(w)
    x = torch.randn(2, 5, size, generator=g) * 3 + 1.5  # mean ≠ 0: LayerNorm differs
    tiny = torch.randn(3, size, generator=g) * 1e-3  # mean square ~1e-6: eps matters
    zeros = torch.zeros(2, 3, size)
    for inputs in (x, tiny):
        before = inputs.clone()
        out = _tensor(call_learner(norm, inputs, name="RMSNorm.forward"), "RMSNorm.forward")
        _unchanged(before, inputs, "RMSNorm.forward")
        _shape(out, inputs.shape, "输出", "RMSNorm 不改变形状：每个位置各自归一化，沿最后一维。")
        if out.dtype != torch.float32:
            raise Failed(f"float32 的输入得到了 {out.dtype} 的输出。",
                         "在 float32 里算完后 .to(x.dtype) 转回输入的 dtype，再乘 weight。")
        want = llama(inputs)
        if not (_close(out, want, 1e-6) and _close(out, torch_norm(inputs), 1e-6)):
            if torch.isnan(out).any():
                raise Failed(*RMS_HINTS["no_eps"])
            name = mistake_matcher(out, _rms_mistakes(inputs, w), atol=1e-6)
            if name is not None:
                raise Failed(*RMS_HINTS[name])
            raise Failed("输出与 torch.nn.RMSNorm(eps=1e-6) 和 LlamaRMSNorm 都不同。",
                         "x / sqrt(mean(x², dim=-1) + eps) * weight：先转 float32，沿最后一维求均方，"
                         "乘 torch.rsqrt(ms + self.eps)，转回输入的 dtype，再乘 self.weight。")
    out = _tensor(call_learner(norm, zeros, name="RMSNorm.forward"), "RMSNorm.forward")
    if not torch.isfinite(out).all():
        raise Failed(*RMS_HINTS["no_eps"])
    half = x.to(torch.bfloat16)
    with warnings.catch_warnings():  # torch.nn.RMSNorm warns about bf16 input, float32 weight
        warnings.simplefilter("ignore")
        out = _tensor(call_learner(norm, half, name="RMSNorm.forward"), "RMSNorm.forward")
    if out.dtype not in (torch.bfloat16, torch.float32) or not _close(out, llama(half), 5e-2):
        raise Failed(f"bfloat16 的输入得到了 {out.dtype} 的输出，或数值与 LlamaRMSNorm 差得太多。",
                     "先 x.float() 在 float32 里算，算完 .to(x.dtype) 转回输入的 dtype，再乘 weight。")
    with torch.enable_grad():
        call_learner(norm, x, name="RMSNorm.forward").float().sum().backward()
    if norm.weight.grad is None:
        raise Failed("weight 没有得到梯度：forward 里没有用 self.weight，或用 .detach() 切断了它。",
                     "forward 的最后乘 self.weight。")


# --------------------------------------------------------------------------------- 0.2 RoPE

class ReferenceRotaryEmbedding(reference_model.RotaryEmbedding):
    """The course's RoPE tables with the exercise's signature."""

    def __init__(self, head_dim: int, max_seq_len: int, theta: float = 10000.0):
        super().__init__(head_dim, max_seq_len, theta)


def reference_rotate_half(x: torch.Tensor) -> torch.Tensor:
    return reference_model.rotate_half(x)


def reference_apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return reference_model.apply_rotary(x, cos, sin)


def _rope_tables(inv_freq: torch.Tensor, positions: torch.Tensor, interleaved=False):
    angles = torch.outer(positions.float(), inv_freq)  # (L, D/2)
    if interleaved:
        angles = angles.repeat_interleave(2, dim=-1)  # (L, D): pairs (2i, 2i+1)
    else:
        angles = torch.cat((angles, angles), dim=-1)  # (L, D): pairs (i, i + D/2)
    return angles.cos(), angles.sin()


def _rope_mistakes(D: int, T: int, theta: float, start: int, length: int) -> dict:
    """(cos, sin) of the typical wrong tables, for positions start .. start+length-1."""
    right = 1.0 / theta ** (torch.arange(0, D, 2).float() / D)
    positions = torch.arange(start, start + length)
    return {
        "interleaved": _rope_tables(right, positions, interleaved=True),
        "exponent_i": _rope_tables(1.0 / theta ** (torch.arange(0, D // 2).float() / D), positions),
        "no_divide": _rope_tables(1.0 / theta ** torch.arange(0, D, 2).float(), positions),
        "positive_exponent": _rope_tables(theta ** (torch.arange(0, D, 2).float() / D), positions),
        "from_one": _rope_tables(right, positions + 1),
        "no_offset": _rope_tables(right, torch.arange(length)),
        "swapped": tuple(reversed(_rope_tables(right, positions))),
    }


ROPE_HINTS = {
    "interleaved": ("cos/sin 表是「相邻交错」排列的（repeat_interleave，配对 (2i, 2i+1)），"
                    "课程和 transformers 的 Llama 用「前后两半」：配对 (i, i + D/2)。",
                    "角度 (T, D/2) 在最后一维拼成两份：torch.cat((angles, angles), dim=-1)，"
                    "不要 repeat_interleave。"),
    "exponent_i": ("频率的指数差了一个因子 2：写成了 theta^(−i/D)（i = 0 … D/2−1）。",
                   "inv_freq = 1 / theta ** (torch.arange(0, D, 2).float() / D)：步长 2，再除以 D。"),
    "no_divide": ("频率的指数忘了除以 D：后面的维度转得几乎为 0。",
                  "inv_freq = 1 / theta ** (torch.arange(0, D, 2).float() / D)。"),
    "positive_exponent": ("频率写成了 theta^(+2i/D)（少了倒数）：越往后转得越快、快得离谱。",
                          "inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2).float() / D))。"),
    "from_one": ("位置从 1 开始数了：第一个 token 的位置是 0（cos = 1、sin = 0，不旋转）。",
                 "positions = torch.arange(max_seq_len)（0 … T−1）。"),
    "no_offset": ("forward(start, length) 忽略了 start：带缓存时新 token 的位置又从 0 数起。",
                  "取表时从 start 开始取 length 行：self.cos[start:start + length]。"),
    "swapped": ("cos 和 sin 返回反了。", "return self.cos[...], self.sin[...]：先 cos，后 sin。"),
}


def check_rotary(RotaryEmbedding):
    """Check exercise 0.2a; return the RotaryEmbedding class to use from here on."""

    def body() -> str:
        for D, T, theta in ((64, 128, 10000.0), (16, 20, 500.0)):
            _check_rotary_once(RotaryEmbedding, D, T, theta)
        return ("cos/sin 表与 transformers 的 LlamaRotaryEmbedding 逐元素相同（前后两半约定）；"
                "forward(start, length) 的偏移正确；表不进 state_dict；"
                "换成 head_dim=16、max_seq_len=20、theta=500 也正确。")

    return run_check("0.2a", body, RotaryEmbedding, ReferenceRotaryEmbedding)


def _check_rotary_once(RotaryEmbedding, D: int, T: int, theta: float) -> None:
    if RotaryEmbedding is None:
        raise Todo("RotaryEmbedding 还没有定义。")

    def diagnose(exc):
        if isinstance(exc, TypeError) and "argument" in str(exc):
            return (f"构造 RotaryEmbedding({D}, {T}, theta={theta}) 失败：{exc}。",
                    "__init__(self, head_dim, max_seq_len, theta=10000.0)。")
        return None

    rope = call_learner(RotaryEmbedding, D, T, theta=theta, name="RotaryEmbedding(...)",
                        diagnose=diagnose)
    if not isinstance(rope, nn.Module):
        raise Failed(f"RotaryEmbedding(...) 得到的是 {describe(rope)}，应是 nn.Module。",
                     "class RotaryEmbedding(nn.Module): ...，__init__ 第一行 super().__init__()。")
    if any(p.requires_grad for p in rope.parameters()):
        raise Failed("cos/sin 表成了可训练的参数（nn.Parameter）。",
                     "用 self.register_buffer(\"cos\", ..., persistent=False)，不要 nn.Parameter。")
    keys = list(rope.state_dict())
    if keys:
        raise Failed(f"state_dict 里有 {keys}：cos/sin 表进了 state_dict，"
                     "装进 transformers 时 strict=True 会报多余的键。",
                     "表由超参推出，不该保存：self.register_buffer(\"cos\", ..., persistent=False)。")
    llama = _llama().LlamaRotaryEmbedding(_llama_config(D * 2, 2, T, theta))
    for start, length in ((0, T), (7, 3), (T - 1, 1)):
        out = call_learner(rope, start, length, name="RotaryEmbedding.forward(start, length)")
        if not (isinstance(out, tuple) and len(out) == 2):
            raise Failed(f"forward(start, length) 应返回 (cos, sin) 两个张量，实际返回 {describe(out)}。",
                         "return self.cos[start:start + length], self.sin[start:start + length]。")
        cos, sin = (_tensor(t, "RotaryEmbedding.forward") for t in out)
        if tuple(cos.shape) == (length, D // 2) or tuple(cos.shape) == (T, D // 2):
            raise Failed(f"cos 的形状是 {tuple(cos.shape)}：只有 D/2 列，少了「拼成两份」这一步。",
                         "angles (T, D/2) → torch.cat((angles, angles), dim=-1) → (T, D)，再取 cos、sin。")
        if tuple(cos.shape) == (T, D) and length != T:
            raise Failed(f"forward({start}, {length}) 返回了整张表 {tuple(cos.shape)}，没有切片。",
                         "取表时从 start 开始取 length 行：self.cos[start:start + length]。")
        for name, t in (("cos", cos), ("sin", sin)):
            _shape(t, (length, D), name, "forward(start, length) 返回 (length, head_dim) 的表：self.cos[start:start + length]。")
            if t.dtype != torch.float32:
                raise Failed(f"{name} 的 dtype 是 {t.dtype}，应为 float32。",
                             "用 torch.arange(...).float() 算角度，不要用 float64 / 整数。")
        positions = torch.arange(start, start + length)[None]  # (1, L)
        want_cos, want_sin = llama(torch.zeros(1, length, D), positions)  # (1, L, D) each
        # 1e-3: angles reach T - 1 radians, where float32 cos/sin differ by up to 1.5e-4
        # between torch's vectorised and scalar paths (measured; which one runs can depend on
        # the memory layout); every listed mistake moves the table by far more
        if not (_close(cos, want_cos[0], 1e-3) and _close(sin, want_sin[0], 1e-3)):
            for name, (c, s) in _rope_mistakes(D, T, theta, start, length).items():
                if _close(cos, c, 1e-3) and _close(sin, s, 1e-3):
                    raise Failed(*ROPE_HINTS[name])
            raise Failed(f"forward({start}, {length}) 的 cos/sin 与 LlamaRotaryEmbedding 不同。",
                         "inv_freq = 1/theta^(arange(0, D, 2)/D)；angles = outer(arange(T), inv_freq)；"
                         "cat((angles, angles), -1)；取 cos、sin；再切 [start:start+length]。")


ROTATE_HINTS = {
    "interleaved": ("rotate_half 用的是「相邻交错」配对（(x0, x1) → (−x1, x0)），"
                    "课程和 transformers 的 Llama 用「前后两半」：第 i 维与第 i + D/2 维配对。",
                    "x1, x2 = x[..., :D//2], x[..., D//2:]；return torch.cat((-x2, x1), dim=-1)。"),
    "sign": ("rotate_half 的负号放错了：得到的是 (x2, −x1)，转的方向反了。",
             "return torch.cat((-x2, x1), dim=-1)：负号在后一半上，后一半放到前面。"),
    "no_swap": ("rotate_half 没有交换前后两半（只给一半取了负）。",
                "后一半取负放到前面，前一半放到后面：torch.cat((-x2, x1), dim=-1)。"),
    "first_dim": ("rotate_half 切错了维：不是沿最后一维（head_dim）切两半。",
                  "沿最后一维切：x[..., :D//2] 和 x[..., D//2:]，再 torch.cat(..., dim=-1)。"),
}


def _rotate_mistakes(x: torch.Tensor) -> dict:
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    pairs = x.unflatten(-1, (half, 2))
    first = x.shape[0] // 2
    return {
        "interleaved": torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2),
        "sign": torch.cat((x2, -x1), dim=-1),
        "no_swap": torch.cat((x1, -x2), dim=-1),
        "no_swap2": torch.cat((-x1, x2), dim=-1),
        "first_dim": torch.cat((-x[first:], x[:first]), dim=0) if x.shape[0] % 2 == 0 else None,
    }


APPLY_HINTS = {
    "minus": ("旋转公式的符号错了：写成了 x·cos − rotate_half(x)·sin。",
              "x * cos + rotate_half(x) * sin（负号已经在 rotate_half 里）。"),
    "swapped": ("cos 和 sin 用反了：写成了 x·sin + rotate_half(x)·cos。", "x * cos + rotate_half(x) * sin。"),
    "no_rotate": ("只乘了 cos、没有加 rotate_half(x) * sin 这一项。", "x * cos + rotate_half(x) * sin。"),
}


def check_apply_rotary(rotate_half, apply_rotary):
    """Check exercise 0.2b; return (rotate_half, apply_rotary) to use from here on."""

    def body() -> str:
        _check_rotate_half(rotate_half)
        _check_apply_rotary(apply_rotary)
        return ("rotate_half 是前后两半的 (−x2, x1)；apply_rotary 与 transformers 的 apply_rotary_pos_emb "
                "相同（差 < 1e-6），不改变向量长度；换成 head_dim=16 也正确。")

    return run_check("0.2b", body, (rotate_half, apply_rotary),
                     (reference_rotate_half, reference_apply_rotary))


def _check_rotate_half(rotate_half) -> None:
    g = torch.Generator().manual_seed(2)
    for D in (64, 16):
        x = torch.randn(2, 3, 5, D, generator=g)
        before = x.clone()
        out = _tensor(call_learner(rotate_half, x, name="rotate_half"), "rotate_half")
        _unchanged(before, x, "rotate_half")
        _shape(out, x.shape, "rotate_half(x)", "rotate_half 不改变形状：torch.cat((-x2, x1), dim=-1)。")
        if not torch.equal(out, reference_model.rotate_half(x)):
            name = mistake_matcher(out, _rotate_mistakes(x), atol=0)
            if name is not None:
                raise Failed(*ROTATE_HINTS[name.rstrip("2")])
            raise Failed("rotate_half(x) 的结果不是 (−x2, x1)。",
                         "x1, x2 = 最后一维的前一半、后一半；return torch.cat((-x2, x1), dim=-1)。"
                         "用 x.shape[-1] // 2，不要写死 32。")


def _check_apply_rotary(apply_rotary) -> None:
    llama = _llama()
    g = torch.Generator().manual_seed(3)
    for D, T in ((64, 128), (16, 20)):
        rope = reference_model.RotaryEmbedding(D, T, 10000.0)
        for start, L in ((0, 6), (9, 4)):
            cos, sin = rope(start, L)  # (L, D)
            q = torch.randn(2, 3, L, D, generator=g)
            k = torch.randn(2, 3, L, D, generator=g)
            before = q.clone()
            out = _tensor(call_learner(apply_rotary, q, cos, sin, name="apply_rotary"),
                          "apply_rotary")
            _unchanged(before, q, "apply_rotary")
            _shape(out, q.shape, "apply_rotary(x, cos, sin)",
                   "对 (B, H, L, D) 的 x 逐元素运算，cos/sin (L, D) 会自动广播。")
            want, _ = llama.apply_rotary_pos_emb(q, k, cos[None], sin[None])  # (B, H, L, D)
            if not _close(out, want, 1e-6):
                rot = reference_model.rotate_half(q)
                name = mistake_matcher(out, {"minus": q * cos - rot * sin,
                                             "swapped": q * sin + rot * cos,
                                             "no_rotate": q * cos}, atol=1e-6)
                if name is not None:
                    raise Failed(*APPLY_HINTS[name])
                raise Failed("apply_rotary 的结果与 transformers 的 apply_rotary_pos_emb 不同。",
                             "return x * cos + rotate_half(x) * sin。")
            if out.dtype != q.dtype:
                raise Failed(f"float32 的输入得到了 {out.dtype} 的输出。", "不要在里面转 dtype。")
    if not _close(out.norm(dim=-1), q.norm(dim=-1), 1e-4):  # follows from the match; said anyway
        raise Failed("旋转改变了向量的长度。", "x * cos + rotate_half(x) * sin。")



# ------------------------------------------------------------------------- 0.3a causal mask

def reference_causal_mask(seq_lengths, past_len, length):
    """True = may attend: key ≤ the query's absolute position, and not right padding."""
    query_pos = torch.arange(past_len, past_len + length)  # (L,)
    key_pos = torch.arange(past_len + length)  # (P+L,)
    mask = (key_pos[None, :] <= query_pos[:, None])[None, None]  # (1, 1, L, P+L)
    if seq_lengths is not None:
        real_key = key_pos[None, :] < seq_lengths[:, None]  # (B, P+L)
        mask = mask & real_key[:, None, None, :]  # (B, 1, L, P+L)
    return mask


def _mask_mistakes(seq_lengths, past_len, length, B, H):
    P, L = past_len, length
    q = torch.arange(P, P + L)[:, None]
    k = torch.arange(P + L)[None, :]
    real = (k < seq_lengths[:, None])[:, None, None, :] if seq_lengths is not None else True
    real_query = (q[None] < seq_lengths[:, None, None])[:, None] if seq_lengths is not None else True
    full = (B, H, L, P + L)

    def b(m):
        return torch.broadcast_to(torch.as_tensor(m), full)

    return {
        "diagonal": b((k < q) & real),
        "inverted": b(~((k <= q) & real)),
        "no_offset": b((k <= q - P) & real),
        "no_padding": b(k <= q) if seq_lengths is not None else None,
        "padding_queries": b((k <= q) & real_query) if seq_lengths is not None else None,
        "no_causal": b(torch.ones(L, P + L, dtype=torch.bool) & real),
    }


MASK_HINTS = {
    "diagonal": ("mask 连对角线也遮住了：位置 t 应该能看到它自己（0…t，含 t）。",
                 "key 位置 ≤ query 位置才能看：key_pos[None, :] <= query_pos[:, None]（是 <=，不是 <）。"),
    "inverted": ("True / False 反了：你的 True 表示「遮住」，这里约定 True = 能看。",
                 "返回「能看」的位置：key_pos <= query_pos（且不是 padding）；用的时候再 masked_fill(~mask, -inf)。"),
    "no_offset": ("带缓存时 query 的位置没有加上 past_len：第 i 个新 query 在绝对位置 past_len + i。",
                  "query_pos = torch.arange(past_len, past_len + length)，key_pos = torch.arange(past_len + length)。"),
    "no_padding": ("给了 seq_lengths 却没有遮 padding：key 位置 ≥ seq_lengths[b] 的都不能看。",
                   "real_key = key_pos[None, :] < seq_lengths[:, None]，形状 (B, P+L)，"
                   "与因果 mask 取「都允许」：mask & real_key[:, None, None, :]。"),
    "padding_queries": ("padding 遮在了 query（行）上，应该遮 key（列）：真实的 token 不能去看 padding。",
                        "real_key = key_pos[None, :] < seq_lengths[:, None]，再 real_key[:, None, None, :]（遮列）。"),
    "no_causal": ("没有因果 mask：每个位置都能看到后面的 token（训练时等于偷看答案）。",
                  "key_pos[None, :] <= query_pos[:, None]：只能看自己和前面的位置。"),
}


def check_causal_mask(causal_mask):
    """Check exercise 0.3a; return the causal_mask function to use from here on."""

    def body() -> str:
        H = 3
        for seq_lengths, past_len, length in (
                (None, 0, 6), (None, 4, 3), (None, 5, 1),
                (torch.tensor([6, 4, 1]), 0, 6), (torch.tensor([9, 7]), 4, 5)):
            _check_mask_once(causal_mask, seq_lengths, past_len, length, H)
        return ("因果 mask 含对角线；带缓存时 query 的位置从 past_len 数起；"
                "seq_lengths 之后的 key 被遮住；形状能广播到 (B, H, L, P+L)。")

    return run_check("0.3a", body, causal_mask, reference_causal_mask)


def _check_mask_once(causal_mask, seq_lengths, past_len, length, H) -> None:
    B = 1 if seq_lengths is None else len(seq_lengths)
    lengths_before = None if seq_lengths is None else seq_lengths.clone()
    call = f"causal_mask({'None' if seq_lengths is None else seq_lengths.tolist()}, {past_len}, {length})"
    mask = _tensor(call_learner(causal_mask, seq_lengths, past_len, length, name=call), call)
    if seq_lengths is not None:
        _unchanged(lengths_before, seq_lengths, "causal_mask")
    if mask.dtype != torch.bool:
        raise Failed(f"{call} 的 dtype 是 {mask.dtype}，应是 bool（True = 能看）。",
                     "用比较运算得到 bool 张量：key_pos[None, :] <= query_pos[:, None]；"
                     "不要转成 0/1 或 0/−inf 的浮点数。")
    full = (B, H, length, past_len + length)
    if mask.dim() == 3 and mask.shape[0] == B:
        raise Failed(f"{call} 的形状是 {tuple(mask.shape)}：3 维的 (B, L, P+L) 会和 scores 的「头」那一维对错。",
                     "在第 1 维加一个长度 1 的维：(B, 1, L, P+L)，即 mask[:, None]。")
    try:
        got = torch.broadcast_to(mask, full)
    except RuntimeError:
        raise Failed(f"{call} 的形状是 {tuple(mask.shape)}，不能广播到 scores 的形状 (B, H, L, P+L) = {full}。",
                     "没有 seq_lengths 时返回 (1, 1, L, P+L)；有时返回 (B, 1, L, P+L)。"
                     "列数是 past_len + length（新 token 也要能看缓存里的 key）。") from None
    want = torch.broadcast_to(reference_causal_mask(seq_lengths, past_len, length), full)
    if not torch.equal(got, want):
        name = mistake_matcher(got.float(), {k: (v.float() if v is not None else None)
                                             for k, v in _mask_mistakes(seq_lengths, past_len, length, B, H).items()},
                               atol=0)
        if name is not None:
            raise Failed(*MASK_HINTS[name])
        raise Failed(f"{call} 的结果不对。",
                     "第 i 个新 query 在绝对位置 past_len + i，能看 key 0 … past_len + i；"
                     "有 seq_lengths 时再遮住每行位置 ≥ seq_lengths[b] 的 key。")


# ---------------------------------------------------------------------------- 0.3b attention

class ReferenceAttention(reference_model.DIYAttention):
    """The course's attention with the exercise's signature and an always-given mask."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float = 0.0):
        from ..config import DIYConfig

        nn.Module.__init__(self)
        config = DIYConfig(hidden_size=hidden_size, num_heads=num_heads, dropout=dropout)
        self.num_heads, self.head_dim, self.dropout = num_heads, config.head_dim, dropout
        self.q_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.k_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.v_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.o_proj = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, x, cos, sin, mask, past_kv=None):
        return super().forward(x, cos, sin, mask, past_kv)


ATTENTION_NAMES = ("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight")


def _attention(weights: dict, x, cos, sin, mask, past_kv=None, H=4, variant=None):
    """Manual attention on the given weights; ``variant`` names one known mistake."""
    B, L, C = x.shape
    D = C // H
    proj = {name: x @ weights[f"{name}_proj.weight"].T for name in "qkv"}  # (B, L, C) each
    if variant == "heads_view":  # view straight to (B, H, L, D): mixes positions and heads
        q, k, v = (proj[n].reshape(B, H, L, D) for n in "qkv")
    else:
        q, k, v = (proj[n].view(B, L, H, D).transpose(1, 2) for n in "qkv")  # (B, H, L, D)
    if variant != "no_rope":
        q, k = reference_model.apply_rotary(q, cos, sin), reference_model.apply_rotary(k, cos, sin)
    if variant == "rope_on_v":
        v = reference_model.apply_rotary(v, cos, sin)
    if past_kv is not None:
        k, v = torch.cat((past_kv[0], k), dim=2), torch.cat((past_kv[1], v), dim=2)
    scale = {"scale_d": D, "no_scale": 1.0}.get(variant, math.sqrt(D))
    scores = q @ k.transpose(-2, -1) / scale  # (B, H, L, P+L)
    if variant == "no_mask":
        weights_ = scores.softmax(-1)
    elif variant == "mask_after":
        weights_ = scores.softmax(-1) * mask
    elif variant == "mask_zero":  # masked_fill with 0 instead of -inf
        weights_ = scores.masked_fill(~mask, 0.0).softmax(-1)
    elif variant == "softmax_dim":
        weights_ = scores.masked_fill(~mask, float("-inf")).softmax(-2)
    else:
        weights_ = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    y = weights_ @ v  # (B, H, L, D)
    if variant == "merge_no_transpose":
        y = y.reshape(B, L, C)
    else:
        y = y.transpose(1, 2).reshape(B, L, C)
    if variant == "no_o_proj":
        return y
    return y @ weights["o_proj.weight"].T


ATTENTION_VARIANTS = ("no_mask", "scale_d", "no_scale", "softmax_dim", "heads_view",
                      "merge_no_transpose", "rope_on_v", "no_rope", "mask_after", "mask_zero",
                      "no_o_proj")

ATTENTION_HINTS = {
    "no_mask": ("没有用 mask：每个位置都看到了后面的 token（训练时 loss 会因为「偷看答案」降得异常快）。",
                "在 softmax 之前 scores = scores.masked_fill(~mask, float(\"-inf\"))。"),
    "scale_d": ("分数除以了 D，应除以 √D：softmax 会变得过平。",
                "scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)。"),
    "no_scale": ("分数没有除以 √D：D 维点积的方差约为 D，softmax 会过尖。",
                 "scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)。"),
    "softmax_dim": ("softmax 沿错了维：应沿最后一维（对 key 归一化，每一行的和为 1）。",
                    "weights = scores.softmax(dim=-1)。"),
    "heads_view": ("分头时直接 view 成了 (B, H, L, D)：形状对，但把不同位置的数混进了同一个头。",
                   "先 view 再 transpose：x.view(B, L, H, D).transpose(1, 2) → (B, H, L, D)。"),
    "merge_no_transpose": ("合并头时没有先 transpose 回来：(B, H, L, D) 直接 reshape 成 (B, L, C) 把头和位置混在了一起。",
                           "y.transpose(1, 2).reshape(B, L, C)：先换回 (B, L, H, D)，再合并最后两维。"),
    "rope_on_v": ("RoPE 也加到了 v 上：位置只该影响「看谁」（q、k），不该改变取回的内容。",
                  "只旋转 q 和 k：q = apply_rotary(q, cos, sin)；k = apply_rotary(k, cos, sin)；v 不动。"),
    "no_rope": ("q、k 没有旋转：注意力不知道位置。", "分头之后 q = apply_rotary(q, cos, sin)，k 同理。"),
    "mask_after": ("mask 加在了 softmax 之后：被遮住的权重置 0 后，每行的和不再是 1。",
                   "先 masked_fill(~mask, float(\"-inf\"))，再 softmax。"),
    "mask_zero": ("被遮住的分数填成了 0 而不是 −inf：softmax 之后它们仍有权重。",
                  "scores.masked_fill(~mask, float(\"-inf\"))。"),
    "no_o_proj": ("合并各头之后没有过 o_proj。", "return self.o_proj(y), present。"),
}


def check_attention(DIYAttention):
    """Check exercise 0.3b; return the attention class to use from here on."""

    def body() -> str:
        _check_attention_once(DIYAttention, hidden_size=32, num_heads=4, dropout=0.0)
        _check_attention_once(DIYAttention, hidden_size=256, num_heads=4, dropout=0.1)
        return ("q_proj/k_proj/v_proj/o_proj 不带 bias；eval 下与手写的参考注意力和 "
                "transformers 的 LlamaAttention（同一组权重）相同；"
                "未来的 token 不影响过去；prefill + 逐个 token（带缓存）≡ 一次算完；"
                "右 padding 不产生 NaN；dropout 只在 train() 时起作用。")

    return run_check("0.3b", body, DIYAttention, ReferenceAttention)


def _build_attention(DIYAttention, C, H, p):
    if DIYAttention is None:
        raise Todo("DIYAttention 还没有定义。")

    def diagnose(exc):
        if isinstance(exc, TypeError) and "argument" in str(exc):
            return (f"构造 DIYAttention({C}, {H}, {p}) 失败：{exc}。",
                    "__init__(self, hidden_size, num_heads, dropout=0.0)。")
        return None

    attn = call_learner(DIYAttention, C, H, p, name="DIYAttention(...)", diagnose=diagnose)
    if not isinstance(attn, nn.Module):
        raise Failed(f"DIYAttention(...) 得到的是 {describe(attn)}，应是 nn.Module。",
                     "class DIYAttention(nn.Module): ...，__init__ 第一行 super().__init__()。")
    keys = set(attn.state_dict())
    if any(k.endswith("bias") for k in keys):
        raise Failed("投影层带了 bias（nn.Linear 默认 bias=True）：Llama 的注意力不带 bias，state_dict 会多出键。",
                     "nn.Linear(hidden_size, hidden_size, bias=False)。")
    if keys != set(ATTENTION_NAMES):
        raise Failed(f"参数的名字是 {sorted(keys)}，应为 {list(ATTENTION_NAMES)}。",
                     "照 transformers 的名字：self.q_proj、self.k_proj、self.v_proj、self.o_proj，"
                     "各是 nn.Linear(hidden_size, hidden_size, bias=False)。")
    for name in ATTENTION_NAMES:
        shape = tuple(attn.state_dict()[name].shape)
        if shape != (C, C):
            raise Failed(f"{name} 的形状是 {shape}，应为 {(C, C)}。",
                         "nn.Linear(hidden_size, hidden_size, bias=False)；用参数，不要写死 256。")
    return attn


def _attn_call(attn, *args):
    def diagnose(exc):
        text = str(exc)
        if isinstance(exc, TypeError) and "argument" in text:
            return (f"forward 的参数不对：{exc}。",
                    "forward(self, x, cos, sin, mask, past_kv=None)，返回 (输出, (k, v))。")
        if "view size is not compatible" in text:
            return ("对 transpose 之后（不连续）的张量调用了 .view()。",
                    "合并头时用 y.transpose(1, 2).reshape(B, L, C)（或 .contiguous().view）。")
        if "Sizes of tensors must match" in text or "Expected size" in text:
            return (f"带缓存时形状对不上（{text.splitlines()[0]}）：past_kv 没有和新的 k、v 正确拼接。",
                    "past_k、past_v 各 (B, H, P, D)：沿序列那一维拼，k = torch.cat((past_k, k), dim=2)，v 同理。")
        return None

    out = call_learner(attn, *args, name="DIYAttention.forward", diagnose=diagnose)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise Failed(f"forward 应返回 (输出, present) 两个值，实际返回 {describe(out)}。",
                     "return self.o_proj(y), (k, v)：present 是拼好缓存之后的 k、v。")
    y, present = out
    y = _tensor(y, "DIYAttention.forward 的第一个返回值")
    if not (isinstance(present, tuple | list) and len(present) == 2
            and all(isinstance(t, torch.Tensor) for t in present)):
        raise Failed(f"present 应是 (k, v) 两个张量，实际是 {describe(present)}。",
                     "return self.o_proj(y), (k, v)。")
    return y, tuple(present)


def _llama_attention(weights, C, H, x, cos, sin, mask):
    llama = _llama()
    config = _llama_config(C, H, 64)
    config._attn_implementation = "eager"
    module = llama.LlamaAttention(config, layer_idx=0).eval()
    module.load_state_dict(weights, strict=True)
    additive = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    with torch.no_grad():
        return module(x, position_embeddings=(cos[None], sin[None]), attention_mask=additive)[0]


def _check_attention_once(DIYAttention, hidden_size, num_heads, dropout) -> None:
    C, H = hidden_size, num_heads
    D = C // H
    attn = _build_attention(DIYAttention, C, H, dropout)
    weights = {k: v.detach().clone() for k, v in attn.state_dict().items()}
    rope = reference_model.RotaryEmbedding(D, 64, 10000.0)
    g = torch.Generator().manual_seed(C)
    B, L = 2, 10
    x = torch.randn(B, L, C, generator=g)
    cos, sin = rope(0, L)
    mask = reference_causal_mask(None, 0, L)
    attn.eval()
    before = x.clone()
    with torch.no_grad():
        y, (k, v) = _attn_call(attn, x, cos, sin, mask)
    _unchanged(before, x, "DIYAttention.forward")
    if torch.isnan(y).any():
        raise Failed("输出里有 NaN：多半是 masked_fill 的条件反了（~mask 与 mask），"
                     "第 0 行一个 key 都不能看，整行 −inf 经 softmax 变成 NaN。",
                     "mask 的 True 表示能看：scores.masked_fill(~mask, float(\"-inf\"))。")
    with torch.no_grad():
        again, _ = _attn_call(attn, x, cos, sin, mask)
    if not torch.equal(y, again):
        raise Failed("eval() 之后同样的输入两次输出不同：dropout 在 eval 模式下还在起作用。",
                     "F.dropout 默认 training=True：写 F.dropout(w, p=self.dropout, training=self.training)，"
                     "或用 nn.Dropout 子模块；SDPA 里写 dropout_p=self.dropout if self.training else 0.0。")
    _shape(y, (B, L, C), "输出", "合并各头：y.transpose(1, 2).reshape(B, L, C)，再过 o_proj。")
    if y.dtype != torch.float32:
        raise Failed(f"float32 的输入得到了 {y.dtype} 的输出。", "不要在注意力里转 dtype。")
    _shape(k, (B, H, L, D), "present 的 k", "present 是分头、旋转之后的 k、v，各 (B, H, L, D)。")
    _shape(v, (B, H, L, D), "present 的 v", "present 是分头之后的 k、v，各 (B, H, L, D)。")
    want = _attention(weights, x, cos, sin, mask, H=H)
    if not _close(y, want, 1e-5):
        candidates = {name: _attention(weights, x, cos, sin, mask, H=H, variant=name)
                      for name in ATTENTION_VARIANTS}
        name = mistake_matcher(y, candidates, atol=1e-5)
        if name is not None:
            raise Failed(*ATTENTION_HINTS[name])
        raise Failed("eval 模式下输出与参考的注意力不同。",
                     "投影 → view(B, L, H, D).transpose(1, 2) → 旋转 q、k → q @ kᵀ / √D → "
                     "masked_fill(~mask, −inf) → softmax(dim=-1) → @ v → transpose 回来 reshape → o_proj。")
    want_k = reference_model.apply_rotary((x @ weights["k_proj.weight"].T).view(B, L, H, D).transpose(1, 2), cos, sin)
    if not _close(k, want_k, 1e-5):
        raise Failed("present 里的 k 不是旋转之后的 k。",
                     "缓存存旋转过的 k：下一步直接拿来用，不再旋转。return ..., (k, v)。")
    # same weights in transformers' LlamaAttention, and SDPA on the same q, k, v
    if not _close(y, _llama_attention(weights, C, H, x, cos, sin, mask), 1e-5):
        raise Failed("与 transformers 的 LlamaAttention（同一组权重）结果不同。",
                     "检查分头的顺序、RoPE 的约定和 √D。")
    # a future token never changes the past
    changed = x.clone()
    changed[:, 6] += 1.0
    with torch.no_grad():
        y2, _ = _attn_call(attn, changed, cos, sin, mask)
    if not _close(y[:, :6], y2[:, :6], 1e-6):
        raise Failed("改第 6 个位置的输入，前面 0…5 的输出也变了：后面的 token 泄露给了前面。",
                     "在 softmax 之前用 mask 遮住未来的 key：scores.masked_fill(~mask, float(\"-inf\"))。")
    # KV cache: prefill 7, then one token at a time
    past = None
    steps = []
    with torch.no_grad():
        for start, end in ((0, 7), (7, 8), (8, 9), (9, 10)):
            c, s = rope(start, end - start)
            past_before = None if past is None else tuple(t.clone() for t in past)
            out, present = _attn_call(attn, x[:, start:end], c, s,
                                      reference_causal_mask(None, start, end - start), past)
            if past is not None and not all(torch.equal(a, b) for a, b in zip(past, past_before, strict=True)):
                raise Failed("forward 原地修改了传进来的 past_kv。",
                             "用 torch.cat((past_k, k), dim=2) 生成新张量，不要改动传进来的缓存。")
            for t, name in zip(present, "kv", strict=True):
                if tuple(t.shape) != (B, H, end, D):
                    raise Failed(f"传入长度 {start} 的缓存、再输入 {end - start} 个 token 后，present 的 {name} 形状是 "
                                 f"{tuple(t.shape)}，应为 {(B, H, end, D)}。",
                                 "present 是拼接之后的完整缓存：k = torch.cat((past_k, k), dim=2)，v 同理；"
                                 "return ..., (k, v)。")
            steps.append(out)
            past = present
    if not _close(torch.cat(steps, dim=1), y, 1e-5):
        raise Failed("prefill 7 个 token 再逐个输入（带缓存）与一次算完 10 个不同。",
                     "有 past_kv 时先旋转新的 k（cos/sin 已经带了偏移），再与 past_k 拼接；"
                     "v 同样拼接；mask 的列数是 P + L。")
    # right padding: no NaN, real positions unchanged
    seq_lengths = torch.tensor([L, 6])
    with torch.no_grad():
        padded, _ = _attn_call(attn, x, cos, sin, reference_causal_mask(seq_lengths, 0, L))
        alone, _ = _attn_call(attn, x[1:, :6], rope(0, 6)[0], rope(0, 6)[1], reference_causal_mask(None, 0, 6))
    if not torch.isfinite(padded).all():
        raise Failed("右 padding 时输出里有 NaN。", "被遮住的分数填 −inf；每个 query 至少能看到 key 0。")
    if not _close(padded[1, :6], alone[0], 1e-5):
        raise Failed("右 padding 改变了真实位置的输出。", "用传进来的 mask 遮住 padding 的 key。")
    # dropout: only in train mode
    with torch.no_grad():
        if dropout > 0:
            attn.train()
            first, _ = _attn_call(attn, x, cos, sin, mask)
            second, _ = _attn_call(attn, x, cos, sin, mask)
            attn.eval()
            if torch.equal(first, second):
                raise Failed(f"train() 时 dropout={dropout} 没有起作用（两次输出完全相同）。",
                             "对注意力权重做 dropout：F.dropout(weights, p=self.dropout, training=self.training)。")




# ---------------------------------------------------------------------- 0.4a parts, re-checked

def check_backbone_parts(RMSNorm, RotaryEmbedding, rotate_half, apply_rotary, causal_mask,
                         DIYAttention):
    """Check exercise 0.4a (the parts of 0.1–0.3 pasted in); return the six to use from here on."""
    parts = (RMSNorm, RotaryEmbedding, rotate_half, apply_rotary, causal_mask, DIYAttention)
    reference = (ReferenceRMSNorm, ReferenceRotaryEmbedding, reference_rotate_half,
                 reference_apply_rotary, reference_causal_mask, ReferenceAttention)

    def body() -> str:
        for name, lesson, test in (
                ("RMSNorm", "0.1", lambda: _check_rms_norm_once(RMSNorm, 256)),
                ("RotaryEmbedding", "0.2a", lambda: _check_rotary_once(RotaryEmbedding, 64, 128, 10000.0)),
                ("rotate_half", "0.2b", lambda: _check_rotate_half(rotate_half)),
                ("apply_rotary", "0.2b", lambda: _check_apply_rotary(apply_rotary)),
                ("causal_mask", "0.3a", lambda: [_check_mask_once(causal_mask, *case, 3) for case in (
                    (None, 0, 6), (None, 4, 3), (torch.tensor([9, 7]), 4, 5))]),
                ("DIYAttention", "0.3b", lambda: _check_attention_once(DIYAttention, 32, 4, 0.1))):
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
        raise Failed(f"DIYMLP(...) 得到的是 {describe(mlp)}，应是 nn.Module。", "class DIYMLP(nn.Module): ...")
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
        out = _tensor(call_learner(mlp, x, name="DIYMLP.forward"), "DIYMLP.forward")
    _unchanged(before, x, "DIYMLP.forward")
    _shape(out, x.shape, "输出", "down_proj 把 intermediate_size 变回 hidden_size。")
    gate, up = x @ w["gate_proj.weight"].T, x @ w["up_proj.weight"].T
    down = w["down_proj.weight"].T
    if not _close(out, (F.silu(gate) * up) @ down, 1e-5):
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
        raise Failed(f"DIYDecoderLayer(...) 得到的是 {describe(layer)}，应是 nn.Module。",
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
            raise Failed(f"forward 应返回 (x, present) 两个值，实际返回 {describe(out)}。",
                         "return x, present：present 是注意力返回的 (k, v)，原样交出去。")
        return _tensor(out[0], "DIYDecoderLayer.forward 的第一个返回值"), out[1]

    before = x.clone()
    with torch.no_grad():
        y, present = call(x, cos, sin, mask)
        again, _ = call(x, cos, sin, mask)
        want, want_present = ref(x, cos, sin, mask)
    _unchanged(before, x, "DIYDecoderLayer.forward")
    if not torch.equal(y, again):
        raise Failed("eval() 之后同样的输入两次输出不同：残差分支的 dropout 在 eval 下还在起作用。",
                     "用 nn.Dropout 子模块（跟随 train()/eval()），或 F.dropout(..., training=self.training)。")
    _shape(y, (B, L, C), "输出", "解码层不改变形状。")
    if not _close(y, want, 1e-5):
        with torch.no_grad():
            name = mistake_matcher(y, _layer_variants(ref, x, cos, sin, mask), atol=1e-5)
        if name is not None:
            raise Failed(*LAYER_HINTS[name])
        raise Failed("输出与 pre-norm 解码层不同。",
                     "x = x + dropout(self_attn(input_layernorm(x), cos, sin, mask, past_kv)[0])；"
                     "x = x + dropout(mlp(post_attention_layernorm(x)))。")
    if not (isinstance(present, tuple | list) and len(present) == 2
            and all(isinstance(t, torch.Tensor) and _close(t, w, 1e-6)
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
    if not _close(torch.cat((first, rest), 1), y, 1e-5):
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


# ----------------------------------------------------------------------------- 0.4d DIYModel

COURSE_ARGS = (6400, 2, 256, 4, 128, 0.1)
SMALL_ARGS = (97, 1, 32, 2, 16, 0.0)
PARAMETERS = 3_245_312


def reference_weights(args=COURSE_ARGS) -> dict:
    """The course's reference weights: a seeded diy.DIYModel's state_dict."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return reference_model.DIYModel(*args).state_dict()


def check_diy_model(DIYModel):
    """Check exercise 0.4d; return the DIYModel class to use from here on."""

    def body() -> str:
        _check_model_once(DIYModel, SMALL_ARGS, transformers=False)
        _check_model_once(DIYModel, COURSE_ARGS, transformers=True)
        return ("DIYModel(6400, 2, 256, 4, 128, 0.1)：3,245,312 个参数，名字与 transformers 的 LlamaModel 相同；"
                "strict=True 装进课程的参考权重后，eval 下 hidden_states 与 diy.DIYModel、LlamaModel 相同（差 < 1e-5）；"
                "带缓存 ≡ 一次算完；右 padding 不变、无 NaN；dropout 只跟随 train()/eval()；每个参数都有梯度。")

    return run_check("0.4d", body, DIYModel, reference_model.DIYModel)


def _model_call(model, *args, **kwargs):
    def diagnose(exc):
        text = str(exc)
        if isinstance(exc, TypeError) and "argument" in text:
            return (f"forward 的参数不对：{exc}。",
                    "forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False, is_training=True)。")
        return None

    return call_learner(model, *args, name="DIYModel.forward", diagnose=diagnose, **kwargs)


def _hidden(out, what):
    if isinstance(out, tuple | list):
        raise Failed(f"{what} 返回了 {len(out)} 个值：use_cache=False 时应只返回 hidden_states。",
                     "if use_cache: return hidden_states, presents；否则 return hidden_states。")
    return _tensor(out, what)


def _check_model_once(DIYModel, args, transformers):
    if DIYModel is None:
        raise Todo("DIYModel 还没有定义。")
    V, n_layers, C, H, T, p = args

    def diagnose(exc):
        if isinstance(exc, TypeError) and "argument" in str(exc):
            return (f"DIYModel{args} 构造失败：{exc}。",
                    "__init__(self, vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)：六个位置参数。")
        return None

    model = call_learner(DIYModel, *args, name=f"DIYModel{args}", diagnose=diagnose)
    if not isinstance(model, nn.Module):
        raise Failed(f"DIYModel(...) 得到的是 {describe(model)}，应是 nn.Module。", "class DIYModel(nn.Module): ...")
    layers = getattr(model, "layers", None)
    if isinstance(layers, list | tuple):
        raise Failed("self.layers 是 Python 列表：里面的层没有注册成子模块，model.parameters() 和 state_dict 里都没有它们。",
                     "self.layers = nn.ModuleList(DIYDecoderLayer(...) for _ in range(num_layers))。")
    if isinstance(layers, nn.ModuleList) and len({id(m) for m in layers}) < len(layers):
        raise Failed("self.layers 里是同一个层对象重复了几次（[layer] * n）：所有层共用一份权重。",
                     "每层新建一个：nn.ModuleList(DIYDecoderLayer(...) for _ in range(num_layers))。")
    want = reference_weights(args)
    keys = set(model.state_dict())
    missing, extra = sorted(set(want) - keys), sorted(keys - set(want))
    if missing or extra:
        if "norm.weight" in missing and not extra:
            raise Failed("state_dict 里没有 norm.weight：最后忘了 norm（最终的 RMSNorm）。",
                         "self.norm = RMSNorm(hidden_size)；forward 最后 hidden_states = self.norm(x)。")
        if any(k.split(".")[-1] in ("cos", "sin") for k in extra):
            raise Failed(f"state_dict 里多了 RoPE 的表 {[k for k in extra if k.split('.')[-1] in ('cos', 'sin')]}。",
                         "register_buffer(..., persistent=False)（0.2）。")
        raise Failed(f"名字与课程（和 transformers）的不一致：缺少 {len(missing)} 个（如 {missing[:2]}），"
                     f"多出 {len(extra)} 个（如 {extra[:2]}）。",
                     "self.embed_tokens、self.layers（nn.ModuleList）、self.norm；每层 input_layernorm、self_attn、"
                     "post_attention_layernorm、mlp——strict=True 才装得进。")
    for k, t in model.state_dict().items():
        if t.shape != want[k].shape:
            raise Failed(f"{k} 的形状是 {tuple(t.shape)}，应为 {tuple(want[k].shape)}。",
                         "用构造函数的参数；MLP 宽度 intermediate_size = 8/3 × hidden_size 向上取到 64 的倍数（256 → 704）。")
    count = sum(t.numel() for t in model.parameters())
    expected = sum(t.numel() for t in want.values())
    if count != expected:
        raise Failed(f"参数量是 {count:,}，应为 {expected:,}。", "检查每个子模块是否都注册成了 nn.Module / nn.Parameter。")
    emb = model.embed_tokens.weight.detach()
    if abs(emb.std().item() - 0.02) > 0.005:
        raise Failed(f"embed_tokens.weight 的标准差是 {emb.std().item():.3f}，课程用 N(0, 0.02) 初始化。",
                     "nn.init.normal_(module.weight, mean=0.0, std=0.02)：对每个 nn.Linear、nn.Embedding（self.apply(...)）。")
    model.load_state_dict(want, strict=True)
    reference = reference_model.DIYModel(*args)
    reference.load_state_dict(want, strict=True)
    model.eval()
    reference.eval()
    g = torch.Generator().manual_seed(V)
    ids = torch.randint(0, V, (2, 12), generator=g)
    ids_before = ids.clone()
    with torch.no_grad():
        hidden = _hidden(_model_call(model, ids), "model(input_ids)")
        again = _hidden(_model_call(model, ids), "model(input_ids)")
        want_hidden = reference(ids)
    _unchanged(ids_before, ids, "DIYModel.forward")
    if not torch.equal(hidden, again):
        raise Failed("eval() 之后同样的输入两次输出不同：dropout 还在起作用。",
                     "dropout 只跟随 model.train() / model.eval()：用 nn.Dropout 或 training=self.training。")
    _shape(hidden, (2, 12, C), "hidden_states", "embed_tokens → 各层 → norm，形状 (B, L, hidden_size)。")
    if hidden.dtype != torch.float32:
        raise Failed(f"hidden_states 的 dtype 是 {hidden.dtype}，应为 float32。", "不要在模型里转 dtype。")
    if not _close(hidden, want_hidden, 1e-5):
        raise Failed("装进同一份权重后，eval 下的 hidden_states 与课程的 diy.DIYModel 不同。",
                     "检查 forward：x = embed_tokens(ids)；cos, sin = self.rotary(past_len, L)；"
                     "mask = causal_mask(seq_lengths, past_len, L)；每层 x, present = layer(x, cos, sin, mask, past)；"
                     "最后 self.norm(x)。")
    if transformers:
        llama = _llama().LlamaModel(_llama_config(C, H, T, num_layers=n_layers, vocab_size=V))
        llama.load_state_dict(want, strict=True)
        with torch.no_grad():
            theirs = llama.eval()(input_ids=ids).last_hidden_state
        if not _close(hidden, theirs, 1e-5):
            raise Failed("与 transformers 的 LlamaModel（同一份权重）的 hidden_states 不同。",
                         "检查 RMSNorm 的 eps（1e-6）、RoPE 的前后两半约定、SwiGLU 的 silu 位置。")
    # the cached path: prefill 6, then one token at a time
    with torch.no_grad():
        out = _model_call(model, ids[:, :6], is_training=False, use_cache=True)
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise Failed("is_training=False, use_cache=True 应返回 (hidden_states, presents)。",
                         "if use_cache: return hidden_states, presents。")
        first, presents = out
        if not (isinstance(presents, list | tuple) and len(presents) == n_layers):
            raise Failed(f"presents 应是每层一个 (k, v)，共 {n_layers} 个，实际是 {describe(presents)}。",
                         "presents.append(present)：每层一个。")
        steps = [_tensor(first, "hidden_states")]
        for t in range(6, 12):
            step, presents = _model_call(model, ids[:, t:t + 1], past_key_values=presents,
                                         is_training=False, use_cache=True)
            steps.append(step)
        k = presents[0][0]
        if tuple(k.shape) != (2, H, 12, C // H):
            raise Failed(f"喂完 12 个 token 后第 0 层缓存的 k 形状是 {tuple(k.shape)}，应为 {(2, H, 12, C // H)}。",
                         "把每层的 present 收进 presents 列表返回，下一次作为 past_key_values 传回。")
    if not _close(torch.cat(steps, 1), hidden, 1e-5):
        raise Failed("prefill 6 个再逐个解码，与一次算完不同：新 token 的位置没有接在缓存后面"
                     "（RoPE 和 mask 的偏移），或 past_key_values 没有交给各层。",
                     "past_len = past_key_values[0][0].shape[2]（没有缓存时为 0）；cos, sin = self.rotary(past_len, L)；"
                     "mask = causal_mask(seq_lengths, past_len, L)；第 i 层拿 past_key_values[i]。")
    # right padding
    with torch.no_grad():
        padded = _hidden(_model_call(model, ids, seq_lengths=torch.tensor([12, 7])), "model(input_ids, seq_lengths)")
        alone = _hidden(_model_call(model, ids[1:, :7]), "model(input_ids)")
    if not torch.isfinite(padded).all() or not _close(padded[1, :7], alone[0], 1e-5):
        raise Failed("右 padding（seq_lengths）改变了真实位置的输出或产生了 NaN。",
                     "把 seq_lengths 交给 causal_mask(seq_lengths, past_len, L)，再交给每一层。")
    # dropout only in train mode, and a gradient on every parameter
    model.train()
    if p > 0:
        with torch.no_grad():
            if torch.equal(_model_call(model, ids), _model_call(model, ids)):
                raise Failed(f"train() 时 dropout={p} 没有起作用。", "把 dropout 交给每层的注意力和残差分支。")
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():  # the caller's grad mode is not the learner's concern
        out = _hidden(_model_call(model, ids), "model(input_ids)")
        (out * torch.randn(out.shape, generator=g)).sum().backward()
    missing = [n for n, q in model.named_parameters() if q.grad is None or not torch.any(q.grad != 0)]
    model.zero_grad(set_to_none=True)
    if missing:
        raise Failed(f"这些参数没有得到梯度：{missing[:3]}。",
                     "每个参数都要用在前向计算里；不要 .detach()，也不要在 forward 里用 torch.no_grad()。")
    if transformers and count != PARAMETERS:
        raise Failed(f"参数量是 {count:,}，课程的默认超参下应为 {PARAMETERS:,}。", "检查 MLP 的宽度 704。")


# ------------------------------------------------------------------ 0.4: write DIYModel.py

HEADER = '''"""我的 DIYModel：第零步（0.1～0.4）里我自己写的骨干网络。

由 step0_4 的导出单元格从我的 notebook 里写出（每次运行导出单元格都会覆盖本文件）。
用它学后面的课：在仓库根目录运行 make lab BACKBONE=notebooks/DIYModel.py
（或设 DIY_BACKBONE=/完整路径/notebooks/DIYModel.py）；
检查它：python -m diy.doctor --backbone notebooks/DIYModel.py
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
'''


def source_of(obj) -> str:
    """The source of a function or class, also when it was defined in a notebook cell (where
    ``inspect.getsource`` of a class fails: the class's module, __main__, has no file)."""
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        if not inspect.isclass(obj):
            raise
    functions = [f for f in vars(obj).values() if inspect.isfunction(f)]
    if not functions:
        raise OSError(f"{obj.__name__} 没有方法，找不到它的源代码")
    filename = functions[0].__code__.co_filename
    lines = linecache.getlines(filename)
    tree = ast.parse("".join(lines))
    line = functions[0].__code__.co_firstlineno
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == obj.__name__ \
                and node.lineno <= line <= node.end_lineno:
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            return "".join(lines[start - 1:node.end_lineno])
    raise OSError(f"找不到 {obj.__name__} 的源代码")


def write_backbone(path, parts) -> list[str]:
    """Write the learner's own parts (functions and classes defined in the notebook, in order) to
    ``path``; return the names written. Parts that are the course's references are refused."""
    exercise_names = {ReferenceRMSNorm: "RMSNorm", ReferenceRotaryEmbedding: "RotaryEmbedding",
                      reference_rotate_half: "rotate_half", reference_apply_rotary: "apply_rotary",
                      reference_causal_mask: "causal_mask", ReferenceAttention: "DIYAttention",
                      ReferenceMLP: "DIYMLP", ReferenceDecoderLayer: "DIYDecoderLayer",
                      reference_model.DIYModel: "DIYModel"}
    borrowed = [exercise_names.get(p, getattr(p, "__name__", repr(p))) for p in parts
                if getattr(p, "__module__", None) != "__main__"]
    if borrowed:
        raise Todo("这些还是课程的参考实现（自检没通过或还没写）："
                   + "、".join(borrowed) + "。自检全部 ✅ 之后再导出。")
    body = "\n\n".join(source_of(p).rstrip() + "\n" for p in parts)
    Path(path).write_text(HEADER + "\n\n" + body, encoding="utf-8")
    return [p.__name__ for p in parts]


def export_backbone(parts, path="DIYModel.py") -> bool:
    """Write the learner's parts to ``path`` (see write_backbone) and say so; never raises."""
    try:
        names = write_backbone(path, parts)
    except Todo as todo:
        print(f"⏳ 还不能导出 {path}：{todo}")
        return False
    except Exception as exc:  # noqa: BLE001 - a notebook cell must not raise
        print(f"❌ 导出 {path} 失败：{type(exc).__name__}: {exc}")
        return False
    lines = Path(path).read_text(encoding="utf-8").count("\n")
    print(f"✅ 写出了 {path}（{lines} 行）：" + "、".join(names))
    return True


__all__ = ["check_rms_norm", "check_rotary", "check_apply_rotary", "check_causal_mask",
           "check_attention", "check_backbone_parts", "check_mlp", "check_decoder_layer",
           "check_diy_model"]

"""Self-check of 0.1: the learner's RMSNorm, against the course's, torch.nn.RMSNorm and
transformers' LlamaRMSNorm, with each known mistake named (no float32 upcast, mean instead of
mean of squares, eps outside the root, ...)."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ... import model as reference_model
from ...errors import describe_value
from .parts import (
    EPS,
    close,
    llama_modules,
    require_shape,
    require_unchanged,
    returned_tensor,
)
from .report import Failed, Todo, call_learner, mistake_matcher, run_check


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
            check_rms_norm_once(RMSNorm, size)
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
        raise Failed(f"RMSNorm(...) 得到的是 {describe_value(norm)}，应是 nn.Module。",
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
    require_shape(weight, (size,), "weight", "nn.Parameter(torch.ones(hidden_size))，用参数 hidden_size，不要写死 256。")
    if torch.all(weight == 0):
        raise Failed("weight 初始化成了 0：输出会全是 0。", "初始全 1：nn.Parameter(torch.ones(hidden_size))。")
    if not torch.all(weight == 1):
        raise Failed("weight 的初始值不是全 1。", "nn.Parameter(torch.ones(hidden_size))：一开始不缩放。")
    return norm


KEEPDIM = ("均方的形状和 x 对不上：mean(dim=-1) 少了 keepdim=True，把最后一维去掉了，(…, C) 的 x "
           "不能再和它逐行相乘。",
           "ms = x.pow(2).mean(dim=-1, keepdim=True)：形状 (…, 1)，每个位置一个均方，自动广播到 C 列。")
NO_UPCAST = ("在输入的 dtype 里直接算了均方（没有先转 float32）：float16 的 x 里有 300 这样的数时，"
             "x² = 90000 超过了 float16 的上限 65504，变成 inf，整行输出成了 0（Llama 先转 float32 正是为此）。",
             "先 x32 = x.float()，在 float32 里算均方和 rsqrt，算完 .to(x.dtype) 转回输入的 dtype，"
             "再乘 self.weight。")
NOT_CAST_BACK = ("{dtype} 的输入、{dtype} 的 weight 得到了 {got} 的输出：在 float32 里算完没有转回输入的 dtype。",
                 "算完 normed.to(x.dtype) 转回，再乘 self.weight（整个模型都是 {dtype} 时，输出也应是 {dtype}）。")


def _forward(norm, inputs):
    def diagnose(exc):
        if isinstance(exc, RuntimeError) and "must match the size of tensor" in str(exc):
            return KEEPDIM
        return None

    return returned_tensor(call_learner(norm, inputs, name="RMSNorm.forward", diagnose=diagnose),
                           "RMSNorm.forward")


def _check_low_precision(norm, llama, size: int, g: torch.Generator) -> None:
    """The whole module in bfloat16, then in float16 (weight and input alike, as a model run
    in that dtype): the output keeps the dtype and matches LlamaRMSNorm, which computes in
    float32. The float16 input holds values whose squares overflow float16 (> 65504): computed
    in the input dtype, the mean square is inf. (In bfloat16 a tolerance cannot separate the
    two: torch.nn.RMSNorm rounds once where Llama rounds twice, and differs from it as much as a
    bfloat16 computation does on ordinary values; measured.)"""
    x = torch.randn(2, 5, size, generator=g)
    for dtype, inputs in ((torch.bfloat16, (x * 3 + 1.5).to(torch.bfloat16)),
                          (torch.float16, (x * 300).to(torch.float16))):
        norm.to(dtype)
        llama.to(dtype)
        out = _forward(norm, inputs)
        if out.dtype == torch.float32:
            name = str(dtype).removeprefix("torch.")
            raise Failed(NOT_CAST_BACK[0].format(dtype=name, got="float32"),
                         NOT_CAST_BACK[1].format(dtype=name))
        if out.dtype != dtype or not torch.allclose(out.float(), llama(inputs).float(),
                                                    atol=2e-2, rtol=1e-2):
            if dtype == torch.float16 or not torch.isfinite(out).all():
                raise Failed(*NO_UPCAST)
            raise Failed(f"{dtype} 的输入和 weight 得到了 {out.dtype} 的输出，或数值与 LlamaRMSNorm 差得太多。",
                         "先 x.float() 在 float32 里算，算完 .to(x.dtype) 转回输入的 dtype，再乘 weight。")


def check_rms_norm_once(RMSNorm, size: int) -> None:
    norm = _build_rms_norm(RMSNorm, size)
    llama = llama_modules().LlamaRMSNorm(size, eps=EPS)
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
        out = _forward(norm, inputs)
        require_unchanged(before, inputs, "RMSNorm.forward")
        require_shape(out, inputs.shape, "输出", "RMSNorm 不改变形状：每个位置各自归一化，沿最后一维。")
        if out.dtype != torch.float32:
            raise Failed(f"float32 的输入得到了 {out.dtype} 的输出。",
                         "在 float32 里算完后 .to(x.dtype) 转回输入的 dtype，再乘 weight。")
        want = llama(inputs)
        if not (close(out, want, 1e-6) and close(out, torch_norm(inputs), 1e-6)):
            if torch.isnan(out).any():
                raise Failed(*RMS_HINTS["no_eps"])
            name = mistake_matcher(out, _rms_mistakes(inputs, w), atol=1e-6)
            if name is not None:
                raise Failed(*RMS_HINTS[name])
            raise Failed("输出与 torch.nn.RMSNorm(eps=1e-6) 和 LlamaRMSNorm 都不同。",
                         "x / sqrt(mean(x², dim=-1) + eps) * weight：先转 float32，沿最后一维求均方，"
                         "乘 torch.rsqrt(ms + self.eps)，转回输入的 dtype，再乘 self.weight。")
    out = _forward(norm, zeros)
    if not torch.isfinite(out).all():
        raise Failed(*RMS_HINTS["no_eps"])
    with torch.enable_grad():
        call_learner(norm, x, name="RMSNorm.forward").float().sum().backward()
    if norm.weight.grad is None:
        raise Failed("weight 没有得到梯度：forward 里没有用 self.weight，或用 .detach() 切断了它。",
                     "forward 的最后乘 self.weight。")
    half = x.to(torch.bfloat16)  # the lesson's case: bfloat16 activations, float32 weight
    with warnings.catch_warnings():  # torch.nn.RMSNorm warns about bf16 input, float32 weight
        warnings.simplefilter("ignore")
        out = _forward(norm, half)
    if out.dtype not in (torch.bfloat16, torch.float32) or not close(out, llama(half), 5e-2):
        raise Failed(f"bfloat16 的输入得到了 {out.dtype} 的输出，或数值与 LlamaRMSNorm 差得太多。",
                     "先 x.float() 在 float32 里算，算完 .to(x.dtype) 转回输入的 dtype，再乘 weight。")
    _check_low_precision(norm, llama, size, g)



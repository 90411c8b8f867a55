"""Self-checks of 0.2: the learner's RoPE tables (0.2a, RotaryEmbedding) and rotation
(0.2b, rotate_half / apply_rotary), against the course's and transformers' Llama."""

from __future__ import annotations

import torch
from torch import nn

from ... import model as reference_model
from ...errors import describe_value
from .parts import (
    close,
    llama_config_for,
    llama_modules,
    require_shape,
    require_unchanged,
    returned_tensor,
)
from .report import Failed, Todo, call_learner, mistake_matcher, run_check


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
            check_rotary_once(RotaryEmbedding, D, T, theta)
        check_tables_follow_to(RotaryEmbedding)
        return ("cos/sin 表与 transformers 的 LlamaRotaryEmbedding 逐元素相同（前后两半约定）；"
                "forward(start, length) 的偏移正确；表不进 state_dict；"
                "换成 head_dim=16、max_seq_len=20、theta=500 也正确。")

    return run_check("0.2a", body, RotaryEmbedding, ReferenceRotaryEmbedding)


def check_rotary_once(RotaryEmbedding, D: int, T: int, theta: float) -> None:
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
        raise Failed(f"RotaryEmbedding(...) 得到的是 {describe_value(rope)}，应是 nn.Module。",
                     "class RotaryEmbedding(nn.Module): ...，__init__ 第一行 super().__init__()。")
    if any(p.requires_grad for p in rope.parameters()):
        raise Failed("cos/sin 表成了可训练的参数（nn.Parameter）。",
                     "用 self.register_buffer(\"cos\", ..., persistent=False)，不要 nn.Parameter。")
    keys = list(rope.state_dict())
    if keys:
        raise Failed(f"state_dict 里有 {keys}：cos/sin 表进了 state_dict，"
                     "装进 transformers 时 strict=True 会报多余的键。",
                     "表由超参推出，不该保存：self.register_buffer(\"cos\", ..., persistent=False)。")
    llama = llama_modules().LlamaRotaryEmbedding(llama_config_for(D * 2, 2, T, theta))
    for start, length in ((0, T), (7, 3), (T - 1, 1)):
        out = call_learner(rope, start, length, name="RotaryEmbedding.forward(start, length)")
        if not (isinstance(out, tuple) and len(out) == 2):
            raise Failed(f"forward(start, length) 应返回 (cos, sin) 两个张量，实际返回 {describe_value(out)}。",
                         "return self.cos[start:start + length], self.sin[start:start + length]。")
        cos, sin = (returned_tensor(t, "RotaryEmbedding.forward") for t in out)
        if tuple(cos.shape) == (length, D // 2) or tuple(cos.shape) == (T, D // 2):
            raise Failed(f"cos 的形状是 {tuple(cos.shape)}：只有 D/2 列，少了「拼成两份」这一步。",
                         "angles (T, D/2) → torch.cat((angles, angles), dim=-1) → (T, D)，再取 cos、sin。")
        if tuple(cos.shape) == (T, D) and length != T:
            raise Failed(f"forward({start}, {length}) 返回了整张表 {tuple(cos.shape)}，没有切片。",
                         "取表时从 start 开始取 length 行：self.cos[start:start + length]。")
        for name, t in (("cos", cos), ("sin", sin)):
            require_shape(t, (length, D), name, "forward(start, length) 返回 (length, head_dim) 的表：self.cos[start:start + length]。")
            if t.dtype != torch.float32:
                raise Failed(f"{name} 的 dtype 是 {t.dtype}，应为 float32。",
                             "用 torch.arange(...).float() 算角度，不要用 float64 / 整数。")
        positions = torch.arange(start, start + length)[None]  # (1, L)
        want_cos, want_sin = llama(torch.zeros(1, length, D), positions)  # (1, L, D) each
        # 1e-3: angles reach T - 1 radians, where float32 cos/sin differ by up to 1.5e-4
        # between torch's vectorised and scalar paths (measured; which one runs can depend on
        # the memory layout); every listed mistake moves the table by far more
        if not (close(cos, want_cos[0], 1e-3) and close(sin, want_sin[0], 1e-3)):
            for name, (c, s) in _rope_mistakes(D, T, theta, start, length).items():
                if close(cos, c, 1e-3) and close(sin, s, 1e-3):
                    raise Failed(*ROPE_HINTS[name])
            raise Failed(f"forward({start}, {length}) 的 cos/sin 与 LlamaRotaryEmbedding 不同。",
                         "inv_freq = 1/theta^(arange(0, D, 2)/D)；angles = outer(arange(T), inv_freq)；"
                         "cat((angles, angles), -1)；取 cos、sin；再切 [start:start+length]。")


def check_tables_follow_to(RotaryEmbedding) -> None:
    """The tables must move with the module: ``model.to("cuda")`` moves parameters and buffers,
    not tensors kept as plain attributes. Checked by a ``.to(torch.float64)`` round trip (it
    converts buffers the same way): tables that stay float32 while the module holds plain tensor
    attributes are those attributes. (A forward that casts its buffers back is fine.)"""
    rope = call_learner(RotaryEmbedding, 16, 20, theta=500.0, name="RotaryEmbedding(...)")
    plain = [name for name, value in vars(rope).items()
             if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter)]
    if not plain:
        return
    rope.to(torch.float64)
    out = call_learner(rope, 0, 3, name="RotaryEmbedding.forward(start, length)")
    if isinstance(out, tuple) and all(isinstance(t, torch.Tensor) and t.dtype == torch.float64
                                      for t in out):
        return
    names = "、".join(f"self.{name}" for name in plain)
    raise Failed(f"{names} 是普通属性，不是 buffer：model.to(...) 不会移动它们——整个模型 .to(\"cuda\") 之后，"
                 "表还留在 CPU 上，前向时报设备不一致（这里用 .to(torch.float64) 试了一下：表没有跟着变）。",
                 "self.register_buffer(\"cos\", cos, persistent=False)（sin 同理）：buffer 跟着 .to() 走，"
                 "persistent=False 又不进 state_dict。")


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
        check_rotate_half(rotate_half)
        check_apply_rotary_alone(apply_rotary)
        return ("rotate_half 是前后两半的 (−x2, x1)；apply_rotary 与 transformers 的 apply_rotary_pos_emb "
                "相同（差 < 1e-6），不改变向量长度；换成 head_dim=16 也正确。")

    return run_check("0.2b", body, (rotate_half, apply_rotary),
                     (reference_rotate_half, reference_apply_rotary))


def check_rotate_half(rotate_half) -> None:
    g = torch.Generator().manual_seed(2)
    for D in (64, 16):
        x = torch.randn(2, 3, 5, D, generator=g)
        before = x.clone()
        out = returned_tensor(call_learner(rotate_half, x, name="rotate_half"), "rotate_half")
        require_unchanged(before, x, "rotate_half")
        require_shape(out, x.shape, "rotate_half(x)", "rotate_half 不改变形状：torch.cat((-x2, x1), dim=-1)。")
        if not torch.equal(out, reference_model.rotate_half(x)):
            name = mistake_matcher(out, _rotate_mistakes(x), atol=0)
            if name is not None:
                raise Failed(*ROTATE_HINTS[name.rstrip("2")])
            raise Failed("rotate_half(x) 的结果不是 (−x2, x1)。",
                         "x1, x2 = 最后一维的前一半、后一半；return torch.cat((-x2, x1), dim=-1)。"
                         "用 x.shape[-1] // 2，不要写死 32。")


def check_apply_rotary_alone(apply_rotary) -> None:
    llama = llama_modules()
    g = torch.Generator().manual_seed(3)
    for D, T in ((64, 128), (16, 20)):
        rope = reference_model.RotaryEmbedding(D, T, 10000.0)
        for start, L in ((0, 6), (9, 4)):
            cos, sin = rope(start, L)  # (L, D)
            q = torch.randn(2, 3, L, D, generator=g)
            k = torch.randn(2, 3, L, D, generator=g)
            before = q.clone()
            out = returned_tensor(call_learner(apply_rotary, q, cos, sin, name="apply_rotary"),
                          "apply_rotary")
            require_unchanged(before, q, "apply_rotary")
            require_shape(out, q.shape, "apply_rotary(x, cos, sin)",
                   "对 (B, H, L, D) 的 x 逐元素运算，cos/sin (L, D) 会自动广播。")
            want, _ = llama.apply_rotary_pos_emb(q, k, cos[None], sin[None])  # (B, H, L, D)
            if not close(out, want, 1e-6):
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
    if not close(out.norm(dim=-1), q.norm(dim=-1), 1e-4):  # follows from the match; said anyway
        raise Failed("旋转改变了向量的长度。", "x * cos + rotate_half(x) * sin。")




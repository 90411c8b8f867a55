"""Self-checks of 0.3: the causal (and padding) mask with a cache offset (0.3a) and the
learner's DIYAttention (0.3b), against the course's attention and transformers' LlamaAttention."""

from __future__ import annotations

import inspect
import math
import re

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
            check_mask_once(causal_mask, seq_lengths, past_len, length, H)
        return ("因果 mask 含对角线；带缓存时 query 的位置从 past_len 数起；"
                "seq_lengths 之后的 key 被遮住；形状能广播到 (B, H, L, P+L)。")

    return run_check("0.3a", body, causal_mask, reference_causal_mask)


def check_mask_once(causal_mask, seq_lengths, past_len, length, H) -> None:
    B = 1 if seq_lengths is None else len(seq_lengths)
    lengths_before = None if seq_lengths is None else seq_lengths.clone()
    call = f"causal_mask({'None' if seq_lengths is None else seq_lengths.tolist()}, {past_len}, {length})"

    def diagnose(exc):
        if seq_lengths is not None and isinstance(exc, RuntimeError) and \
                "must match the size of tensor" in str(exc):
            return ("seq_lengths 是 (B,)：直接和 (1, P+L) 的 key 位置比较，形状对不上（最后一维 P+L 对 B）。",
                    "先变成一列 (B, 1)：key_pos[None, :] < seq_lengths[:, None]，得到 (B, P+L)。")
        return None

    mask = returned_tensor(call_learner(causal_mask, seq_lengths, past_len, length, name=call,
                                        diagnose=diagnose), call)
    if seq_lengths is not None:
        require_unchanged(lengths_before, seq_lengths, "causal_mask")
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
        from ...config import DIYConfig

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
        check_attention_once(DIYAttention, hidden_size=32, num_heads=4, dropout=0.0)
        check_attention_once(DIYAttention, hidden_size=256, num_heads=4, dropout=0.1)
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
        raise Failed(f"DIYAttention(...) 得到的是 {describe_value(attn)}，应是 nn.Module。",
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


def _mentions(fn, pattern: str) -> bool:
    """Whether ``fn``'s source (a notebook cell's too) matches ``pattern``."""
    try:
        return re.search(pattern, inspect.getsource(fn)) is not None
    except (OSError, TypeError):
        return False


def _attn_call(attn, *args):
    def diagnose(exc):
        text = str(exc)
        if isinstance(exc, RuntimeError) and "must match the size of tensor" in text and \
                _mentions(type(attn).forward, r"\bk\.T\b"):
            return ("k.T 在 4 维张量上把所有维度都倒过来了（(B, H, L, D) → (D, L, H, B)），不是只交换最后两维："
                    "q @ k.T 的形状对不上。",
                    "scores = q @ k.transpose(-2, -1)（或 k.mT）：只交换最后两维，(B, H, D, L)。")
        if isinstance(exc, TypeError) and "argument" in text:
            return (f"forward 的参数不对：{exc}。",
                    "forward(self, x, cos, sin, mask, past_kv=None)，返回 (输出, (k, v))。")
        if "view size is not compatible" in text:
            return ("对 transpose 之后（不连续）的张量调用了 .view()。",
                    "合并头时用 y.transpose(1, 2).reshape(B, L, C)（或 .contiguous().view）。")
        cached = len(args) == 5 and args[4] is not None
        if "Sizes of tensors must match" in text or "Expected size" in text or \
                (cached and "must match the size of tensor" in text):
            return (f"带缓存时形状对不上（{text.splitlines()[0]}）：past_kv 没有和新的 k、v 正确拼接。",
                    "past_k、past_v 各 (B, H, P, D)：沿序列那一维拼，k = torch.cat((past_k, k), dim=2)，v 同理。")
        return None

    out = call_learner(attn, *args, name="DIYAttention.forward", diagnose=diagnose)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise Failed(f"forward 应返回 (输出, present) 两个值，实际返回 {describe_value(out)}。",
                     "return self.o_proj(y), (k, v)：present 是拼好缓存之后的 k、v。")
    y, present = out
    y = returned_tensor(y, "DIYAttention.forward 的第一个返回值")
    if not (isinstance(present, tuple | list) and len(present) == 2
            and all(isinstance(t, torch.Tensor) for t in present)):
        raise Failed(f"present 应是 (k, v) 两个张量，实际是 {describe_value(present)}。",
                     "return self.o_proj(y), (k, v)。")
    return y, tuple(present)


def _llama_attention(weights, C, H, x, cos, sin, mask):
    llama = llama_modules()
    config = llama_config_for(C, H, 64)
    config._attn_implementation = "eager"
    module = llama.LlamaAttention(config, layer_idx=0).eval()
    module.load_state_dict(weights, strict=True)
    additive = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    with torch.no_grad():
        return module(x, position_embeddings=(cos[None], sin[None]), attention_mask=additive)[0]


def check_attention_once(DIYAttention, hidden_size, num_heads, dropout) -> None:
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
    require_unchanged(before, x, "DIYAttention.forward")
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
    require_shape(y, (B, L, C), "输出", "合并各头：y.transpose(1, 2).reshape(B, L, C)，再过 o_proj。")
    if y.dtype != torch.float32:
        raise Failed(f"float32 的输入得到了 {y.dtype} 的输出。", "不要在注意力里转 dtype。")
    require_shape(k, (B, H, L, D), "present 的 k", "present 是分头、旋转之后的 k、v，各 (B, H, L, D)。")
    require_shape(v, (B, H, L, D), "present 的 v", "present 是分头之后的 k、v，各 (B, H, L, D)。")
    want = _attention(weights, x, cos, sin, mask, H=H)
    if not close(y, want, 1e-5):
        candidates = {name: _attention(weights, x, cos, sin, mask, H=H, variant=name)
                      for name in ATTENTION_VARIANTS}
        name = mistake_matcher(y, candidates, atol=1e-5)
        if name is not None:
            raise Failed(*ATTENTION_HINTS[name])
        raise Failed("eval 模式下输出与参考的注意力不同。",
                     "投影 → view(B, L, H, D).transpose(1, 2) → 旋转 q、k → q @ kᵀ / √D → "
                     "masked_fill(~mask, −inf) → softmax(dim=-1) → @ v → transpose 回来 reshape → o_proj。")
    want_k = reference_model.apply_rotary((x @ weights["k_proj.weight"].T).view(B, L, H, D).transpose(1, 2), cos, sin)
    if not close(k, want_k, 1e-5):
        raise Failed("present 里的 k 不是旋转之后的 k。",
                     "缓存存旋转过的 k：下一步直接拿来用，不再旋转。return ..., (k, v)。")
    # same weights in transformers' LlamaAttention, and SDPA on the same q, k, v
    if not close(y, _llama_attention(weights, C, H, x, cos, sin, mask), 1e-5):
        raise Failed("与 transformers 的 LlamaAttention（同一组权重）结果不同。",
                     "检查分头的顺序、RoPE 的约定和 √D。")
    # a future token never changes the past
    changed = x.clone()
    changed[:, 6] += 1.0
    with torch.no_grad():
        y2, _ = _attn_call(attn, changed, cos, sin, mask)
    if not close(y[:, :6], y2[:, :6], 1e-6):
        raise Failed("改第 6 个位置的输入，前面 0…5 的输出也变了：后面的 token 泄露给了前面。",
                     "在 softmax 之前用 mask 遮住未来的 key：scores.masked_fill(~mask, float(\"-inf\"))。")
    # KV cache: prefill 5, then a chunk of 3 (the mask's past_len offset matters only when a
    # query sees past keys and later queries of its own chunk), then one token at a time
    past = None
    steps = []
    with torch.no_grad():
        for start, end in ((0, 5), (5, 8), (8, 9), (9, 10)):
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
            if start == 5 and not close(out, y[:, 5:8], 1e-5) and \
                    close(out[:, -1:], y[:, 7:8], 1e-5):
                raise Failed("带缓存时一次输入几个 token（先 5 个、再 3 个）与一次算完不同：最后一个新 token 对了，"
                             "前面的看到了它们之后的 token——有缓存时没有用传进来的 mask（只有一个新 token 时"
                             "它能看所有 key，几个新 token 之间却仍要因果遮挡）。",
                             "有没有 past_kv 都用传进来的 mask：scores.masked_fill(~mask, float(\"-inf\"))，"
                             "mask 的形状是 (…, L, P+L)。")
            steps.append(out)
            past = present
    if not close(torch.cat(steps, dim=1), y, 1e-5):
        raise Failed("prefill 5 个 token、再输入 3 个、再逐个输入（带缓存）与一次算完 10 个不同。",
                     "有 past_kv 时先旋转新的 k（cos/sin 已经带了偏移），再与 past_k 拼接；"
                     "v 同样拼接；mask 的列数是 P + L。")
    # right padding: no NaN, real positions unchanged
    seq_lengths = torch.tensor([L, 6])
    with torch.no_grad():
        padded, _ = _attn_call(attn, x, cos, sin, reference_causal_mask(seq_lengths, 0, L))
        alone, _ = _attn_call(attn, x[1:, :6], rope(0, 6)[0], rope(0, 6)[1], reference_causal_mask(None, 0, 6))
    if not torch.isfinite(padded).all():
        raise Failed("右 padding 时输出里有 NaN。", "被遮住的分数填 −inf；每个 query 至少能看到 key 0。")
    if not close(padded[1, :6], alone[0], 1e-5):
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





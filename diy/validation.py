"""Checks on DIYModel.forward's arguments, with messages that name the problem and the fix.

Run before any computation, so a learner sees one clear DIYInputError instead of an
IndexError from inside nn.Embedding or a shape error from inside attention.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .config import DIYConfig
from .errors import DIYInputError
from .kv_cache import PreallocatedKV

# past_key_values / presents: one (k, v) pair per layer, each (B, num_heads, L_total, head_dim),
# or one PreallocatedKV per layer (what generate uses).
KVCache = Sequence[tuple[torch.Tensor, torch.Tensor] | PreallocatedKV] | None


def _fail(problem_zh: str, fix_zh: str, gloss_en: str):
    raise DIYInputError(problem_zh, fix_zh, gloss_en)


def check_input_ids(config: DIYConfig, input_ids) -> None:
    if not isinstance(input_ids, torch.Tensor):
        _fail(f"input_ids 应该是 torch.Tensor，但收到的是 {type(input_ids).__name__}。",
              "用 torch.tensor([[...]], dtype=torch.long) 或 torch.randint(0, vocab_size, (B, L)) "
              "构造。",
              "input_ids must be a torch.Tensor.")
    if input_ids.dtype not in (torch.int64, torch.int32):
        _fail(f"input_ids 的 dtype 是 {input_ids.dtype}，但 token id 必须是整数。",
              "用 input_ids.long() 转成 torch.long；token id 是词表里的编号，不是浮点数。",
              f"input_ids must be an integer tensor (torch.long), got {input_ids.dtype}.")
    if input_ids.dim() != 2:
        hint = ("单条序列请用 input_ids.unsqueeze(0) 加上 batch 维。" if input_ids.dim() == 1
                else "把数据整理成 (batch_size, seq_len) 两维。")
        _fail(f"input_ids 的形状是 {tuple(input_ids.shape)}，应为两维 (B, L)。", hint,
              f"input_ids must be 2-D (batch, seq_len), got shape {tuple(input_ids.shape)}.")
    if input_ids.numel() == 0:
        _fail(f"input_ids 是空的，形状 {tuple(input_ids.shape)}。",
              "至少给一条、长度至少为 1 的序列。",
              "input_ids is empty; batch size and length must be at least 1.")
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= config.vocab_size:
        bad = low if low < 0 else high
        _fail(f"input_ids 里有 id {bad}，超出词表范围 [0, {config.vocab_size})。",
              f"确认分词器的词表大小与模型的 vocab_size={config.vocab_size} 一致；"
              f"随机数据用 torch.randint(0, {config.vocab_size}, (B, L))（上界不含）。",
              f"token id {bad} is outside [0, vocab_size={config.vocab_size}).")


def check_seq_lengths(seq_lengths, batch_size: int, length: int) -> torch.Tensor:
    """Return seq_lengths as a long tensor (B,), each 1 <= n <= L."""
    if isinstance(seq_lengths, (list, tuple)):
        seq_lengths = torch.tensor(seq_lengths)
    if not isinstance(seq_lengths, torch.Tensor):
        _fail("seq_lengths 应该是长度为 batch_size 的整数张量或列表，"
              f"收到 {type(seq_lengths).__name__}。",
              "例如 seq_lengths=torch.tensor([10, 7])："
              "第 i 行前 seq_lengths[i] 个 token 是真实的。",
              "seq_lengths must be a 1-D integer tensor or list of length batch_size.")
    if seq_lengths.is_floating_point() or seq_lengths.dtype == torch.bool:
        _fail(f"seq_lengths 的 dtype 是 {seq_lengths.dtype}，长度必须是整数。",
              "用 seq_lengths.long()。",
              "seq_lengths must hold integers.")
    if tuple(seq_lengths.shape) != (batch_size,):
        _fail(f"seq_lengths 的形状是 {tuple(seq_lengths.shape)}，应为 ({batch_size},)，"
              "即每条序列一个长度。",
              "为 batch 里的每一行给出一个真实长度。",
              f"seq_lengths must have shape (batch_size,) = ({batch_size},).")
    low, high = int(seq_lengths.min()), int(seq_lengths.max())
    if low < 1:
        _fail(f"seq_lengths 里有长度 {low}；每条序列至少要有 1 个真实 token。",
              "去掉空序列，或检查长度是否算错。",
              "every sequence needs at least one real token (seq_lengths >= 1).")
    if high > length:
        _fail(f"seq_lengths 里有长度 {high}，超过了 input_ids 的长度 L={length}。",
              "长度不能超过 input_ids.shape[1]；右 padding 后的长度才是 L。",
              f"seq_lengths cannot exceed the sequence length L={length}.")
    return seq_lengths.to(dtype=torch.long)


def check_past_key_values(config: DIYConfig, past_key_values, batch_size: int,
                          length: int) -> int:
    """Return the cached length P after checking the cache's structure and shapes."""
    if not isinstance(past_key_values, (list, tuple)) or len(past_key_values) != config.num_layers:
        got = len(past_key_values) if isinstance(past_key_values, (list, tuple)) else \
            type(past_key_values).__name__
        _fail("past_key_values 应该是每层一个 (k, v) 的列表，"
              f"共 {config.num_layers} 层，收到 {got}。",
              "把上一次 model(..., use_cache=True, is_training=False) 返回的 presents 原样传回来。",
              f"past_key_values must be a list of num_layers={config.num_layers} (k, v) pairs.")
    H, D = config.num_heads, config.head_dim
    past_len = None
    for i, entry in enumerate(past_key_values):
        if isinstance(entry, PreallocatedKV):  # generate's cache: a capacity + a filled length
            shapes, filled = [entry.shape] * 2, entry.length
            room = entry.shape[2] - filled
            if length > room:
                _fail(f"预分配的缓存（第 {i} 层）共 {entry.shape[2]} 个位置，"
                      f"已用 {filled}，放不下新的 {length} 个 token。",
                      "建缓存时留够位置：PreallocatedKV.for_model(config, B, "
                      "提示词长度 + max_new_tokens)。",
                      f"the preallocated cache of layer {i} has room for {room} more positions, "
                      f"got {length} new tokens.")
            if any(other is entry for other in past_key_values[:i]):
                _fail(f"past_key_values 里第 {i} 层和前面某一层是同一个缓存对象"
                      "（例如 [PreallocatedKV(...)] * num_layers）：各层会互相覆盖。",
                      "每层要有自己的缓存：PreallocatedKV.for_model(config, B, 长度)。",
                      "each layer needs its own PreallocatedKV.")
        else:
            if not isinstance(entry, (list, tuple)) or len(entry) != 2 or \
                    not all(isinstance(t, torch.Tensor) for t in entry):
                _fail(f"past_key_values[{i}] 不是 (k, v) 两个张量。",
                      "把上一次返回的 presents 原样传回来，不要改动其结构。",
                      f"past_key_values[{i}] must be a (k, v) pair of tensors.")
            shapes, filled = [tuple(t.shape) for t in entry], None
        for name, shape in zip("kv", shapes, strict=True):
            if len(shape) != 4 or shape[0] != batch_size or shape[1] != H or shape[3] != D:
                _fail(f"past_key_values[{i}] 的 {name} 形状是 {shape}，应为 "
                      f"(B={batch_size}, num_heads={H}, 缓存长度, head_dim={D})。",
                      "缓存必须来自同一个模型、同一个 batch；换了 batch 就从空缓存重新开始。",
                      f"cached {name} of layer {i} has shape {shape}, "
                      f"expected ({batch_size}, {H}, P, {D}).")
            cached = shape[2] if filled is None else filled
            if past_len is None:
                past_len = cached
            elif cached != past_len:
                _fail("past_key_values 各层/各张量的缓存长度不一致"
                      f"（{past_len} 与 {cached}）。",
                      "把上一次返回的 presents 原样传回来；如果上一次调用中途出错，"
                      "缓存可能只更新了一部分，从新的缓存重新开始。",
                      "all cached k and v must have the same length.")
    return past_len


def check_attention_mask(attention_mask, batch_size: int, total: int) -> torch.Tensor | None:
    """Hugging Face's attention_mask (B, P+L): 1 = token, 0 = left padding. Returns it as bool,
    or None when every entry is 1 (no padding: the plain causal path is exact)."""
    expected = (batch_size, total)
    if not isinstance(attention_mask, torch.Tensor):
        _fail(f"attention_mask 应该是形状 {expected} 的张量，"
              f"收到 {type(attention_mask).__name__}。",
              "1 表示真实 token、0 表示左边的 padding，"
              "例如 torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])。",
              f"attention_mask must be a tensor of shape {expected}.")
    if tuple(attention_mask.shape) != expected:
        _fail(f"attention_mask 的形状是 {tuple(attention_mask.shape)}，应为 {expected}"
              "（batch 的每一行、缓存加新输入的每一个位置各一个值）。",
              "用和 input_ids 一样的形状；带缓存解码时在后面接上新 token 的 1。",
              f"attention_mask must have shape (B, past + L) = {expected}.")
    if not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
        _fail("attention_mask 里只能有 0 和 1。", "1 = 真实 token，0 = padding。",
              "attention_mask must contain only 0 and 1.")
    mask = attention_mask.bool()
    if not bool(mask[:, -1].all()):
        _fail("attention_mask 某一行的最后一个位置是 0：那是右 padding（或空行）。"
              "生成时新 token 接在最右边，所以只支持**左** padding。",
              "把 padding 放到左边：[0, 0, 1, 1, 1]；每行至少一个真实 token。",
              "attention_mask must be left-padded (each row ends with a real token).")
    if bool((mask[:, :-1] & ~mask[:, 1:]).any()):
        _fail("attention_mask 里有「1 之后又是 0」的行：padding 只能在左边，不能在中间或右边。",
              "左 padding：每行先是若干个 0，然后全是 1。",
              "attention_mask must be left padding only (zeros, then ones).")
    return None if bool(mask.all()) else mask


def check_forward_inputs(config: DIYConfig, input_ids, seq_lengths, past_key_values, use_cache,
                         is_training, attention_mask=None):
    """Validate forward's arguments; return (seq_lengths as tensor or None, cached length P,
    left-padding key mask (B, P+L) as bool or None)."""
    check_input_ids(config, input_ids)
    B, L = input_ids.shape
    if is_training and use_cache:
        _fail("use_cache=True 只能用在推理路径上（is_training=False）。",
              "训练时去掉 use_cache；生成时调用 model(ids, use_cache=True, is_training=False)。",
              "use_cache=True needs is_training=False (the cache is for generation).")
    if is_training and past_key_values is not None:
        _fail("训练路径（is_training=True）一次处理整条序列，不接受 past_key_values。",
              "生成时用 is_training=False 并传入 past_key_values。",
              "past_key_values is only accepted on the inference path (is_training=False).")
    past_len = 0
    if past_key_values is not None:
        past_len = check_past_key_values(config, past_key_values, B, L)
    if past_len + L > config.max_seq_len:
        where = f"缓存 {past_len} + 新输入 {L}" if past_len else f"输入长度 {L}"
        _fail(f"序列总长度 {past_len + L}（{where}）超过了 max_seq_len={config.max_seq_len}。",
              f"把序列截断到 {config.max_seq_len} 以内，或用更大的 max_seq_len 构造模型。",
              f"sequence length {past_len + L} exceeds max_seq_len={config.max_seq_len}.")
    if attention_mask is not None:
        if seq_lengths is not None:
            _fail("seq_lengths（右 padding）和 attention_mask（左 padding）只能给一个。",
                  "训练用 seq_lengths；生成（带缓存）用 attention_mask。",
                  "give seq_lengths or attention_mask, not both.")
        return None, past_len, check_attention_mask(attention_mask, B, past_len + L)
    if seq_lengths is None:
        return None, past_len, None
    seq_lengths = check_seq_lengths(seq_lengths, B, L)
    if past_key_values is not None:
        _fail("带 past_key_values 的解码不支持 seq_lengths（右 padding 会留在缓存里）。",
              "带缓存的批量生成用左 padding 和 attention_mask。",
              "seq_lengths cannot be combined with past_key_values.")
    if use_cache and int(seq_lengths.min()) < L:
        _fail("use_cache=True 时 batch 里有右 padding 的行：padding 的 k/v 会进入缓存，"
              "之后解码的 token 会错误地看到它们。",
              "生成时用左 padding 和 attention_mask（1 = token，0 = padding）。",
              "use_cache=True with right-padded rows would put padding into the cache.")
    if int(seq_lengths.min()) == L:
        return None, past_len, None  # no padding at all: the plain causal path is exact, faster
    return seq_lengths.to(input_ids.device), past_len, None

"""Generation with a KV cache: greedy or sampled, Hugging Face's names and semantics.

    ids = model.generate(input_ids, max_new_tokens=50)                           # greedy
    ids = model.generate(input_ids, max_new_tokens=50, do_sample=True,
                         temperature=0.8, top_k=50, top_p=0.9)                   # sampled

One step: the next-token scores of every row's last position (B, V) go through the processors
in transformers' order: repetition penalty, then (sampling only) temperature, top-k, top-p;
greedy takes the argmax, sampling draws with torch.multinomial from the softmax. With the cache
the prompt is run once (prefill) and afterwards only the newest token, its keys and values
appended to `past_key_values`; without it the whole sequence is run again every step. Both give
the same ids: the cache is an optimisation, never a behaviour.
"""

from __future__ import annotations

import math

import torch

from .backbone import is_reference
from .errors import DIYInputError
from .kv_cache import PreallocatedKV
from .validation import check_attention_mask, check_input_ids

# ------------------------------------------------------------------------------- processors


def apply_repetition_penalty(scores: torch.Tensor, input_ids: torch.Tensor,
                             penalty: float) -> torch.Tensor:
    """Make every token already in the row less likely (CTRL's penalty, as transformers):
    positive scores are divided by ``penalty``, negative ones multiplied. scores (B, V)."""
    seen = torch.gather(scores, 1, input_ids)  # (B, L) scores of the tokens already there
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)  # (B, L)
    return scores.scatter(1, input_ids, seen)  # (B, V)


def apply_temperature(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide the logits (before softmax): < 1 sharpens the distribution, > 1 flattens it."""
    return scores / temperature  # (B, V)


def apply_top_k(scores: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep the k highest scores of each row (ties with the k-th kept too), the rest -inf."""
    top_k = min(top_k, scores.shape[-1])
    kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]  # (B, 1) the k-th largest
    return scores.masked_fill(scores < kth, float("-inf"))  # (B, V)


def apply_top_p(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probabilities add up to at least
    top_p (nucleus sampling): the token whose probability makes the total reach top_p stays,
    and so does at least one token. The rest -inf."""
    sorted_scores, order = torch.sort(scores, descending=False, dim=-1)  # (B, V) ascending
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)  # (B, V) from the least likely
    remove = cumulative <= 1 - top_p  # (B, V) the unlikely tail that adds up to <= 1 - top_p
    remove[:, -1] = False  # the most likely token always stays
    remove = remove.scatter(1, order, remove)  # back to vocabulary order
    return scores.masked_fill(remove, float("-inf"))  # (B, V)


def sample_next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """One sampled token per row from next-token logits (B, V): temperature, top-k, top-p,
    softmax, multinomial. ``temperature=0`` means greedy (the argmax). Returns (B,) ids."""
    if temperature == 0:
        return logits.argmax(dim=-1)  # (B,)
    scores = logits.float()  # (B, V)
    if temperature != 1.0:
        scores = apply_temperature(scores, temperature)
    if top_k:
        scores = apply_top_k(scores, top_k)
    if top_p is not None and top_p < 1.0:
        scores = apply_top_p(scores, top_p)
    probs = scores.softmax(dim=-1)  # (B, V) zeros where -inf
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)  # (B,)


# ------------------------------------------------------------------------------- arguments

def _refuse(problem: str, fix: str, gloss: str):
    raise DIYInputError(problem, fix, gloss)


def left_pad(prompts, pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D prompts of different lengths -> input_ids (B, L) and attention_mask (B, L), with the
    padding on the left (generation appends on the right)."""
    prompts = [torch.as_tensor(p, dtype=torch.long).flatten() for p in prompts]
    if not prompts or any(len(p) == 0 for p in prompts):
        _refuse("提示词是空的（或列表里有空的提示词）。", "每条提示词至少一个 token。",
                "every prompt needs at least one token.")
    length = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, length - len(prompt):] = prompt
        attention_mask[row, length - len(prompt):] = 1
    return input_ids, attention_mask


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Per-row positions (B, L) from a left-padding attention_mask (B, L): each row's first
    real token is position 0, as when it is run alone; padding gets 0 (its output is never
    read). The model computes the same inside its forward (diy/model.py)."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)  # (B, L)


def check_generate_args(config, input_ids, attention_mask, max_new_tokens, do_sample,
                        temperature, top_k, top_p, repetition_penalty, eos_token_id) -> None:
    """Every argument checked before the first forward pass."""
    if isinstance(input_ids, torch.Tensor) and input_ids.dim() == 2 and input_ids.shape[1] == 0:
        _refuse("提示词是空的。", "至少给一个 token，例如 tokenizer.encode('海')。",
                "the prompt is empty.")
    check_input_ids(config, input_ids)
    B, L = input_ids.shape
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
            or max_new_tokens < 0:
        _refuse(f"max_new_tokens={max_new_tokens!r} 不合法：它是要生成的 token 数。",
                "用 0 或正整数。", "max_new_tokens must be a non-negative integer.")
    if L + max_new_tokens > config.max_seq_len:
        # Refused up front, for two reasons. The RoPE tables (cos/sin) end at max_seq_len - 1,
        # the last position the model was trained on. And a KV cache cannot slide: from layer 1
        # on, every cached K/V was computed with the oldest token in context, so dropping that
        # token means recomputing the whole window each step, which is 2.3's cropping loop
        # (RoPE positions are no obstacle: scores depend on m - n only; lesson 3.1 section 5).
        # transformers' generate does not refuse an explicit max_new_tokens: it goes past
        # max_position_embeddings and logs a reminder once (MaxLengthCriteria).
        last = config.max_seq_len - 1
        _refuse(f"提示词 {L} 个 token + 生成 {max_new_tokens} 个 = {L + max_new_tokens}，"
                f"超过了 max_seq_len={config.max_seq_len}：RoPE 的 cos/sin 表只算到位置 {last}，"
                f"模型也只在 0..{last} 这些位置上训练过。带着缓存也不能像 2.3 那样丢掉最前面的 "
                "token 接着生成：从第 1 层起，缓存里的每个 K/V 都是在看得见那个 token 时算出来的，"
                "只能整段重算，等于不用缓存（3.1 第 5 节）。",
                f"把 max_new_tokens 调到 {max(config.max_seq_len - L, 0)} 以内、缩短提示词；"
                "要写得更长，就用 2.3 那种每步裁剪上下文、不带缓存的循环。",
                f"prompt + max_new_tokens = {L + max_new_tokens} exceeds "
                f"max_seq_len={config.max_seq_len}: the RoPE tables end at position {last}, and "
                "a KV cache cannot drop its oldest token (from layer 1 on, every cached K/V was "
                "computed with it in context). transformers' generate does not refuse an explicit "
                "max_new_tokens: it runs past max_position_embeddings and logs a reminder once.")
    if not isinstance(temperature, (int, float)) or math.isnan(temperature) or temperature < 0:
        _refuse(f"temperature={temperature!r} 不合法：它必须是 ≥ 0 的数。",
                "常用 0.7～1.0；想要确定的输出就用 do_sample=False（贪心）。",
                "temperature must be a number >= 0.")
    if do_sample and temperature == 0:
        _refuse("do_sample=True 时 temperature 不能是 0（会除以 0）。",
                "temperature=0 的意思就是贪心：用 do_sample=False。",
                "temperature=0 with do_sample=True: use do_sample=False for greedy decoding.")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        _refuse(f"top_k={top_k!r} 不合法：它是保留的候选 token 数。",
                "用正整数（如 50），或 None / 0 表示不限制。", "top_k must be an integer >= 0.")
    if top_p is not None and (not isinstance(top_p, (int, float)) or math.isnan(top_p)
                              or not 0 < top_p <= 1):
        _refuse(f"top_p={top_p!r} 不合法：它是保留的累计概率，范围 (0, 1]。",
                "常用 0.9；1.0 或 None 表示不限制。", "top_p must be in (0, 1].")
    if not isinstance(repetition_penalty, (int, float)) or math.isnan(repetition_penalty) \
            or repetition_penalty <= 0:
        _refuse(f"repetition_penalty={repetition_penalty!r} 不合法：它必须是正数。",
                "1.0 表示不惩罚；> 1 让已经出现过的 token 更不容易再出现（常用 1.1～1.3）。",
                "repetition_penalty must be > 0.")
    if eos_token_id is not None and (isinstance(eos_token_id, bool)
                                     or not isinstance(eos_token_id, int)
                                     or not 0 <= eos_token_id < config.vocab_size):
        _refuse(f"eos_token_id={eos_token_id!r} 不在词表范围 [0, {config.vocab_size}) 内。",
                "用分词器的 eos_token_id（课程的是 3）。",
                f"eos_token_id must be in [0, {config.vocab_size}).")
    if attention_mask is not None:
        check_attention_mask(attention_mask, B, L)


# ------------------------------------------------------------------------------- the loop

def _stream(streamer, tokens: torch.Tensor) -> None:
    if streamer is None:
        return
    with torch.inference_mode(False):
        tokens = tokens.clone()  # an ordinary tensor: the streamer may keep or change it
    if hasattr(streamer, "put"):
        streamer.put(tokens)  # a transformers streamer
    else:
        streamer(tokens)


def generate(model, input_ids, max_new_tokens: int = 20, do_sample: bool = False,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             repetition_penalty: float = 1.0, eos_token_id: int | None = None,
             attention_mask: torch.Tensor | None = None, use_cache: bool = True,
             generator: torch.Generator | None = None, streamer=None,
             pad_token_id: int | None = None) -> torch.Tensor:
    """Prompt (B, L) -> (B, L + n) ids, n <= max_new_tokens (fewer when every row hit eos).

    ``input_ids`` may also be a list of 1-D prompts of different lengths: they are left-padded
    here with ``pad_token_id`` (default: the config's) and an attention_mask is built. Rows that
    produced ``eos_token_id`` are filled with ``pad_token_id`` afterwards. ``streamer`` gets
    each new token (B,) as it is made: a callable, or an object with put / end (transformers'
    streamers; like transformers, put first receives the prompt). The model is put in eval mode
    for the call (dropout off) and back in its mode afterwards.
    """
    config = model.config
    pad_token_id = config.pad_token_id if pad_token_id is None else pad_token_id
    if isinstance(input_ids, (list, tuple)):
        if attention_mask is not None:
            _refuse("给了一组提示词（列表）又给了 attention_mask。",
                    "列表会在内部左 padding 并生成 attention_mask；二者选一。",
                    "pass a list of prompts or (input_ids, attention_mask), not both.")
        input_ids, attention_mask = left_pad(input_ids, pad_token_id)
    check_generate_args(config, input_ids, attention_mask, max_new_tokens, do_sample,
                        temperature, top_k, top_p, repetition_penalty, eos_token_id)
    if attention_mask is not None and bool(torch.as_tensor(attention_mask).all()):
        attention_mask = None  # no padding: the plain causal path is the same, on any backbone
    if hasattr(model, "check_attention_mask_support"):  # a learner's backbone may lack it
        model.check_attention_mask_support(attention_mask)
    was_training = model.training
    model.eval()
    try:
        # inference_mode: no autograd bookkeeping at all (faster than no_grad); the ids are
        # cloned on the way out so they can feed a later training step.
        with torch.inference_mode():
            ids = _decode(model, input_ids, attention_mask, max_new_tokens, do_sample,
                          temperature, top_k, top_p, repetition_penalty, eos_token_id,
                          use_cache, generator, streamer, pad_token_id)
    finally:
        model.train(was_training)
    return ids.clone()


def _decode(model, input_ids, attention_mask, max_new_tokens, do_sample, temperature, top_k,
            top_p, repetition_penalty, eos_token_id, use_cache, generator, streamer,
            pad_token_id) -> torch.Tensor:
    """The loop itself: arguments already checked, model in eval mode."""
    config = model.config
    ids = input_ids  # (B, L)
    mask = attention_mask  # (B, L) or None
    unfinished = torch.ones(ids.shape[0], dtype=torch.bool, device=ids.device)  # (B,)
    past = None  # the cache: preallocated for prompt + max_new_tokens (no torch.cat per step)
    if use_cache and is_reference(model):  # a learner's backbone gets (k, v) pairs (torch.cat)
        past = PreallocatedKV.for_model(config, ids.shape[0], ids.shape[1] + max_new_tokens)
    prefilled = False
    if streamer is not None and hasattr(streamer, "put"):
        streamer.put(ids)
    for _ in range(max_new_tokens):
        if use_cache:
            new = ids[:, -1:] if prefilled else ids  # prefill, then the newest token
            logits, past = model(new, past_key_values=past, use_cache=True, is_training=False,
                                 attention_mask=mask)  # (B, l, V)
            prefilled = True
        else:
            logits = model(ids, is_training=False, attention_mask=mask)  # (B, L, V) every time
        scores = logits[:, -1, :].float()  # (B, V) the last position predicts the next token
        if repetition_penalty != 1.0:
            scores = apply_repetition_penalty(scores, ids, repetition_penalty)
        if do_sample:
            next_ids = sample_next_token(scores, temperature, top_k, top_p, generator)  # (B,)
        else:
            next_ids = scores.argmax(dim=-1)  # (B,)
        if eos_token_id is not None:  # finished rows get padding from here on
            next_ids = torch.where(unfinished, next_ids, torch.full_like(next_ids, pad_token_id))
        ids = torch.cat([ids, next_ids[:, None]], dim=1)  # (B, L + 1)
        if mask is not None:
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)  # (B, L + 1)
        _stream(streamer, next_ids)
        if eos_token_id is not None:
            unfinished &= next_ids != eos_token_id
            if not unfinished.any():
                break
    if streamer is not None and hasattr(streamer, "end"):
        streamer.end()
    return ids

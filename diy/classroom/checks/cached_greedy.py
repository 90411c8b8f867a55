"""Self-checks of 3.1: greedy without (3.1a) and with (3.1b) the KV cache.

The cached loop's check records every call the learner's code makes to the backbone (input
length, cache length, flags) by wrapping its forward, so `model(...)` and `model.forward(...)`
are both seen, and a mistake is named by what the model was given.
"""

from __future__ import annotations

import torch

from ...causal_lm import DIYForCausalLM
from ...config import DIYConfig
from ...errors import DIYInputError, describe_value
from .calls import CallLog, check_calls
from .contract import (
    check_grad_mode,
    check_leaves_eval_mode,
    guarded,
    is_long_tensor,
)
from .greedy import check_greedy_loop, diagnose_new_token, reference_greedy_continue
from .report import Failed, call_learner, run_check

__all__ = ["check_greedy_no_cache", "check_greedy_with_cache"]

CONFIG = DIYConfig(vocab_size=61, hidden_size=32, num_layers=2, num_heads=2, max_seq_len=32,
                   dropout=0.2)


# ---------------------------------------------------------------------------------------------
# 3.1a  greedy_no_cache(model, input_ids, max_new_tokens)
# ---------------------------------------------------------------------------------------------

def reference_greedy_no_cache(model, input_ids, max_new_tokens):
    return reference_greedy_continue(model, input_ids, max_new_tokens)  # fits: no cropping


def diagnose_no_cache(exc: Exception):
    """3.1a needs no cropping (prompt + new tokens fit): a too-long sequence means the loop
    appended more than one token per step, not a missing crop."""
    if isinstance(exc, DIYInputError) and "max_seq_len" in str(exc):
        return ("送进模型的序列超过了 max_seq_len：这一节的长度本来放得下（不需要裁剪），"
                "说明每一步接上的不止一个 token（例如对所有位置 argmax 得到 (B, L)，整个接了上去）。",
                "每一步只取最后一个位置：logits[:, -1, :].argmax(dim=-1, keepdim=True)，形状 (B, 1)。")
    return diagnose_new_token(exc)


def check_greedy_no_cache(greedy_no_cache):
    """Check exercise 3.1a; return the greedy_no_cache to use from here on."""
    return check_greedy_loop(greedy_no_cache, "3.1a", "greedy_no_cache", CONFIG,
                             "续写 15 个 token", reference_greedy_no_cache,
                             diagnose=diagnose_no_cache)


# ---------------------------------------------------------------------------------------------
# 3.1b  greedy_with_cache(model, input_ids, max_new_tokens)
# ---------------------------------------------------------------------------------------------

def reference_greedy_with_cache(model, input_ids, max_new_tokens):
    """Prefill the prompt once, then feed only the newest token with the cache."""
    model.eval()
    with torch.no_grad():
        logits, past = model(input_ids, use_cache=True, is_training=False)  # (B, L, V)
        for _ in range(max_new_tokens):
            next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)  # (B, 1)
            input_ids = torch.cat([input_ids, next_id], dim=1)  # (B, L + 1)
            logits, past = model(next_id, past_key_values=past, use_cache=True,
                                 is_training=False)  # (B, 1, V); past grows by one
    return input_ids


def diagnose_cached(exc: Exception):
    text = str(exc)
    if "max_seq_len" in text and "缓存" in text:
        return ("缓存加新输入超过了 max_seq_len：每一步都把整段又送了一遍，缓存里的 key/value 重复了。",
                "有了 past_key_values 之后，每一步只送新 token：model(next_id, past_key_values=past, "
                "use_cache=True, is_training=False)。")
    if "use_cache=True" in text and "is_training=False" in text:
        return ("带缓存的调用走的是训练路径（is_training=True）。",
                "model(ids, use_cache=True, is_training=False)。")
    if "cannot unpack" in text or "too many values to unpack" in text:
        return ("use_cache=True 时模型返回 (logits, presents) 两个值。",
                "logits, past = model(ids, use_cache=True, is_training=False)。")
    return diagnose_new_token(exc)


def check_greedy_with_cache(greedy_with_cache):
    """Check exercise 3.1b; return the greedy_with_cache to use from here on."""

    @guarded
    def body() -> str:
        for batch, length, new in ((1, 5, 12), (2, 3, 4)):
            torch.manual_seed(0)
            model = DIYForCausalLM(CONFIG).train()  # handed over in train mode on purpose
            prompt = torch.randint(4, CONFIG.vocab_size, (batch, length),
                                   generator=torch.Generator().manual_seed(batch))
            log = CallLog(model)
            torch.manual_seed(1)
            try:
                with check_grad_mode("greedy_with_cache"):
                    out = call_learner(greedy_with_cache, model, prompt.clone(), new,
                                       name="greedy_with_cache", diagnose=diagnose_cached)
            finally:
                log.remove()
            check_calls(log.calls)
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (batch, length + new):
                raise Failed(f"输出应是 {(batch, length + new)} 的张量，实际是 {describe_value(out)}。",
                             "把每个新 token 接到 input_ids 后面，返回整段。")
            if not is_long_tensor(out):
                raise Failed(f"返回的 token id 的 dtype 是 {out.dtype}，应为 torch.long："
                             "浮点数的 id 在 tokenizer.decode 和下一次前向时都会出错。",
                             "argmax 本来就返回 long；不要 .float()，拼接的两边都用 long。")
            check_leaves_eval_mode(model, greedy_with_cache, (model, prompt.clone(), new),
                                   "greedy_with_cache", diagnose=diagnose_cached)
            expected = reference_greedy_no_cache(model, prompt.clone(), new)
            if not torch.equal(out, expected):
                raise Failed("生成的 id 和不用缓存的贪心循环不一样。",
                             "prefill 后从 logits[:, -1, :] 取第一个新 token；之后每一步：argmax(dim=-1) → "
                             "接到末尾 → 只把这个新 token 和 past 送进模型。")
        return ("prefill 一次、之后每步只送 1 个新 token，缓存逐步增长（5 → 16）；"
                "结果与不用缓存时逐 id 相同（batch 1 与 2），返回 long。")

    return run_check("3.1b", body, greedy_with_cache, reference_greedy_with_cache)

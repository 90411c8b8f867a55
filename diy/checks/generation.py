"""Self-checks of step 3: greedy without (3.1a) and with (3.1b) the KV cache, sampling (3.2),
left padding (3.3).

The cached loop's check records every call the learner makes to the model (input length,
cache length, flags), so a mistake is named by what the model was given.
"""

from __future__ import annotations

import torch

from ..causal_lm import DIYForCausalLM
from ..config import DIYConfig
from ..generation import apply_top_k, apply_top_p
from ..generation import left_pad as reference_left_pad
from ..generation import sample_next_token as reference_sample_next_token
from .greedy import check_greedy_loop, reference_greedy_continue
from .report import Failed, call_learner, run_check

CONFIG = DIYConfig(vocab_size=61, hidden_size=32, num_layers=2, num_heads=2, max_seq_len=32,
                   dropout=0.2)


# ---------------------------------------------------------------------------------------------
# 3.1a  greedy_no_cache(model, input_ids, max_new_tokens)
# ---------------------------------------------------------------------------------------------

def reference_greedy_no_cache(model, input_ids, max_new_tokens):
    return reference_greedy_continue(model, input_ids, max_new_tokens)  # fits: no cropping


def check_greedy_no_cache(greedy_no_cache):
    """Check exercise 3.1a; return the greedy_no_cache to use from here on."""
    return check_greedy_loop(greedy_no_cache, "3.1a", "greedy_no_cache", CONFIG,
                             "续写 15 个 token", reference_greedy_no_cache)


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


class CallLog:
    """(new tokens, cached length, use_cache, is_training, model.training) of every call."""

    def __init__(self, model):
        self.calls = []

        def record(module, args, kwargs):
            ids = args[0] if args else kwargs.get("input_ids")
            past = kwargs.get("past_key_values", args[2] if len(args) > 2 else None)
            cached = past[0][0].shape[2] if past else 0
            use_cache = kwargs.get("use_cache", args[3] if len(args) > 3 else False)
            is_training = kwargs.get("is_training", args[4] if len(args) > 4 else True)
            self.calls.append((ids.shape[1], cached, use_cache, is_training, module.training))

        self.handle = model.register_forward_pre_hook(record, with_kwargs=True)


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
    return None


def check_greedy_with_cache(greedy_with_cache):
    """Check exercise 3.1b; return the greedy_with_cache to use from here on."""

    def body() -> str:
        for batch, length, new in ((1, 5, 12), (2, 3, 4)):
            torch.manual_seed(0)
            model = DIYForCausalLM(CONFIG).train()  # handed over in train mode on purpose
            prompt = torch.randint(4, CONFIG.vocab_size, (batch, length),
                                   generator=torch.Generator().manual_seed(batch))
            log = CallLog(model)
            torch.manual_seed(1)
            out = call_learner(greedy_with_cache, model, prompt.clone(), new,
                               name="greedy_with_cache", diagnose=diagnose_cached)
            log.handle.remove()
            calls = log.calls
            if not calls:
                raise Failed("greedy_with_cache 没有调用模型。", "先 prefill：model(input_ids, use_cache=True, "
                             "is_training=False)。")
            if any(training for *_, training in calls):
                raise Failed("生成时模型在 train 模式：dropout 开着，结果是随机的。",
                             "函数开头调用 model.eval()。")
            if not all(use_cache and not training_path for _, _, use_cache, training_path, _ in calls):
                raise Failed("有的调用没有用缓存（use_cache=True, is_training=False）：拿不到 presents。",
                             "每次都调用 model(ids, past_key_values=past, use_cache=True, is_training=False)。")
            later = calls[1:]
            if later and all(cached == 0 for _, cached, *_ in later):
                if all(n == 1 for n, *_ in later):
                    raise Failed("prefill 之后只送了新 token，却没有把 past_key_values 传进去："
                                 "模型只看到一个 token，前面的内容全忘了。",
                                 "把上一步返回的 presents 作为 past_key_values 传回去。")
                raise Failed("每一步都重新送整段、没有用缓存：这就是 3.1a 的无缓存循环。",
                             "prefill 一次，之后每一步只送新 token，并传入 past_key_values。")
            if any(n > 1 for n, cached, *_ in later if cached > 0):
                raise Failed("带着 past_key_values 又把整段送了一遍：缓存里的 key/value 和位置都重复了。",
                             "有了缓存之后，每一步只送新 token：形状 (B, 1)。")
            lengths = [cached for _, cached, *_ in later]
            if lengths and lengths != list(range(length, length + len(later))):
                raise Failed(f"缓存没有随步数增长（各步的缓存长度 {lengths}）：一直传的是 prefill 时的那份。",
                             "每一步都用这一步返回的 presents 替换 past：logits, past = model(...)。")
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (batch, length + new):
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise Failed(f"输出应是 {(batch, length + new)} 的张量，实际是 {shape}。",
                             "把每个新 token 接到 input_ids 后面，返回整段。")
            expected = reference_greedy_no_cache(model, prompt.clone(), new)
            if not torch.equal(out, expected):
                raise Failed("生成的 id 和不用缓存的贪心循环不一样。",
                             "prefill 后从 logits[:, -1, :] 取第一个新 token；之后每一步：argmax(dim=-1) → "
                             "接到末尾 → 只把这个新 token 和 past 送进模型。")
        return ("prefill 一次、之后每步只送 1 个新 token，缓存逐步增长（5 → 16）；"
                "结果与不用缓存时逐 id 相同（batch 1 与 2）。")

    return run_check("3.1b", body, greedy_with_cache, reference_greedy_with_cache)


# ---------------------------------------------------------------------------------------------
# 3.2  sample_next_token(logits, temperature, top_k, top_p, generator) -> (B,)
# ---------------------------------------------------------------------------------------------

def expected_probs(logits, temperature, top_k, top_p):
    scores = logits.float() / temperature
    if top_k:
        scores = apply_top_k(scores, top_k)
    if top_p is not None and top_p < 1:
        scores = apply_top_p(scores, top_p)
    return scores.softmax(dim=-1)


# one row of logits whose distribution makes every mistake visible
LOGITS = torch.tensor([[2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0]])
CASES = [  # temperature, top_k, top_p
    (1.0, None, None), (0.5, None, None), (2.0, None, None), (1.0, 3, None), (1.0, None, 0.7),
    (0.8, 5, 0.9),
]
ROWS = 4000  # samples per case: frequencies within ~0.03 of the probabilities


def diagnose_temperature_zero(exc: Exception):
    if "probability tensor contains" in str(exc) or "division" in str(exc).lower():
        return ("temperature=0 时除以 0，得到 inf / NaN，multinomial 无法采样。",
                "temperature == 0 时直接 return logits.argmax(dim=-1)（贪心）。")
    return diagnose_sampler(exc)


def diagnose_sampler(exc: Exception):
    if "probability tensor contains" in str(exc):
        return ("multinomial 收到了负数、inf 或 NaN：它要的是概率（softmax 之后），不是 logits。",
                "probs = scores.softmax(dim=-1)，再 torch.multinomial(probs, num_samples=1, "
                "generator=generator)。")
    return None


def check_sample_next_token(sample_next_token):
    """Check exercise 3.2; return the sample_next_token to use from here on."""

    def call(logits, *args, diagnose=None):
        ids = call_learner(sample_next_token, logits, *args, name="sample_next_token",
                           diagnose=diagnose or diagnose_sampler)
        rows = logits.shape[0]
        if not isinstance(ids, torch.Tensor) or tuple(ids.shape) != (rows,):
            got = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise Failed(f"logits 是 {tuple(logits.shape)} 时应返回每行一个 token id，形状 ({rows},)，"
                         f"实际是 {got}。",
                         "torch.multinomial(probs, num_samples=1) 的结果是 (B, 1)：用 .squeeze(1)"
                         "（不要用不带参数的 .squeeze()，B = 1 时它会把 batch 维也去掉）。")
        return ids

    def body() -> str:
        # temperature 0 is greedy, top_k=1 too
        greedy = LOGITS.repeat(3, 1).argmax(dim=-1)
        call(LOGITS, 1.0, None, None, torch.Generator().manual_seed(0))  # B = 1 keeps its batch dim
        zero = call(LOGITS.repeat(3, 1), 0.0, None, None, torch.Generator().manual_seed(0),
                    diagnose=diagnose_temperature_zero)
        if not torch.equal(zero, greedy):
            raise Failed("temperature=0 没有得到贪心结果（除以 0 得到 inf/NaN？）。",
                         "temperature == 0 时直接 return logits.argmax(dim=-1)。")
        one = call(LOGITS.repeat(3, 1), 1.0, 1, None, torch.Generator().manual_seed(0))
        if not torch.equal(one, greedy):
            raise Failed("top_k=1 时应只剩最大的那个 token（等于贪心），结果不是：k 算多了或算少了，"
                         "或者被过滤的 logits 没有设成 −inf（设成 0 的 token 仍然会被抽到）。",
                         "kth = torch.topk(scores, k).values[:, -1:]；"
                         "scores.masked_fill(scores < kth, float('-inf'))。")
        # the same generator seed: the same tokens; another seed: others
        batch = LOGITS.repeat(64, 1)
        a = call(batch, 1.0, None, None, torch.Generator().manual_seed(0))
        torch.manual_seed(123)
        b = call(batch, 1.0, None, None, torch.Generator().manual_seed(0))
        c = call(batch, 1.0, None, None, torch.Generator().manual_seed(1))
        if not torch.equal(a, b) or torch.equal(a, c):
            raise Failed("同一个种子的 generator 两次采样结果不同（或换了种子却相同）：没有用传进来的 generator。",
                         "torch.multinomial(probs, num_samples=1, generator=generator)。")
        for temperature, top_k, top_p in CASES:
            probs = expected_probs(LOGITS, temperature, top_k, top_p)[0]  # (V,)
            draws = call(LOGITS.repeat(ROWS, 1), temperature, top_k, top_p,
                         torch.Generator().manual_seed(7))
            counts = torch.bincount(draws.flatten(), minlength=LOGITS.shape[1]).float()
            freq = counts / counts.sum()
            allowed = probs > 0
            setting = f"temperature={temperature}, top_k={top_k}, top_p={top_p}"
            likely = probs > 0.005  # expected at least 20 times in ROWS draws
            if bool((freq[~allowed] > 0).any()) or bool((freq[likely] == 0).any()):
                kept, expected_kept = int((freq > 0).sum()), int(allowed.sum())
                if top_k and kept != expected_kept:
                    raise Failed(f"{setting} 时采到了 {kept} 种 token，应只有 {expected_kept} 种："
                                 "top-k 多留或少留了（或被过滤的没有设成 -inf）。",
                                 "kth = torch.topk(scores, k).values[:, -1:]；"
                                 "scores.masked_fill(scores < kth, float('-inf'))。")
                if top_p and kept < expected_kept:
                    raise Failed(f"{setting} 时只采到了 {kept} 种 token，应有 {expected_kept} 种："
                                 "越过阈值的那个 token 被删掉了（或排序方向反了）。",
                                 "按概率升序排序、累加，只删累计 ≤ 1 - top_p 的部分；"
                                 "最大的那个 token 永远保留。")
                if top_p:
                    raise Failed(f"{setting} 时保留的 token 集合不对（采到了 {kept} 种，应有 {expected_kept} 种）。",
                                 "sort(descending=False) → softmax → cumsum → 删掉 ≤ 1 - top_p 的 → "
                                 "scatter 回原顺序。")
                raise Failed(f"{setting}（没有 top-k / top-p）时，有的 token 概率不小却一次都没被抽到："
                             "multinomial 收到的不是 softmax 之后的概率（直接用了 logits？）。",
                             "probs = scores.softmax(dim=-1)，再 torch.multinomial(probs, 1, generator=generator)。")
            if float((freq - probs).abs().max()) > 0.04:
                wrong_t = expected_probs(LOGITS, 1.0, top_k, top_p)[0]
                if temperature != 1 and float((freq - wrong_t).abs().max()) < 0.04:
                    raise Failed(f"temperature={temperature} 没有起作用：温度要在 softmax 之前除 logits。",
                                 "scores = logits / temperature，再 softmax；对概率除以温度再归一化没有效果。")
                raise Failed(f"{setting} 时采样频率和应有的概率对不上"
                             "（在 logits 上 multinomial？温度在 softmax 之后？）。",
                             "顺序：logits / temperature → top-k → top-p → softmax → "
                             "torch.multinomial(probs, 1, generator=generator)。")
        return (f"六种设置下各采 {ROWS} 次：保留的 token 集合正确、频率与概率一致；"
                "temperature=0 与 top_k=1 等于贪心；同一个 generator 种子结果相同。")

    return run_check("3.2", body, sample_next_token, reference_sample_next_token)


# ---------------------------------------------------------------------------------------------
# 3.3  left_pad(prompts, pad_token_id) -> (input_ids, attention_mask)
# ---------------------------------------------------------------------------------------------

def check_left_pad(left_pad):
    """Check exercise 3.3; return the left_pad to use from here on."""

    def body() -> str:
        prompts = [torch.tensor([5, 6, 7]), torch.tensor([8]), torch.tensor([9, 10])]
        result = call_learner(left_pad, prompts, 0, name="left_pad")
        if not (isinstance(result, tuple) and len(result) == 2):
            raise Failed("left_pad 应返回 (input_ids, attention_mask) 两个张量。",
                         "return input_ids, attention_mask。")
        input_ids, attention_mask = result
        expected_ids, expected_mask = reference_left_pad(prompts, 0)
        if tuple(input_ids.shape) != (3, 3) or tuple(attention_mask.shape) != (3, 3):
            raise Failed(f"形状应都是 (3, 3)（3 条提示词、最长 3 个 token），实际 "
                         f"{tuple(input_ids.shape)} 和 {tuple(attention_mask.shape)}。",
                         "宽度 = 最长提示词的长度，每条一行。")
        if input_ids.dtype != torch.long:
            raise Failed(f"input_ids 的 dtype 是 {input_ids.dtype}。", "用 torch.long。")
        right = torch.tensor([[5, 6, 7], [8, 0, 0], [9, 10, 0]])
        if torch.equal(input_ids, right):
            raise Failed("padding 放在了右边：新 token 是接在最右边的，右 padding 会让它接在 padding 后面，"
                         "而且每行最后一个位置不再是真实 token。",
                         "左 padding：row[width - len(p):] = p，前面填 pad_token_id。")
        if not torch.equal(input_ids, expected_ids):
            raise Failed(f"input_ids 不对：得到 {input_ids.tolist()}，应为 {expected_ids.tolist()}。",
                         "每行右对齐：前面是 pad_token_id，后面是提示词。")
        if torch.equal(attention_mask.long(), 1 - expected_mask):
            raise Failed("attention_mask 反了：1 表示真实 token，0 表示 padding（transformers 的约定）。",
                         "真实 token 的位置是 1，padding 是 0。")
        if not torch.equal(attention_mask.long(), expected_mask):
            raise Failed(f"attention_mask 不对：得到 {attention_mask.tolist()}，应为 {expected_mask.tolist()}。",
                         "和 input_ids 同形状，真实 token 为 1、padding 为 0。")
        other_ids, _ = call_learner(left_pad, prompts, 99, name="left_pad")
        if not torch.equal(other_ids, reference_left_pad(prompts, 99)[0]):
            raise Failed("pad_token_id=99 时 padding 位置不是 99：padding 的值写死了（比如 torch.zeros）。",
                         "用传进来的 pad_token_id：torch.full((B, width), pad_token_id, dtype=torch.long)。")
        return "三条不同长度的提示词左 padding 成 (3, 3)（pad_token_id 为 0 和 99），attention_mask 的 1/0 正确。"

    return run_check("3.3", body, left_pad, reference_left_pad)

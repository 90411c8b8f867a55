"""Self-checks of lesson 3.2: apply_top_p (3.2a) and sample_next_token (3.2b).

The test logits are in a shuffled vocabulary order (sorted logits make every sort permutation
the identity, so code that never maps sorted positions back would look right), with no ties,
and with settings that separate the filter orders: top-p after top-k works on renormalised
probabilities, and top-p after temperature on the tempered ones.
"""

from __future__ import annotations

import torch

from ...errors import describe_value
from ...generation import apply_top_k
from ...generation import apply_top_p as reference_apply_top_p
from ...generation import sample_next_token as reference_sample_next_token
from .contract import check_grad_mode, check_unchanged, guarded, is_long_tensor
from .report import Failed, call_learner, run_check

# Probabilities, most likely first; each row of the test logits holds them in its own
# shuffled vocabulary order. Cumulative: .32 .54 .70 .81 .89 .94 .97 .99 .997 1.
PROBS = torch.tensor([0.32, 0.22, 0.16, 0.11, 0.08, 0.05, 0.03, 0.02, 0.007, 0.003])
ORDERS = ([3, 7, 0, 9, 5, 1, 8, 2, 6, 4], [6, 2, 9, 4, 0, 8, 1, 5, 3, 7],
          [9, 0, 4, 1, 7, 3, 5, 6, 2, 8])


def shuffled_logits(rows: int = 1) -> torch.Tensor:
    """(rows, 10) logits: PROBS's logs, row r in the vocabulary order ORDERS[r % 3]."""
    out = torch.empty(rows, len(PROBS))
    for r in range(rows):
        # rank i lands on token ORDERS[..][i]; + 2.5: positive and negative logits, as real ones
        out[r, ORDERS[r % len(ORDERS)]] = PROBS.log() + 2.5
    return out


# ---------------------------------------------------------------------------------------------
# 3.2a  apply_top_p(scores, top_p) -> scores with everything outside the nucleus at -inf
# ---------------------------------------------------------------------------------------------

def top_p_variant(scores, top_p, mistake):
    """The tokens apply_top_p keeps (bool, vocabulary order) when written with one mistake."""
    ordered, order = torch.sort(scores, descending=True, dim=-1)  # most likely first
    probs = ordered.softmax(dim=-1)
    cumulative = probs.cumsum(dim=-1)
    if mistake == "drops_crossing":  # keeps what adds up to <= p: the crossing token goes
        keep = cumulative <= top_p
    elif mistake == "head_removed":  # the ascending recipe on a descending sort
        keep = ~(cumulative <= 1 - top_p)
        keep[:, -1] = True
    else:
        keep = cumulative - probs < top_p  # the mass before a token < p: it stays
    if mistake == "no_scatter":
        return keep  # sorted positions used as token ids
    return keep.scatter(1, order, keep)


TOP_P_CASES = (0.75, 0.5, 0.9, 0.999, 1e-6)
# An exact tie: four equal logits (probability 1/4 each, exactly, however it is computed; the
# others underflow to 0). At top_p = 0.5 two of them add up to exactly p: the nucleus is those
# two; a strict ">" (or "<" where "<=" belongs) keeps a third. Which two is open (they are
# equal), so this case compares how many stay.
TIE_ROW = torch.tensor([[-200.0, 0.0, -200.0, 0.0, -200.0, -200.0, 0.0, -200.0, 0.0, -200.0]])
TIE_CASES = ((0.5, 2), (0.75, 3))  # top_p, tokens kept
TOP_P_HINTS = {
    "strict": ("累计概率恰好等于 p 时多留了一个 token：top-p 保留累计概率 ≥ p 的最小集合，"
               "这里四个 token 各 1/4，p = {p} 时 {n} 个正好够，应留 {n} 个。比较符号差了一个等号"
               "（> 与 ≥、< 与 ≤）。",
               "升序排序时删掉累计 ≤ 1 − p 的（含等于）；降序时保留「它之前的累计 < p」的（不含等于）。"),
    "probabilities": ("apply_top_p 返回的是概率（softmax 之后、删掉的设成 0），不是分数：0 也是一个分数，"
                      "sample_next_token 之后再 softmax 时它们仍有概率，留下的也被压了一遍。",
                      "只把要删的位置设成 −inf，其余保持原来的 logits：scores.masked_fill(remove, float('-inf'))。"),
    "no_scatter": ("保留的 token 落在了错误的位置：排序之后的「第几个」没有映射回词表里的 token id"
                   "（测试用的 logits 没有排好序）。",
                   "在排序后的顺序里算出要删的 mask，再 mask.scatter(1, order, mask) 放回词表顺序。"),
    "drops_crossing": ("越过阈值的那个 token 被删掉了：top-p 保留的是累计概率**达到** p（≥ p）的最小集合，"
                       "让累计概率跨过 p 的那个 token 也要留下。",
                       "升序排序后删掉累计 ≤ 1 − p 的那段长尾；或降序时保留「它之前的累计 < p」的 token。"),
    "head_removed": ("删掉的是概率最大的那一头：排序方向和「删累计 ≤ 1 − p」的写法对不上。",
                     "升序（descending=False）排序，从最不可能的开始累加，删掉累计 ≤ 1 − p 的部分。"),
}


def diagnose_top_p(exc: Exception):
    text = str(exc)
    if "scatter" in text and ("Expected index" in text or "index" in text and "dtype" in text):
        return ("scatter 的 index 用错了：要用 torch.sort 返回的第二个值（排序前的位置，long）。",
                "ordered, order = torch.sort(scores, dim=-1)；mask.scatter(1, order, mask)。")
    return None


def check_top_p(apply_top_p):
    """Check exercise 3.2a; return the apply_top_p to use from here on."""

    @guarded
    def body() -> str:
        scores = shuffled_logits(3) * 1.7 + 0.3  # logits, not log-probabilities
        for top_p in TOP_P_CASES:
            given = scores.clone()
            with check_grad_mode("apply_top_p"):
                out = call_learner(apply_top_p, given, top_p, name="apply_top_p",
                                   diagnose=diagnose_top_p)
            check_unchanged(given, scores, "apply_top_p", "scores")
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(scores.shape):
                raise Failed(f"apply_top_p 应返回和 scores 同形状 {tuple(scores.shape)} 的张量，"
                             f"实际返回 {describe_value(out)}。",
                             "return scores.masked_fill(remove, float('-inf'))。")
            expected = reference_apply_top_p(scores, top_p)
            kept, should_keep = torch.isfinite(out), torch.isfinite(expected)
            if not bool(kept.any(dim=-1).all()):
                raise Failed(f"top_p={top_p} 时有一行的 token 全被删掉了（全是 −inf，softmax 会得到 NaN）。",
                             "概率最大的那个 token 永远保留：remove[:, -1] = False（升序排序时）。")
            if torch.equal(kept, should_keep):
                if not torch.equal(out[kept], scores[kept]):
                    raise Failed("保留下来的 token 的分数被改了：apply_top_p 只把要删的设成 −inf，"
                                 "其余保持原来的 logits（不要返回 softmax 之后的概率）。",
                                 "return scores.masked_fill(remove, float('-inf'))。")
                continue
            if bool(kept.all()) and bool((out >= 0).all()) and bool((out <= 1).all()):
                # renormalised or not: the test's logits are never all within [0, 1]
                raise Failed(*TOP_P_HINTS["probabilities"])
            if torch.equal(out != 0, should_keep) and torch.equal(out[should_keep], scores[should_keep]):
                raise Failed("被删掉的 token 设成了 0：0 也是一个分数，softmax 之后它仍有概率。",
                             "用 float('-inf')：masked_fill(remove, float('-inf'))。")
            for mistake in ("no_scatter", "drops_crossing", "head_removed"):
                if torch.equal(kept, top_p_variant(scores, top_p, mistake)):
                    raise Failed(*TOP_P_HINTS[mistake])
            n, m = int(kept[0].sum()), int(should_keep[0].sum())
            raise Failed(f"top_p={top_p} 时第 0 行保留了 {n} 个 token，应保留 {m} 个"
                         f"（概率从大到小 {PROBS.tolist()[:5]}…，累计 .32 .54 .70 .81 …）。",
                         "softmax 得到概率 → 排序 → cumsum → 只删累计达到 p 之后的那些（跨过 p 的那个留下）"
                         " → scatter 回词表顺序。")
        for top_p, count in TIE_CASES:
            check_tie(apply_top_p, top_p, count)
        return ("五个 p（0.75、0.5、0.9、0.999、1e-6）、三行打乱了词表顺序的 logits：保留的集合都正确"
                "（跨过 p 的那个留下，至少留 1 个），保留的分数原样不动，输入没有被改。")

    return run_check("3.2a", body, apply_top_p, reference_apply_top_p)


def check_tie(apply_top_p, top_p: float, count: int) -> None:
    given = TIE_ROW.clone()
    with check_grad_mode("apply_top_p"):
        out = call_learner(apply_top_p, given, top_p, name="apply_top_p", diagnose=diagnose_top_p)
    check_unchanged(given, TIE_ROW, "apply_top_p", "scores")
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(TIE_ROW.shape):
        raise Failed(f"apply_top_p 应返回和 scores 同形状 {tuple(TIE_ROW.shape)} 的张量，"
                     f"实际返回 {describe_value(out)}。",
                     "return scores.masked_fill(remove, float('-inf'))。")
    kept = torch.isfinite(out)[0]
    top = TIE_ROW[0] == 0
    if bool((kept & ~top).any()):  # a zero-probability token kept
        raise Failed(f"top_p={top_p} 时留下了概率为 0 的 token（四个 1/4 之外的）。",
                     "softmax → 排序 → cumsum → 只删累计达到 p 之后的那些 → scatter 回词表顺序。")
    n = int(kept.sum())
    if n == count + 1:
        problem, fix = TOP_P_HINTS["strict"]
        raise Failed(problem.format(p=top_p, n=count), fix)
    if n != count:
        raise Failed(f"四个 token 各 1/4（其余为 0）、top_p={top_p} 时留下了 {n} 个，应留 {count} 个"
                     "（累计概率 ≥ p 的最小集合）。",
                     "升序排序时删掉累计 ≤ 1 − p 的；降序时保留「它之前的累计 < p」的。")


# ---------------------------------------------------------------------------------------------
# 3.2b  sample_next_token(logits, temperature, top_k, top_p, generator) -> (B,)
# ---------------------------------------------------------------------------------------------

def filtered_probs(logits, temperature, top_k, top_p, *, order="tkp"):
    """The distribution sample_next_token should draw from; ``order`` names a mistake:
    "tkp" temperature -> top-k -> top-p (right), "tpk" top-p before top-k, "kpt" temperature
    last, "kp" no temperature at all (divided after softmax), "k_no_scatter" a top-k that
    keeps the first k vocabulary positions."""
    scores = logits.float()
    steps = {"t": lambda s: s / temperature,
             "k": lambda s: apply_top_k(s, top_k) if top_k else s,
             "p": lambda s: reference_apply_top_p(s, top_p) if top_p is not None and top_p < 1 else s}
    if order == "k_no_scatter":
        scores = scores / temperature
        if top_k:
            scores = scores.clone()
            scores[:, top_k:] = float("-inf")
        return steps["p"](scores).softmax(dim=-1)
    for name in order:
        scores = steps[name](scores)
    return scores.softmax(dim=-1)


SAMPLER_CASES = [  # temperature, top_k, top_p; every kept token has probability >= 0.007
    (1.0, None, None), (0.5, None, None), (2.0, None, None), (1.0, 4, None), (1.0, None, 0.75),
    (1.0, 3, 0.75),  # top-p after top-k keeps 2 (renormalised .457 + .314); before it, 3
    (0.5, None, 0.75),  # tempered: keeps 2; top-p on the untempered distribution keeps 4
    (2.0, 5, 0.9),
]
ROWS = 4000  # samples per case: frequencies within ~0.03 of the probabilities
SAMPLER_HINTS = {
    "tpk": ("top-k 和 top-p 的顺序反了：先 top-k、再 top-p。top-p 要在 top-k 留下的 token 上、"
            "按**重新归一化**之后的概率累加，所以两种顺序留下的集合不一样（这组设置下正好不同）。",
            "顺序：scores / temperature → top-k → apply_top_p → softmax → multinomial。"),
    "kpt": ("温度用在了 top-k / top-p 之后：top-p 应该在**调过温度的**分布上累加"
            "（温度改变了概率，也就改变了 top-p 留下几个）。",
            "第一步就 scores = logits / temperature，再 top-k、top-p。"),
    "kp": ("temperature 没有起作用：温度要在 softmax 之前除 logits；对概率除以温度再归一化没有效果。",
           "scores = logits / temperature，再 softmax。"),
    "k_no_scatter": ("top-k 留下的是词表里前 k 个位置，而不是分数最大的 k 个：排序后的位置没有映射回 token id"
                     "（测试用的 logits 没有按大小排好）。",
                     "kth = torch.topk(scores, k).values[:, -1:]；scores.masked_fill(scores < kth, float('-inf'))。"),
}


ONE_DRAW = ("一个 batch 的各行抽到的 token 全都一样：每一行应该各抽各的（各行的分布可以不同）。",
            "对 (B, V) 的 probs 直接 torch.multinomial(probs, 1, generator=generator)，"
            "不要只抽一次再复制到每一行。")


def diagnose_temperature_zero(exc: Exception):
    text = str(exc)
    if "probability tensor contains" in text or "division" in text.lower():
        return ("temperature=0 时除以了 0：logits / 0 得到 inf 和 NaN，multinomial 没法采样。",
                "temperature == 0 时直接 return logits.argmax(dim=-1)（贪心），不做除法。")
    return diagnose_sampler(exc)


TOP_K_MINUS_ONE = ("top-k 留下的是 k − 1 个：kth 取成了 torch.topk(scores, k - 1) 的最后一个"
                   "（或者比较写成了 scores <= kth，把第 k 个也删了）；top_k=1 时一个都不剩。",
                   "kth = torch.topk(scores, k).values[:, -1:]（第 k 大的值）；"
                   "scores.masked_fill(scores < kth, float('-inf'))：等于第 k 大的那个要留下。")


def diagnose_top_one(exc: Exception):
    """top_k=1: an empty top-k (torch.topk(scores, k - 1)) fails on its first use."""
    text = str(exc)
    if "tensor b (0)" in text or "with size 0" in text or "selected index k out of range" in text:
        return TOP_K_MINUS_ONE
    return diagnose_sampler(exc)


def diagnose_sampler(exc: Exception):
    text = str(exc)
    if "probability tensor contains" in text:
        return ("multinomial 收到了负数、inf 或 NaN：它要的是概率（softmax 之后），不是 logits；"
                "或者某一行的 token 全被过滤成了 −inf（top-k / top-p 至少要留 1 个）。",
                "probs = scores.softmax(dim=-1)，再 torch.multinomial(probs, num_samples=1, "
                "generator=generator)。")
    return None


def check_sample_next_token(sample_next_token):
    """Check exercise 3.2b; return the sample_next_token to use from here on."""

    def call(logits, *args):
        given = logits.clone()
        diagnose = diagnose_temperature_zero if args[0] == 0 else \
            diagnose_top_one if args[1] == 1 else diagnose_sampler
        with check_grad_mode("sample_next_token"):
            ids = call_learner(sample_next_token, given, *args, name="sample_next_token",
                               diagnose=diagnose)
        check_unchanged(given, logits, "sample_next_token", "logits")
        rows = logits.shape[0]
        if not isinstance(ids, torch.Tensor) or tuple(ids.shape) != (rows,):
            raise Failed(f"logits 是 {tuple(logits.shape)} 时应返回每行一个 token id，形状 ({rows},)，"
                         f"实际是 {describe_value(ids)}。",
                         "torch.multinomial(probs, num_samples=1) 的结果是 (B, 1)：用 .squeeze(1)"
                         "（不要用不带参数的 .squeeze()，B = 1 时它会把 batch 维也去掉）。")
        if not is_long_tensor(ids):
            raise Failed(f"返回的 token id 的 dtype 是 {ids.dtype}，应为 torch.long（int64）："
                         "浮点数的 id 在 tokenizer.decode、torch.cat 到 input_ids 时都会出错。",
                         "multinomial 和 argmax 本来就返回 long，不要再 .float()。")
        return ids

    def generator(seed):
        return torch.Generator().manual_seed(seed)

    @guarded
    def body() -> str:
        logits = shuffled_logits(3)
        greedy = logits.argmax(dim=-1)
        call(logits[:1], 1.0, None, None, generator(0))  # B = 1 keeps its batch dimension
        if not torch.equal(call(logits, 0.0, None, None, generator(0)), greedy):
            raise Failed("temperature=0 没有得到贪心结果。",
                         "temperature == 0 时直接 return logits.argmax(dim=-1)（不能除以 0）。")
        top_one = call(logits, 1.0, 1, None, generator(0))
        if bool((top_one == 0).all()):  # kept vocabulary position 0: "the first k", unsorted
            raise Failed(*SAMPLER_HINTS["k_no_scatter"])
        if bool((top_one == top_one[0]).all()):  # three rows whose argmax differ
            raise Failed(*ONE_DRAW)
        if not torch.equal(top_one, greedy):
            raise Failed("top_k=1 时应只剩最大的那个 token（等于贪心），结果不是：k 算多了，"
                         "或者被过滤的 logits 没有设成 −inf（设成 0 的 token 仍然会被抽到）。",
                         "kth = torch.topk(scores, k).values[:, -1:]；"
                         "scores.masked_fill(scores < kth, float('-inf'))。")
        reproducibility(call, generator)
        for temperature, top_k, top_p in SAMPLER_CASES:
            compare_frequencies(call, generator, temperature, top_k, top_p)
        return (f"八种设置（打乱了词表顺序的 logits）下各采 {ROWS} 次：保留的 token 集合正确（顺序是"
                "温度 → top-k → top-p）、频率与概率一致；temperature=0 与 top_k=1 等于贪心；"
                "同一个种子结果相同，同一个 generator 连用两次结果不同，全局随机数没有被动过；返回 long。")

    return run_check("3.2b", body, sample_next_token, reference_sample_next_token)


def reproducibility(call, generator):
    batch = shuffled_logits(1).repeat(64, 1)
    before = torch.get_rng_state()
    a = call(batch, 1.0, None, None, generator(0))
    touched = not torch.equal(torch.get_rng_state(), before)
    b = call(batch, 1.0, None, None, generator(0))
    if touched:
        raise Failed("给了 generator，全局随机数（torch.manual_seed 管的那个）却被动过了："
                     "随机数应只从传进来的 generator 里取。",
                     "torch.multinomial(probs, num_samples=1, generator=generator)；函数里不要 torch.manual_seed。")
    if not torch.equal(a, b) or torch.equal(a, call(batch, 1.0, None, None, generator(1))):
        raise Failed("同一个种子的 generator 两次采样结果不同（或换了种子却相同）：没有用传进来的 generator。",
                     "torch.multinomial(probs, num_samples=1, generator=generator)。")
    if bool((a == a[0]).all()):
        raise Failed(*ONE_DRAW)
    shared = generator(0)
    first, second = call(batch, 1.0, None, None, shared), call(batch, 1.0, None, None, shared)
    if torch.equal(first, second):
        raise Failed("同一个 generator 连用两次，两次抽到的完全一样：函数里每次都重新设了种子"
                     "（例如 manual_seed(generator.initial_seed())），生成的每一步就会抽到同样的随机数。",
                     "直接把 generator 传给 torch.multinomial，让它自己往下走；不要重新设种子。")


def compare_frequencies(call, generator, temperature, top_k, top_p):
    logits = shuffled_logits(1)
    draws = call(logits.repeat(ROWS, 1), temperature, top_k, top_p, generator(7))
    freq = torch.bincount(draws.clamp(0, logits.shape[1] - 1), minlength=logits.shape[1]).float()
    freq = freq / freq.sum()
    setting = f"temperature={temperature}, top_k={top_k}, top_p={top_p}"

    def fits(probs):
        likely = probs > 0.005  # expected at least 20 times in ROWS draws
        return not bool((freq[probs == 0] > 0).any()) and not bool((freq[likely] == 0).any()) \
            and float((freq - probs).abs().max()) < 0.04

    expected = filtered_probs(logits, temperature, top_k, top_p)[0]
    if fits(expected):
        return
    for order in ("tpk", "kpt", "kp", "k_no_scatter"):
        if fits(filtered_probs(logits, temperature, top_k, top_p, order=order)[0]):
            raise Failed(*SAMPLER_HINTS[order])
    kept, expected_kept = int((freq > 0).sum()), int((expected > 0).sum())
    if kept != expected_kept and top_p is None and not top_k:
        raise Failed(f"{setting}（没有 top-k / top-p）时采到了 {kept} 种 token，应有 {expected_kept} 种："
                     "有的 token 概率不小却一次都没被抽到，multinomial 收到的不是 softmax 之后的概率（直接用了 logits？）。",
                     "probs = scores.softmax(dim=-1)，再 torch.multinomial(probs, 1, generator=generator)。")
    if kept != expected_kept and top_p is not None and top_k is None:
        raise Failed(f"{setting} 时采到了 {kept} 种 token，应有 {expected_kept} 种：top-p 留下的集合不对。",
                     "先让 3.2a 的 apply_top_p 通过，再在 sample_next_token 里调用它。")
    if top_k and top_p is None and kept == expected_kept - 1 == top_k - 1:
        raise Failed(*TOP_K_MINUS_ONE)
    if kept != expected_kept and top_k and top_p is None:
        raise Failed(f"{setting} 时采到了 {kept} 种 token，应只有 {expected_kept} 种："
                     "top-k 多留或少留了（或被过滤的没有设成 −inf）。",
                     "kth = torch.topk(scores, k).values[:, -1:]；"
                     "scores.masked_fill(scores < kth, float('-inf'))。")
    if kept != expected_kept:
        raise Failed(f"{setting} 时采到了 {kept} 种 token，应有 {expected_kept} 种：过滤的顺序或写法不对。",
                     "顺序：logits / temperature → top-k → top-p → softmax → multinomial。")
    raise Failed(f"{setting} 时采样频率和应有的概率对不上（在 logits 上 multinomial？温度在 softmax 之后？）。",
                 "顺序：logits / temperature → top-k → top-p → softmax → "
                 "torch.multinomial(probs, 1, generator=generator)。")

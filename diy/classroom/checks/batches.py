"""Self-check of exercise 2.1: get_batch(tokens, batch_size, seq_len, generator) -> (B, L).

The course's convention (step 1's): a batch is the windows themselves and the loss shifts.
A learner who returns nanoGPT's (x, y) pair instead passes too, with a note; the notebook then
goes on with x.
"""

from __future__ import annotations

import torch

from ...data import get_batch as reference_get_batch
from .report import Failed, call_learner, run_check

EXERCISE = "2.1"


def diagnose_get_batch(exc: Exception):
    text = str(exc)
    if "stack expects each tensor to be equal size" in text:
        return ("有的窗口跑出了文本末尾，切出来的行比 seq_len 短，torch.stack 拼不起来。",
                "随机起点的上界是 len(tokens) - seq_len + 1（torch.randint 不含上界），"
                "这样最后一个窗口正好到文本末尾。")
    if "random_" in text and "from" in text and "to" in text:
        return ("torch.randint 的范围是空的或倒过来了。",
                "起点从 torch.randint(0, len(tokens) - seq_len + 1, (batch_size,), "
                "generator=generator) 里取。")
    return None


def as_windows(result, name: str):
    """The (B, L) windows of what get_batch returned, and whether it was an (x, y) pair."""
    if isinstance(result, tuple) and len(result) == 2 and \
            all(isinstance(t, torch.Tensor) for t in result):
        x, y = result
        if x.shape != y.shape:
            raise Failed(f"返回的 (x, y) 形状不同：x {tuple(x.shape)}，y {tuple(y.shape)}。",
                         "取 seq_len + 1 长的窗口，x = window[:-1]，y = window[1:]；"
                         "或者按课程的约定只返回 (B, seq_len) 的窗口，让 loss 去错位。")
        if x.dim() == 2 and torch.equal(x, y):
            raise Failed("y 和 x 一模一样：目标没有错开一位。",
                         "y 应是 x 的下一个 token：y = window[1:]，x = window[:-1]。"
                         "（或者只返回窗口本身，让 causal_lm_loss 去错位。）")
        if x.dim() == 2 and x.shape[1] > 1 and not torch.equal(x[:, 1:], y[:, :-1]):
            raise Failed("y 不是 x 错开一位的结果（错开了不止一位，或来自别的窗口）。",
                         "从同一个 seq_len + 1 长的窗口里取：x = window[:-1]，y = window[1:]。")
        return x, True
    if result is None:
        raise Failed(f"{name} 返回了 None：忘了 return？", "最后 return torch.stack(windows)。")
    if not isinstance(result, torch.Tensor):
        raise Failed(f"{name} 应返回一个 (B, L) 的张量，实际返回的是 {type(result).__name__}。",
                     "把每个窗口 tokens[s:s + seq_len] 放进列表，再 torch.stack(...)。")
    return result, False


def check_windows(windows, tokens, batch_size: int, seq_len: int, pair: bool) -> list[int]:
    """Shape, dtype, and every row a window of tokens; the windows' start positions."""
    B, L = batch_size, seq_len
    if windows.dtype != torch.long:
        raise Failed(f"batch 的 dtype 是 {windows.dtype}，token id 必须是整数 torch.long。",
                     "直接切 tokens（它本来就是 long），不要转成浮点数。")
    if tuple(windows.shape) == (L, B) and L != B:
        raise Failed(f"形状是 {tuple(windows.shape)}，行和列反了，应为 (batch_size, seq_len) "
                     f"= ({B}, {L})。", "用 torch.stack(windows)（沿第 0 维叠），不要转置。")
    if tuple(windows.shape) == (B, L + 1) and not pair:
        raise Failed(f"形状是 {tuple(windows.shape)}：窗口多取了一个 token。",
                     "课程的约定是 loss 内部错位，所以窗口就是 seq_len 个 token：tokens[s:s + seq_len]。"
                     "（想用 nanoGPT 的写法，就返回 (x, y) 两个张量。）")
    if tuple(windows.shape) != (B, L):
        raise Failed(f"batch 形状是 {tuple(windows.shape)}，应为 (batch_size, seq_len) = ({B}, {L})。",
                     "取 batch_size 个起点，每个窗口 tokens[s:s + seq_len]，再 torch.stack。")
    # tokens are 1000, 1001, ... here, so a window is consecutive values starting at its start
    first = tokens[0].item()
    starts = []
    for row in windows:
        start = row[0].item() - first
        if not torch.equal(row, torch.arange(row[0].item(), row[0].item() + L)):
            raise Failed("有一行不是文本里连续的一段：窗口里的 token 被打乱或拼接了。",
                         "每一行都是连续切片 tokens[s:s + seq_len]。")
        starts.append(start)
    return starts


def check_get_batch(get_batch):
    """Check exercise 2.1; return the get_batch to use from here on (windows only)."""
    state = {"pair": False}

    def call(fn, tokens, batch_size, seq_len, seed: int | None):
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        result = call_learner(fn, tokens, batch_size, seq_len, generator, name="get_batch",
                              diagnose=diagnose_get_batch)
        windows, pair = as_windows(result, "get_batch")
        state["pair"] = pair
        return windows, pair

    def body() -> str:
        for n_tokens, batch_size, seq_len in ((400, 8, 128), (20, 6, 5)):
            tokens = torch.arange(1000, 1000 + n_tokens)
            before = tokens.clone()
            torch.manual_seed(0)
            windows, pair = call(get_batch, tokens, batch_size, seq_len, seed=0)
            check_windows(windows, tokens, batch_size, seq_len, pair)
            if not torch.equal(tokens, before):
                raise Failed("get_batch 修改了传进来的 tokens。", "只切片，不要原地改 tokens。")
            # the same generator seed: the same batch, whatever the global random state
            torch.manual_seed(1)
            global_state = torch.random.get_rng_state()
            again, _ = call(get_batch, tokens, batch_size, seq_len, seed=0)
            if not torch.equal(torch.random.get_rng_state(), global_state):
                raise Failed("传了 generator，get_batch 却动了全局随机数（torch.manual_seed，"
                             "或不带 generator= 的 torch.randint）：notebook 别处的随机数会跟着变。",
                             "只从传进来的 generator 里取随机数：torch.randint(..., "
                             "generator=generator)，函数里不要调用 torch.manual_seed。")
            if not torch.equal(windows, again):
                raise Failed("同一个种子的 generator 两次取到的 batch 不一样："
                             "随机数没有从传进来的 generator 里取（用了全局随机数？）。",
                             "torch.randint(..., generator=generator)：把 generator 传给 randint。")
            other, _ = call(get_batch, tokens, batch_size, seq_len, seed=1)
            if torch.equal(windows, other):
                raise Failed("换了 generator 的种子，batch 却一模一样：起点不是随机的。",
                             "用 torch.randint(0, len(tokens) - seq_len + 1, (batch_size,), "
                             "generator=generator) 随机取起点。")
            if len({tuple(row.tolist()) for row in windows}) == 1:
                raise Failed("batch 的每一行都一模一样：只取了一个随机起点，再复制了 batch_size 遍。",
                             "一次取 batch_size 个起点：torch.randint(low, high, (batch_size,), "
                             "generator=generator)，每个起点切一个窗口。")
            # one generator used twice (as the training loop does): two different batches
            generator = torch.Generator().manual_seed(0)
            first = as_windows(call_learner(get_batch, tokens, batch_size, seq_len, generator,
                                            name="get_batch", diagnose=diagnose_get_batch),
                               "get_batch")[0]
            second = as_windows(call_learner(get_batch, tokens, batch_size, seq_len, generator,
                                             name="get_batch", diagnose=diagnose_get_batch),
                                "get_batch")[0]
            if torch.equal(first, second):
                raise Failed("同一个 generator 连着用两次，取到的是同一个 batch：get_batch 每次都从种子"
                             "重新开始（manual_seed / initial_seed）。训练循环每一步都会拿到同一个 batch。",
                             "直接用传进来的 generator（torch.randint(..., generator=generator)），"
                             "不要在函数里重新设种子：它的状态每取一次就往前走，下一次自然不同。")
        # every start can occur, the last one included (a window that ends at the text's end)
        tokens = torch.arange(1000, 1012)
        seq_len = 9
        possible = 12 - seq_len if state["pair"] else 12 - seq_len + 1
        seen = set()
        for seed in range(40):
            windows, pair = call(get_batch, tokens, 8, seq_len, seed=seed)
            seen.update(check_windows(windows, tokens, 8, seq_len, pair))
        if seen != set(range(possible)):
            missing = sorted(set(range(possible)) - seen)
            raise Failed(f"有的起点永远取不到（{len(tokens)} 个 token、seq_len={seq_len} 时，"
                         f"起点 {missing} 一次都没出现）：最后的窗口被漏掉了。",
                         "torch.randint 的上界不包含在内：用 len(tokens) - seq_len + 1 作上界。")
        note = ("（你返回的是 (x, y)：nanoGPT 的写法，也对。课程的约定是让 loss 错位，"
                "后面的单元格用 x。）" if state["pair"] else "")
        return (f"(8, 128) 与 (6, 5) 两种尺寸下，每行都是文本里连续的一段，所有起点都可能取到，"
                f"同一个 generator 种子给出同一个 batch，同一个 generator 接着取给出新的 batch，"
                f"全局随机数没被动过。{note}")

    result = run_check(EXERCISE, body, get_batch, reference_get_batch)
    if result is get_batch and state["pair"]:
        return lambda *args, **kwargs: get_batch(*args, **kwargs)[0]  # go on with x
    return result

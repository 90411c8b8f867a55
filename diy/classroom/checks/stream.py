"""Self-check of 4.1c: get_batch(stream, batch_size, seq_len, generator) -> (x, y) from a packed
uint16 stream (numpy.memmap). x and y are (B, L) int64 tensors, y is x one token later, the
windows come from the stream, every start can occur (the last one too), and the random numbers
come only from the generator."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from ...errors import describe_value
from ...pretraining.packed import open_stream, windows, write_stream
from .report import Failed, call_learner, run_check


def reference_get_batch(stream, batch_size, seq_len, generator=None):
    starts = torch.randint(0, len(stream) - seq_len, (batch_size,), generator=generator)  # (B,)
    return windows(stream, starts.numpy(), seq_len)  # (B, L) each


def diagnose(exc: Exception):
    text = str(exc)
    if "can't convert np.ndarray of type numpy.uint16" in text or "uint16" in text:
        return ("torch 不能直接用 uint16 的数组当 token id（embedding 要 int64）。",
                "先转成 int64：torch.from_numpy(rows.astype(np.int64))。")
    if "stack expects each tensor to be equal size" in text or "could not broadcast" in text:
        return ("有的窗口跑出了流的末尾，长度不够。",
                "一个窗口要 seq_len + 1 个 token（x 和错一位的 y），起点上界是 len(stream) - seq_len"
                "（torch.randint 不含上界）。")
    return None


def as_pair(result):
    if not (isinstance(result, tuple) and len(result) == 2):
        raise Failed(f"get_batch 应返回 (x, y) 两个张量，实际是 {describe_value(result)}。",
                     "return x, y：x = 窗口[:, :-1]，y = 窗口[:, 1:]。")
    x, y = result
    for name, t in (("x", x), ("y", y)):
        if isinstance(t, np.ndarray):
            raise Failed(f"{name} 还是 numpy 数组，模型要 torch 张量。",
                         "torch.from_numpy(rows.astype(np.int64))。")
        if not isinstance(t, torch.Tensor):
            raise Failed(f"{name} 应是张量，实际是 {describe_value(t)}。", "返回 torch 张量。")
        if t.dtype != torch.long:
            raise Failed(f"{name} 的 dtype 是 {t.dtype}：token id 要 torch.long（int64）给 embedding 用。",
                         "先 .astype(np.int64) 再 torch.from_numpy，或者最后 .long()。")
    return x, y


def check_stream_batch(get_batch):
    """Check exercise 4.1c; return the get_batch to use from here on."""

    def call(stream, batch_size, seq_len, seed):
        generator = torch.Generator().manual_seed(seed)
        return as_pair(call_learner(get_batch, stream, batch_size, seq_len, generator,
                                    name="get_batch", diagnose=diagnose))

    def starts_of(x, y, stream, seq_len) -> list[int]:
        # the stream holds 0, 1, 2, ... (mod 60,000): a window is consecutive values
        B = x.shape[0]
        if x.shape != y.shape or x.dim() != 2 or x.shape[1] != seq_len:
            raise Failed(f"x 的形状 {tuple(x.shape)}、y 的形状 {tuple(y.shape)}，都应为 ({B}, {seq_len})。",
                         "每个窗口取 seq_len + 1 个 token，x = w[:-1]，y = w[1:]。")
        if torch.equal(x, y):
            raise Failed("y 和 x 一模一样：目标没有错开一位。", "y = 窗口[1:]，x = 窗口[:-1]。")
        if not torch.equal(x[:, 1:], y[:, :-1]) or not torch.equal(y[:, -1], x[:, -1] + 1):
            raise Failed("y 不是 x 往后错一位：y[:, t] 应是 x[:, t] 的下一个 token。",
                         "从同一个 seq_len + 1 长的窗口里取：x = w[:-1]，y = w[1:]。")
        starts = []
        for row in x:
            start = int(row[0])
            if not torch.equal(row, torch.arange(start, start + seq_len)):
                raise Failed("有一行不是流里连续的一段。", "每行都是 stream[s : s + seq_len + 1] 的切片。")
            starts.append(start)
        return starts

    def body() -> str:
        with tempfile.TemporaryDirectory() as folder:
            path = write_stream(np.arange(5000) % 60000, Path(folder) / "s.bin")
            stream = open_stream(path)
            torch.manual_seed(0)
            global_state = torch.random.get_rng_state()
            numpy_state = np.random.get_state()[1].copy()
            x, y = call(stream, 8, 16, seed=0)
            starts_of(x, y, stream, 16)
            if not torch.equal(torch.random.get_rng_state(), global_state) or \
                    not np.array_equal(np.random.get_state()[1], numpy_state):
                raise Failed("get_batch 动了全局随机数（torch.manual_seed、不带 generator 的 torch.randint，"
                             "或 np.random）：notebook 别处的随机数会跟着变。",
                             "只从传进来的 generator 里取：torch.randint(..., generator=generator)。")
            again, _ = call(stream, 8, 16, seed=0)
            if not torch.equal(x, again):
                raise Failed("同一个种子的 generator 两次取到的 batch 不一样：随机数不是从 generator 里取的。",
                             "torch.randint(0, len(stream) - seq_len, (batch_size,), generator=generator)。")
            if torch.equal(x, call(stream, 8, 16, seed=1)[0]):
                raise Failed("换了种子，batch 却一样：起点不是随机的。", "用 generator 随机取 batch_size 个起点。")
            generator = torch.Generator().manual_seed(0)  # one generator, twice: the training loop
            first, second = (as_pair(call_learner(get_batch, stream, 8, 16, generator,
                                                  name="get_batch", diagnose=diagnose))[0]
                             for _ in range(2))
            if torch.equal(first, second):
                raise Failed("同一个 generator 连着用两次，取到的是同一个 batch：get_batch 每次都从种子重新开始"
                             "（initial_seed、manual_seed 或 np.random.default_rng(...)）。训练时每一步都会是同一个 batch。",
                             "直接从传进来的 generator 取随机数（torch.randint(..., generator=generator)），"
                             "它的状态每取一次就往前走。")
            small = stream[:12]  # 12 tokens, seq_len 9: starts 0, 1, 2 (a window needs 10)
            seen = set()
            for seed in range(40):
                x, y = call(small, 6, 9, seed=seed)
                seen.update(starts_of(x, y, small, 9))
            if seen != {0, 1, 2}:
                missing = sorted({0, 1, 2} - seen)
                raise Failed(f"12 个 token、seq_len=9 时起点应能取到 0、1、2，起点 {missing} 一次都没出现"
                             "（或出现了越界的起点）。",
                             "一个窗口要 seq_len + 1 个 token：起点上界 len(stream) - seq_len（randint 不含上界）。")
            del stream, small  # release the memory map before the folder is removed
        return ("x、y 都是 (B, L) 的 int64 张量，y 是 x 往后错一位；每个合法起点都可能取到；"
                "随机数只来自 generator。")

    return run_check("4.1c", body, get_batch, reference_get_batch)

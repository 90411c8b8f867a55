"""The packed token stream of step 4: a corpus encoded once into a flat file of uint16 ids.

    write_stream(ids, "train.bin")            # 1,887,086 ids -> a 3.8 MB file
    stream = open_stream("train.bin")         # numpy.memmap: read from disk as it is used
    x, y = windows(stream, starts, seq_len)   # (B, L) inputs and (B, L) next-token targets

Pretraining concatenates every document of the corpus into one stream and cuts random windows
from it; a window may cross from one ci into the next, which is how the model learns where a ci
ends. The stream lives on disk and is memory-mapped: only the pages a batch touches are read, so
the same code works for a corpus far larger than memory. uint16 holds ids up to 65,535, enough
for any vocabulary of this course (and for GPT-2's 50,257).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DIYInputError

DTYPE = np.uint16


def write_stream(ids, path) -> Path:
    """Write ``ids`` (a sequence of ints) to ``path`` as raw uint16, atomically."""
    from ..checkpoint import write_atomically

    array = np.asarray(ids, dtype=np.int64)
    if array.ndim != 1 or len(array) == 0:
        raise DIYInputError("token 流应是一串非空的 id。", "传入 tokenizer.encode(文本) 的结果。",
                            "the stream must be a non-empty 1-D sequence of ids.")
    if array.min() < 0 or array.max() > np.iinfo(DTYPE).max:
        raise DIYInputError(f"id 超出了 uint16 的范围 [0, 65535]：最小 {array.min()}，"
                            f"最大 {array.max()}。",
                            "词表不能超过 65,536 个 id。", "ids must fit in uint16.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda tmp: array.astype(DTYPE).tofile(tmp))
    return path


def open_stream(path) -> np.memmap:
    """The stream written by ``write_stream``, memory-mapped read-only: (N,) uint16."""
    path = Path(path)
    if not path.is_file():
        raise DIYInputError(f"找不到 token 流文件 {path}。", "先用 write_stream 写出它。",
                            f"the token stream file {path} does not exist.")
    return np.memmap(path, dtype=DTYPE, mode="r")


def windows(stream, starts, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``stream[s : s + L]`` and targets ``stream[s + 1 : s + L + 1]`` for each start s:
    target j of a row is the token that follows input j, so every position has a target.
    Returns two (B, L) int64 tensors."""
    starts = np.asarray(starts, dtype=np.int64)  # (B,)
    if starts.min(initial=0) < 0 or starts.max(initial=0) + seq_len + 1 > len(stream):
        raise DIYInputError(f"窗口越界：起点应在 [0, {len(stream) - seq_len - 1}] 内。",
                            "起点从 [0, N - seq_len - 1] 里取。",
                            "window starts must lie in [0, N - seq_len - 1].")
    rows = np.asarray(stream[starts[:, None] + np.arange(seq_len + 1)], dtype=np.int64)  # (B, L+1)
    rows = torch.from_numpy(rows)
    return rows[:, :-1], rows[:, 1:]  # (B, L) each

"""The course's training text and the batches cut from it.

The course keeps step 1's convention: a batch is just `input_ids` (B, L), and the loss
(`causal_lm_loss`) does the next-token shift itself, so labels are the same windows.

    ids = tokenizer.encode(load_passage())                              # N ids
    tokens = training_stream(ids, tokenizer.eos_token_id, seq_len=128)  # (copies * (N + 1),)
    input_ids = get_batch(tokens, batch_size=8, seq_len=128, generator=g)  # (8, 128)
"""

from __future__ import annotations

import math
from importlib import resources

import torch

from .errors import DIYInputError
from .loss import IGNORE_INDEX


def load_passage() -> str:
    """The passage written for the course (diy/passage.txt, shipped with the package)."""
    return resources.files("diy").joinpath("passage.txt").read_text(encoding="utf-8").strip()


def check_batch_args(n_tokens: int, batch_size: int, seq_len: int) -> None:
    """Bad sizes get a clear error before any work is done."""
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DIYInputError(f"{name}={value!r} 不合法：它必须是正整数。",
                                f"把 {name} 设成大于 0 的整数。",
                                f"{name} must be a positive integer, got {value!r}.")
    if seq_len < 2:
        raise DIYInputError(f"seq_len={seq_len} 太短：一个窗口至少要 2 个 token，"
                            "才有下一个 token 可预测。",
                            "用 seq_len ≥ 2（课程默认 128）。", "seq_len must be at least 2.")
    if n_tokens < seq_len:
        raise DIYInputError(
            f"文本只有 {n_tokens} 个 token，比一个窗口的长度 seq_len={seq_len} 还短。",
            f"用更长的文本，或把 seq_len 调小到 {max(n_tokens, 2)} 以下。",
            f"the text has {n_tokens} tokens, fewer than seq_len={seq_len}.")


def training_stream(ids: list[int], eos_token_id: int, seq_len: int) -> torch.Tensor:
    """The text as one document (its ids, then eos), repeated into one long 1-D stream.

    Pre-training concatenates many documents, each ended by eos, into one stream and cuts
    random windows from it. With a single short text we repeat it instead: then every part of
    the text, its beginning included, shows up at every position of a window equally often,
    and the model also learns that eos follows the text's last character (generation stops
    there in step 3). The stream holds at least 8 windows of ``seq_len``.
    """
    if len(ids) == 0:
        raise DIYInputError("训练文本是空的。", "给一段非空的文本（课程默认用 load_passage()）。",
                            "the training text is empty.")
    if len(ids) < seq_len:
        raise DIYInputError(
            f"文本只有 {len(ids)} 个 token（加上 eos 是 {len(ids) + 1} 个），"
            f"少于 seq_len + 1 = {seq_len + 1}：一个窗口装不下一遍文本。",
            f"用更长的文本，或把 seq_len 调到 {len(ids)} 或更小。",
            f"the text has {len(ids)} tokens, fewer than seq_len + 1 = {seq_len + 1} with eos.")
    document = list(ids) + [eos_token_id]
    copies = max(1, math.ceil(8 * seq_len / len(document)))
    return torch.tensor(document * copies)  # (copies * (N + 1),)


def get_batch(tokens: torch.Tensor, batch_size: int, seq_len: int,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """``batch_size`` random windows of ``seq_len`` consecutive tokens, stacked to (B, L).

    Start positions are drawn from [0, N - seq_len], so every window lies inside the text (and
    the last window ends exactly at its end). The same ``generator`` state gives the same batch.
    """
    check_batch_args(len(tokens), batch_size, seq_len)
    starts = torch.randint(0, len(tokens) - seq_len + 1, (batch_size,),
                           generator=generator)  # (B,)
    return torch.stack([tokens[s:s + seq_len] for s in starts.tolist()])  # (B, L)


def eval_batch(tokens: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole text as (input_ids, labels): an exact loss over every next-token pair, each
    predicted with a long context, as generation will see it.

    Windows of ``seq_len`` tokens start every ``seq_len // 2`` tokens (the last one ends at the
    text's end). The first window scores all its targets; each later window scores only the
    targets no earlier window scored (the others get IGNORE_INDEX), so every pair counts once
    and, after the first window, with at least seq_len // 2 tokens of context. (W, L) each.
    """
    check_batch_args(len(tokens), 1, seq_len)
    stride = max(1, seq_len // 2)
    last_start = len(tokens) - seq_len
    starts = list(range(0, last_start, stride)) + [last_start]  # the last ends at the end
    input_ids = torch.stack([tokens[s:s + seq_len] for s in starts])  # (W, L)
    labels = input_ids.clone()  # (W, L); label j of a window is the target of position j-1
    scored_up_to = 0  # index of the last token already predicted
    for row, start in enumerate(starts):
        labels[row, :max(0, scored_up_to - start + 1)] = IGNORE_INDEX
        scored_up_to = start + seq_len - 1
    return input_ids, labels

"""Next-token cross-entropy, the loss of every causal language model."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import DIYInputError

IGNORE_INDEX = -100  # PyTorch's default ignore_index; labels with this value add no loss


def shift_for_next_token(logits: torch.Tensor, labels: torch.Tensor):
    """Position t predicts token t+1: drop the last logit and the first label.

    Returns logits (N, V) and targets (N,), N = B * (L - 1), ready for F.cross_entropy.
    """
    vocab_size = logits.shape[-1]
    shifted_logits = logits[:, :-1, :].reshape(-1, vocab_size)  # (B*(L-1), V)
    shifted_labels = labels[:, 1:].reshape(-1)  # (B*(L-1),)
    return shifted_logits, shifted_labels


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor,
                   ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions whose label is not ``ignore_index``.

    logits (B, L, V), labels (B, L) long (usually input_ids with padding replaced by
    ignore_index). Computed in float32, as Hugging Face does, so half-precision logits do not
    lose the small differences that the softmax depends on.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise DIYInputError(
            f"logits 形状 {tuple(logits.shape)} 与 labels 形状 {tuple(labels.shape)} 不匹配。",
            "logits 应为 (B, L, V)，labels 应为 (B, L)。",
            "expected logits (B, L, V) and labels (B, L).")
    if labels.is_floating_point():
        raise DIYInputError(
            f"labels 的 dtype 是 {labels.dtype}，cross_entropy 需要整数类别编号。",
            "用 labels.long()。", "labels must be integer class ids.")
    # Same pairs as shift_for_next_token, but the labels move instead of the logits: position
    # t's target is labels[t+1], the last position gets ignore_index. Shifting the small labels
    # avoids copying the (B, L-1, V) logits slice, the largest tensor of the step.
    targets = F.pad(labels[:, 1:], (0, 1), value=ignore_index)  # (B, L)
    if not (targets != ignore_index).any():
        raise DIYInputError(
            "所有目标位置都被 ignore_index 忽略了，平均 loss 会是 0/0 = NaN。",
            "检查 padding 和 ignore_index；"
            "每个 batch 至少要有一个真实的下一个 token（序列长度 >= 2）。",
            "every target is ignored, the mean loss would be NaN.")
    vocab_size = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, vocab_size).float(),  # (B*L, V), a view
                           targets.reshape(-1),  # (B*L,)
                           ignore_index=ignore_index)


def labels_from_input_ids(input_ids: torch.Tensor, seq_lengths=None,
                          ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Labels equal to input_ids, with right-padding positions set to ``ignore_index``."""
    labels = input_ids.clone()  # (B, L)
    if seq_lengths is not None:
        seq_lengths = torch.as_tensor(seq_lengths, device=input_ids.device)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (L,)
        labels[positions[None, :] >= seq_lengths[:, None]] = ignore_index  # (B, L)
    return labels

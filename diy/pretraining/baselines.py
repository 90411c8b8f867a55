"""What a model must beat: two counting models, measured in bits per character.

    unigram_bpc(train_ids, held_out_ids, vocab_size)   # each token by its own frequency
    bigram_bpc(train_ids, held_out_ids, vocab_size)    # each token given the one before it

Both are fitted on the training stream and scored on the held-out stream, on exactly the tokens
the model sees (same tokenizer, same text format), so the three numbers can be compared.
The unigram is add-one smoothed (a token never seen in training still gets a count of one); the
bigram mixes its own estimate with the unigram's, P = λ·P(b | a) + (1 − λ)·P(b), so a pair never
seen in training does not get probability zero (interpolation, λ = 0.8).
"""

from __future__ import annotations

import math

import numpy as np


def unigram_probs(train_ids, vocab_size: int) -> np.ndarray:
    """P(token) with add-one smoothing: (count + 1) / (N + V). (V,)"""
    counts = np.bincount(np.asarray(train_ids, dtype=np.int64), minlength=vocab_size)  # (V,)
    return (counts + 1) / (counts.sum() + vocab_size)


def unigram_bpc(train_ids, held_out_ids, vocab_size: int, n_chars: int | None = None) -> float:
    """Bits per character of the add-one unigram on every held-out token but the first (the same
    tokens the models are scored on)."""
    p = unigram_probs(train_ids, vocab_size)
    targets = np.asarray(held_out_ids, dtype=np.int64)[1:]
    return float(-np.log2(p[targets]).sum()) / (n_chars or len(targets))


def bigram_bpc(train_ids, held_out_ids, vocab_size: int, lam: float = 0.8,
               n_chars: int | None = None) -> float:
    """Bits per character of the interpolated bigram λ·P(b | a) + (1 − λ)·P_unigram(b)."""
    train = np.asarray(train_ids, dtype=np.int64)
    held = np.asarray(held_out_ids, dtype=np.int64)
    pair_counts: dict[int, int] = {}
    keys, counts = np.unique(train[:-1] * vocab_size + train[1:], return_counts=True)
    pair_counts = dict(zip(keys.tolist(), counts.tolist(), strict=True))
    previous_counts = np.bincount(train[:-1], minlength=vocab_size)  # how often a comes first
    unigram = unigram_probs(train, vocab_size)
    bits = 0.0
    for a, b in zip(held[:-1].tolist(), held[1:].tolist(), strict=True):
        conditional = pair_counts.get(a * vocab_size + b, 0) / previous_counts[a] \
            if previous_counts[a] else 0.0
        bits -= math.log2(lam * conditional + (1 - lam) * unigram[b])
    return bits / (n_chars or len(held) - 1)

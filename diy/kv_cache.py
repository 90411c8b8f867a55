"""A preallocated KV cache for generation (the course's loops use plain (k, v) pairs)."""

from __future__ import annotations

import torch

from .config import DIYConfig
from .errors import DIYInputError


class PreallocatedKV:
    """One layer's KV cache in buffers sized for the whole generation, (B, H, capacity, D) each.

    New keys and values are written in place after the ones already there, instead of
    ``torch.cat`` copying the whole growing cache every step (as transformers' StaticCache).
    ``generate`` uses it; a list of these (one per layer, from ``for_model``) is a valid
    ``past_key_values`` and comes back as the ``presents``. Every forward pass that gets it
    advances it in place, so it cannot be branched or re-run like the plain (k, v) pairs the
    course's own loops use (same numbers, slower).
    """

    def __init__(self, batch_size: int, num_heads: int, capacity: int, head_dim: int):
        self.shape = (batch_size, num_heads, capacity, head_dim)  # (B, H, T, D)
        self.keys: torch.Tensor | None = None  # (B, H, T, D), made by the first append with
        self.values: torch.Tensor | None = None  # the model's dtype and device
        self.length = 0  # positions filled so far

    @classmethod
    def for_model(cls, config: DIYConfig, batch_size: int, capacity: int) -> list[PreallocatedKV]:
        """An empty cache for every layer of a model with this config."""
        return [cls(batch_size, config.num_heads, capacity, config.head_dim)
                for _ in range(config.num_layers)]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, H, L, D) after the cached ones; return every key and value so far."""
        if self.keys is None:
            self.keys, self.values = k.new_zeros(self.shape), v.new_zeros(self.shape)
        elif k.dtype != self.keys.dtype or k.device != self.keys.device:  # before any write
            raise DIYInputError(
                f"这个缓存里存的是 {self.keys.dtype} / {self.keys.device}，这一次算出的 k 是 "
                f"{k.dtype} / {k.device}（中途换了 dtype、device 或 autocast）。",
                "换了 dtype 或 device 就从新的缓存开始：PreallocatedKV.for_model(...)。",
                "the cache holds another dtype/device than this call computes.")
        start, end = self.length, self.length + k.shape[2]
        self.keys[:, :, start:end] = k  # in place, no copy of the older entries
        self.values[:, :, start:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]  # (B, H, P+L, D) views

"""A preallocated KV cache for generation (the course's loops use plain (k, v) pairs)."""

from __future__ import annotations

import torch

from .config import DIYConfig


class PreallocatedKV:
    """One layer's KV cache in buffers sized for the whole generation, (B, H, capacity, D) each.

    New keys and values are written in place after the ones already there, instead of
    ``torch.cat`` copying the whole growing cache every step (as transformers' StaticCache).
    ``generate`` uses it; a list of these is a valid ``past_key_values`` and comes back as the
    ``presents``. The course's own loops keep the plain (k, v) pairs: same numbers, slower.
    """

    def __init__(self, batch_size: int, num_heads: int, capacity: int, head_dim: int,
                 dtype=torch.float32, device=None):
        shape = (batch_size, num_heads, capacity, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)  # (B, H, T, D)
        self.values = torch.zeros(shape, dtype=dtype, device=device)  # (B, H, T, D)
        self.length = 0  # positions filled so far

    @classmethod
    def for_model(cls, config: DIYConfig, batch_size: int, capacity: int, dtype=torch.float32,
                  device=None) -> list[PreallocatedKV]:
        """An empty cache for every layer of a model with this config."""
        return [cls(batch_size, config.num_heads, capacity, config.head_dim, dtype, device)
                for _ in range(config.num_layers)]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, H, L, D) after the cached ones; return every key and value so far."""
        start, end = self.length, self.length + k.shape[2]
        self.keys[:, :, start:end] = k  # in place, no copy of the older entries
        self.values[:, :, start:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]  # (B, H, P+L, D) views

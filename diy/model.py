"""DIYModel: the course's Llama-style backbone, in one readable file.

    input_ids (B, L)
      -> embed_tokens                      (B, L, C)       C = hidden_size
      -> num_layers x DIYDecoderLayer:
            x = x + dropout(self_attn(input_layernorm(x)))         causal, RoPE
            x = x + dropout(mlp(post_attention_layernorm(x)))      SwiGLU
      -> norm (final RMSNorm)              (B, L, C)       = hidden_states

Module names follow Hugging Face's Llama (``embed_tokens``, ``layers.N.self_attn.q_proj`` ...),
so a DIYModel's state_dict loads into ``transformers.LlamaModel`` with ``strict=True``
(see ``diy.hf``) and the two compute the same hidden states.

Two switches, two different jobs:
- ``is_training`` picks the *computation path*. True: the whole sequence at once, no cache,
  returns ``hidden_states``. False: the inference path, which may read ``past_key_values`` and,
  with ``use_cache=True``, returns ``(hidden_states, presents)`` for generation.
- ``model.train()`` / ``model.eval()`` switches *dropout*, exactly as everywhere in PyTorch.
  ``is_training`` does not touch dropout: call ``model.eval()`` before generating, or the output
  is random.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import DIYConfig
from .kv_cache import PreallocatedKV
from .validation import KVCache, check_forward_inputs


class RMSNorm(nn.Module):
    """Root-mean-square norm: x / sqrt(mean(x^2) + eps) * weight, computed in float32."""

    def __init__(self, hidden_size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))  # (C,)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        mean_square = x.pow(2).mean(dim=-1, keepdim=True)  # (B, L, 1)
        x = x * torch.rsqrt(mean_square + self.eps)  # (B, L, C)
        return self.weight * x.to(dtype)  # (B, L, C)


class RotaryEmbedding(nn.Module):
    """Precomputed cos/sin tables for rotary position embeddings (rotate-half convention).

    The tables are non-persistent buffers: they are derived from the config, so they are not
    part of the state_dict (this is what lets the weights load into transformers' Llama).
    """

    def __init__(self, head_dim: int, max_seq_len: int, theta: float):
        super().__init__()
        exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim  # (D/2,)
        inv_freq = 1.0 / (theta ** exponents)  # (D/2,)
        positions = torch.arange(max_seq_len, dtype=torch.int64).float()  # (T,)
        angles = torch.outer(positions, inv_freq)  # (T, D/2)
        angles = torch.cat((angles, angles), dim=-1)  # (T, D): pairs are (i, i + D/2)
        self.register_buffer("cos", angles.cos(), persistent=False)  # (T, D)
        self.register_buffer("sin", angles.sin(), persistent=False)  # (T, D)

    def forward(self, start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin for positions start .. start+length-1, each (L, D)."""
        return self.cos[start:start + length], self.sin[start:start + length]

    def at(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin for per-row positions (B, L), each (B, 1, L, D) (broadcast over heads)."""
        return self.cos[positions][:, None], self.sin[positions][:, None]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dim."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate every (i, i + D/2) pair of x (B, H, L, D) by its position's angle."""
    return x * cos + rotate_half(x) * sin  # (B, H, L, D); cos/sin (L, D) or (B, 1, L, D)


class DIYAttention(nn.Module):
    """Causal multi-head self-attention with RoPE and an optional KV cache."""

    def __init__(self, config: DIYConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.dropout = config.dropout
        C = config.hidden_size
        self.q_proj = nn.Linear(C, C, bias=False)
        self.k_proj = nn.Linear(C, C, bias=False)
        self.v_proj = nn.Linear(C, C, bias=False)
        self.o_proj = nn.Linear(C, C, bias=False)

    def forward(self, x, cos, sin, attn_mask, past_kv):
        B, L, C = x.shape
        H, D = self.num_heads, self.head_dim
        q = self.q_proj(x).view(B, L, H, D).transpose(1, 2)  # (B, H, L, D)
        k = self.k_proj(x).view(B, L, H, D).transpose(1, 2)  # (B, H, L, D)
        v = self.v_proj(x).view(B, L, H, D).transpose(1, 2)  # (B, H, L, D)
        q = apply_rotary(q, cos, sin)  # (B, H, L, D)
        k = apply_rotary(k, cos, sin)  # (B, H, L, D)
        if past_kv is None:
            present = (k, v)  # the cache starts here
        elif isinstance(past_kv, PreallocatedKV):
            # generate's cache (diy/kv_cache.py): the same numbers, written in place; skip it on a
            # first read.
            k, v = past_kv.append(k, v)  # (B, H, P+L, D) each
            present = past_kv
        else:
            past_k, past_v = past_kv  # each (B, H, P, D), keys already rotated
            k = torch.cat((past_k, k), dim=2)  # (B, H, P+L, D)
            v = torch.cat((past_v, v), dim=2)  # (B, H, P+L, D)
            present = (k, v)
        y = F.scaled_dot_product_attention(
            q, k, v,
            attn_mask=attn_mask,  # None -> plain causal; else bool (B or 1, 1, L, P+L)
            is_causal=attn_mask is None and L > 1,
            dropout_p=self.dropout if self.training else 0.0,
        )  # (B, H, L, D)
        y = y.transpose(1, 2).reshape(B, L, C)  # (B, L, C)
        return self.o_proj(y), present  # (B, L, C), this layer's cache: (k, v) (B, H, P+L, D) each


class DIYMLP(nn.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: DIYConfig):
        super().__init__()
        C, F_ = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(C, F_, bias=False)
        self.up_proj = nn.Linear(C, F_, bias=False)
        self.down_proj = nn.Linear(F_, C, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # (B, L, C)


class DIYDecoderLayer(nn.Module):
    """One pre-norm transformer block."""

    def __init__(self, config: DIYConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = DIYAttention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = DIYMLP(config)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, cos, sin, attn_mask, past_kv):
        attn_out, present = self.self_attn(self.input_layernorm(x), cos, sin, attn_mask, past_kv)
        x = x + self.resid_dropout(attn_out)  # (B, L, C)
        x = x + self.resid_dropout(self.mlp(self.post_attention_layernorm(x)))  # (B, L, C)
        return x, present


def causal_mask(seq_lengths, past_len: int, length: int, device) -> torch.Tensor | None:
    """Boolean mask (True = may attend) for queries at past_len.. over keys 0..past_len+L-1.

    Returns None when a plain causal mask suffices (SDPA's fast is_causal path).
    """
    if seq_lengths is None and (past_len == 0 or length == 1):
        return None  # no padding; one new token may see every key anyway
    total = past_len + length
    query_pos = torch.arange(past_len, total, device=device)  # (L,)
    key_pos = torch.arange(total, device=device)  # (P+L,)
    mask = key_pos[None, :] <= query_pos[:, None]  # (L, P+L) causal
    mask = mask[None, None]  # (1, 1, L, P+L)
    if seq_lengths is not None:
        # Right padding: keys at or after a row's real length are padding.
        is_real_key = key_pos[None, :] < seq_lengths[:, None]  # (B, P+L)
        mask = mask & is_real_key[:, None, None, :]  # (B, 1, L, P+L)
    return mask


def left_padding_mask(key_mask: torch.Tensor, past_len: int, length: int) -> torch.Tensor:
    """Boolean mask (B, 1, L, P+L) for left-padded rows: causal, and no query sees a padding key.

    A padding query would then see no key at all (softmax over nothing = NaN), so each query
    may always see itself; padding positions' outputs are never read by a real token.
    """
    total = past_len + length
    query_pos = torch.arange(past_len, total, device=key_mask.device)  # (L,)
    key_pos = torch.arange(total, device=key_mask.device)  # (P+L,)
    causal = key_pos[None, :] <= query_pos[:, None]  # (L, P+L)
    itself = key_pos[None, :] == query_pos[:, None]  # (L, P+L)
    mask = causal[None] & key_mask[:, None, :]  # (B, L, P+L)
    return (mask | itself[None])[:, None]  # (B, 1, L, P+L)


class DIYModel(nn.Module):
    """Embedding -> decoder layers -> final RMSNorm; returns hidden_states (B, L, C).

    Build it as the course does, ``DIYModel(vocab_size, num_layers, hidden_size, num_heads,
    max_seq_len, dropout)``, or from a config: ``DIYModel(DIYConfig(...))``. Arguments left out
    take the course defaults.
    """

    def __init__(self, vocab_size: int | DIYConfig | None = None, num_layers: int | None = None,
                 hidden_size: int | None = None, num_heads: int | None = None,
                 max_seq_len: int | None = None, dropout: float | None = None, **extra):
        super().__init__()
        self.config = _as_config(vocab_size, num_layers, hidden_size, num_heads, max_seq_len,
                                 dropout, extra)
        config = self.config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DIYDecoderLayer(config) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary = RotaryEmbedding(config.head_dim, config.max_seq_len, config.rope_theta)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        # N(0, 0.02) everywhere, as GPT-2 and Llama; RMSNorm weights stay at 1.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)

    def forward(self, input_ids: torch.Tensor, seq_lengths=None, past_key_values: KVCache = None,
                use_cache: bool = False, is_training: bool = True, attention_mask=None):
        """``attention_mask`` (B, P+L), Hugging Face's convention (1 = token, 0 = left padding),
        lets rows of different lengths share a batch and a cache: each row's positions count
        from its first real token, and no token attends to padding."""
        seq_lengths, past_len, key_mask = check_forward_inputs(
            self.config, input_ids, seq_lengths, past_key_values, use_cache, is_training,
            attention_mask)
        B, L = input_ids.shape
        x = self.embed_tokens(input_ids)  # (B, L, C)
        if key_mask is None:
            cos, sin = self.rotary(past_len, L)  # (L, D) each; positions continue after the cache
            mask = causal_mask(seq_lengths, past_len, L, input_ids.device)
        else:
            positions = (key_mask.long().cumsum(dim=-1) - 1).clamp(min=0)  # (B, P+L) per row
            cos, sin = self.rotary.at(positions[:, past_len:])  # (B, 1, L, D) each
            mask = left_padding_mask(key_mask, past_len, L)  # (B, 1, L, P+L)
        presents = []
        for i, layer in enumerate(self.layers):
            past_kv = past_key_values[i] if past_key_values is not None else None
            x, present = layer(x, cos, sin, mask, past_kv)  # (B, L, C)
            presents.append(present)
        hidden_states = self.norm(x)  # (B, L, C)
        if use_cache:
            return hidden_states, presents  # per layer (k, v) (B, H, P+L, D) or PreallocatedKV
        return hidden_states

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _as_config(first, num_layers, hidden_size, num_heads, max_seq_len, dropout, extra) -> DIYConfig:
    if isinstance(first, DIYConfig):
        given = [num_layers, hidden_size, num_heads, max_seq_len, dropout]
        if any(v is not None for v in given) or extra:
            raise TypeError("DIYModel(config) takes no other arguments; put them in the config.")
        return first
    values = dict(vocab_size=first, num_layers=num_layers, hidden_size=hidden_size,
                  num_heads=num_heads, max_seq_len=max_seq_len, dropout=dropout)
    return DIYConfig(**{k: v for k, v in values.items() if v is not None}, **extra)

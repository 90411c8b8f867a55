"""A backbone that is not Llama-shaped but honours the course's contract: GPT-2 style
(LayerNorm, learned absolute positions, GELU MLP, its own module names). The flags below let
the tests break one part of the contract at a time."""

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, hidden_size, num_heads, dropout, always_dropout):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(hidden_size), nn.LayerNorm(hidden_size)
        self.c_attn = nn.Linear(hidden_size, 3 * hidden_size)
        self.c_proj = nn.Linear(hidden_size, hidden_size)
        self.mlp = nn.Sequential(nn.Linear(hidden_size, 4 * hidden_size), nn.GELU(),
                                 nn.Linear(4 * hidden_size, hidden_size))
        self.num_heads, self.p, self.always_dropout = num_heads, dropout, always_dropout

    def drop(self, x):
        return F.dropout(x, self.p, training=self.training or self.always_dropout)

    def forward(self, x, mask, past):
        B, L, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)  # (B, L, C) each
        q, k, v = (t.view(B, L, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, L, D)
        x = x + self.drop(self.c_proj(y.transpose(1, 2).reshape(B, L, C)))
        return x + self.drop(self.mlp(self.ln_2(x))), (k, v)


class GPT2Style(nn.Module):
    causal, offset_positions, return_presents, always_dropout = True, True, True, False
    length_offset = 0  # PaddingOffByOne: the mask counts one real token too few

    def __init__(self, vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, hidden_size)
        self.wpe = nn.Embedding(max_seq_len, hidden_size)
        self.h = nn.ModuleList(Block(hidden_size, num_heads, dropout, self.always_dropout)
                               for _ in range(num_layers))
        self.ln_f = nn.LayerNorm(hidden_size)

    def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                is_training=True):
        B, L = input_ids.shape
        past = past_key_values[0][0].shape[2] if past_key_values else 0
        q_pos = torch.arange(past, past + L)  # (L,)
        k_pos = torch.arange(past + L)  # (T,)
        x = self.wte(input_ids) + self.wpe(q_pos if self.offset_positions else q_pos - past)
        mask = (k_pos[None, :] <= q_pos[:, None]) if self.causal else torch.ones(L, past + L,
                                                                                  dtype=torch.bool)
        mask = mask[None, None]  # (1, 1, L, T)
        if seq_lengths is not None:
            real = k_pos[None, :] < seq_lengths[:, None] - self.length_offset  # (B, T)
            mask = mask & real[:, None, None, :]  # (B, 1, L, T): no query sees a padding key
        presents = []
        for i, block in enumerate(self.h):
            x, kv = block(x, mask, past_key_values[i] if past_key_values else None)
            presents.append(kv)
        x = self.ln_f(x)  # (B, L, C)
        return (x, presents) if use_cache and self.return_presents else x


class NoCausalMask(GPT2Style):
    causal = False


class IgnoresCacheOffset(GPT2Style):
    offset_positions = False


class NoPresents(GPT2Style):
    return_presents = False


class DropoutInEval(GPT2Style):
    always_dropout = True


class PaddingOffByOne(GPT2Style):
    length_offset = 1


# Contract breaches that the course must name (doctor ❌ and a clear error at run time), not
# meet with a traceback from lm_head or the generation loop.

class AlwaysTuple(GPT2Style):
    def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                is_training=True):
        return super().forward(input_ids, seq_lengths, past_key_values, True, is_training)


class Double(GPT2Style):
    def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                is_training=True):
        out = super().forward(input_ids, seq_lengths, past_key_values, use_cache, is_training)
        return (out[0].double(), out[1]) if use_cache else out.double()


class BTHDPresents(GPT2Style):
    """Keeps its cache as (B, T, H, D): works on its own, but 1.3 and step 3 read (B, H, T, D)."""

    def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                is_training=True):
        if past_key_values is not None:
            past_key_values = [(k.transpose(1, 2), v.transpose(1, 2)) for k, v in past_key_values]
        out = super().forward(input_ids, seq_lengths, past_key_values, use_cache, is_training)
        if not use_cache:
            return out
        return out[0], [(k.transpose(1, 2), v.transpose(1, 2)) for k, v in out[1]]


class KwargsMask(GPT2Style):
    """Takes any keyword, attention_mask included, and ignores it: not a mask it understands."""

    def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                is_training=True, **unused):
        return super().forward(input_ids, seq_lengths, past_key_values, use_cache, is_training)


class NoSeqLengths(GPT2Style):
    def forward(self, input_ids, past_key_values=None, use_cache=False, is_training=True):
        return super().forward(input_ids, None, past_key_values, use_cache, is_training)


# One learner's slip per class, each met with its own message (tests/test_backbone_learners.py).

class StackedCache(GPT2Style):
    """Keeps each layer's cache as one stacked tensor (2, B, H, T, D): reads it back fine itself
    (k, v = past unpacks along dim 0), but step 3 reads one (k, v) pair per layer."""

    def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                is_training=True):
        out = super().forward(input_ids, seq_lengths, past_key_values, use_cache, is_training)
        if not use_cache:
            return out
        return out[0], [torch.stack(kv) for kv in out[1]]


class SwappedOrder(GPT2Style):
    """The contract's names, in another order: built by position it would be 256 layers of
    width 2."""

    def __init__(self, vocab_size, hidden_size, num_layers, num_heads, max_seq_len, dropout):
        super().__init__(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)


class AssertsInInit(GPT2Style):
    def __init__(self, vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout):
        assert hidden_size // num_heads == 32
        super().__init__(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)


class CrashesWithCache(GPT2Style):
    """A slip in the cached path only: the past keys are doubled along the wrong dimension."""

    def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                is_training=True):
        if past_key_values is not None:
            past_key_values = [(torch.cat([k, k], dim=3), v) for k, v in past_key_values]
        return super().forward(input_ids, seq_lengths, past_key_values, use_cache, is_training)

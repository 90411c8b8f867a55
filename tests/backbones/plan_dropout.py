"""A learner's DIYModel.py written from the study plan as it reads: forward(input_ids,
seq_lengths=None, past_key_values=None, use_cache=False, is_training=True), trained with
model(input_ids, is_training=True) — so its dropout follows is_training,
F.dropout(x, p, training=is_training), and never looks at self.training. Learned absolute
positions, its own module names. The course calls every backbone with is_training equal to
model.training (False on the cached path), so this one runs the whole course as well."""

import torch
import torch.nn.functional as F
from torch import nn


class Layer(nn.Module):
    def __init__(self, hidden_size, num_heads, dropout):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(hidden_size), nn.LayerNorm(hidden_size)
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.ff = nn.Sequential(nn.Linear(hidden_size, 4 * hidden_size), nn.GELU(),
                                nn.Linear(4 * hidden_size, hidden_size))
        self.heads, self.p = num_heads, dropout

    def forward(self, x, mask, past, is_training):
        B, L, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(C, dim=2)
        q, k, v = (t.view(B, L, self.heads, -1).transpose(1, 2) for t in (q, k, v))  # (B, H, L, D)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.p if is_training else 0.0)
        y = self.out(y.transpose(1, 2).reshape(B, L, C))
        x = x + F.dropout(y, self.p, training=is_training)
        x = x + F.dropout(self.ff(self.norm2(x)), self.p, training=is_training)
        return x, (k, v)


class DIYModel(nn.Module):
    def __init__(self, vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, hidden_size)
        self.positions = nn.Embedding(max_seq_len, hidden_size)
        self.blocks = nn.ModuleList(Layer(hidden_size, num_heads, dropout)
                                    for _ in range(num_layers))
        self.final = nn.LayerNorm(hidden_size)
        self.p = dropout

    def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                is_training=True):
        B, L = input_ids.shape
        past = 0 if past_key_values is None else past_key_values[0][0].shape[2]
        q_pos, k_pos = torch.arange(past, past + L), torch.arange(past + L)
        x = self.tokens(input_ids) + self.positions(q_pos)
        x = F.dropout(x, self.p, training=is_training)
        mask = (k_pos[None, :] <= q_pos[:, None])[None, None]  # (1, 1, L, P+L)
        if seq_lengths is not None:
            mask = mask & (k_pos[None, :] < seq_lengths[:, None])[:, None, None, :]
        presents = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, mask, None if past_key_values is None else past_key_values[i],
                          is_training)
            presents.append(kv)
        x = self.final(x)
        return (x, presents) if use_cache else x

"""A learner's DIYModel.py built on torch's nn.MultiheadAttention. It cannot hand out k and v
(the module projects them inside), so it caches each layer's input x, (B, T, C), and projects
it again at every step: it works on its own, but the contract's cache is one (k, v) pair per
layer, each (B, num_heads, T, head_dim)."""

import torch
from torch import nn


class Layer(nn.Module):
    def __init__(self, hidden_size, num_heads, dropout):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(hidden_size), nn.LayerNorm(hidden_size)
        self.attn = nn.MultiheadAttention(hidden_size, num_heads, dropout=dropout,
                                          batch_first=True)
        self.ff = nn.Sequential(nn.Linear(hidden_size, 4 * hidden_size), nn.GELU(),
                                nn.Linear(4 * hidden_size, hidden_size))

    def forward(self, x, blocked, past):
        h = self.ln1(x)
        keys = h if past is None else torch.cat([past, h], dim=1)  # (B, P+L, C)
        y, _ = self.attn(h, keys, keys, attn_mask=blocked, need_weights=False)
        x = x + y
        return x + self.ff(self.ln2(x)), keys


class DIYModel(nn.Module):
    def __init__(self, vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, hidden_size)
        self.wpe = nn.Embedding(max_seq_len, hidden_size)
        self.layers = nn.ModuleList(Layer(hidden_size, num_heads, dropout)
                                    for _ in range(num_layers))
        self.ln_f = nn.LayerNorm(hidden_size)

    def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                is_training=True):
        B, L = input_ids.shape
        past = 0 if past_key_values is None else past_key_values[0].shape[1]
        q_pos, k_pos = torch.arange(past, past + L), torch.arange(past + L)
        x = self.wte(input_ids) + self.wpe(q_pos)
        blocked = k_pos[None, :] > q_pos[:, None]  # (L, P+L): True = may not attend
        if seq_lengths is not None:
            pad = k_pos[None, :] >= seq_lengths[:, None]  # (B, P+L)
            itself = k_pos[None, :] == q_pos[:, None]  # (L, P+L): a padding query sees itself
            blocked = (blocked[None] | pad[:, None, :]) & ~itself[None]  # (B, L, P+L)
            blocked = blocked.repeat_interleave(self.layers[0].attn.num_heads, dim=0)
        presents = []
        for i, layer in enumerate(self.layers):
            x, kept = layer(x, blocked, None if past_key_values is None else past_key_values[i])
            presents.append(kept)
        x = self.ln_f(x)
        return (x, presents) if use_cache else x

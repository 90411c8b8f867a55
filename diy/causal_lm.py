"""DIYForCausalLM: backbone + lm_head, the reference answer of lesson 1.3.

Write your own in notebook 1.3 first; later steps (training, generation) import this one.
Checkpoints use Hugging Face's method names: `save_pretrained(folder)` / `from_pretrained(folder)`
(config.json + model.safetensors, see diy/checkpoint.py).
"""

from __future__ import annotations

from torch import nn

from . import checkpoint
from .model import DIYModel


class DIYForCausalLM(nn.Module):
    """input_ids (B, L) -> DIYModel -> hidden_states (B, L, C) -> lm_head -> logits (B, L, V)."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.model = DIYModel(*args, **kwargs)  # same arguments as DIYModel, or a DIYConfig
        self.config = self.model.config
        self.lm_head = nn.Linear(self.config.hidden_size, self.config.vocab_size, bias=False)

    def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                is_training=True, attention_mask=None):
        out = self.model(input_ids, seq_lengths=seq_lengths, past_key_values=past_key_values,
                         use_cache=use_cache, is_training=is_training,
                         attention_mask=attention_mask)
        if use_cache:
            hidden_states, presents = out  # cached inference path
            return self.lm_head(hidden_states), presents  # (B, L, V), one cache per layer
        return self.lm_head(out)  # (B, L, V)

    def save_pretrained(self, folder):
        """Write config.json and model.safetensors into ``folder`` (each file atomically)."""
        return checkpoint.save(self, folder)

    @classmethod
    def from_pretrained(cls, folder, config=None):
        """The model saved in ``folder``, in eval mode; ``config`` (optional) must match it."""
        return checkpoint.load(cls, folder, config)

    def generate(self, input_ids, max_new_tokens=20, do_sample=False, temperature=1.0,
                 top_k=None, top_p=None, repetition_penalty=1.0, eos_token_id=None,
                 attention_mask=None, use_cache=True, generator=None, streamer=None,
                 pad_token_id=None):
        """Greedy or sampled continuation with a KV cache, as transformers' generate
        (see diy/generation.py). Returns (B, L + new) ids."""
        from .generation import generate

        return generate(self, input_ids, max_new_tokens=max_new_tokens, do_sample=do_sample,
                        temperature=temperature, top_k=top_k, top_p=top_p,
                        repetition_penalty=repetition_penalty, eos_token_id=eos_token_id,
                        attention_mask=attention_mask, use_cache=use_cache, generator=generator,
                        streamer=streamer, pad_token_id=pad_token_id)

"""DIYForCausalLM: backbone + lm_head, the reference answer of lesson 1.3.

Write your own in notebook 1.3 first; later steps (training, generation) import this one.
The backbone is the course's ``diy.DIYModel``, or the learner's own class when
``DIY_BACKBONE=path/to/DIYModel.py[:ClassName]`` is set (diy/backbone/__init__.py).
Checkpoints use Hugging Face's method names: `save_pretrained(folder)` / `from_pretrained(folder)`
(config.json + model.safetensors, see diy/checkpoint.py).
"""

from __future__ import annotations

import torch
from torch import nn

from . import checkpoint
from .backbone import (
    DIYBackboneError,
    accepts_attention_mask,
    active,
    build_backbone,
    doctor_command,
    is_reference,
)
from .backbone.contract import presents_problem
from .errors import DIYInputError, describe_value
from .model import _as_config
from .validation import check_forward_inputs


class DIYForCausalLM(nn.Module):
    """input_ids (B, L) -> backbone -> hidden_states (B, L, C) -> lm_head -> logits (B, L, V)."""

    def __init__(self, vocab_size=None, num_layers=None, hidden_size=None, num_heads=None,
                 max_seq_len=None, dropout=None, **extra):
        super().__init__()
        # the same arguments as DIYModel (the seed's six, positional or by name), or a DIYConfig
        self.config = _as_config(vocab_size, num_layers, hidden_size, num_heads, max_seq_len,
                                 dropout, extra)
        self.backbone_spec = active()  # None: the course's reference DIYModel
        self.model = build_backbone(self.config, self.backbone_spec)
        self.lm_head = nn.Linear(self.config.hidden_size, self.config.vocab_size, bias=False)

    @property
    def is_reference(self) -> bool:
        """True when the backbone is the course's diy.DIYModel (parity, export, fast cache)."""
        return is_reference(self)

    @property
    def backbone_name(self) -> str:
        """How messages name the backbone: "DIYModel.py:DIYModel" for a learner's file."""
        return self.backbone_spec.name if self.backbone_spec else type(self.model).__name__

    def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                is_training=True, attention_mask=None):
        """logits (B, L, V); with use_cache=True, (logits, presents).

        The backbone gets ``is_training`` = ``self.training``, except on the cached inference
        path (``use_cache`` or ``past_key_values``), where it is False: ``model.eval();
        model(ids)`` runs the backbone with is_training=False and ``model.train(); model(ids)``
        with True. So a backbone works whichever way it reads the flag: only to pick the path
        (the course's diy.DIYModel: its dropout follows train() / eval()), or for dropout too
        (the study plan's ``F.dropout(x, p, training=is_training)``). is_training=True with a
        cache is refused, as the reference backbone refuses it."""
        cached = use_cache or past_key_values is not None
        kwargs = {}
        if attention_mask is not None:  # a learner's backbone may not know this argument
            kwargs["attention_mask"] = attention_mask
        past_len = 0
        if not self.is_reference:  # the checks the reference backbone makes itself
            self.check_attention_mask_support(attention_mask)
            seq_lengths, past_len, _ = check_forward_inputs(self.config, input_ids, seq_lengths,
                                                            past_key_values, use_cache,
                                                            is_training, attention_mask)
        elif is_training and cached:  # refused with the reference's own message
            check_forward_inputs(self.config, input_ids, seq_lengths, past_key_values, use_cache,
                                 is_training, attention_mask)
        out = self.model(input_ids, seq_lengths=seq_lengths, past_key_values=past_key_values,
                         use_cache=use_cache, is_training=self.training and not cached, **kwargs)
        if not self.is_reference:
            self._check_backbone_output(out, input_ids, use_cache, past_len)
        if use_cache:
            hidden_states, presents = out  # cached inference path
            return self.lm_head(hidden_states), presents  # (B, L, V), one cache per layer
        return self.lm_head(out)  # (B, L, V)

    def _check_backbone_output(self, out, input_ids, use_cache, past_len=0) -> None:
        """A learner's backbone that breaks the contract gets its own clear error here, not a
        traceback from lm_head, the generation loop or the next call's cache check."""
        want = (*input_ids.shape, self.config.hidden_size)
        fix = ""
        if use_cache:
            problem = None if isinstance(out, (tuple, list)) and len(out) == 2 else \
                f"use_cache=True 时返回了 {describe_value(out)}，约定是 (hidden_states, presents)"
            hidden = out[0] if problem is None else None
        else:
            problem = None if isinstance(out, torch.Tensor) else \
                f"返回了 {describe_value(out)}，约定是一个 hidden_states 张量"
            hidden = out
        if problem is None and (not isinstance(hidden, torch.Tensor)
                                or tuple(hidden.shape) != want or hidden.dtype != torch.float32):
            problem = f"hidden_states 是 {describe_value(hidden)}，约定是 {want} 的 float32 张量"
        if problem is None and use_cache:  # the layout the next call and step 3 read
            found = presents_problem(out[1], self.config, input_ids.shape[0],
                                     past_len + input_ids.shape[1])
            if found is not None:
                problem, fix = found
        if problem is not None:
            name = self.backbone_name
            spec = self.backbone_spec
            doctor = doctor_command(spec) if spec else \
                "python -m diy.classroom.doctor --backbone 你的文件"
            item = "缓存路径" if use_cache else "训练路径"  # the item (diy/backbone/contract.py)
            raise DIYBackboneError(
                f"你的骨干 {name} 不符合约定的「{item}」：forward {problem}。",
                (f"{fix.rstrip('。')}。" if fix else "改 forward 的返回值。")
                + f"逐项检查整个约定：{doctor}",
                f"backbone {name}: {problem}")

    def check_attention_mask_support(self, attention_mask) -> None:
        """A clear error when a left-padding mask meets a backbone whose forward cannot take it."""
        if attention_mask is not None and not accepts_attention_mask(self.model):
            raise DIYInputError(
                f"你的骨干 {self.backbone_name} 的 forward 不接受 attention_mask，"
                "而左 padding 的批量（3.3）要靠它让每行的位置从自己的第一个 token 数起、"
                "不看 padding。",
                "一条一条地生成（每次一个提示词，不要 padding），或者给 forward 加上 "
                "attention_mask 参数（python -m diy.classroom.doctor --backbone 你的文件 "
                "会检查它）。",
                "this backbone's forward takes no attention_mask: generate one prompt at a time "
                "or add attention_mask to its forward.")

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

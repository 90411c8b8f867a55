"""The call recorder of the step-3 checks (3.1b's cached loop, 3.3c's generate): every call the
learner's code makes to the backbone (tokens fed, cache length, flags), so a mistake is named by
what the model was given."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from ...kv_cache import PreallocatedKV


def cached_length(past):
    """How many positions a past_key_values already holds (0 for None; None if unreadable)."""
    if past is None:
        return 0
    try:
        first = past[0]
        if isinstance(first, PreallocatedKV):
            return first.length
        return int(first[0].shape[2])
    except Exception:  # noqa: BLE001 - an odd cache: the model's own check will name it
        return None


@dataclass
class Call:
    new: int | None  # tokens fed this call (None: not a 2-D tensor)
    cached: int | None  # positions already in the cache
    use_cache: bool
    is_training: bool
    training: bool  # model.training (dropout on)
    attention_mask: torch.Tensor | None


class CallLog:
    """Every call of the backbone while the learner's code runs. It wraps the backbone's
    forward (not a hook on the outer model), so ``model(...)``, ``model.forward(...)`` and any
    other route are all seen; arguments it cannot read are left for the model to refuse."""

    def __init__(self, model):
        self.calls: list[Call] = []
        self.inner = model.model
        original = self.inner.forward
        signature = inspect.signature(original)

        def recording(*args, **kwargs):
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return original(*args, **kwargs)  # the model's own error speaks
            bound.apply_defaults()
            a = bound.arguments
            ids = a["input_ids"]
            new = ids.shape[1] if isinstance(ids, torch.Tensor) and ids.dim() == 2 else None
            self.calls.append(Call(new, cached_length(a["past_key_values"]), bool(a["use_cache"]),
                                   bool(a["is_training"]), self.inner.training,
                                   a.get("attention_mask")))  # a learner's may have none
            return original(*args, **kwargs)

        recording.__signature__ = signature  # who asks (accepts_attention_mask) sees the real one
        self.inner.forward = recording

    def remove(self):
        self.inner.__dict__.pop("forward", None)

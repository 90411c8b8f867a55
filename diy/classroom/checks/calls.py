"""The call recorders of the checks: a method wrapped on one module instance (2.2's forward and
train, 0.4d's decoder layers), and the step-3 checks' record of every call the learner's code
makes to the backbone (tokens fed, cache length, flags; 3.1b's cached loop, 3.3c's generate),
so a mistake is named by what the model was given."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ...kv_cache import PreallocatedKV
from .report import Failed


class WrappedMethod:
    """``module.<name>`` on one instance: ``before(module, *args, **kwargs)``, then the class's
    method. Installed on the instance, it sees ``model(x)`` and ``model.forward(x)`` alike (a
    forward hook misses the second). A ``copy.deepcopy`` of the module gets a wrapper of its own,
    bound to the copy: a learner who works on a copy (``copy.deepcopy(model).eval()``) is
    recorded as calling the copy, and the copy never calls into (or switches the mode of) the
    original."""

    def __init__(self, module, name: str, before: Callable):
        self.module, self.name, self.before = module, name, before
        self.method = getattr(type(module), name).__get__(module)
        self.__signature__ = inspect.signature(self.method)  # who asks sees the real one

    def __call__(self, *args, **kwargs):
        self.before(self.module, *args, **kwargs)
        return self.method(*args, **kwargs)

    def __deepcopy__(self, memo):
        return WrappedMethod(memo.get(id(self.module), self.module), self.name, self.before)


def wrap_method(module, name: str, before: Callable) -> Callable[[], None]:
    """Install a WrappedMethod on ``module``; returns the function that removes it."""
    module.__dict__[name] = WrappedMethod(module, name, before)
    return lambda: module.__dict__.pop(name, None)


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
    other route are all seen, on the model or on a deep copy of it; arguments it cannot read are
    left for the model to refuse."""

    def __init__(self, model):
        self.calls: list[Call] = []
        signature = inspect.signature(model.model.forward)

        def record(inner, *args, **kwargs):
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return  # the model's own error speaks
            bound.apply_defaults()
            a = bound.arguments
            ids = a["input_ids"]
            new = ids.shape[1] if isinstance(ids, torch.Tensor) and ids.dim() == 2 else None
            self.calls.append(Call(new, cached_length(a["past_key_values"]), bool(a["use_cache"]),
                                   bool(a["is_training"]), inner.training,
                                   a.get("attention_mask")))  # a learner's may have none

        self.remove = wrap_method(model.model, "forward", record)


def check_calls(calls: list[Call], name: str = "greedy_with_cache") -> None:
    """What the model was given, call by call: a prefill, then one new token per call with the
    cache of everything fed so far. The prefill may hold the whole prompt or all but its last
    token (which then goes in as the first one-token call): the cache just has to grow by what
    each call fed."""
    if not calls:
        raise Failed(f"{name} 没有调用模型。", "先 prefill：model(input_ids, use_cache=True, "
                     "is_training=False)。")
    if any(call.training for call in calls):
        raise Failed("生成时模型在 train 模式：dropout 开着，结果是随机的。",
                     "函数开头调用 model.eval()。")
    later = calls[1:]
    if not all(call.use_cache and not call.is_training for call in calls):
        if later and all(not call.use_cache for call in calls):
            raise Failed("每一步都把整段重新送进模型、没有用缓存（没有 use_cache=True）：结果对，"
                         "但每一步都把前面所有 token 重算一遍。这一节要的是 prefill 一次，之后每一步只送新 token。",
                         "logits, past = model(ids, use_cache=True, is_training=False)（prefill）；之后每一步 "
                         "model(next_id, past_key_values=past, use_cache=True, is_training=False)。")
        raise Failed("有的调用没有用缓存（use_cache=True, is_training=False）：拿不到 presents。",
                     "每次都调用 model(ids, past_key_values=past, use_cache=True, is_training=False)。")
    if later and all(call.cached == 0 for call in later):
        if all(call.new == 1 for call in later):
            raise Failed("prefill 之后只送了新 token，却没有把 past_key_values 传进去："
                         "模型只看到一个 token，前面的内容全忘了。",
                         "把上一步返回的 presents 作为 past_key_values 传回去。")
        raise Failed("每一步都重新送整段、没有用缓存：这就是 3.1a 的无缓存循环。",
                     "prefill 一次，之后每一步只送新 token，并传入 past_key_values。")
    if any(call.new is not None and call.new > 1 for call in later if call.cached):
        raise Failed("带着 past_key_values 又把整段送了一遍：缓存里的 key/value 和位置都重复了。",
                     "有了缓存之后，每一步只送新 token：形状 (B, 1)。")
    lengths = [call.cached for call in calls]
    grows = all(None in (before.cached, before.new, after.cached)
                or after.cached == before.cached + before.new
                for before, after in zip(calls[:-1], later, strict=True))
    if lengths[0] != 0 or not grows:
        raise Failed(f"缓存没有随步数增长（各次调用时缓存的长度 {lengths}）：一直传的是 prefill 时的那份。",
                     "每一步都用这一步返回的 presents 替换 past：logits, past = model(...)。")

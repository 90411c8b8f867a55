"""The parts of an exercise's contract every step-3 check verifies besides the returned values:
grad mode left on, the caller's tensors untouched, token ids as long tensors, and a check that
never raises whatever the learner's code returns."""

from __future__ import annotations

import functools
from contextlib import contextmanager

import torch

from .report import Failed, Todo, call_learner, first_line


def is_long_tensor(value) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype == torch.long


@contextmanager
def check_grad_mode(name: str):
    """Fail when the learner's code switched autograd off for good (torch.set_grad_enabled(False)
    without switching it back): every later training cell would silently learn nothing.
    Grad mode is restored either way."""
    enabled = torch.is_grad_enabled()
    try:
        yield
    finally:
        left_off = enabled and not torch.is_grad_enabled()
        torch.set_grad_enabled(enabled)
    if left_off:
        raise Failed(f"{name} 返回之后梯度计算被关掉了（torch.set_grad_enabled(False) 没有恢复）："
                     "后面的训练会静悄悄地什么都学不到。",
                     "用 with torch.no_grad():（注意括号）或 @torch.no_grad() 装饰器，"
                     "离开时会自动恢复。")


def check_unchanged(given: torch.Tensor, original: torch.Tensor, name: str, argument: str):
    """Fail when the learner's code changed the caller's tensor in place."""
    if not torch.equal(given, original):
        raise Failed(f"{name} 改动了传进来的 {argument}（原地操作，例如 masked_fill_、/=）："
                     "调用方手里的张量也跟着变了。",
                     "用不带下划线的版本（masked_fill）或 x = x / t，返回新的张量。")


def guarded(body):
    """A check body that turns any unexpected exception (raised while inspecting an odd return
    value) into a ❌ with a hint, so a check never raises."""

    @functools.wraps(body)
    def wrapper():
        try:
            return body()
        except (Todo, Failed):
            raise
        except Exception as exc:  # noqa: BLE001 - a check must never raise
            raise Failed(f"检查你的结果时遇到了意外的值（{first_line(exc)}）。",
                         "对照练习说明检查返回值：类型（张量还是元组）、形状和 dtype。") from None

    return wrapper


def check_leaves_eval_mode(model, learner, args: tuple, name: str, **kwargs) -> None:
    """Hand the model over in eval mode (as the lessons do) and fail if the learner's function
    leaves it in train mode: every later cell would then run with dropout on. Restoring the
    mode the model came in is fine; switching to train() at the end is not."""
    model.eval()
    call_learner(learner, *args, name=name, **kwargs)
    if model.training:
        model.eval()
        raise Failed(f"{name} 返回之后，交给它时还在 eval 模式的模型变成了 train 模式："
                     "后面的单元格会在 dropout 开着的情况下运行，结果每次都不一样。",
                     "函数开头 model.eval()；结束时不要 model.train()（要恢复就恢复调用前的模式："
                     "was_training = model.training …… model.train(was_training)）。")

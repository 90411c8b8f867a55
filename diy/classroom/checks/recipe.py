"""Self-checks of 4.2a (the learning-rate schedule: linear warmup, then a cosine to min_lr) and
4.2b (gradient accumulation: k micro-batches give the gradient of one batch k times larger)."""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from ...causal_lm import DIYForCausalLM
from ...config import DIYConfig
from ...errors import describe_value
from .contract import check_grad_mode
from .report import Failed, call_learner, run_check


def reference_lr_at(step, warmup_steps, total_steps, max_lr, min_lr):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


CASES = ((100, 1000, 3e-3, 3e-4), (10, 60, 1.0, 0.0), (0, 50, 2e-3, 1e-4))


def lr_mistakes(warmup, total, max_lr, min_lr) -> dict:
    """Schedules a learner may write instead, each as a function of the step."""
    def cosine(step, end, floor):
        progress = min(1.0, (step - warmup) / max(1, end - warmup))
        return floor + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - floor)

    return {
        "warmup_from_zero": lambda s: max_lr * s / warmup if s < warmup else cosine(s, total - 1, min_lr),
        "cosine_to_zero": lambda s: reference_lr_at(s, warmup, total, max_lr, 0.0)
        if s >= warmup else max_lr * (s + 1) / warmup,
        "ends_at_total": lambda s: max_lr * (s + 1) / warmup if s < warmup else cosine(s, total, min_lr),
        "no_half": lambda s: max_lr * (s + 1) / warmup if s < warmup else
        min_lr + math.cos(math.pi * min(1.0, (s - warmup) / max(1, total - 1 - warmup))) * (max_lr - min_lr),
        "linear_decay": lambda s: max_lr * (s + 1) / warmup if s < warmup else
        max_lr - (max_lr - min_lr) * min(1.0, (s - warmup) / max(1, total - 1 - warmup)),
    }


LR_HINTS = {
    "warmup_from_zero": ("第 0 步的学习率是 0：这一步算了梯度却什么都没更新。",
                         "warmup 用 max_lr * (step + 1) / warmup_steps：第 0 步是 max_lr / warmup_steps，"
                         "第 warmup_steps - 1 步正好到 max_lr。"),
    "cosine_to_zero": ("余弦降到了 0，不是 min_lr。", "lr = min_lr + 0.5 * (1 + cos(π·进度)) * (max_lr - min_lr)。"),
    "ends_at_total": ("最后一步（step = total_steps - 1）还没降到 min_lr：进度算到了 total_steps。",
                      "进度 = (step - warmup_steps) / (total_steps - 1 - warmup_steps)，最后一步正好是 1。"),
    "no_half": ("余弦少了 0.5 · (1 + cos)：cos 从 1 到 -1，学习率会降到 min_lr 以下。",
                "系数是 0.5 * (1 + math.cos(math.pi * 进度))：从 1 平滑地降到 0。"),
    "linear_decay": ("warmup 之后是直线下降，不是余弦。", "用 0.5 * (1 + math.cos(math.pi * 进度)) 作系数。"),
}


def check_lr_schedule(lr_at):
    """Check exercise 4.2a: lr_at(step, warmup_steps, total_steps, max_lr, min_lr) -> float."""

    def body() -> str:
        for warmup, total, max_lr, min_lr in CASES:
            steps = sorted({0, 1, max(0, warmup - 1), warmup, warmup + 1, (warmup + total) // 2,
                            total - 2, total - 1, total + 5})
            got = {}
            for step in steps:
                value = call_learner(lr_at, step, warmup, total, max_lr, min_lr, name="lr_at")
                if isinstance(value, torch.Tensor) and value.numel() == 1:
                    value = value.item()
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise Failed(f"lr_at 应返回一个数，实际是 {describe_value(value)}。",
                                 "return 学习率（Python float）。")
                got[step] = float(value)
            want = {s: reference_lr_at(s, warmup, total, max_lr, min_lr) for s in steps}
            if all(math.isclose(got[s], want[s], rel_tol=1e-6, abs_tol=1e-12) for s in steps):
                continue
            if warmup:
                for name, mistake in lr_mistakes(warmup, total, max_lr, min_lr).items():
                    if all(math.isclose(got[s], mistake(s), rel_tol=1e-6, abs_tol=1e-12)
                           for s in steps if s < total):
                        raise Failed(*LR_HINTS[name])
            wrong = next(s for s in steps if not math.isclose(got[s], want[s], rel_tol=1e-6,
                                                              abs_tol=1e-12))
            where = ("warmup 阶段" if wrong < warmup else "最后一步之后（应保持 min_lr）"
                     if wrong >= total else "余弦阶段")
            raise Failed(f"warmup_steps={warmup}, total_steps={total} 时，第 {wrong} 步（{where}）"
                         f"得到 {got[wrong]:.6g}，应为 {want[wrong]:.6g}。",
                         "第 0 步 max_lr/warmup_steps，第 warmup_steps-1 步 max_lr，"
                         "第 total_steps-1 步 min_lr，中间是余弦；warmup_steps=0 时直接从余弦开始。")
        return ("三组设置下（含 warmup_steps=0）起点、峰值、余弦的中点、最后一步和之后都对。")

    return run_check("4.2a", body, lr_at, reference_lr_at)


# ------------------------------------------------------------------------ 4.2b accumulation

CONFIG = DIYConfig(vocab_size=50, hidden_size=32, num_layers=1, num_heads=2, max_seq_len=16,
                   dropout=0.0)


def reference_accumulate(model, micro_batches):
    model.zero_grad(set_to_none=True)
    total = 0.0
    for x, y in micro_batches:
        logits = model(x)  # (b, L, V)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        (loss / len(micro_batches)).backward()
        total += loss.item()
    return total / len(micro_batches)


def gradients(model) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                      for p in model.parameters()])


def check_accumulation(accumulate_gradients):
    """Check exercise 4.2b: accumulate_gradients(model, micro_batches) -> mean loss, the
    gradients left in .grad those of one batch made of all the micro-batches."""

    def body() -> str:
        torch.manual_seed(0)
        model = DIYForCausalLM(CONFIG).train()
        data = torch.randint(0, 50, (12, 17))
        x, y = data[:, :-1], data[:, 1:]
        big = reference_accumulate(model, [(x, y)])
        want = gradients(model).clone()
        calls = {"forward": 0, "backward": 0}
        model.register_forward_hook(lambda *_: calls.__setitem__("forward", calls["forward"] + 1))
        for k in (3, 4):
            micro = list(zip(x.chunk(k), y.chunk(k), strict=True))
            for p in model.parameters():  # stale gradients of an earlier step
                p.grad = torch.full_like(p, 0.5)
            before = [p.detach().clone() for p in model.parameters()]
            calls.update(forward=0, backward=0)
            with check_grad_mode("accumulate_gradients"), counting_backward(calls):
                loss = call_learner(accumulate_gradients, model, micro, name="accumulate_gradients")
            if isinstance(loss, torch.Tensor) and loss.numel() == 1:
                loss = loss.item()
            if not isinstance(loss, (int, float)):
                raise Failed(f"accumulate_gradients 应返回平均 loss（一个数），实际是 {describe_value(loss)}。",
                             "把每个 micro-batch 的 loss.item() 加起来，最后除以 micro-batch 的个数。")
            if any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True)):
                raise Failed("参数变了：accumulate_gradients 只累加梯度，不该 optimizer.step()。",
                             "去掉 step()；更新参数是训练循环在累加之后做的事。")
            got = gradients(model)
            if torch.allclose(got, want, atol=1e-6, rtol=1e-4):
                if calls["forward"] == 1:
                    raise Failed(f"{k} 个 micro-batch 被拼成一个 batch 前向了一次：这样算出的梯度没错，"
                                 "可内存一点没省——梯度累积要的正是每次只放一个 micro-batch 的激活值。",
                                 "for x, y in micro_batches: 每个 micro-batch 各自前向、各自 backward。")
                if calls["backward"] == 1 and calls["forward"] == k:
                    raise Failed(f"{k} 次前向之后只 backward 了一次（先把 loss 加起来）：{k} 个计算图"
                                 "同时留在内存里，和一次喂大 batch 一样占内存。",
                                 "每个 micro-batch 前向之后马上 (loss / k).backward()，它的计算图就释放了。")
                if math.isclose(loss, big, rel_tol=1e-5):
                    continue
                if math.isclose(loss, big / k, rel_tol=1e-5):
                    raise Failed("返回的 loss 是除以 k 之后的：打印出来会比真实的 loss 小 k 倍。",
                                 "backward 用 loss / k，但记录的是 loss 本身：total += loss.item()，最后 / k。")
                if math.isclose(loss, big * k, rel_tol=1e-5):
                    raise Failed("返回的是 k 个 loss 的和，不是平均。", "最后除以 micro-batch 的个数。")
                raise Failed(f"梯度对了，返回的 loss {loss:.4f} 却不是整批的 {big:.4f}。",
                             "返回每个 micro-batch 的 loss 的平均。")
            if torch.allclose(got, want * k, atol=1e-5, rtol=1e-4):
                raise Failed(f"梯度是整批的 {k} 倍：每个 micro-batch 的 loss 没有除以 k 就 backward 了。",
                             "(loss / len(micro_batches)).backward()：k 份梯度加起来才是平均的梯度。")
            if torch.allclose(got, want + gradients_of_stale(model), atol=1e-5, rtol=1e-4):
                raise Failed("没有先清零梯度：上一步留下的 .grad 也被加了进来。",
                             "开始前 model.zero_grad()（只在开头一次，不要在循环里）。")
            last = micro[-1]
            reference_accumulate(model, [last])
            only_last = gradients(model) / k
            if torch.allclose(got, only_last, atol=1e-6, rtol=1e-4):
                raise Failed("只剩最后一个 micro-batch 的梯度：zero_grad 放进了循环里，每次都把前面累加的清掉了。",
                             "zero_grad 放在循环前面，只调用一次。")
            raise Failed(f"k={k} 时累加出的梯度和一次喂整批的梯度不同（最大差 {float((got - want).abs().max()):.2e}）。",
                         "开头清零一次；每个 micro-batch：前向 → loss / k → backward；不要 step。")
        return ("k = 3、4 个 micro-batch 累加的梯度与一次喂整批的梯度相同（float32 舍入以内），"
                "返回的平均 loss 也相同，参数没动。")

    return run_check("4.2b", body, accumulate_gradients, reference_accumulate)


@contextmanager
def counting_backward(calls: dict):
    """Count the learner's backward passes while the block runs: ``loss.backward()`` goes
    through ``torch.autograd.backward``, which is wrapped here and restored afterwards."""
    original = torch.autograd.backward

    def backward(*args, **kwargs):
        calls["backward"] += 1
        return original(*args, **kwargs)

    torch.autograd.backward = backward
    try:
        yield
    finally:
        torch.autograd.backward = original


def gradients_of_stale(model) -> torch.Tensor:
    return torch.cat([torch.full_like(p, 0.5).flatten() for p in model.parameters()])

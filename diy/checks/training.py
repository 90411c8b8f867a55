"""Self-checks of lesson 2.2: train_step (2.2a) and evaluate (2.2b).

Both run the learner's function and the reference on identical copies of a small model and
compare the numbers; a forward hook records the mode (train / eval) and whether gradients were
on at every forward call, so a mistake is named by what the model saw, not guessed.
"""

from __future__ import annotations

import copy
import math

import torch

from ..causal_lm import DIYForCausalLM
from ..config import DIYConfig
from ..loss import causal_lm_loss
from ..training import evaluate as reference_evaluate
from ..training import train_step as reference_train_step
from .report import Failed, call_learner, mistake_matcher, run_check

SMALL = DIYConfig(vocab_size=97, hidden_size=32, num_layers=1, num_heads=2, max_seq_len=32,
                  dropout=0.0)


def small_model(dropout: float = 0.0, seed: int = 0) -> DIYForCausalLM:
    torch.manual_seed(seed)
    return DIYForCausalLM(DIYConfig(**{**SMALL.to_dict(), "dropout": dropout}))


def batches(n: int, batch_size: int = 3, seq_len: int = 12, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, SMALL.vocab_size, (batch_size, seq_len), generator=generator)
            for _ in range(n)]


class ForwardLog:
    """Records (model.training, grad enabled) at every forward call of ``model``."""

    def __init__(self, model):
        self.calls: list[tuple[bool, bool]] = []
        self.handle = model.register_forward_pre_hook(
            lambda module, args: self.calls.append((module.training, torch.is_grad_enabled())))


# ---------------------------------------------------------------------------------------------
# 2.2a  train_step(model, optimizer, input_ids, max_grad_norm) -> float
# ---------------------------------------------------------------------------------------------

def variant_step(model, optimizer, input_ids, max_grad_norm, *, zero_grad=True, step=True,
                 clip=True, shift=1, clip_to=None):
    """The reference step with one thing changed: the known mistakes."""
    model.train()
    logits = model(input_ids)  # (B, L, V)
    if shift == 1:
        loss = causal_lm_loss(logits, input_ids)
    elif shift == 0:  # no shift: every position predicts itself
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 input_ids.reshape(-1))
    else:  # shifted twice: a shifted pair handed to a loss that shifts again
        loss = causal_lm_loss(logits[:, :-1], input_ids[:, 1:])
    if zero_grad:
        optimizer.zero_grad()
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_to or max_grad_norm)
    if step:
        optimizer.step()
    return loss.item()


STEP_MISTAKES = {
    "no_zero_grad": dict(zero_grad=False),
    "no_step": dict(step=False),
    "no_clip": dict(clip=False),
    "clip_hard_coded": dict(clip_to=1.0),
    "no_shift": dict(shift=0),
    "shifted_twice": dict(shift=2),
}
STEP_HINTS = {
    "no_zero_grad": ("没有清零梯度：每一步的梯度都累加到了之前所有梯度的总和上"
                     "（AdamW 会按梯度大小归一化，所以 loss 曲线看起来几乎正常，参数却和正确的不一样）。",
                     "在 backward 之前调用 optimizer.zero_grad()（PyTorch 的梯度默认是累加的）。"),
    "no_step": ("参数一点没变：没有调用 optimizer.step()，loss 曲线会是平的。",
                "在 loss.backward()（和梯度裁剪）之后调用 optimizer.step()。"),
    "no_clip": ("没有裁剪梯度：参数更新和「先裁剪再 step」的参考不一样。",
                "在 backward 之后、step 之前：torch.nn.utils.clip_grad_norm_(model.parameters(), "
                "max_grad_norm)，用传进来的 max_grad_norm。"),
    "clip_hard_coded": ("梯度裁剪的上限写死了，没有用传进来的 max_grad_norm。",
                        "clip_grad_norm_(model.parameters(), max_grad_norm)。"),
    "no_shift": ("loss 没有错位：每个位置在预测它自己，而不是下一个 token。",
                 "用 causal_lm_loss(logits, input_ids)（它在内部错开一位），不要直接对齐交叉熵。"),
    "shifted_twice": ("错位了两次：先手动错开一位，又交给会再错位一次的 causal_lm_loss，"
                      "模型学的是「下下个 token」。",
                      "只错一次：causal_lm_loss(logits, input_ids)（labels 不要提前错位），"
                      "或者手动错位后用 F.cross_entropy。"),
}


def diagnose_train_step(exc: Exception):
    text = str(exc)
    if "modified by an inplace operation" in text:
        return ("optimizer.step() 在 loss.backward() 之前调用了。",
                "顺序是 前向 → loss → zero_grad() → backward() → 裁剪 → step()。")
    if "does not require grad" in text:
        return ("loss 没有连着计算图：前向是在 torch.no_grad() 里做的，或者 loss 被 detach 了。",
                "训练的前向不要放进 torch.no_grad()；对 loss 张量调用 backward，返回时才 .item()。")
    return None


def run_steps(train_step, model, input_ids_list, max_grad_norm, lr=3e-2):
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    return [train_step(model, optimizer, ids, max_grad_norm) for ids in input_ids_list]


def check_training_step(train_step):
    """Check exercise 2.2a; return the train_step to use from here on."""

    def body() -> str:
        data = batches(3)
        for max_grad_norm in (0.05, 1e9):  # clipping active, then effectively off
            model = small_model().eval()  # handed over in eval mode: train_step must switch
            log = ForwardLog(model)
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-2)
            losses = []
            for ids in data:
                loss = call_learner(train_step, model, optimizer, ids, max_grad_norm,
                                    name="train_step", diagnose=diagnose_train_step)
                if isinstance(loss, torch.Tensor):
                    raise Failed("train_step 返回的是张量：把它存进历史记录，会让每一步的整张计算图"
                                 "都留在内存里。", "return loss.item()：返回一个 Python 浮点数。")
                if loss is None or not isinstance(loss, (float, int)):
                    raise Failed(f"train_step 应返回这一步的 loss（浮点数），实际返回 {loss!r}。",
                                 "最后 return loss.item()。")
                losses.append(float(loss))
            log.handle.remove()
            if not log.calls:
                raise Failed("train_step 没有调用模型做前向。", "logits = model(input_ids)。")
            if not all(training for training, _ in log.calls):
                raise Failed("前向时模型处在 eval 模式：dropout 关着，训练和评估没有区别。",
                             "train_step 的第一行写 model.train()（评估之后模型可能还在 eval 模式）。")
            reference = small_model()
            expected = run_steps(reference_train_step, reference, data, max_grad_norm)
            same_losses = all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5)
                              for a, b in zip(losses, expected, strict=True))
            same_params = all(torch.allclose(a, b, atol=1e-5) for a, b in
                              zip(model.parameters(), reference.parameters(), strict=True))
            if same_losses and same_params:
                continue
            for mistake, flags in STEP_MISTAKES.items():
                if mistake in ("no_clip", "clip_hard_coded") and max_grad_norm > 1e6:
                    continue  # without active clipping the two are the same
                twin = small_model()
                optimizer = torch.optim.AdamW(twin.parameters(), lr=3e-2)
                wrong = [variant_step(twin, optimizer, ids, max_grad_norm, **flags) for ids in data]
                if all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5)
                       for a, b in zip(losses, wrong, strict=True)) and \
                        all(torch.allclose(a, b, atol=1e-5) for a, b in
                            zip(model.parameters(), twin.parameters(), strict=True)):
                    raise Failed(*STEP_HINTS[mistake])
            raise Failed(f"三步之后的 loss {[round(x, 4) for x in losses]} 或参数与参考实现"
                         f"（{[round(x, 4) for x in expected]}）不一致。",
                         "一步里只做一次：model.train() → 前向 → causal_lm_loss(logits, input_ids) → "
                         "zero_grad → backward → clip_grad_norm_ → step，返回 loss.item()。")
        return ("三步训练的 loss 和参数都与参考实现一致（先清零梯度、裁剪到 max_grad_norm、再 step），"
                "返回的是浮点数。")

    return run_check("2.2a", body, train_step, reference_train_step)


# ---------------------------------------------------------------------------------------------
# 2.2b  evaluate(model, input_ids, labels) -> float
# ---------------------------------------------------------------------------------------------

def check_evaluate(evaluate):
    """Check exercise 2.2b; return the evaluate to use from here on."""

    def body() -> str:
        [input_ids] = batches(1, batch_size=2, seq_len=10, seed=3)
        labels = input_ids.clone()
        labels[1, 6:] = -100  # some positions ignored
        model = small_model(dropout=0.3).train()
        before = copy.deepcopy(model.state_dict())
        log = ForwardLog(model)
        torch.manual_seed(5)
        value = call_learner(evaluate, model, input_ids, labels, name="evaluate")
        log.handle.remove()
        if isinstance(value, torch.Tensor):
            raise Failed("evaluate 返回的是张量。", "return loss.item()：历史记录里只存浮点数。")
        if value is None or not isinstance(value, (float, int)):
            raise Failed(f"evaluate 应返回 loss（浮点数），实际返回 {value!r}。", "最后 return loss.item()。")
        if not log.calls:
            raise Failed("evaluate 没有调用模型做前向。", "loss = causal_lm_loss(model(input_ids), labels)。")
        if any(training for training, _ in log.calls):
            raise Failed("评估时模型还在 train 模式：dropout 开着，评估 loss 每次都不一样、还偏高。",
                         "前向之前 model.eval()。")
        if any(grad for _, grad in log.calls):
            raise Failed("评估的前向没有放进 torch.no_grad()：白白记录了整张计算图，又慢又占内存。",
                         "with torch.no_grad(): 里做前向和 loss。")
        if not model.training:
            raise Failed("evaluate 之后模型停在了 eval 模式：接下来的训练步会关着 dropout 训练。",
                         "算完之后切回去：model.train()（或者记下原来的模式再恢复）。")
        if any(p.grad is not None for p in model.parameters()) or not all(
                torch.equal(before[k], v) for k, v in model.state_dict().items()):
            raise Failed("evaluate 改动了模型（参数或梯度）。", "评估只做前向和 loss，不要 backward / step。")
        expected = reference_evaluate(model, input_ids, labels)
        if math.isclose(float(value), expected, rel_tol=1e-5, abs_tol=1e-6):
            return (f"eval 模式、torch.no_grad() 下算出 loss = {float(value):.4f}（检查用的小模型，"
                    "词表 97），之后模型回到了 train 模式。")
        model.eval()
        with torch.no_grad():
            logits = model(input_ids)  # (B, L, V)
            wrong = {
                "ignores_labels": causal_lm_loss(logits, input_ids),
                "no_shift": torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100),
            }
        model.train()
        mistake = mistake_matcher(torch.tensor(float(value)), wrong)
        if mistake == "ignores_labels":
            raise Failed("loss 用的是 input_ids 而不是传进来的 labels：被忽略的位置（-100）也算进去了。",
                         "causal_lm_loss(logits, labels)。")
        if mistake == "no_shift":
            raise Failed("loss 没有错位：每个位置在预测它自己。",
                         "用 causal_lm_loss(logits, labels)，它在内部错开一位。")
        raise Failed(f"evaluate 返回 {float(value):.4f}，正确值是 {expected:.4f}。",
                     "model.eval() → with torch.no_grad(): loss = causal_lm_loss(model(input_ids), "
                     "labels) → model.train() → return loss.item()。")

    return run_check("2.2b", body, evaluate, reference_evaluate)

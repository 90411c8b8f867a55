"""Self-checks of lesson 2.2: train_step (2.2a), evaluate (2.2b) and the training loop (2.2c).

Each runs the learner's function and the reference on identical copies of a small model and
compares the numbers; a wrapper around the model's forward records the mode (train / eval),
whether dropout and gradients were on at every forward call (``model(x)`` and ``model.forward(x)``
alike), so a mistake is named by what the model saw, not guessed.
"""

from __future__ import annotations

import copy
import math
import numbers
import types
from contextlib import contextmanager

import torch

from ...causal_lm import DIYForCausalLM
from ...config import DIYConfig
from ...data import eval_batch, get_batch
from ...loss import causal_lm_loss
from ...training import History, TrainConfig, train
from ...training import evaluate as reference_evaluate
from ...training import train_step as reference_train_step
from .calls import wrap_method
from .report import Failed, call_learner, mistake_matcher, run_check, uncalled_hint

SMALL = DIYConfig(vocab_size=97, hidden_size=32, num_layers=1, num_heads=2, max_seq_len=32,
                  dropout=0.0)


def small_model(dropout: float = 0.0, seed: int = 0) -> DIYForCausalLM:
    torch.manual_seed(seed)
    return DIYForCausalLM(DIYConfig(**{**SMALL.to_dict(), "dropout": dropout}))


def batches(n: int, batch_size: int = 3, seq_len: int = 12, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, SMALL.vocab_size, (batch_size, seq_len), generator=generator)
            for _ in range(n)]


def dropout_active(model) -> bool:
    """Whether a forward of ``model`` now would drop activations (a dropout in train mode)."""
    return any(module.training and (
        (isinstance(module, torch.nn.Dropout) and module.p > 0)
        or (isinstance(getattr(module, "dropout", None), float) and module.dropout > 0))
        for module in model.modules())


class ForwardLog:
    """What ``model`` saw, in order: ("forward", model.training, dropout on, grad enabled,
    input_ids) at every forward and ("mode", training) at every train() / eval(). It wraps the
    instance's ``forward`` and ``train`` (calls.wrap_method), so ``model.forward(x)`` counts as a
    call too (hooks miss it), and a deep copy the learner evaluates on is recorded as itself."""

    def __init__(self, model):
        self.model = model
        self.events: list[tuple] = []

        def on_forward(module, *args, **kwargs):
            ids = args[0] if args else kwargs.get("input_ids")
            self.events.append(("forward", module.training, dropout_active(module),
                                torch.is_grad_enabled(), ids))

        def on_train(module, mode=True):
            self.events.append(("mode", bool(mode)))

        self._removers = [wrap_method(model, "forward", on_forward),
                          wrap_method(model, "train", on_train)]

    @property
    def calls(self) -> list[tuple]:
        """(model.training, dropout on, grad enabled) at every forward."""
        return [event[1:4] for event in self.events if event[0] == "forward"]

    @property
    def inputs(self) -> list:
        """What each forward was given as input_ids, in order."""
        return [event[4] for event in self.events if event[0] == "forward"]

    def mode_set_after_forward(self, mode: bool) -> bool:
        """train(mode) was called, but only after the first forward."""
        kinds = [event for event in self.events if event[0] == "forward" or event == ("mode", mode)]
        return bool(kinds) and kinds[0][0] == "forward" and ("mode", mode) in kinds

    def remove(self) -> None:
        for remove in self._removers:
            remove()


def as_number(value, name: str) -> float:
    """The learner's returned loss as a float, or a Failed naming what it was instead."""
    if isinstance(value, torch.Tensor):
        raise Failed(f"{name} 返回的是张量：把它存进历史记录，会让每一步的整张计算图都留在内存里。",
                     "return loss.item()：返回一个 Python 浮点数。")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Failed(f"{name} 应返回这一步的 loss（浮点数），实际返回 {value!r}。",
                     "最后 return loss.item()。")
    return float(value)


def grad_mode_kept(name: str) -> None:
    """Fail when the learner's code left autograd switched off (the check restores it)."""
    if not torch.is_grad_enabled():
        torch.set_grad_enabled(True)
        raise Failed(f"{name} 返回之后梯度计算被关掉了（torch.set_grad_enabled(False) 没有恢复）："
                     "后面的训练会静悄悄地什么都学不到。",
                     "用 with torch.no_grad():（注意括号），离开 with 时会自动恢复。")


# ---------------------------------------------------------------------------------------------
# 2.2a  train_step(model, optimizer, input_ids, max_grad_norm) -> float
# ---------------------------------------------------------------------------------------------

def variant_step(model, optimizer, input_ids, max_grad_norm, *, zero_grad=True, step=True,
                 clip=True, shift=1, clip_to=None, clip_after_step=False):
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
    if clip and not clip_after_step:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_to or max_grad_norm)
    if step:
        optimizer.step()
    if clip and clip_after_step:  # too late: step already used the unclipped gradient
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    return loss.item()


STEP_MISTAKES = {  # checked in this order: the first whose numbers match names the mistake
    "no_zero_grad": dict(zero_grad=False),
    "no_step": dict(step=False),
    "clip_after_step": dict(clip_after_step=True),
    "no_clip": dict(clip=False),
    "clip_hard_coded": dict(clip_to=1.0),
    "no_shift": dict(shift=0),
    "shifted_twice": dict(shift=2),
}
STEP_HINTS = {
    "no_zero_grad": ("没有清零梯度：每一步的梯度都累加到了之前所有梯度的总和上"
                     "（有梯度裁剪时 loss 曲线看起来几乎正常，参数却和正确的不一样）。",
                     "在 backward 之前调用 optimizer.zero_grad()（PyTorch 的梯度默认是累加的）。"),
    "no_step": ("参数一点没变：没有调用 optimizer.step()，loss 曲线会是平的。",
                "在 loss.backward()（和梯度裁剪）之后调用 optimizer.step()。"),
    "clip_after_step": ("梯度裁剪放在了 optimizer.step() 之后：这一步已经用没裁剪的梯度走完了，"
                        "裁剪什么也没限制住。",
                        "顺序是 backward() → clip_grad_norm_(...) → step()。"),
    "no_clip": ("没有裁剪梯度：optimizer.step() 用的是没裁剪的梯度，函数结束时梯度也一点没被缩小"
                "（没有调用 clip_grad_norm_）。",
                "在 backward 之后、step 之前：torch.nn.utils.clip_grad_norm_(model.parameters(), "
                "max_grad_norm)，用传进来的 max_grad_norm。"),
    "clip_unknown": ("optimizer.step() 用的是没裁剪的梯度：要么没有调用 clip_grad_norm_，要么它放在了 "
                     "step() 之后（两者的参数更新一样，函数结束时梯度又被清掉了，看不出是哪一种）。",
                     "顺序是 backward() → torch.nn.utils.clip_grad_norm_(model.parameters(), "
                     "max_grad_norm) → step()。"),
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


def grad_norm(model) -> float | None:
    """The total gradient norm of ``model`` now (None when no parameter holds a gradient)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return None
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


def log_steps(optimizer, model) -> list[float]:
    """Wrap ``optimizer.step``: the list gets, at every call, the gradient norm it is about to
    use (0.0 when every gradient is empty or None)."""
    calls: list[float] = []
    step = optimizer.step

    def logged_step(*args, **kwargs):
        calls.append(grad_norm(model) or 0.0)
        return step(*args, **kwargs)

    optimizer.step = logged_step
    return calls


def clipping_mistake(at_step: list[float], after: list[float | None]) -> str:
    """Forgotten clipping and clipping after step() move the parameters identically (step used
    the unclipped gradient either way); what tells them apart is the gradient left behind: a
    clip after step() shrank it. "clip_unknown" when the learner cleared it at the end."""
    if any(norm is not None and norm < used * (1 - 1e-3) for used, norm in zip(at_step, after, strict=False)):
        return "clip_after_step"
    if all(norm is None or norm == 0 for norm in after):
        return "clip_unknown"
    return "no_clip"


def run_steps(train_step, model, input_ids_list, max_grad_norm, lr=3e-2):
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    return [train_step(model, optimizer, ids, max_grad_norm) for ids in input_ids_list]


def same_run(losses, model, other_losses, other_model) -> bool:
    return all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5)
               for a, b in zip(losses, other_losses, strict=True)) and \
        all(torch.allclose(a, b, atol=1e-5) for a, b in
            zip(model.parameters(), other_model.parameters(), strict=True))


def check_training_step(train_step):
    """Check exercise 2.2a; return the train_step to use from here on."""

    def body() -> str:
        data = batches(3)
        for max_grad_norm in (0.05, 1e9):  # clipping active, then effectively off
            model = small_model().eval()  # handed over in eval mode: train_step must switch
            log = ForwardLog(model)
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-2)
            steps = log_steps(optimizer, model)
            losses, left = [], []  # left: the gradient norm each call leaves behind
            try:
                for ids in data:
                    loss = call_learner(train_step, model, optimizer, ids, max_grad_norm,
                                        name="train_step", diagnose=diagnose_train_step)
                    losses.append(as_number(loss, "train_step"))
                    left.append(grad_norm(model))
                    grad_mode_kept("train_step")
            finally:
                log.remove()
            if not log.calls:
                raise Failed("train_step 没有调用模型做前向。", "logits = model(input_ids)。")
            if not all(training for training, _, _ in log.calls):
                if log.mode_set_after_forward(True):
                    raise Failed("model.train() 在前向之后才调用：第一次前向时模型还在 eval 模式。",
                                 "把 model.train() 放在 train_step 的第一行，前向之前。")
                raise uncalled_hint(train_step) or Failed(
                    "前向时模型处在 eval 模式：dropout 关着，训练和评估没有区别。",
                    "train_step 的第一行写 model.train()（评估之后模型可能还在 eval 模式）。")
            if not all(grad for _, _, grad in log.calls):
                raise Failed("训练的前向是在关掉梯度的情况下做的（torch.no_grad()?）。",
                             "train_step 里不要用 torch.no_grad()：backward 需要前向记录的计算图。")
            if steps and not any(steps):
                raise uncalled_hint(train_step) or Failed(
                    "optimizer.step() 被调用时所有梯度都是空的：zero_grad() 放在了 backward() 和 "
                    "step() 之间（或者根本没有 loss.backward()），参数一点都没变。",
                    "顺序是 zero_grad() → loss.backward() → 裁剪 → step()。")
            reference = small_model()
            expected = run_steps(reference_train_step, reference, data, max_grad_norm)
            if same_run(losses, model, expected, reference):
                continue
            for mistake, flags in STEP_MISTAKES.items():
                if mistake in ("no_clip", "clip_hard_coded", "clip_after_step") and \
                        max_grad_norm > 1e6:
                    continue  # without active clipping the two are the same
                twin = small_model()
                optimizer = torch.optim.AdamW(twin.parameters(), lr=3e-2)
                wrong = [variant_step(twin, optimizer, ids, max_grad_norm, **flags) for ids in data]
                if same_run(losses, model, wrong, twin):
                    slip = uncalled_hint(train_step)
                    if slip is not None and mistake in ("no_zero_grad", "no_step"):
                        raise slip
                    if mistake in ("clip_after_step", "no_clip"):
                        mistake = clipping_mistake(steps, left)
                    raise Failed(*STEP_HINTS[mistake])
            raise uncalled_hint(train_step) or Failed(
                f"三步之后的 loss {[round(x, 4) for x in losses]} 或参数与参考实现"
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
        given = (input_ids.clone(), labels.clone())
        log = ForwardLog(model)
        torch.manual_seed(5)
        try:
            value = call_learner(evaluate, model, input_ids, labels, name="evaluate")
        finally:
            log.remove()
        grad_mode_kept("evaluate")
        value = as_number(value, "evaluate")
        if not log.calls:
            raise Failed("evaluate 没有调用模型做前向。", "loss = causal_lm_loss(model(input_ids), labels)。")
        if any(dropout for _, dropout, _ in log.calls):
            if log.mode_set_after_forward(False):
                raise Failed("model.eval() 在前向之后才调用：前向的那一刻 dropout 还开着，"
                             "评估 loss 每次都不一样、还偏高。", "把 model.eval() 移到前向之前。")
            raise uncalled_hint(evaluate) or Failed(
                "评估时模型还在 train 模式：dropout 开着，评估 loss 每次都不一样、还偏高。",
                "前向之前 model.eval()。")
        if any(grad for _, _, grad in log.calls):
            raise Failed("评估的前向没有放进 torch.no_grad()：白白记录了整张计算图，又慢又占内存。",
                         "with torch.no_grad(): 里做前向和 loss。")
        if not model.training:
            raise uncalled_hint(evaluate) or Failed(
                "evaluate 之后模型停在了 eval 模式：接下来的训练步会关着 dropout 训练。",
                "算完之后切回去：model.train()（或者记下原来的模式再恢复）。")
        if any(p.grad is not None for p in model.parameters()) or not all(
                torch.equal(before[k], v) for k, v in model.state_dict().items()):
            raise Failed("evaluate 改动了模型（参数或梯度）。", "评估只做前向和 loss，不要 backward / step。")
        if not (torch.equal(given[0], input_ids) and torch.equal(given[1], labels)):
            raise Failed("evaluate 改动了传进来的 input_ids 或 labels（原地操作）。",
                         "只读它们；要改就先 .clone()。")
        expected = reference_evaluate(model, input_ids, labels)
        if math.isclose(value, expected, rel_tol=1e-5, abs_tol=1e-6):
            return (f"eval 模式、torch.no_grad() 下算出 loss = {value:.4f}（检查用的小模型，"
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
        mistake = mistake_matcher(torch.tensor(value), wrong)
        if mistake == "ignores_labels":
            raise Failed("loss 用的是 input_ids 而不是传进来的 labels：被忽略的位置（-100）也算进去了。",
                         "causal_lm_loss(logits, labels)。")
        if mistake == "no_shift":
            raise Failed("loss 没有错位：每个位置在预测它自己。",
                         "用 causal_lm_loss(logits, labels)，它在内部错开一位。")
        raise Failed(f"evaluate 返回 {value:.4f}，正确值是 {expected:.4f}。",
                     "model.eval() → with torch.no_grad(): loss = causal_lm_loss(model(input_ids), "
                     "labels) → model.train() → return loss.item()。")

    return run_check("2.2b", body, evaluate, reference_evaluate)


# ---------------------------------------------------------------------------------------------
# 2.2c  train_loop(model, tokens, eval_ids, eval_labels, config) -> History
# ---------------------------------------------------------------------------------------------

LOOP_CONFIG = TrainConfig(steps=7, lr=1e-2, batch_size=3, seq_len=12, eval_every=3, seed=5,
                          max_grad_norm=0.05)  # 7 % 3 != 0: the last step evaluates too


def reference_loop_variant(model, tokens, eval_ids, eval_labels, config, *, mistake=None):
    """The loop of diy.training.train, or one known mistake of it."""
    generator = torch.Generator().manual_seed(config.seed)
    lr = 3e-3 if mistake == "lr_hard_coded" else config.lr
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    history = History()
    for step in range(1, config.steps + 1):
        if mistake == "new_generator":
            generator = torch.Generator().manual_seed(config.seed)
        if mistake == "new_optimizer":
            optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        input_ids = get_batch(tokens, config.batch_size, config.seq_len,
                              None if mistake == "no_generator" else generator)
        norm = 1.0 if mistake == "default_clip" else config.max_grad_norm
        loss = reference_train_step(model, optimizer, input_ids, norm)
        history.step.append(step)
        history.train_loss.append(loss)
        if step % config.eval_every == 0 or step == config.steps:
            ids, labels = (input_ids, input_ids) if mistake == "eval_on_batch" else \
                (eval_ids, eval_labels)
            history.eval_step.append(step)
            history.eval_loss.append(reference_evaluate(model, ids, labels))
    return history


LOOP_MISTAKES = {
    "new_generator": ("每一步都新建了一个同样种子的 generator：每一步取到的都是同一个 batch。",
                      "循环开始之前建一次 generator = torch.Generator().manual_seed(config.seed)，"
                      "循环里一直用它。"),
    "no_generator": ("get_batch 没有拿到 generator：batch 来自全局随机数。先 torch.manual_seed(config.seed) "
                     "也不行：dropout 和别的单元格也从全局随机数取数，batch 就跟着变，和 train 的不一样；"
                     "它还改动了整个 notebook 的随机数。",
                     "循环之前 generator = torch.Generator().manual_seed(config.seed)，每一步 get_batch(tokens, "
                     "config.batch_size, config.seq_len, generator)；不要调用 torch.manual_seed。"),
    "new_optimizer": ("每一步都新建了优化器：AdamW 的梯度滑动平均每一步都被清空了。",
                      "循环开始之前建一次 optimizer = torch.optim.AdamW(model.parameters(), "
                      "lr=config.lr)。"),
    "lr_hard_coded": ("学习率写死了，没有用 config.lr。", "torch.optim.AdamW(model.parameters(), lr=config.lr)。"),
    "default_clip": ("没有把 config.max_grad_norm 传给 train_step（用了它的默认值 1.0）。",
                     "train_step(model, optimizer, input_ids, config.max_grad_norm)。"),
    "eval_on_batch": ("评估用的是这一步的训练 batch，而不是传进来的 eval_ids / eval_labels。",
                      "evaluate(model, eval_ids, eval_labels)。"),
}


def as_history(result):
    """The learner's History (or anything with its four lists), or a Failed."""
    if result is None:
        raise Failed("train_loop 返回了 None：忘了 return history？", "最后 return history。")
    if isinstance(result, dict):
        result = types.SimpleNamespace(**result)
    missing = [name for name in ("step", "train_loss", "eval_step", "eval_loss")
               if not isinstance(getattr(result, name, None), (list, tuple))]
    if missing:
        raise Failed(f"train_loop 应返回一个 History（有 step、train_loss、eval_step、eval_loss 四个"
                     f"列表），实际返回的 {type(result).__name__} 缺少 {missing}。",
                     "history = History()，循环里往它的四个列表里 append，最后 return history。")
    for name in ("train_loss", "eval_loss"):
        values = getattr(result, name)
        if any(isinstance(x, torch.Tensor) for x in values):
            raise Failed(f"history.{name} 里存的是张量：每个张量都连着它那一步的计算图，几百步后内存就满了。",
                         "存 Python 浮点数：train_step / evaluate 返回的就是 loss.item()。")
        if not all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in values):
            raise Failed(f"history.{name} 里应该全是浮点数，实际有 "
                         f"{sorted({type(x).__name__ for x in values})}。",
                         f"history.{name}.append(loss)，loss 是 train_step / evaluate 返回的浮点数。")
    return result


@contextmanager
def course_functions(fn, generators: list):
    """Run ``fn`` with the reference get_batch / train_step / evaluate in its module's globals
    (the notebook's): the loop is compared with train() alone, not the learner's earlier code.
    ``generators`` gets the generator each get_batch call was given (None: the global RNG)."""
    namespace = getattr(fn, "__globals__", {})
    course_get_batch = get_batch  # bound now: fn may live in this module (the reference loop)

    def recorded_get_batch(tokens, batch_size, seq_len, generator=None):
        generators.append(generator)
        return course_get_batch(tokens, batch_size, seq_len, generator)

    names = {"get_batch": recorded_get_batch, "train_step": reference_train_step,
             "evaluate": reference_evaluate}
    saved = {name: namespace[name] for name in names if name in namespace}
    namespace.update({name: value for name, value in names.items() if name in saved})
    try:
        yield
    finally:
        namespace.update(saved)


def rows_of(ids, rows: torch.Tensor) -> bool:
    """Whether every row of ``ids`` is one of ``rows`` (a forward on the evaluation batch, or
    on part of it)."""
    return isinstance(ids, torch.Tensor) and ids.dim() == 2 and ids.shape[1] == rows.shape[1] \
        and bool((ids[:, None, :] == rows[None]).all(-1).any(-1).all())


def check_loop_forwards(log: ForwardLog, eval_ids: torch.Tensor) -> None:
    """Evaluation written inside the loop (not through evaluate) changes no number when the
    model has no dropout, so it is read from the forwards the model saw: evaluation forwards in
    eval mode without gradients, training forwards in train mode."""
    for (training, _, grad), ids in zip(log.calls, log.inputs, strict=True):
        if rows_of(ids, eval_ids):
            if training:
                raise Failed("评估的前向是在 train 模式下做的：模型里有 dropout 时，评估 loss 每次都不一样、"
                             "还偏高（自检的小模型没有 dropout，数值看不出来，所以看的是模型的模式）。",
                             "评估之前 model.eval()，评估完 model.train()；或者直接调用 evaluate("
                             "model, eval_ids, eval_labels)。")
            if grad:
                raise Failed("评估的前向没有放进 torch.no_grad()：白白记录了整张计算图，又慢又占内存。",
                             "with torch.no_grad(): 里做评估的前向和 loss；或者直接调用 evaluate(...)。")
        elif grad and not training:
            raise Failed("训练的前向是在 eval 模式下做的：评估之后没有切回 train 模式，dropout 关着训练。",
                         "评估完 model.train()（evaluate 会自己切回去）。")


def check_train_loop(train_loop):
    """Check exercise 2.2c; return the train_loop to use from here on."""

    def body() -> str:
        config = LOOP_CONFIG
        generator = torch.Generator().manual_seed(2)
        tokens = torch.randint(4, SMALL.vocab_size, (200,), generator=generator)
        eval_tokens = torch.randint(4, SMALL.vocab_size, (40,), generator=generator)
        eval_ids, eval_labels = eval_batch(eval_tokens, config.seq_len)  # (W, L) each
        before = (tokens.clone(), eval_ids.clone(), eval_labels.clone())
        model = small_model()
        log = ForwardLog(model)
        generators: list = []
        torch.manual_seed(7)
        try:
            with course_functions(train_loop, generators):
                result = call_learner(train_loop, model, tokens, eval_ids, eval_labels, config,
                                      name="train_loop")
        finally:
            log.remove()
        grad_mode_kept("train_loop")
        history = as_history(result)
        if not (torch.equal(before[0], tokens) and torch.equal(before[1], eval_ids)
                and torch.equal(before[2], eval_labels)):
            raise Failed("train_loop 改动了传进来的 tokens / eval_ids / eval_labels。",
                         "只读它们：get_batch 切出来的是新张量。")
        steps = list(range(1, config.steps + 1))
        evals = [s for s in steps if s % config.eval_every == 0 or s == config.steps]
        if list(history.step) != steps:
            if list(history.step) == list(range(config.steps)):
                raise Failed("步数从 0 开始记：history.step 是 0, 1, …，应为 1, 2, …, steps。",
                             "for step in range(1, config.steps + 1):。")
            raise Failed(f"history.step 应为 1…{config.steps}（config.steps={config.steps}），"
                         f"实际是 {list(history.step)}。",
                         "for step in range(1, config.steps + 1): 每一步 history.step.append(step)。")
        if len(history.train_loss) != config.steps:
            raise Failed(f"history.train_loss 有 {len(history.train_loss)} 个值，应该每步一个"
                         f"（{config.steps} 个）。", "每一步 history.train_loss.append(loss)。")
        if list(history.eval_step) != evals:
            missing_last = list(history.eval_step) == evals[:-1]
            raise Failed(f"评估的步数是 {list(history.eval_step)}，应为 {evals}"
                         + ("：最后一步没有评估（steps 不是 eval_every 的倍数时也要评估最后一步）。"
                            if missing_last else "。"),
                         "if step % config.eval_every == 0 or step == config.steps: 评估一次，"
                         "history.eval_step.append(step)、history.eval_loss.append(...)。")
        if len(history.eval_loss) != len(evals):
            raise Failed(f"history.eval_loss 有 {len(history.eval_loss)} 个值，应与 eval_step 一样多"
                         f"（{len(evals)} 个）。", "每次评估 history.eval_loss.append(evaluate(...))。")
        if not model.training:
            raise Failed("train_loop 结束后模型停在了 eval 模式。",
                         "用 evaluate（它会切回 train 模式）；自己写评估的话，评估完 model.train()。")
        if any(g is None for g in generators):
            raise Failed(*LOOP_MISTAKES["no_generator"])
        reference = small_model()
        expected = train(reference, tokens, config, eval_tokens=eval_tokens, progress=False)
        if close(history, expected) and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(
                model.parameters(), reference.parameters(), strict=True)):
            check_loop_forwards(log, eval_ids)  # what the numbers of a dropout-free model hide
            return (f"{config.steps} 步（每 {config.eval_every} 步评估一次，最后一步也评估）的 history "
                    "与 diy.training.train 同一个种子下的完全一致。")
        for mistake, hint in LOOP_MISTAKES.items():
            twin = small_model()
            torch.manual_seed(7)  # as for the learner's call: "no_generator" draws from it
            wrong = reference_loop_variant(twin, tokens, eval_ids, eval_labels, config,
                                           mistake=mistake)
            if close(history, wrong):
                raise Failed(*hint)
        check_loop_forwards(log, eval_ids)
        raise Failed(f"train loss {[round(x, 3) for x in history.train_loss]} 与 train 的 "
                     f"{[round(x, 3) for x in expected.train_loss]} 不一致。",
                     "循环之前建一次 generator（config.seed）和 AdamW（config.lr）；每一步 get_batch → "
                     "train_step(…, config.max_grad_norm) → 记录；按 eval_every 评估。")

    return run_check("2.2c", body, train_loop, reference_train_loop)


def close(history, other) -> bool:
    return all(len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-5)
                                        for x, y in zip(a, b, strict=True))
               for a, b in ((history.train_loss, other.train_loss),
                            (history.eval_loss, other.eval_loss)))


def reference_train_loop(model, tokens, eval_ids, eval_labels, config):
    """The course's answer to 2.2c: the loop of diy.training.train, eval batch given."""
    return reference_loop_variant(model, tokens, eval_ids, eval_labels, config)

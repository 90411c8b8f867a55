"""The course's training loop: over-fit a short text to prove the model can learn (step 2).

    history = train(model, tokens, TrainConfig(steps=70))   # model: DIYForCausalLM

One step (`train_step`): train mode → forward → next-token loss → zero_grad → backward →
clip the gradient norm → optimizer step. Every `eval_every` steps (`evaluate`): the loss over
the whole text in eval mode without gradients. `python -m diy.train` and the step-2 notebooks
run this loop; the notebooks plug the learner's own `train_step` / `evaluate` into it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from .data import check_batch_args, eval_batch, get_batch
from .errors import DIYError, DIYInputError
from .loss import causal_lm_loss

LN_VOCAB = math.log(6400)  # the loss of a model that guesses uniformly over the course's vocabulary


class DIYTrainingError(DIYError):
    """Training cannot go on (the loss became NaN or infinite)."""


@dataclass
class TrainConfig:
    steps: int = 70  # optimizer steps: enough for an eval loss < 0.05 on the course passage
    lr: float = 3e-3  # AdamW learning rate; large for an over-fitting demo, see lesson 2.3
    batch_size: int = 8  # windows per step
    seq_len: int = 128  # tokens per window (at most the model's max_seq_len)
    eval_every: int = 10  # steps between two evaluations of the loss over the whole text
    max_grad_norm: float = 1.0  # gradient clipping: caps one bad step, see lesson 2.2
    seed: int = 0  # the batches' random windows come from torch.Generator().manual_seed(seed)

    def validate(self, max_seq_len: int | None = None) -> None:
        for name in ("steps", "batch_size", "seq_len", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DIYInputError(f"{name}={value!r} 不合法：它必须是正整数。",
                                    f"把 {name} 设成大于 0 的整数"
                                    f"（默认 {getattr(TrainConfig, name)}）。",
                                    f"{name} must be a positive integer, got {value!r}.")
        for name in ("lr", "max_grad_norm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise DIYInputError(f"{name}={value!r} 不合法：它必须是有限的正数。",
                                    f"用默认值 {getattr(TrainConfig, name)} 附近的正数。",
                                    f"{name} must be a finite positive number, got {value!r}.")
        if self.lr > 1.0:
            raise DIYInputError(f"学习率 lr={self.lr} 大得离谱：AdamW 每一步都把参数挪动约 lr，"
                                "loss 会冲到成千上万（2.3 试过 lr=10）。",
                                "用 1e-4 到 1e-2 之间的值（默认 3e-3）。",
                                f"lr={self.lr} is far too large for AdamW; use 1e-4 .. 1e-2.")
        if max_seq_len is not None and self.seq_len > max_seq_len:
            raise DIYInputError(f"seq_len={self.seq_len} 超过了模型的 max_seq_len={max_seq_len}。",
                                f"把 seq_len 设成不超过 {max_seq_len} 的值。",
                                f"seq_len={self.seq_len} exceeds max_seq_len={max_seq_len}.")


@dataclass
class History:
    """What `train` measured; plain floats, so nothing keeps a computation graph alive."""

    step: list[int] = field(default_factory=list)  # 1, 2, ... steps
    train_loss: list[float] = field(default_factory=list)  # loss of each step's batch
    eval_step: list[int] = field(default_factory=list)  # the steps after which it evaluated
    eval_loss: list[float] = field(default_factory=list)  # loss over the whole text, eval mode

    def to_dict(self) -> dict:
        return asdict(self)


def clipped_step(model, optimizer, input_ids: torch.Tensor,
                 max_grad_norm: float = 1.0) -> tuple[float, float]:
    """One optimizer step on one batch: (the batch's loss, the gradient norm before clipping).
    ``max_grad_norm=math.inf`` measures the norm without clipping (the scale factor is 1)."""
    model.train()  # dropout on
    logits = model(input_ids)  # (B, L, V)
    loss = causal_lm_loss(logits, input_ids)  # labels = input_ids: the loss shifts them
    optimizer.zero_grad()  # clear the previous step's gradients (backward adds to .grad)
    loss.backward()
    # Adam's step is about lr whatever the gradient's size, so clipping does not shrink the
    # step of a normal batch much; it caps what one outsized gradient writes into Adam's
    # running averages (lesson 2.2 measures it: the norm exceeds 1.0 on about half the steps).
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item(), norm.item()  # floats: a tensor would keep its whole graph in memory


def train_step(model, optimizer, input_ids: torch.Tensor, max_grad_norm: float = 1.0) -> float:
    """One optimizer step on one batch; the batch's loss as a Python float."""
    return clipped_step(model, optimizer, input_ids, max_grad_norm)[0]


def evaluate(model, input_ids: torch.Tensor, labels: torch.Tensor) -> float:
    """The loss in eval mode (dropout off) without gradients; the model's mode is restored."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        loss = causal_lm_loss(model(input_ids), labels).item()  # (W, L, V) -> scalar
    model.train(was_training)
    return loss


def progress_bar(steps: int, enabled: bool):
    """tqdm over range(1, steps + 1). In a Jupyter kernel it writes to stdout, not stderr."""
    from tqdm import tqdm

    in_notebook = "ipykernel" in sys.modules
    # In a notebook the saved output keeps every update: update once a second, not 10 times.
    return tqdm(range(1, steps + 1), disable=not enabled, ncols=80 if in_notebook else None,
                file=sys.stdout if in_notebook else None, mininterval=1.0 if in_notebook else 0.1,
                desc="训练", unit="步")


def train(model, tokens: torch.Tensor, config: TrainConfig | None = None, *,
          eval_tokens: torch.Tensor | None = None, train_step: Callable = train_step,
          evaluate: Callable = evaluate, progress: bool = True,
          on_eval: Callable[[int, float, object], None] | None = None) -> History:
    """Train ``model`` on random windows of ``tokens`` (1-D ids); the measured History.

    The eval loss is over ``eval_tokens`` (default: ``tokens``), every pair counted once.
    ``train_step`` / ``evaluate`` can be replaced by the learner's own (same signatures).
    ``on_eval(step, eval_loss, model)`` runs after each evaluation (the CLI saves there).
    Raises DIYTrainingError, naming the learning rate, when the loss stops being finite.
    """
    config = config or TrainConfig()
    config.validate(model.config.max_seq_len)
    check_batch_args(len(tokens), config.batch_size, config.seq_len)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    eval_ids, eval_labels = eval_batch(tokens if eval_tokens is None else eval_tokens,
                                       config.seq_len)  # (W, L) each
    history = History()
    bar = progress_bar(config.steps, progress)
    for step in bar:
        input_ids = get_batch(tokens, config.batch_size, config.seq_len, generator)  # (B, L)
        loss = train_step(model, optimizer, input_ids, config.max_grad_norm)
        if not math.isfinite(loss):
            raise DIYTrainingError(
                f"第 {step} 步的 loss 变成了 {loss}：学习率 lr={config.lr:g} 太大，"
                "参数被更新到了数值溢出。",
                f"把学习率调小，例如 lr={config.lr / 10:g}，再从头训练。",
                f"the loss became {loss} at step {step}; lr={config.lr:g} is too large, "
                f"try {config.lr / 10:g}.")
        history.step.append(step)
        history.train_loss.append(loss)
        if step % config.eval_every == 0 or step == config.steps:
            eval_loss = evaluate(model, eval_ids, eval_labels)
            history.eval_step.append(step)
            history.eval_loss.append(eval_loss)
            bar.set_postfix(loss=f"{loss:.3f}", eval=f"{eval_loss:.3f}")
            if on_eval is not None:
                on_eval(step, eval_loss, model)
    bar.close()
    return history


def train_on_text(text: str | None = None, config: TrainConfig | None = None, *,
                  progress: bool = True, on_eval=None, train_step: Callable = train_step):
    """A new DIYForCausalLM (course defaults, seeded with ``config.seed``) trained on ``text``
    (default: the course passage); returns (model, history). What `python -m diy.train` runs.
    ``train_step`` can be replaced by one that records more (diy.classroom.course_runs: gradient
    norms).

    Characters outside the vocabulary become <unk> with a warning that names them.
    """
    from .causal_lm import DIYForCausalLM
    from .config import DIYConfig
    from .data import load_passage, training_stream
    from .tokenizer import CharTokenizer

    config = config or TrainConfig()
    model_config = DIYConfig()
    config.validate(model_config.max_seq_len)
    tokenizer = CharTokenizer(model_config.vocab_size)
    ids = tokenizer.encode(load_passage() if text is None else text)
    tokens = training_stream(ids, tokenizer.eos_token_id, config.seq_len)  # text, eos, text, ...
    torch.manual_seed(config.seed)  # the initial weights and dropout's random numbers
    model = DIYForCausalLM(model_config)
    history = train(model, tokens, config, eval_tokens=torch.tensor(ids + [tokenizer.eos_token_id]),
                    progress=progress, on_eval=on_eval, train_step=train_step)
    return model.eval(), history

"""Pretraining on a real corpus (step 4): step 2's training loop plus what a corpus needs.

    history = pretrain(model, stream, held_out_ids, PretrainConfig())   # model: DIYForCausalLM

What is new compared with step 2's `train` (diy/training.py):
- the batches are random windows of a packed token stream (diy/pretraining/packed.py), and every window's
  start depends only on (seed, step, its index), so a run can stop and resume exactly and
  several processes can share one global batch (each takes its own slice);
- the learning rate warms up linearly, then follows a cosine down to ``min_lr`` (`lr_at`);
- a step may add up the gradients of several micro-batches before the optimizer steps
  (gradient accumulation: the same gradient as one batch that many times larger);
- weight decay acts on weight matrices only, not on norm weights (`param_groups`);
- the model is measured on held-out text in bits per character (`bits_per_char`), the unit that
  compares models with different tokenizers and the unigram / bigram baselines (diy/pretraining/baselines.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..data import eval_batch
from ..errors import DIYError, DIYInputError
from ..loss import causal_lm_loss
from .distributed import Place, any_over_processes, mean_over_processes
from .packed import windows


class DIYPretrainError(DIYError):
    """Pretraining cannot go on (the loss became NaN or infinite)."""


@dataclass
class PretrainConfig:
    """The default recipe of `python -m diy.pretrain` and lesson 4.3 (chosen by measurement:
    README, "默认配方的实测与它是怎么选出来的")."""

    # the model (vocab_size comes from the tokenizer; dropout 0: one pass over the data is
    # not enough to over-fit, and dropout would only slow learning down)
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    # the batches
    seq_len: int = 128  # tokens per window
    batch_size: int = 16  # windows per optimizer step, all micro-batches (and processes) together
    # windows per forward/backward in each process; None: all of that process's share at once
    # (batch_size / processes, no accumulation). batch_size / (this x processes) = accumulation
    micro_batch_size: int | None = None
    # the optimizer: AdamW, warmup then cosine
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 100
    steps: int = 3000
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    # evaluation on the held-out ci: every eval_every steps on their first eval_tokens tokens
    # (a quick, fixed sample), and on all of them at the end
    eval_every: int = 250
    eval_tokens: int = 16384
    seed: int = 0

    def micro(self, world_size: int = 1) -> int:
        """Windows per forward/backward in each of ``world_size`` processes."""
        return self.micro_batch_size or self.batch_size // world_size

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self, world_size: int = 1) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "seq_len", "batch_size",
                     "micro_batch_size", "steps", "eval_every", "eval_tokens"):
            value = getattr(self, name)
            if name == "micro_batch_size" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DIYInputError(f"{name}={value!r} 不合法：它必须是正整数。",
                                    f"把 {name} 设成大于 0 的整数（默认 {getattr(PretrainConfig, name)}）。",
                                    f"{name} must be a positive integer, got {value!r}.")
        for name in ("warmup_steps",):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise DIYInputError(f"{name}={value!r} 不合法：它必须是非负整数。",
                                    f"默认 {getattr(PretrainConfig, name)}。",
                                    f"{name} must be a non-negative integer, got {value!r}.")
        for name in ("lr", "min_lr", "max_grad_norm", "weight_decay"):
            value = getattr(self, name)
            positive = name != "weight_decay" and name != "min_lr"
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0 or (positive and value == 0):
                raise DIYInputError(f"{name}={value!r} 不合法：它必须是有限的{'正' if positive else '非负'}数。",
                                    f"用默认值 {getattr(PretrainConfig, name)} 附近的数。",
                                    f"{name} must be a finite number, got {value!r}.")
        if self.min_lr > self.lr:
            raise DIYInputError(f"min_lr={self.min_lr} 比 lr={self.lr} 还大：余弦是从 lr 降到 min_lr。",
                                "让 min_lr ≤ lr（默认是 lr 的十分之一）。",
                                "min_lr must not exceed lr.")
        per_process = (self.micro_batch_size or 1) * world_size
        if self.batch_size % per_process != 0 or self.batch_size < per_process:
            what = (f"micro_batch_size × 进程数 = {self.micro_batch_size} × {world_size} = {per_process}"
                    if self.micro_batch_size else f"进程数 {world_size}")
            raise DIYInputError(
                f"batch_size={self.batch_size} 不能被 {what} 整除，"
                "每一步没法把窗口平均分给每个进程（的每个 micro-batch）。",
                f"把 batch_size 设成 {per_process} 的倍数，或换一个 micro_batch_size / 进程数。",
                f"batch_size {self.batch_size} is not a multiple of {per_process} "
                f"(micro_batch_size x world_size).")


def pretrain_model(config: PretrainConfig, vocab_size: int):
    """The recipe's DIYForCausalLM before training, the same for a given seed: dropout 0, and
    the lm_head drawn from N(0, 0.02) like every other weight matrix (GPT-2's init; step 1's
    nn.Linear default is about 2.5 times wider), so the first logits are close to uniform."""
    from ..causal_lm import DIYForCausalLM
    from ..config import DIYConfig

    torch.manual_seed(config.seed)
    model = DIYForCausalLM(DIYConfig(vocab_size=vocab_size, hidden_size=config.hidden_size,
                                     num_layers=config.num_layers, num_heads=config.num_heads,
                                     max_seq_len=config.seq_len, dropout=0.0))
    torch.nn.init.normal_(model.lm_head.weight, mean=0.0, std=model.config.initializer_range)
    return model


def lr_at(step: int, config: PretrainConfig) -> float:
    """The learning rate of optimizer step ``step`` (0-based): linear warmup from lr/warmup to lr
    over the first ``warmup_steps`` steps, then a cosine from lr down to min_lr at the last step."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    decay_steps = max(1, config.steps - 1 - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)  # 0 → 1
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 → 0
    return config.min_lr + cosine * (config.lr - config.min_lr)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW's two groups: weight matrices (2-D and up: linear layers, embeddings) decay; vectors
    (norm weights, biases) do not. Decay pulls a weight towards 0; a norm's weight is a gain
    around 1, and pulling it to 0 would shrink the signal instead of regularising the model."""
    seen, decay, no_decay = set(), [], []
    for parameter in model.parameters():  # parameters() lists a tied weight once
        if not parameter.requires_grad or id(parameter) in seen:
            continue
        seen.add(id(parameter))
        (decay if parameter.dim() >= 2 else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def window_starts(seed: int, step: int, count: int, n_tokens: int, seq_len: int) -> np.ndarray:
    """The ``count`` window starts of optimizer step ``step``: drawn from a generator seeded by
    (seed, step) alone, so step 500 draws the same windows whether the run started at 0 or
    resumed at 400, and every process of a multi-process run sees the same global batch."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    high = n_tokens - seq_len - 1  # a window needs seq_len + 1 tokens (inputs and targets)
    return torch.randint(0, high + 1, (count,), generator=generator).numpy()  # (count,)


def next_token_loss(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the model's logits for inputs ``x`` against targets ``y`` (already
    shifted by one), in float32 whatever the autocast dtype."""
    logits = model(x)  # (B, L, V)
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())  # over B * L targets


@torch.no_grad()
def bits_per_char(model, ids, n_chars: int | None = None, seq_len: int = 128,
                  batch_size: int = 32) -> float:
    """Bits per character of ``model`` on the text whose token ids are ``ids``: the summed
    next-token loss over every token but the first (each predicted once, with a long context:
    diy.data.eval_batch), divided by the number of characters those tokens cover, over ln 2.
    ``n_chars`` defaults to the number of predicted tokens (one character per token)."""
    tokens = torch.as_tensor(ids, dtype=torch.long)
    input_ids, labels = eval_batch(tokens, seq_len)  # (W, L) each, IGNORE_INDEX where scored before
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, counted = 0.0, 0
    try:
        for start in range(0, len(input_ids), batch_size):
            x = input_ids[start:start + batch_size].to(device)
            y = labels[start:start + batch_size].to(device)
            n = int((y[:, 1:] != -100).sum())
            total += float(causal_lm_loss(model(x), y)) * n  # mean × count = sum of nats
            counted += n
    finally:
        model.train(was_training)
    return total / (n_chars or counted) / math.log(2)


@dataclass
class PretrainHistory:
    steps: list[int] = field(default_factory=list)  # optimizer steps done, one entry per step
    losses: list[float] = field(default_factory=list)  # training loss of that step
    lrs: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_bpc: list[float] = field(default_factory=list)  # bits per character, held-out sample
    final_bpc: float | None = None  # bits per character on all the held-out text, at the end

    def to_dict(self) -> dict:
        return asdict(self)


def training_step(model, optimizer, stream, step: int, config: PretrainConfig,
                  place: Place | None = None, autocast=None) -> float:
    """One optimizer step over the global batch of ``step``: this process's share of the
    windows, in micro-batches whose losses are each divided by their number (so the summed
    gradients are the mean's), then clipping and the optimizer step at lr_at(step). Under DDP
    the gradients are averaged over the processes once, during the last micro-batch's backward
    (``no_sync`` before). Returns the mean loss of this process's micro-batches."""
    place = place or Place(device=next(model.parameters()).device)
    starts = window_starts(config.seed, step, config.batch_size, len(stream), config.seq_len)
    mine = starts.reshape(place.world_size, -1)[place.rank]  # this process's share
    micro_batches = mine.reshape(-1, config.micro(place.world_size))  # (accumulation, b)
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, config)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for index, micro in enumerate(micro_batches):
        x, y = windows(stream, micro, config.seq_len)  # (b, L) each, on the CPU
        x, y = x.to(place.device), y.to(place.device)
        last = index == len(micro_batches) - 1
        no_sync = model.no_sync() if hasattr(model, "no_sync") and not last else nullcontext()
        with no_sync, (autocast() if autocast is not None else nullcontext()):
            loss = next_token_loss(model, x, y)
            (loss / len(micro_batches)).backward()
        total += float(loss.detach())
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
    optimizer.step()
    return total / len(micro_batches)


def make_optimizer(model, config: PretrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, config.weight_decay), lr=lr_at(0, config),
                             betas=(0.9, 0.95))


def pretrain(model, stream, held_out_ids, config: PretrainConfig, *,
             optimizer: torch.optim.Optimizer | None = None, start_step: int = 0,
             history: PretrainHistory | None = None,
             on_step: Callable[[int, float], None] | None = None,
             on_eval: Callable[[int, float], None] | None = None,
             should_stop: Callable[[], bool] | None = None,
             place: Place | None = None, autocast=None) -> PretrainHistory:
    """Train ``model`` (a DIYForCausalLM, or DDP around one) on random windows of ``stream`` for
    config.steps optimizer steps, from ``start_step``. Every eval_every steps (and at the last),
    held-out bits per character on the first eval_tokens of ``held_out_ids``; after the last
    step, on all of them (``history.final_bpc``). ``on_step(step, loss)`` and
    ``on_eval(step, bpc)`` are called after each; ``should_stop()`` ends the run early (the
    history so far is returned).

    With several processes (``place``), each trains on its share of every step's global batch;
    the history's losses are averaged over them (so they equal one process's over the same
    batch), only the main process evaluates (on the model inside DDP, so no other process has
    to take part), and all of them stop at the same step when any one is asked to stop."""
    core = getattr(model, "module", model)  # DDP keeps the model itself in .module
    place = place or Place(device=next(core.parameters()).device)
    config.validate(place.world_size)
    optimizer = optimizer or make_optimizer(model, config)
    history = history or PretrainHistory()
    for step in range(start_step, config.steps):
        loss = training_step(model, optimizer, stream, step, config, place, autocast)
        loss = mean_over_processes(loss, place)
        if not math.isfinite(loss):
            raise DIYPretrainError(
                f"第 {step} 步的 loss 变成了 {loss}：学习率 lr={config.lr} 可能太大。",
                "把 --lr 调小（例如减半），或检查 warmup 是否太短。",
                f"the loss became {loss} at step {step}; lower the learning rate.")
        history.steps.append(step + 1)
        history.losses.append(loss)
        history.lrs.append(lr_at(step, config))
        if on_step is not None:
            on_step(step + 1, loss)
        done = step + 1 == config.steps
        if place.is_main and ((step + 1) % config.eval_every == 0 or done):
            bpc = bits_per_char(core, held_out_ids[:config.eval_tokens], seq_len=config.seq_len)
            history.eval_steps.append(step + 1)
            history.eval_bpc.append(bpc)
            if on_eval is not None:
                on_eval(step + 1, bpc)
        if done and place.is_main:
            history.final_bpc = bits_per_char(core, held_out_ids, seq_len=config.seq_len)
        stop = should_stop is not None and should_stop()
        if any_over_processes(stop, place):
            break
    return history

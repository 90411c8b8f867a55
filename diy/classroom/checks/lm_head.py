"""Self-check of exercise 1.1: build_lm_head and forward_to_logits."""

from __future__ import annotations

import torch
from torch import nn

from ...backbone import build_active_backbone
from ...config import DIYConfig
from ...errors import describe_value
from .report import Failed, Todo, call_learner, run_check

EXERCISE = "1.1"
# The course's shape and a different one, so that hard-coded numbers do not pass.
CASES = [
    dict(config=DIYConfig(dropout=0.0), batch=2, length=10),
    dict(config=DIYConfig(vocab_size=97, hidden_size=32, num_layers=1, num_heads=2,
                          max_seq_len=16, dropout=0.0), batch=3, length=5),
]


def reference_build_lm_head(hidden_size: int, vocab_size: int) -> nn.Linear:
    return nn.Linear(hidden_size, vocab_size, bias=False)


def reference_forward_to_logits(model, lm_head, input_ids):
    hidden_states = model(input_ids, is_training=True)  # (B, L, C)
    return hidden_states, lm_head(hidden_states)  # (B, L, V)


def check_lm_head(build_lm_head, forward_to_logits):
    """Check exercise 1.1; return (build_lm_head, forward_to_logits) to use from here on."""

    def body() -> str:
        for case in CASES:
            check_head(build_lm_head, case["config"])
        for case in CASES:
            check_forward(forward_to_logits, **case)
        c = CASES[0]["config"]
        return (f"lm_head 是 nn.Linear({c.hidden_size}, {c.vocab_size}, bias=False)，"
                f"hidden_states (2, 10, {c.hidden_size}) → logits (2, 10, {c.vocab_size})；"
                "换成 vocab_size=97、hidden_size=32、batch 3×5 也正确。")

    return run_check(EXERCISE, body, (build_lm_head, forward_to_logits),
                     (reference_build_lm_head, reference_forward_to_logits))


def check_head(build_lm_head, config: DIYConfig) -> nn.Linear:
    C, V = config.hidden_size, config.vocab_size
    head = call_learner(build_lm_head, C, V, name="build_lm_head")
    if head is None:
        raise Failed("build_lm_head 没有返回任何东西（返回了 None）。",
                     "在函数最后写 return nn.Linear(...)。")
    if not isinstance(head, nn.Linear):
        raise Failed(f"build_lm_head 应返回一个 nn.Linear 层，但返回的是 {type(head).__name__}。",
                     "return nn.Linear(hidden_size, vocab_size, bias=False)。")
    if head.bias is not None:
        raise Failed("lm_head 带了 bias（nn.Linear 默认 bias=True）。",
                     "写成 nn.Linear(hidden_size, vocab_size, bias=False)：常见 LLM 的输出层都不用 bias。")
    got = (head.in_features, head.out_features)
    if got == (V, C) and V != C:
        raise Failed(f"nn.Linear 的两个维度写反了：得到 nn.Linear({V}, {C})。",
                     "第一个参数是输入维度 hidden_size，第二个是输出维度 vocab_size："
                     "nn.Linear(hidden_size, vocab_size, bias=False)。")
    if got != (C, V):
        raise Failed(f"hidden_size={C}, vocab_size={V} 时得到 nn.Linear({got[0]}, {got[1]})，"
                     f"应为 nn.Linear({C}, {V})。",
                     "用函数参数 hidden_size 和 vocab_size，不要写死 256 / 6400。")
    return head


def check_forward(forward_to_logits, config: DIYConfig, batch: int, length: int) -> None:
    B, L, C, V = batch, length, config.hidden_size, config.vocab_size
    torch.manual_seed(0)
    # train mode, as the training path is called (is_training=True with model.train(): a
    # backbone whose dropout follows is_training reads it the same way); dropout 0: repeatable
    model = build_active_backbone(config).train()
    head = reference_build_lm_head(C, V)
    input_ids = torch.randint(0, V, (B, L))
    expected_hidden = model(input_ids, is_training=True)
    expected_logits = head(expected_hidden)

    out = call_learner(forward_to_logits, model, head, input_ids, name="forward_to_logits",
                       diagnose=lambda exc: diagnose_forward(exc, input_ids))
    if not isinstance(out, tuple) or len(out) != 2:
        raise Failed("forward_to_logits 应返回两个值 (hidden_states, logits)，"
                     f"实际返回的是 {describe_value(out)}。",
                     "最后一行写 return hidden_states, logits。")
    hidden_states, logits = out
    if isinstance(hidden_states, tuple):
        raise Failed("hidden_states 是一个 tuple：训练路径应直接返回张量。",
                     "调用 model(input_ids, is_training=True)，不要传 use_cache=True。")
    for name, tensor in (("hidden_states", hidden_states), ("logits", logits)):
        if not isinstance(tensor, torch.Tensor):
            if tensor is None:
                raise Todo(f"forward_to_logits 返回的 {name} 还是 None。")
            raise Failed(f"{name} 应是张量，实际是 {describe_value(tensor)}。",
                         "hidden_states = model(input_ids, is_training=True)；"
                         "logits = lm_head(hidden_states)。")
    if tuple(hidden_states.shape) != (B, L, C):
        raise Failed(f"hidden_states 形状是 {tuple(hidden_states.shape)}，应为 (B, L, hidden_size) = "
                     f"{(B, L, C)}。",
                     "hidden_states 是骨干网络 model(input_ids, is_training=True) 的输出。")
    if tuple(logits.shape) == (B, L, C) and C != V:
        raise Failed(f"logits 的形状是 {tuple(logits.shape)}，和 hidden_states 一样：还没过 lm_head。",
                     "logits = lm_head(hidden_states)，最后一维应变成 vocab_size。")
    if tuple(logits.shape) != (B, L, V):
        raise Failed(f"logits 形状是 {tuple(logits.shape)}，应为 (B, L, vocab_size) = {(B, L, V)}。",
                     "logits = lm_head(hidden_states)：对每个位置把 hidden_size 维映射到 vocab_size 维。")
    if not torch.allclose(hidden_states, expected_hidden, atol=1e-5):
        raise Failed("hidden_states 的数值与 model(input_ids, is_training=True) 的输出不一致。",
                     "直接把传进来的 input_ids 交给传进来的 model，不要改动它们。")
    probs_like = torch.allclose(logits.sum(-1), torch.ones(B, L), atol=1e-4)
    if probs_like:
        raise Failed("logits 每个位置的和都是 1：你对它做了 softmax。",
                     "logits 是未归一化的分数，直接返回 lm_head(hidden_states)；"
                     "softmax 只在需要概率时再做（cross_entropy 内部会做）。")
    if not torch.allclose(logits, expected_logits, atol=1e-5):
        raise Failed("logits 的形状对，但数值不等于 lm_head(hidden_states)。",
                     "用传进来的 lm_head 作用在 hidden_states 上，不要新建层、不要额外变换。")


def diagnose_forward(exc: Exception, input_ids: torch.Tensor):
    text = str(exc)
    long_input = "Long" in text or "same dtype" in text or "scalar type" in text
    shape_input = f"({input_ids.shape[0]}x{input_ids.shape[1]}" in text.replace(" ", "")
    if long_input or shape_input:
        return ("lm_head 作用在了 input_ids（整数 token id）上。",
                "lm_head 的输入是骨干网络输出的 hidden_states：logits = lm_head(hidden_states)。")
    if "mat1 and mat2 shapes cannot be multiplied" in text:
        return (f"矩阵乘法形状不匹配：{text.splitlines()[0]}。",
                "lm_head 的输入最后一维必须是 hidden_size：logits = lm_head(hidden_states)。")
    return None

"""Self-check of exercise 1.3: the learner's DIYForCausalLM class."""

from __future__ import annotations

import torch
from torch import nn

from ...backbone import backbone_class
from ...causal_lm import DIYForCausalLM as ReferenceCausalLM
from ...config import DIYConfig
from ...errors import DIYInputError, describe_value
from .report import Failed, Todo, call_learner, run_check

SMALL = (97, 1, 32, 2, 16, 0.0)  # vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout
COURSE = (6400, 2, 256, 4, 128, 0.1)


LOGITS_ONLY_NOTE = ("（按学习计划，你的类在 use_cache=True 时只返回 logits——这一步可以这样；"
                    "第三步生成时要返回 (logits, presents)。后面用到 presents 的单元格会临时替你补上。）")


def with_presents(cls):
    """The learner's class, plus presents when use_cache=True (the plan lets step 1 skip them)."""

    class WithPresents(cls):
        def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                    is_training=True):
            out = super().forward(input_ids, seq_lengths, past_key_values, use_cache, is_training)
            if use_cache and isinstance(out, torch.Tensor):
                hidden_states, presents = self.model(input_ids, seq_lengths, past_key_values,
                                                     True, is_training)
                return self.lm_head(hidden_states), presents
            return out

    WithPresents.__name__ = WithPresents.__qualname__ = cls.__name__
    return WithPresents


def check_causal_lm(cls):
    """Check exercise 1.3; return the class to use from here on (yours, or the reference)."""
    state = {"logits_only": False}

    def body() -> str:
        clm = construct(cls, SMALL)
        check_structure(clm, SMALL)
        reference = same_weights_reference(clm, SMALL)
        check_training_path(clm, reference)
        check_seq_lengths_passed(clm, reference)
        state["logits_only"] = check_cached_path(clm, reference)
        course = construct(cls, COURSE)
        check_structure(course, COURSE)
        logits = call_learner(course.eval(), torch.randint(0, 6400, (2, 10)), is_training=False,
                              name="forward")
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2, 10, 6400):
            raise Failed(f"课程配置下 logits 应为 (2, 10, 6400)，得到 {describe_value(logits)}。",
                         "不要在类里写死任何尺寸，全部用构造函数的参数。")
        if state["logits_only"]:
            return ("结构（self.model + self.lm_head）、训练路径、seq_lengths、推理路径的 logits "
                    f"都与参考实现逐元素一致；课程配置 (2, 10) → (2, 10, 6400)。{LOGITS_ONLY_NOTE}")
        return ("结构（self.model + self.lm_head）、训练路径、seq_lengths、推理路径与 KV cache "
                "都与参考实现逐元素一致；课程配置 (2, 10) → (2, 10, 6400)。")

    result = run_check("1.3", body, cls, ReferenceCausalLM)
    if result is cls and state["logits_only"]:
        return with_presents(cls)
    return result


def construct(cls, args):
    if cls is None:
        raise Todo("DIYForCausalLM 还没有定义。")

    def diagnose(exc):
        if isinstance(exc, TypeError) and ("argument" in str(exc)):
            return (f"构造 DIYForCausalLM{args} 失败：{exc}。",
                    "__init__ 的参数与 DIYModel 相同且同序：(vocab_size, num_layers, hidden_size, "
                    "num_heads, max_seq_len, dropout=0.1)。")
        return None

    clm = call_learner(cls, *args, name="DIYForCausalLM(...)", diagnose=diagnose)
    if not isinstance(clm, nn.Module):
        raise Failed("DIYForCausalLM 应继承 nn.Module。", "class DIYForCausalLM(nn.Module): ...")
    return clm


def check_structure(clm, args) -> None:
    vocab_size, hidden_size = args[0], args[2]
    children = dict(clm.named_children())
    backbone = backbone_class()  # diy.DIYModel, or the learner's own (DIY_BACKBONE)
    if "model" not in children or not isinstance(children["model"], backbone):
        found = ", ".join(f"self.{n}" for n in children) or "没有任何子模块"
        raise Failed(f"没有找到 self.model（DIYModel 骨干网络）；现有子模块：{found}。",
                     "在 __init__ 里写 self.model = DIYModel(...)：后面的步骤和 state_dict 的键 "
                     "model.* 都依赖这个名字。")
    if "lm_head" not in children or not isinstance(children["lm_head"], nn.Linear):
        raise Failed("没有找到 self.lm_head（nn.Linear）。",
                     "在 __init__ 里写 self.lm_head = nn.Linear(hidden_size, vocab_size, bias=False)。")
    head, model = clm.lm_head, clm.model
    if head.bias is not None:
        raise Failed("self.lm_head 带了 bias。", "nn.Linear(hidden_size, vocab_size, bias=False)。")
    if (head.in_features, head.out_features) != (hidden_size, vocab_size):
        raise Failed(f"DIYForCausalLM{args} 的 lm_head 是 nn.Linear({head.in_features}, "
                     f"{head.out_features})，应为 nn.Linear({hidden_size}, {vocab_size})。",
                     "用构造函数的 hidden_size 和 vocab_size，不要写死数字，也不要写反。")
    c = getattr(model, "config", None)  # the reference's; a learner's backbone may have none
    got = (c.vocab_size, c.num_layers, c.hidden_size, c.num_heads, c.max_seq_len, c.dropout) \
        if isinstance(c, DIYConfig) else tuple(args)
    if got != tuple(args):
        raise Failed(f"self.model 的配置 {got} 与传入的参数 {tuple(args)} 不一致。",
                     "把 __init__ 收到的参数按同样顺序原样交给 DIYModel(...)。")
    keys = set(clm.state_dict())
    extra = sorted(k for k in keys if not (k.startswith("model.") or k == "lm_head.weight"))
    if extra:
        raise Failed(f"state_dict 里多了不属于 model.* / lm_head.weight 的参数：{extra[:3]}。",
                     "DIYForCausalLM 只包含骨干 self.model 和输出层 self.lm_head。")


def same_weights_reference(clm, args):
    """A reference DIYForCausalLM holding exactly the learner's weights, both in eval mode."""
    reference = ReferenceCausalLM(*args)  # the same backbone class (DIY_BACKBONE or diy's)
    reference.load_state_dict(clm.state_dict(), strict=True)
    clm.eval()
    return reference.eval()


def forward(clm, *args, **kwargs):
    def diagnose(exc):
        text = str(exc)
        if "must be Tensor, not tuple" in text or "tuple" in text and "attribute" in text:
            return ("推理路径（use_cache=True）上 self.model 返回的是 (hidden_states, presents)，"
                    "你把这个 tuple 直接交给了 lm_head。",
                    "先拆包：hidden_states, presents = out，再 logits = self.lm_head(hidden_states)，"
                    "最后 return logits, presents。")
        if isinstance(exc, DIYInputError) and "只能用在推理路径上" in text:
            return ("is_training 没有原样传给 self.model：推理调用 (is_training=False, use_cache=True) "
                    "到了骨干网络却变成了训练路径。",
                    "self.model(input_ids, seq_lengths=seq_lengths, past_key_values=past_key_values, "
                    "use_cache=use_cache, is_training=is_training)。")
        if isinstance(exc, TypeError) and "argument" in text:
            return (f"forward 的参数不对：{exc}。",
                    "forward(self, input_ids, seq_lengths=None, past_key_values=None, "
                    "use_cache=False, is_training=True)。")
        return None

    return call_learner(clm, *args, name="DIYForCausalLM.forward", diagnose=diagnose, **kwargs)


PASS_THROUGH_FIX = ("把 forward 的参数全部原样传给骨干：self.model(input_ids, seq_lengths=seq_lengths, "
                    "past_key_values=past_key_values, use_cache=use_cache, is_training=is_training)。")


def check_training_path(clm, reference) -> None:
    input_ids = torch.randint(0, 97, (3, 6))
    clm.train(), reference.train()  # the default is_training=True goes with train() (dropout 0)
    out = forward(clm, input_ids)
    expected = reference(input_ids)
    clm.eval(), reference.eval()
    if isinstance(out, tuple):
        raise Failed("训练路径（默认参数）返回了 tuple；应只返回 logits。",
                     "只有 use_cache=True 时才返回 (logits, presents)，否则 return logits。")
    if not isinstance(out, torch.Tensor):
        raise Failed(f"forward 应返回 logits 张量，实际返回 {describe_value(out)}。", "return logits。")
    if tuple(out.shape) == (3, 6, 32):
        raise Failed("forward 返回的是 hidden_states (B, L, hidden_size)，不是 logits。",
                     "最后一步 logits = self.lm_head(hidden_states)，然后 return logits。")
    if tuple(out.shape) != (3, 6, 97):
        raise Failed(f"logits 形状是 {tuple(out.shape)}，应为 (B, L, vocab_size) = (3, 6, 97)。",
                     "logits = self.lm_head(self.model(input_ids, ...))。")
    if torch.allclose(out.sum(-1), torch.ones(3, 6), atol=1e-4):  # rows summing to 1: softmaxed
        raise Failed("logits 做了 softmax。", "forward 直接返回 lm_head 的输出（未归一化的分数）。")
    if not torch.allclose(out, expected, atol=1e-5):
        raise Failed("训练路径的 logits 数值与「self.model → self.lm_head」不一致。",
                     "forward 里只做两件事：hidden_states = self.model(...)；"
                     "logits = self.lm_head(hidden_states)。")


def check_seq_lengths_passed(clm, reference) -> None:
    input_ids = torch.randint(1, 97, (2, 8))
    input_ids[1, 5:] = 0
    seq_lengths = torch.tensor([8, 5])
    clm.train(), reference.train()  # the default is_training=True goes with train() (dropout 0)
    out = forward(clm, input_ids, seq_lengths=seq_lengths)
    if not isinstance(out, torch.Tensor):
        raise Failed(f"传入 seq_lengths 时 forward 返回了 {describe_value(out)}，应返回 logits 张量。",
                     PASS_THROUGH_FIX)
    expected = reference(input_ids, seq_lengths=seq_lengths)
    unpadded = reference(input_ids)
    clm.eval(), reference.eval()
    if torch.allclose(out, expected, atol=1e-5):
        return
    if torch.allclose(out, unpadded, atol=1e-5):
        raise Failed("seq_lengths 没有传给 self.model：padding 位置的输出与传了 seq_lengths 时不同。",
                     PASS_THROUGH_FIX)
    raise Failed("传入 seq_lengths 时 logits 与参考实现不一致。", PASS_THROUGH_FIX)


def check_cached_path(clm, reference) -> bool:
    """The inference path; True when the class returns only logits with use_cache=True (what
    the study plan allows at step 1), after checking those logits."""
    input_ids = torch.randint(0, 97, (2, 7))
    out = forward(clm, input_ids[:, :6], use_cache=True, is_training=False)
    if isinstance(out, torch.Tensor):
        expected = reference(input_ids[:, :6], is_training=False)
        if tuple(out.shape) != tuple(expected.shape) or \
                not torch.allclose(out, expected, atol=1e-5):
            raise Failed(f"use_cache=True, is_training=False 时返回的 logits {describe_value(out)} "
                         "与参考实现不一致。", PASS_THROUGH_FIX)
        return True
    if not isinstance(out, tuple) or len(out) != 2:
        raise Failed(f"use_cache=True 时应返回 (logits, presents)，实际返回 {describe_value(out)}。",
                     "return logits, presents。")
    logits, presents = out
    expected_logits, expected_presents = reference(input_ids[:, :6], use_cache=True,
                                                   is_training=False)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2, 6, 97):
        raise Failed(f"(logits, presents) 中的 logits 应为 (2, 6, 97)，得到 {describe_value(logits)}。",
                     "先拆包 hidden_states, presents = self.model(...)，再 logits = "
                     "self.lm_head(hidden_states)。")
    if not torch.allclose(logits, expected_logits, atol=1e-5):
        raise Failed("推理路径的 logits 与参考实现不一致。", PASS_THROUGH_FIX)
    if not isinstance(presents, (list, tuple)) or len(presents) != len(expected_presents):
        raise Failed("presents 应是 self.model 返回的每层 (k, v) 列表，原样返回。",
                     "hidden_states, presents = self.model(...)；return logits, presents。")
    # One decoding step with the cache must equal the full forward's last position.
    step = forward(clm, input_ids[:, 6:], past_key_values=presents, use_cache=True,
                   is_training=False)
    step_logits = step[0] if isinstance(step, tuple) else step
    full = reference(input_ids, is_training=False)
    if not isinstance(step_logits, torch.Tensor) or tuple(step_logits.shape) != (2, 1, 97):
        raise Failed(f"带 past_key_values 解码一个 token 时 logits 应为 (2, 1, 97)，"
                     f"得到 {describe_value(step_logits)}。", PASS_THROUGH_FIX)
    if not torch.allclose(step_logits[:, 0], full[:, 6], atol=1e-4):
        no_past = reference(input_ids[:, 6:], is_training=False)
        if torch.allclose(step_logits, no_past, atol=1e-5):
            raise Failed("past_key_values 没有传给 self.model：解码时看不到前面的 token。",
                         PASS_THROUGH_FIX)
        raise Failed("带缓存解码一个 token 的 logits 与完整前向不一致。", PASS_THROUGH_FIX)
    plain = forward(clm, input_ids, is_training=False)
    if isinstance(plain, tuple):
        raise Failed("is_training=False 但 use_cache=False 时返回了 tuple；此时应只返回 logits。",
                     "只有 use_cache=True 时才 return logits, presents。")
    return False

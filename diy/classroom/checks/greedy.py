"""Self-check of exercise 2.3: greedy_continue(model, input_ids, max_new_tokens).

The simplest generation loop, no cache: eval mode, then repeatedly run the (cropped) sequence,
take the last position's logits, argmax over the vocabulary, append.
"""

from __future__ import annotations

import torch

from ...causal_lm import DIYForCausalLM
from ...config import DIYConfig
from ...errors import DIYInputError
from .contract import check_grad_mode, check_leaves_eval_mode, guarded, is_long_tensor
from .report import Failed, call_learner, run_check

EXERCISE = "2.3"
# max_seq_len 12 and prompts of 5 + 15 new tokens: the loop has to crop.
CONFIG = DIYConfig(vocab_size=61, hidden_size=32, num_layers=1, num_heads=2, max_seq_len=12,
                   dropout=0.2)


def reference_greedy_continue(model, input_ids, max_new_tokens):
    """input_ids (B, L) -> (B, L + max_new_tokens), each new token the argmax of the last
    position, the model seeing at most max_seq_len tokens."""
    model.eval()  # dropout off: the same input gives the same output
    with torch.no_grad():
        for _ in range(max_new_tokens):
            context = input_ids[:, -model.config.max_seq_len:]  # (B, <= max_seq_len)
            logits = model(context)  # (B, l, V)
            next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)  # (B, 1)
            input_ids = torch.cat([input_ids, next_id], dim=1)  # (B, L + 1)
    return input_ids


def variant(model, input_ids, max_new_tokens, *, position=-1, dim=-1):
    model.eval()
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = model(input_ids[:, -model.config.max_seq_len:])  # (B, l, V)
            if dim == -1:
                next_id = logits[:, position, :].argmax(dim=-1, keepdim=True)  # (B, 1)
            else:  # argmax over the positions: an index < l, not a token id
                next_id = logits[:, -1:, :].argmax(dim=1)[:, :1]  # (B, 1)
            input_ids = torch.cat([input_ids, next_id], dim=1)
    return input_ids


HINTS = {
    "first_position": ("每一步取的是第 0 个位置的 logits：那是「第一个 token 之后」的预测，不是最后一个。",
                       "取最后一个位置：logits[:, -1, :]，再 argmax(dim=-1)。"),
    "wrong_dim": ("argmax 沿错了维度：得到的是位置编号，不是词表里的 token id。",
                  "logits[:, -1, :] 的形状是 (B, vocab_size)，沿最后一维 argmax(dim=-1)。"),
}


def diagnose_new_token(exc: Exception):
    """The new token's shape, in every greedy loop (2.3, 3.1a, 3.1b)."""
    text = str(exc)
    if "Tensors must have same number of dimensions: got 2 and 1" in text:
        return ("新 token 是 (B,)，接不到 (B, L) 的 input_ids 后面：argmax(dim=-1) 少了 keepdim=True，"
                "把最后一维去掉了。",
                "next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)（形状 (B, 1)），"
                "再 torch.cat([input_ids, next_id], dim=1)。")
    if "Tensors must have same number of dimensions" in text or "Sizes of tensors must match" in text:
        return ("拼接时形状对不上：新 token 应是 (B, 1)，才能沿 dim=1 接到 (B, L) 后面。",
                "next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)，"
                "再 torch.cat([input_ids, next_id], dim=1)。")
    return None


def diagnose_greedy(exc: Exception):
    if isinstance(exc, DIYInputError) and "max_seq_len" in str(exc):
        return ("送进模型的序列超过了它的 max_seq_len：没有截断，或者截断的长度写死了"
                "（自检用的小模型 max_seq_len 只有 12，写死 128 也会超）。",
                "每一步只送最后 max_seq_len 个 token：input_ids[:, -model.config.max_seq_len:]。")
    return diagnose_new_token(exc)


def check_greedy_continue(greedy_continue):
    """Check exercise 2.3; return the greedy_continue to use from here on."""
    return check_greedy_loop(greedy_continue, EXERCISE, "greedy_continue", CONFIG,
                             "在只有 max_seq_len=12 的小模型上续写 15 个 token（需要裁剪）",
                             reference_greedy_continue)


def check_greedy_loop(greedy_continue, exercise: str, name: str, config: DIYConfig,
                      first_case: str, reference, diagnose=diagnose_greedy):
    """The checks shared by 2.3 (with cropping) and 3.1a (without a cache, within max_seq_len;
    its own ``diagnose``, since there a too-long sequence is not a missing crop)."""

    @guarded
    def body() -> str:
        for batch, length, new in ((1, 5, 15), (2, 3, 4)):
            torch.manual_seed(0)
            model = DIYForCausalLM(config).train()  # handed over in train mode on purpose
            prompt = torch.randint(4, config.vocab_size, (batch, length),
                                   generator=torch.Generator().manual_seed(batch))
            before = prompt.clone()
            outputs = []
            for seed in (1, 2):
                model.train()
                torch.manual_seed(seed)  # different dropout masks if dropout were on
                with check_grad_mode(name):
                    out = call_learner(greedy_continue, model, prompt.clone(), new,
                                       name=name, diagnose=diagnose)
                outputs.append(out)
            out = outputs[0]
            if not isinstance(out, torch.Tensor):
                raise Failed(f"{name} 应返回 (B, L + max_new_tokens) 的张量，"
                             f"实际返回 {type(out).__name__}。", "最后 return input_ids。")
            if tuple(out.shape) != (batch, length + new):
                raise Failed(f"输入 {tuple(prompt.shape)}、max_new_tokens={new} 时输出形状是 "
                             f"{tuple(out.shape)}，应为 {(batch, length + new)}。",
                             "循环 max_new_tokens 次，每次在 dim=1 接上一个 (B, 1) 的新 token；"
                             "返回包括提示词在内的整段。")
            if not is_long_tensor(out):
                raise Failed(f"返回的 token id 的 dtype 是 {out.dtype}，应为 torch.long："
                             "浮点数的 id 在 tokenizer.decode 和下一次前向时都会出错。",
                             "argmax 本来就返回 long；不要 .float()，拼接的两边都用 long。")
            if not torch.equal(out[:, :length], before):
                raise Failed("输出的开头不是原来的提示词。", "把新 token 接在 input_ids 后面，整段返回。")
            if not torch.equal(outputs[0], outputs[1]):
                raise Failed("同样的输入，两次生成的结果不一样：dropout 还开着（模型在 train 模式）。",
                             "函数开头调用 model.eval()。")
            check_leaves_eval_mode(model, greedy_continue, (model, prompt.clone(), new), name,
                                   diagnose=diagnose)
            expected = reference_greedy_continue(model, prompt.clone(), new)
            if torch.equal(out, expected):
                continue
            for mistake, kwargs in (("first_position", dict(position=0)), ("wrong_dim", dict(dim=1))):
                if torch.equal(out, variant(model, prompt.clone(), new, **kwargs)):
                    raise Failed(*HINTS[mistake])
            raise Failed("生成的 id 与参考的贪心循环不一致。",
                         "每一步：context = input_ids[:, -max_seq_len:] → logits = model(context) → "
                         "logits[:, -1, :].argmax(dim=-1, keepdim=True) → 接到末尾。")
        return (f"{first_case}、以及 batch 为 2 时，结果都与参考一致，且两次生成相同（eval 模式）。")

    return run_check(exercise, body, greedy_continue, reference)

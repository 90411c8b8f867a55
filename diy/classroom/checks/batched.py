"""Self-checks of lesson 3.3: left_pad (3.3a), position ids from an attention_mask (3.3b) and
the learner's own small generate (3.3c)."""

from __future__ import annotations

import torch

from ...backbone import accepts_attention_mask
from ...causal_lm import DIYForCausalLM
from ...config import DIYConfig
from ...errors import describe_value
from ...generation import left_pad as reference_left_pad
from ...generation import position_ids_from_mask as reference_position_ids
from ...generation import sample_next_token
from .calls import CallLog, check_calls  # the same call recorder as 3.1b
from .contract import (
    check_grad_mode,
    check_leaves_eval_mode,
    check_unchanged,
    guarded,
    is_long_tensor,
)
from .report import Failed, call_learner, run_check

# ---------------------------------------------------------------------------------------------
# 3.3a  left_pad(prompts, pad_token_id) -> (input_ids, attention_mask)
# ---------------------------------------------------------------------------------------------


def two_tensors(result, name: str):
    """(input_ids, attention_mask) from what the learner returned, or a Failed naming why not."""
    if not (isinstance(result, tuple) and len(result) == 2):
        raise Failed(f"{name} 应返回 (input_ids, attention_mask) 两个张量，实际返回 {describe_value(result)}。",
                     "return input_ids, attention_mask。")
    if not all(isinstance(t, torch.Tensor) for t in result):
        raise Failed(f"{name} 返回的不是两个张量（{describe_value(result[0])}、{describe_value(result[1])}）：列表不能直接"
                     "送进模型。",
                     "用 torch.full((B, width), pad_token_id, dtype=torch.long) 建好张量再填。")
    return result


def check_left_pad(left_pad):
    """Check exercise 3.3a; return the left_pad to use from here on."""

    @guarded
    def body() -> str:
        # the longest prompt is not the first, and one prompt holds the pad id itself
        prompts = [torch.tensor([8]), torch.tensor([5, 0, 7]), torch.tensor([9, 10])]
        originals = [p.clone() for p in prompts]
        with check_grad_mode("left_pad"):
            result = call_learner(left_pad, prompts, 0, name="left_pad", diagnose=diagnose_left_pad)
        for given, original in zip(prompts, originals, strict=True):
            check_unchanged(given, original, "left_pad", "提示词")
        input_ids, attention_mask = two_tensors(result, "left_pad")
        expected_ids, expected_mask = reference_left_pad(prompts, 0)
        if tuple(input_ids.shape) == (3, 1):
            raise Failed(*FIRST_WIDTH)
        if tuple(input_ids.shape) != (3, 3) or tuple(attention_mask.shape) != (3, 3):
            raise Failed(f"形状应都是 (3, 3)（3 条提示词、最长 3 个 token），实际 "
                         f"{tuple(input_ids.shape)} 和 {tuple(attention_mask.shape)}。",
                         "宽度 = 最长提示词的长度，每条一行。")
        if input_ids.dtype != torch.long:
            raise Failed(f"input_ids 的 dtype 是 {input_ids.dtype}，应为 torch.long（token id 是整数）。",
                         "torch.full(..., dtype=torch.long)。")
        right = torch.tensor([[8, 0, 0], [5, 0, 7], [9, 10, 0]])
        if torch.equal(input_ids, right):
            raise Failed("padding 放在了右边：新 token 是接在最右边的，右 padding 会让它接在 padding 后面，"
                         "而且每行最后一个位置不再是真实 token。",
                         "左 padding：row[width - len(p):] = p，前面填 pad_token_id。")
        if not torch.equal(input_ids, expected_ids):
            raise Failed(f"input_ids 不对：得到 {input_ids.tolist()}，应为 {expected_ids.tolist()}。",
                         "每行右对齐：前面是 pad_token_id，后面是提示词。")
        if attention_mask.dtype not in (torch.long, torch.int32, torch.bool):
            raise Failed(f"attention_mask 的 dtype 是 {attention_mask.dtype}：它是 0/1 的开关。",
                         "用 torch.long（transformers 的习惯）或 torch.bool。")
        if torch.equal(attention_mask.long(), 1 - expected_mask):
            raise Failed("attention_mask 反了：1 表示真实 token，0 表示 padding（transformers 的约定）。",
                         "真实 token 的位置是 1，padding 是 0。")
        if torch.equal(attention_mask.long(), (input_ids != 0).long()):
            raise Failed("attention_mask 是从 input_ids != pad_token_id 推出来的：提示词里本身出现 "
                         "pad_token_id 这个 id 时（这里第 1 条是 [5, 0, 7]，pad_token_id=0），真实的 token "
                         "被当成了 padding。",
                         "按每条提示词的长度填：attention_mask[row, width - len(p):] = 1，其余为 0。")
        if not torch.equal(attention_mask.long(), expected_mask):
            raise Failed(f"attention_mask 不对：得到 {attention_mask.tolist()}，应为 {expected_mask.tolist()}。",
                         "和 input_ids 同形状，真实 token 为 1、padding 为 0。")
        other_ids, _ = two_tensors(call_learner(left_pad, prompts, 99, name="left_pad"), "left_pad")
        if not torch.equal(other_ids, reference_left_pad(prompts, 99)[0]):
            raise Failed("pad_token_id=99 时 padding 位置不是 99：padding 的值写死了（比如 torch.zeros）。",
                         "用传进来的 pad_token_id：torch.full((B, width), pad_token_id, dtype=torch.long)。")
        return "三条不同长度的提示词左 padding 成 (3, 3)（pad_token_id 为 0 和 99），attention_mask 的 1/0 正确。"

    return run_check("3.3a", body, left_pad, reference_left_pad)


FIRST_WIDTH = ("宽度取的是第一条提示词的长度：第一条不一定最长（这里第一条只有 1 个 token，"
               "最长的有 3 个）。",
               "width = max(len(p) for p in prompts)：最长提示词的长度。")


def diagnose_left_pad(exc: Exception):
    """A row longer than the width (the width of the first prompt) fails when it is written."""
    text = str(exc)
    if "must match the existing size" in text or "expanded size" in text or \
            "could not broadcast" in text or "does not match the broadcast shape" in text:
        return FIRST_WIDTH
    return None


# ---------------------------------------------------------------------------------------------
# 3.3b  position_ids_from_mask(attention_mask) -> (B, L) long
# ---------------------------------------------------------------------------------------------

MASK = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1],
                     [0, 1, 1, 1, 1, 1]])


def check_position_ids(position_ids_from_mask):
    """Check exercise 3.3b; return the position_ids_from_mask to use from here on."""

    @guarded
    def body() -> str:
        expected = reference_position_ids(MASK)
        real = MASK.bool()
        for mask in (MASK.clone(), MASK.bool()):
            given = mask.clone()
            with check_grad_mode("position_ids_from_mask"):
                out = call_learner(position_ids_from_mask, given, name="position_ids_from_mask")
            check_unchanged(given, mask, "position_ids_from_mask", "attention_mask")
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(MASK.shape):
                raise Failed(f"应返回和 attention_mask 同形状 {tuple(MASK.shape)} 的张量，实际是 {describe_value(out)}。",
                             "每一行、每一个位置一个位置编号。")
            if torch.equal(out.long(), torch.arange(MASK.shape[1]).expand_as(MASK)):
                raise Failed("每一行的位置都是 0, 1, 2, …：没有看 attention_mask。左 padding 的行，"
                             "第一个真实 token 应是位置 0，和它单独生成时一样。",
                             "对 attention_mask 沿每一行累加：attention_mask.cumsum(dim=-1) - 1。")
            if torch.equal(out[real].long(), expected[real] + 1):
                raise Failed("位置从 1 开始数了：cumsum 数到第一个真实 token 时是 1。",
                             "attention_mask.cumsum(dim=-1) - 1。")
            over_batch = MASK.long().cumsum(dim=0) - 1
            if torch.equal(out.long(), over_batch) or torch.equal(out.long(), over_batch.clamp(min=0)):
                raise Failed("沿错了维度累加：cumsum(dim=0) 是在 batch 的各行之间累加。",
                             "每一行自己累加：cumsum(dim=-1)。")
            if not torch.equal(out[real].long(), expected[real]):
                raise Failed(f"真实 token 的位置不对：得到 {out.tolist()}，第 0 行应为 …, 0, 1, 2, 3。",
                             "attention_mask.cumsum(dim=-1) - 1，再 clamp(min=0)。")
            if bool((out[~real] < 0).any()) or bool((out[~real] >= MASK.shape[1]).any()):
                raise Failed("padding 位置的编号是负数（cumsum − 1 在第一个真实 token 之前是 −1）："
                             "这个模型碰巧不出错（cos[-1] 取到表的最后一行，padding 的输出也没人读），"
                             "可 −1 不是位置，用 index_select 或 nn.Embedding 查表时会直接报错。",
                             "再 .clamp(min=0)：padding 的位置随便给一个合法的编号就行。")
            if not is_long_tensor(out):
                raise Failed(f"位置编号的 dtype 是 {out.dtype}，应为 torch.long：它要当作下标去查 cos/sin 表。",
                             "bool 或 long 的 mask 先 .long() 再 cumsum（浮点 mask 的 cumsum 是浮点数）。")
        return ("4 行左 padding 的 mask（long 和 bool 两种）：每行第一个真实 token 是位置 0、往后逐个加 1，"
                "padding 的位置不是负数，dtype long。")

    return run_check("3.3b", body, position_ids_from_mask, reference_position_ids)


# ---------------------------------------------------------------------------------------------
# 3.3c  my_generate(model, input_ids, max_new_tokens, pick, attention_mask, eos_token_id,
#                   pad_token_id) -> (B, L + n)
# ---------------------------------------------------------------------------------------------

def reference_my_generate(model, input_ids, max_new_tokens, pick, attention_mask=None,
                          eos_token_id=None, pad_token_id=0):
    """A small generate: prefill once, then each step pick(scores (B, V)) -> (B,) and feed only
    that token with the cache; a row that produced eos gets pad_token_id from then on, and the
    loop stops when every row has. Returns the prompt and the new ids, (B, L + n)."""
    model.eval()
    ids, mask = input_ids, attention_mask  # (B, L), (B, L) or None
    unfinished = torch.ones(ids.shape[0], dtype=torch.bool)  # (B,)
    with torch.no_grad():
        logits, past = model(ids, use_cache=True, is_training=False,
                             attention_mask=mask)  # prefill: (B, L, V)
        for _ in range(max_new_tokens):
            next_id = pick(logits[:, -1, :])  # (B,)
            if eos_token_id is not None:  # finished rows get padding
                next_id = torch.where(unfinished, next_id, torch.full_like(next_id, pad_token_id))
            ids = torch.cat([ids, next_id[:, None]], dim=1)  # (B, L + 1)
            if eos_token_id is not None:
                unfinished &= next_id != eos_token_id
                if not unfinished.any():
                    break
            if mask is not None:
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)  # (B, L + 1)
            logits, past = model(next_id[:, None], past_key_values=past, use_cache=True,
                                 is_training=False, attention_mask=mask)  # (B, 1, V)
    return ids


GENERATE_CONFIG = DIYConfig(vocab_size=61, hidden_size=32, num_layers=2, num_heads=2,
                            max_seq_len=40, dropout=0.2)


def generate_variant(model, input_ids, max_new_tokens, pick, attention_mask=None,
                     eos_token_id=None, pad_token_id=0, *, mistake):
    """reference_my_generate with one known mistake (for naming it)."""
    mask = None if mistake == "ignores_mask" else attention_mask
    if mistake == "mask_from_ids":
        mask = (input_ids != pad_token_id).long()
    if mistake in ("no_padding_after_eos", "stops_at_first_eos", "never_breaks"):
        out = reference_my_generate(model, input_ids, max_new_tokens, pick, mask)
        if mistake == "no_padding_after_eos":
            return out
        L, rows = input_ids.shape[1], out[:, input_ids.shape[1]:]
        hits = (rows == eos_token_id).any(dim=0).nonzero()
        if mistake == "stops_at_first_eos":
            return out if len(hits) == 0 else out[:, :L + int(hits[0]) + 1]
        padded = reference_my_generate(model, input_ids, max_new_tokens, pick, mask,
                                       eos_token_id, pad_token_id)
        tail = torch.full((out.shape[0], L + max_new_tokens - padded.shape[1]), pad_token_id)
        return torch.cat([padded, tail], dim=1)
    return reference_my_generate(model, input_ids, max_new_tokens, pick, mask, eos_token_id,
                                 pad_token_id)


GENERATE_HINTS = {
    "mask_from_ids": ("attention_mask 是从 input_ids != pad_token_id 自己算出来的：提示词里本身有 pad_token_id "
                      "这个 id 时（这里第 0 条提示词 [7, 0, 9, 10] 里有 0），真实的 token 被当成了 padding。",
                      "用传进来的 attention_mask（没有就是 None），每接一个新 token 在它右边接一列 1。"),
    "ignores_mask": ("左 padding 的 batch 结果不对：attention_mask 没有传给模型，真实 token 看到了 padding"
                     "（padding 被当成了提示词的一部分）。",
                     "prefill 和之后每一步都传 attention_mask=mask；每步 mask = torch.cat([mask, 一列 1], dim=1)。"),
    "no_padding_after_eos": ("某一行生成了 eos 之后还在接着生成：结束了的行之后应该只接 pad_token_id。",
                             "记一个 unfinished (B,) 的 bool；next_id = torch.where(unfinished, next_id, pad_token_id)，"
                             "再 unfinished &= next_id != eos_token_id。"),
    "stops_at_first_eos": ("一行生成了 eos，整个 batch 都停了：其他还没结束的行也被截断了。",
                           "只有所有行都结束（not unfinished.any()）时才 break；结束了的行接 pad_token_id。"),
    "never_breaks": ("所有行都已经生成了 eos，循环还在继续（后面全是 padding）：应该提前停下，返回更短的结果。",
                     "每一步更新 unfinished 之后：if not unfinished.any(): break。"),
}


def diagnose_generate(exc: Exception):
    text = str(exc)
    if "cannot unpack" in text or "too many values to unpack" in text or \
            "not enough values to unpack" in text:
        return ("use_cache=True 时模型返回 (logits, presents) 两个值；没有 use_cache=True 就只有 logits。",
                "logits, past = model(ids, use_cache=True, is_training=False, attention_mask=mask)。")
    if "Tensors must have same number of dimensions" in text:
        return ("拼接时维数对不上：pick 返回的是 (B,)，要先变成 (B, 1) 才能接到 (B, L) 后面。",
                "torch.cat([ids, next_id[:, None]], dim=1)。")
    if "1 之后又是 0" in text:  # the masks the check hands over are all left padding
        return GENERATE_HINTS["mask_from_ids"]
    return None


def eos_cases(model, generator):
    """Prompts and an eos id for which row 0 ends early and row 1 never does, and a single
    prompt that ends after 3 new tokens, found from the reference's own greedy output."""
    greedy = lambda scores: scores.argmax(dim=-1)  # noqa: E731
    for _ in range(50):
        prompt = torch.randint(4, GENERATE_CONFIG.vocab_size, (2, 4), generator=generator)
        out = reference_my_generate(model, prompt, 10, greedy)[:, 4:]  # (2, 10)
        eos = int(out[0, 2])
        if eos not in out[1].tolist() and eos not in out[0, :2].tolist():
            return prompt, eos
    raise RuntimeError("no eos case found")  # the fixed seeds above always find one


def check_my_generate(my_generate):
    """Check exercise 3.3c; return the my_generate to use from here on."""

    def greedy(scores):
        return scores.argmax(dim=-1)

    @guarded
    def body() -> str:
        torch.manual_seed(0)
        model = DIYForCausalLM(GENERATE_CONFIG)
        # row 0 (the longest) holds the pad id 0 as a real token
        prompts = [torch.tensor([7, 0, 9, 10]), torch.tensor([11, 12]), torch.tensor([13, 14, 15])]
        padded, mask = reference_left_pad(prompts, 0)
        two, eos = eos_cases(model, torch.Generator().manual_seed(3))
        cases = [  # what, input_ids, max_new_tokens, pick, attention_mask, eos_token_id
            ("B = 1、贪心", padded[:1], 8, greedy, None, None),
            ("左 padding 的 batch（3 行）", padded, 6, greedy, mask, None),
            ("两行、一行先遇到 eos", two, 10, greedy, None, eos),
            ("一行、遇到 eos 就停", two[:1], 10, greedy, None, eos),
            ("采样（同一个种子的 generator）", padded, 6, "sample", mask, None),
        ]
        skipped = ""
        if not accepts_attention_mask(model.model):  # a learner's backbone (DIY_BACKBONE)
            # row 0 is the longest prompt (no padding): sampling is still checked on it alone
            cases = [case if case[4] is None else (case[0], case[1][:1], *case[2:4], None, case[5])
                     for case in cases if not case[0].startswith("左 padding")]
            skipped = "（你的骨干的 forward 没有 attention_mask：左 padding 的批量跳过了，采样只用一行）"
        for what, input_ids, new, pick, attention_mask, eos_id in cases:
            if pick == "sample":
                mine = torch.Generator().manual_seed(5)
                pick, again = (lambda s, g=mine: sample_next_token(s, 1.5, 5, None, g)), \
                    torch.Generator().manual_seed(5)
            model.train()  # handed over in train mode on purpose
            log = CallLog(model)
            torch.manual_seed(1)
            args = (model, input_ids.clone(), new, pick)
            try:
                with check_grad_mode("my_generate"):
                    out = call_learner(my_generate, *args, attention_mask=attention_mask,
                                       eos_token_id=eos_id, pad_token_id=0, name="my_generate",
                                       diagnose=diagnose_generate)
            finally:
                log.remove()
            check_calls(log.calls, "my_generate")  # eval mode; prefill once, then one token a call
            if what.startswith("采样"):
                pick = lambda s, g=again: sample_next_token(s, 1.5, 5, None, g)  # noqa: E731
            expected = reference_my_generate(model, input_ids, new, pick, attention_mask, eos_id)
            B, L = input_ids.shape
            if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != B:
                raise Failed(f"{what}：应返回 (B, L + 新 token 数) 的张量，实际是 {describe_value(out)}。",
                             "返回提示词加上新 token：torch.cat([ids, next_id[:, None]], dim=1)。")
            if out.shape[1] == expected.shape[1] - L and torch.equal(out, expected[:, L:]):
                raise Failed(f"{what}：只返回了新生成的 token，没有提示词。",
                             "返回提示词 + 新 token（和 model.generate 一样）。")
            if not is_long_tensor(out):
                raise Failed(f"返回的 token id 的 dtype 是 {out.dtype}，应为 torch.long。",
                             "pick 返回的就是 long；不要 .float()。")
            if torch.equal(out, expected):
                if what.startswith("B = 1"):
                    check_leaves_eval_mode(model, my_generate, args, "my_generate",
                                           attention_mask=attention_mask, eos_token_id=eos_id,
                                           pad_token_id=0, diagnose=diagnose_generate)
                continue
            mistakes = ["ignores_mask"] if attention_mask is not None else []
            if bool((input_ids == 0).any()):
                mistakes.append("mask_from_ids")
            if eos_id is not None:
                mistakes += ["no_padding_after_eos", "stops_at_first_eos", "never_breaks"]
            for mistake in mistakes:
                variant = generate_variant(model, input_ids, new, pick, attention_mask, eos_id, 0,
                                           mistake=mistake)
                if torch.equal(out, variant):
                    raise Failed(*GENERATE_HINTS[mistake])
            raise Failed(f"{what}：生成的 id 与参考不一致（形状 {tuple(out.shape)}，应为 {tuple(expected.shape)}）。",
                         "prefill 一次 → 每步 pick(logits[:, -1, :]) → 结束的行接 pad → 接到末尾 → "
                         "只送新 token、past_key_values 和变长的 attention_mask；全部结束就 break。")
        return ("贪心（B = 1）、左 padding 的 batch、一行先遇到 eos（之后补 pad）、全部遇到 eos 提前停下、"
                f"同一个种子的采样：结果都与参考逐 id 相同，返回 long。{skipped}")

    return run_check("3.3c", body, my_generate, reference_my_generate)

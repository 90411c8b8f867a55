"""Self-checks of 4.3a (the log-probability of a candidate line after a context: 下一句's score)
and 4.3b (the meter of a ci: its phrase lengths, 格律's measure)."""

from __future__ import annotations

import math
import re

import torch

from ...causal_lm import DIYForCausalLM
from ...config import DIYConfig
from ...errors import describe_value
from ...pretraining.measures import candidate_log_prob as reference_line_log_prob
from ...pretraining.measures import meter as reference_meter
from .contract import check_grad_mode
from .report import Failed, call_learner, run_check

CONFIG = DIYConfig(vocab_size=40, hidden_size=32, num_layers=1, num_heads=2, max_seq_len=32,
                   dropout=0.1)


def line_mistakes(model, context, candidate) -> dict:
    ids = torch.tensor([context + candidate])
    with torch.no_grad():
        logits = model(ids)[0].float()  # (T, V)
    log_probs = torch.log_softmax(logits, -1)
    start, n = len(context), len(candidate)
    target = ids[0, start:]
    take = lambda table, rows: float(table[rows].gather(1, target[:, None]).sum())  # noqa: E731
    return {
        "same_position": take(log_probs, slice(start, start + n)),
        "mean": take(log_probs, slice(start - 1, start - 1 + n)) / n,
        "probabilities": float(torch.softmax(logits, -1)[start - 1:start - 1 + n]
                               .gather(1, target[:, None]).sum()),
        "logits": take(logits, slice(start - 1, start - 1 + n)),
        "with_context": float(log_probs[:-1].gather(1, ids[0, 1:, None]).sum()),
    }


LINE_HINTS = {
    "same_position": ("取错了位置：第 t 个位置的输出预测的是第 t + 1 个 token，候选句第一个字的概率在上文最后一个位置上。",
                      "用 log_probs[start - 1 : start - 1 + n]（start = len(context_ids)），对每行取候选 token 那一列再求和。"),
    "mean": ("返回的是平均值，不是总和：四个候选一样长时排名相同，但它不再是这句话的 log 概率。",
             "对候选句每个 token 的 log 概率求和（sum），不要 mean。"),
    "probabilities": ("加起来的是概率，不是 log 概率：整句的概率是各个 token 概率的乘积，取 log 才变成相加。",
                      "用 torch.log_softmax(logits, dim=-1)，再把候选 token 的那些值相加。"),
    "logits": ("加起来的是 logits，没有做 softmax：logits 不是概率，加起来没有意义。",
               "先 torch.log_softmax(logits, dim=-1)，再取候选 token 的值求和。"),
    "with_context": ("把上文的 token 也算进去了：要的是「已知上文时」候选句的 log 概率。",
                     "只对候选句的 token 求和：从 start - 1 开始的 n 个位置。"),
}


def check_line_log_prob(line_log_prob):
    """Check exercise 4.3a: line_log_prob(model, context_ids, candidate_ids) -> float."""

    def body() -> str:
        torch.manual_seed(0)
        model = DIYForCausalLM(CONFIG).eval()  # dropout 0.1: eval mode must be what is used
        grad_modes = []
        model.register_forward_hook(lambda *_: grad_modes.append(torch.is_grad_enabled()))
        for context, candidate in (([3, 7, 1, 9], [5, 2, 8]), ([11], [4, 4, 30, 6, 1])):
            with check_grad_mode("line_log_prob"):
                value = call_learner(line_log_prob, model, list(context), list(candidate),
                                     name="line_log_prob")
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                if value.requires_grad:
                    raise Failed("返回的张量还连着计算图（requires_grad=True）：打分不需要梯度，还白占内存。",
                                 "用 with torch.no_grad(): 包住前向，返回 float(...)。")
                value = value.item()
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise Failed(f"line_log_prob 应返回一个数（log 概率），实际是 {describe_value(value)}。",
                             "return float(总和)。")
            want = reference_line_log_prob(model, context, candidate)
            if math.isclose(value, want, rel_tol=1e-4, abs_tol=1e-4):
                continue
            for name, wrong in line_mistakes(model, context, candidate).items():
                if math.isclose(value, wrong, rel_tol=1e-4, abs_tol=1e-4):
                    raise Failed(*LINE_HINTS[name])
            if value > 0:
                raise Failed(f"得到 {value:.4f} > 0：log 概率不可能是正数。", "对 log_softmax 的值求和（每一项都 ≤ 0）。")
            raise Failed(f"上文 {context}、候选 {candidate}：得到 {value:.4f}，应为 {want:.4f}。",
                         "拼成一条序列前向一次；位置 start-1 … start+n-2 的 log_softmax 里取候选 token 求和。")
        if model.training:
            raise Failed("line_log_prob 把模型切回了 train 模式。", "不要在函数里调用 model.train()。")
        if any(grad_modes):
            raise Failed("前向时还在记录梯度（没有 torch.no_grad()）：结果对，可每次打分都白白建一张计算图，"
                         "「下一句」要打上千次分，又慢又占内存。",
                         "with torch.no_grad(): 包住前向（或 @torch.no_grad() 装饰这个函数）。")
        return "两组上文 / 候选上，与参考的 log P(候选 | 上文) 相同。"

    return run_check("4.3a", body, line_log_prob, reference_line_log_prob)


# ----------------------------------------------------------------------------- 4.3b meter

METER_CASES = [
    (["一曲新词酒一杯，去年天气旧亭台。夕阳西下几时回。"], "7·7·7"),
    (["慎莫负、狂风月。", "人间万事何时歇。"], "3·3·7"),
    (["春花秋月何时了？往事知多少。"], "7·5"),
    (["东风夜放花千树", "更吹落，星如雨。"], "7·3·3"),
    (["归去！也无风雨也无晴；"], "2·7"),
    ([], ""),
]


def check_meter(meter):
    """Check exercise 4.3b: meter(lines) -> "7·7·7" (phrase lengths, in order)."""

    def body() -> str:
        for lines, want in METER_CASES:
            got = call_learner(meter, list(lines), name="meter")
            if not isinstance(got, str):
                raise Failed(f"meter 应返回字符串（如 \"7·7·7\"），实际是 {describe_value(got)}。",
                             "return \"·\".join(str(len(p)) for p in 短句)。")
            if got == want:
                continue
            marks = [mark for mark in "！；：？、" if any(mark in line for line in lines)]
            if marks and got == "·".join(str(len(p)) for line in lines
                                         for p in re.split(r"[，。]", line) if p):
                names = {"！": "感叹号「！」", "；": "分号「；」", "：": "冒号「：」", "？": "问号「？」",
                         "、": "顿号「、」"}
                raise Failed(f"{lines} 得到 {got!r}，应为 {want!r}：{'、'.join(names[m] for m in marks)}"
                             "也结束一个短句。",
                             "标点集合要有 ，。、？！；：（半角的 ,.?!;: 也算上）。")
            if got == "·".join(str(len(line)) for line in lines):
                raise Failed("数的是整行的长度，没有按标点切成短句。",
                             "每行用 re.split(r\"[，。、？！；：]\", line) 切开，去掉空串，再数每段的长度。")
            if (lines and got == want.replace("·", "")) or " " in got or "/" in got:
                raise Failed(f"长度之间要用「·」隔开：得到 {got!r}，应为 {want!r}。",
                             "\"·\".join(str(n) for n in 长度)。")
            if "、" in lines[0] and got != want:
                raise Failed(f"{lines} 得到 {got!r}，应为 {want!r}：顿号「、」也结束一个短句。",
                             "标点集合里要有 ，。、？！；：。")
            raise Failed(f"{lines} 得到 {got!r}，应为 {want!r}。",
                         "按标点切成短句（去掉空串），各自数字数，用「·」连起来；没有标点的行末尾也算一个短句。")
        return "六个例子（顿号、问号、感叹号、分号、行末没有标点、空词）都对。"

    return run_check("4.3b", body, meter, lambda lines: reference_meter(lines))

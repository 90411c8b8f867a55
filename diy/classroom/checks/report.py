"""What a self-check reports, and the machinery every check shares.

A check calls the learner's code on the course's example and on other shapes, stops at the
first problem and prints one verdict:

    ✅ 练习 1.1 通过：...
    ⏳ 练习 1.1 待完成：...            (the exercise still holds its placeholder)
    ❌ 练习 1.1 未通过：<problem>
       修复：<fix>

It returns the code the following cells should use: the learner's when it passed, the
reference otherwise, so an unfinished notebook still runs from top to bottom.

When the environment variable DIY_CHECK_LOG names a file, every verdict is also appended to it
as one JSON line (this is how ``python -m diy.classroom.grade`` collects results).
"""

from __future__ import annotations

import inspect
import json
import linecache
import os
import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch

from ...errors import DIYInputError

PASS, TODO, FAIL = "pass", "todo", "fail"
ICONS = {PASS: "✅", TODO: "⏳", FAIL: "❌"}
WORDS = {PASS: "通过", TODO: "待完成", FAIL: "未通过"}
LOG_ENV = "DIY_CHECK_LOG"


@dataclass
class CheckResult:
    exercise: str  # "1.1", "1.2a" ...
    status: str  # PASS, TODO or FAIL
    summary: str  # one line: what passed, what is missing, or what is wrong
    fix: str = ""  # how to fix (empty when passed)

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def render(self) -> str:
        lines = [f"{ICONS[self.status]} 练习 {self.exercise} {WORDS[self.status]}：{self.summary}"]
        if self.fix:
            lines.append(f"   修复：{self.fix}")
        if not self.passed:
            lines.append(f"   {FALLBACK_NOTE}")
        return "\n".join(lines)


class Todo(Exception):
    """The learner's code is still the placeholder."""


class Failed(Exception):
    """The learner's code has a problem; carries what is wrong and how to fix it."""

    def __init__(self, problem: str, fix: str):
        super().__init__(problem)
        self.problem, self.fix = problem, fix


FALLBACK_NOTE = "（后面的单元格先用参考答案继续运行；改好后从练习单元格起重新运行。）"


def run_check(exercise: str, body: Callable[[], str], learner, reference):
    """Run ``body`` (returns the pass message), print the verdict, return the code to use next.

    Random numbers drawn by the check do not disturb the notebook's: the global RNG is
    restored afterwards, so the learner's later cells print the same values either way. Grad
    mode is restored too (learner code may switch it off), and a check never raises: anything
    unexpected while inspecting what the learner's code returned becomes a ❌ with a hint.
    """
    grad_enabled = torch.is_grad_enabled()
    with torch.random.fork_rng(devices=[]), one_thread():
        try:
            result = CheckResult(exercise, PASS, body())
        except Todo as todo:
            result = CheckResult(exercise, TODO, str(todo),
                                 "写完练习单元格后，先运行它，再运行本单元格。")
        except Failed as failed:
            result = CheckResult(exercise, FAIL, failed.problem, failed.fix)
        except Exception as exc:  # noqa: BLE001 - a check must never raise
            result = CheckResult(exercise, FAIL,
                                 f"检查你的结果时遇到了意外的值（{first_line(exc)}）。",
                                 "对照练习说明检查返回值：类型（张量、浮点数还是元组）、形状和 dtype。")
        finally:
            torch.set_grad_enabled(grad_enabled)
    report(result)
    return learner if result.passed else reference


@contextmanager
def one_thread():
    """Run a check on one torch thread, then give the notebook its thread count back.

    A check runs many small ops on tiny models, where threads only cost, the more so when the
    cores are busy: with torch's default (a thread per core, as in a learner's kernel) on a
    loaded 2-core machine a 3.3c check took 1.85 s, 0.4d 1.48 s, 3.1b 0.68 s, and on one thread
    0.07, 0.21 and 0.03 s (benchmarks/bench_checks.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def report(result: CheckResult) -> None:
    print(result.render())
    log_path = os.environ.get(LOG_ENV)
    if log_path:
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")


def call_learner(fn, *args, name: str, diagnose: Callable | None = None, **kwargs):
    """Call the learner's function; turn a placeholder into Todo and an exception into Failed."""
    if fn is None or fn is Ellipsis:
        raise Todo(f"{name} 还没有定义。")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as exc:
        raise Todo(f"{name} 里还是占位代码（{exc or 'NotImplementedError'}）。") from None
    except (Todo, Failed):
        raise
    except Exception as exc:  # noqa: BLE001 - every learner error becomes a hint
        raise explain_exception(exc, name, diagnose) from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def explain_exception(exc: Exception, name: str, diagnose: Callable | None) -> Failed:
    """Map an exception raised by learner code to a Failed with a specific hint."""
    if diagnose is not None:
        hint = diagnose(exc)
        if hint is not None:
            return Failed(*hint)
    hint = common_hint(exc)
    if hint is not None:
        return Failed(*hint)
    return Failed(f"运行 {name} 时出错：{first_line(exc)}",
                  "按错误信息检查这一行；每一步都打印 .shape 对照注释里的预期形状。")


def common_hint(exc: Exception):
    """Hints for errors that learners meet in every exercise, common Python slips included."""
    text = str(exc)
    if isinstance(exc, DIYInputError):
        return f"DIYModel 拒绝了输入：{exc.problem}", exc.fix
    for matches, hint in SLIPS:
        if matches(exc, text):
            return hint(text) if callable(hint) else hint
    if "view size is not compatible" in text:
        return ("对不连续（non-contiguous）的张量调用了 .view()：切片 logits[:, :-1] 在内存里不是连续的。",
                "把 .view(...) 换成 .reshape(...)（或先 .contiguous() 再 .view）。")
    if "cannot assign module before Module.__init__()" in text or \
            "cannot assign parameters before Module.__init__()" in text:
        return ("__init__ 里没有先调用 super().__init__()，nn.Module 还没准备好就给它赋了子模块。",
                "在 __init__ 的第一行写 super().__init__()。")
    if "does not require grad" in text:
        return ("loss 没有连着计算图，无法反向传播（用了 .item()、.detach() 或 torch.no_grad()？）。",
                "直接返回 F.cross_entropy 的结果张量，不要 .item() / .detach()。")
    if "has no attribute 'backward'" in text:
        return ("对一个不是张量的 loss 调用了 backward（多半是 .item() 之后的 Python 数）。",
                "对 F.cross_entropy 返回的张量调用 loss.backward()，打印时才用 loss.item()。")
    if "backward through the graph a second time" in text:
        return ("同一个计算图被反向传播了两次。",
                "每次 backward 之前都重新前向一次（在 train_step 里先前向、再 backward）。")
    return None


def failing_line(exc: BaseException) -> str:
    """The source line where ``exc`` was raised, stripped ("" when unknown): what tells apart
    two slips that torch reports with the same message."""
    tb, last = exc.__traceback__, None
    while tb is not None:
        last, tb = tb, tb.tb_next
    if last is None:
        return ""
    return linecache.getline(last.tb_frame.f_code.co_filename, last.tb_lineno).strip()


def _randint_args(text: str) -> str:
    """The argument types torch reports for a failed randint call: "(int, int, int)"."""
    start = text.find("got (")
    return text[start + 4:text.find(")", start) + 1] if start >= 0 else ""


# Common Python slips, each (does this exception show it?, (problem, fix) or a function of the
# message giving them). Checked in order.
SLIPS = [
    (lambda exc, text: isinstance(exc, (TypeError, AttributeError)) and (
        "does not support the context manager protocol" in text or text == "__enter__"),
     ("with 后面放的是函数或类本身，不是上下文管理器：多半是少了括号（with torch.no_grad:）。",
      "加上括号：with torch.no_grad():（torch.inference_mode() 同理）。")),
    (lambda exc, text: isinstance(exc, TypeError) and "randint() received an invalid" in text
        and "Generator" in _randint_args(text) and "generator=" not in _randint_args(text),
     ("generator 被当成位置参数传给了 torch.randint：它只能用关键字传。",
      "torch.randint(low, high, (batch_size,), generator=generator)。")),
    (lambda exc, text: isinstance(exc, TypeError) and "randint() received an invalid" in text
        and "tuple" not in _randint_args(text),
     ("torch.randint 的 size 不是元组：randint(low, high, n) 里的 n 必须写成 (n,)。",
      "torch.randint(low, high, (batch_size,), generator=generator)——注意 (batch_size,) 的逗号。")),
    (lambda exc, text: isinstance(exc, TypeError) and "'method' object is not iterable" in text,
     ("把一个方法当成了可迭代对象：多半是 model.parameters 少了括号。",
      "写成 model.parameters()（例如 clip_grad_norm_(model.parameters(), max_grad_norm)、"
      "AdamW(model.parameters(), lr=...)）。")),
    (lambda exc, text: isinstance(exc, AttributeError) and "'Tensor' object has no attribute "
        "'logits'" in text,
     ("对张量取了 .logits：课程的模型直接返回 logits 张量，不像 transformers 那样返回一个带 "
      ".logits 的输出对象。", "logits = model(input_ids)，不要再 .logits。")),
    (lambda exc, text: isinstance(exc, TypeError) and "unexpected keyword argument 'labels'"
        in text,
     ("给模型传了 labels=：课程的模型只算 logits，不像 transformers 那样顺便算 loss。",
      "logits = model(input_ids)，再 loss = causal_lm_loss(logits, labels)。")),
    (lambda exc, text: isinstance(exc, TypeError) and "only integer tensors of a single element "
        "can be converted to an index" in text and "tensor(" not in failing_line(exc),
     ("用浮点数张量当了下标或切片的位置（例如 tokens[s:s + n] 里的 s 是 torch.rand 算出来的浮点数）："
      "下标必须是整数。",
      "位置用整数：torch.randint(...) 给出的就是 long；浮点数的位置先 .long()（或 int(...)）。")),
    (lambda exc, text: isinstance(exc, (TypeError, ValueError, RuntimeError)) and (
        "only integer tensors of a single element can be converted to an index" in text
        or "only one element tensors can be converted to Python scalars" in text),
     ("torch.tensor(...) 收到了一个张量列表：torch.tensor 只能把数字（或数字的列表）变成张量。",
      "把一列同样形状的张量叠起来用 torch.stack(列表)（沿新的第 0 维），"
      "接在一起用 torch.cat(列表, dim=...)。")),
    (lambda exc, text: isinstance(exc, TypeError) and "list indices must be integers or slices, "
        "not tuple" in text,
     ("对一个列表用了 [:, -1, :] 这样的多维下标：多半是 model(...) 的两个返回值顺序弄反了——"
      "use_cache=True 时模型返回 (logits, presents)，先 logits、后 presents（presents 是每层一个的列表）。",
      "logits, past = model(ids, use_cache=True, is_training=False)：先 logits，后 past。")),
    (lambda exc, text: isinstance(exc, RuntimeError) and "argmax(): does not support bool" in text,
     ("对 bool 张量调用了 argmax：torch 的 argmax 不接受 bool（attention_mask == 1 这类比较的结果就是 bool）。",
      "先转成整数再 argmax：mask.long().argmax(dim=-1)（或 .int()）。")),
    (lambda exc, text: isinstance(exc, ValueError) and "values to unpack" in text,
     lambda text: (f"解包（a, b = ...）的个数不对（{text}）。如果解包的是 model(...) 的结果："
                   "只有传了 use_cache=True，模型才返回 (logits, presents) 两个值，否则只返回 logits 一个张量。",
                   "logits, presents = model(input_ids, use_cache=True)；"
                   "不需要缓存就写 logits = model(input_ids)。")),
    (lambda exc, text: isinstance(exc, RuntimeError) and "Sizes of tensors must match except in "
        "dimension" in text,
     lambda text: (f"torch.cat 拼接的维度不对（{text.split('.')[0]}）：除了拼接的那一维，"
                   "其余维度必须一样大。",
                   "新 token 接在每一行的末尾：torch.cat([input_ids, next_id], dim=1)，"
                   "其中 input_ids 是 (B, L)、next_id 是 (B, 1)。")),
]


# A bare method reference on a line of its own (`model.eval`, `optimizer.zero_grad`): it names
# the method without calling it, so nothing happens and nothing fails.
_UNCALLED = re.compile(r"^\s*([A-Za-z_][\w.]*\.(eval|train|zero_grad|step|backward|item))\s*(#.*)?$",
                       re.MULTILINE)


def uncalled_methods(fn) -> list[str]:
    """Statements in ``fn``'s source that name a method without calling it (``model.eval``)."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):  # no source (a lambda in a REPL, a builtin): nothing to say
        return []
    return [match.group(1) for match in _UNCALLED.finditer(source)]


def uncalled_hint(fn):
    """A Failed naming the first method that ``fn`` mentions without calling, or None."""
    names = uncalled_methods(fn)
    if not names:
        return None
    return Failed(f"{names[0]} 少了括号：这一行只是取到了这个方法，并没有调用它，所以什么都没发生。",
                  f"写成 {names[0]}()。")


def mistake_matcher(value: torch.Tensor, candidates: dict, atol: float = 1e-5):
    """Name of the first candidate (a known mistake) whose value equals ``value``, or None."""
    for name, candidate in candidates.items():
        if candidate is not None and candidate.shape == value.shape and \
                torch.allclose(value.detach().float(), candidate.detach().float(), atol=atol,
                               rtol=1e-5):
            return name
    return None

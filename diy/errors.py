"""Errors the course raises on bad input.

Every error carries, as data, what is wrong (``problem``) and how to fix it (``fix``) in
Chinese, and an English gloss (``gloss``). ``str(error)`` joins the three, so a learner never
has to read a traceback from deep inside torch, and the self-checks and the grader read the
attributes instead of parsing the text.
"""

from __future__ import annotations


def describe_value(value) -> str:
    """What a value is, in a few words, for a message that says what was found instead of what
    was wanted: a tensor's shape and dtype, a tuple's or list's length, otherwise the type."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # a tensor (errors.py needs no torch)
        return f"形状 {tuple(value.shape)}、dtype {value.dtype} 的张量"
    if isinstance(value, (tuple, list)):
        return f"{len(value)} 项的 {type(value).__name__}"
    return type(value).__name__


def message(problem_zh: str, fix_zh: str, gloss_en: str) -> str:
    """One error message in the course's format: problem, fix, English gloss."""
    return f"{problem_zh}\n修复方法：{fix_zh}\n(English: {gloss_en})"


class DIYError(ValueError):
    """Bad input, with the problem and the fix in Chinese and an English gloss."""

    def __init__(self, problem: str, fix: str, gloss: str):
        super().__init__(message(problem, fix, gloss))
        self.problem, self.fix, self.gloss = problem, fix, gloss

    def __reduce__(self):  # keeps the three fields through pickling (multiprocessing, xdist)
        return type(self), (self.problem, self.fix, self.gloss)


class DIYConfigError(DIYError):
    """A hyper-parameter that cannot build a model (raised when the config is made)."""


class DIYInputError(DIYError):
    """An argument that the model or a course function cannot use as given."""

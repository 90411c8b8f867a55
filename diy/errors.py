"""Errors the course raises on bad input.

Every message says, in Chinese first and then in English, what is wrong and how to fix it,
so that a learner never has to read a traceback from deep inside torch.
"""

from __future__ import annotations


class DIYConfigError(ValueError):
    """A hyper-parameter that cannot build a model (raised when the config is made)."""


class DIYInputError(ValueError):
    """An argument to ``forward`` that the model cannot use as given."""


def message(problem_zh: str, fix_zh: str, gloss_en: str) -> str:
    """One error message in the course's format: problem, fix, English gloss."""
    return f"{problem_zh}\n修复方法：{fix_zh}\n(English: {gloss_en})"

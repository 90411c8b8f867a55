"""A Chinese hint instead of a bare NameError when a check cell runs before its exercise cell.

Typical after a kernel restart: the learner runs the self-check cell, but the cell that defines
`build_lm_head` has not run in this kernel yet. A learner's backbone (DIY_BACKBONE) refused by
the contract is shown the same way, as the ❌ and the fix it carries: the cause is their file,
not the cell, so a traceback through the course's code would only point the wrong way. Other
errors keep IPython's usual traceback.
"""

from __future__ import annotations

from ...backbone import DIYBackboneError
from ..course import EXERCISES

# Names the exercise cells define and the check cells read.
EXERCISE_NAMES = {name for exercise in EXERCISES.values() for name in exercise.defines}


def name_error_hint(name: str) -> str:
    return (f"❌ {name} 还没有定义：定义它的练习单元格在这个 kernel 里还没有运行过（重启过 kernel？）。\n"
            "   修复：从上往下运行到这里（菜单 Run → Run All Above），再运行本单元格。")


def backbone_error_text(error: DIYBackboneError) -> str:
    return f"❌ {error.problem}\n   修复：{error.fix}"


def _handler(shell, etype, value, tb, tb_offset=None):
    name = getattr(value, "name", None)
    if isinstance(value, NameError) and name in EXERCISE_NAMES:
        print(name_error_hint(name))
        return []
    if isinstance(value, DIYBackboneError):
        print(backbone_error_text(value))
        return []
    return shell.showtraceback((etype, value, tb), tb_offset=tb_offset)


def install() -> bool:
    """Register the hint in the running IPython kernel, if there is one."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((NameError, DIYBackboneError), _handler)
    return True

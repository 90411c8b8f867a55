"""0.4's export: the learner's own parts (defined in the notebook) written to DIYModel.py, the
file the rest of the course can run on (DIY_BACKBONE)."""

from __future__ import annotations

import ast
import inspect
import linecache
from pathlib import Path

from ... import model as reference_model
from .attention import ReferenceAttention, reference_causal_mask
from .decoder import ReferenceDecoderLayer, ReferenceMLP
from .norm import ReferenceRMSNorm
from .report import Todo
from .rope import ReferenceRotaryEmbedding, reference_apply_rotary, reference_rotate_half

HEADER = '''"""我的 DIYModel：第零步（0.1～0.4）里我自己写的骨干网络。

由 step0_4 的导出单元格从我的 notebook 里写出（每次运行导出单元格都会覆盖本文件）。
用它学后面的课：在仓库根目录运行 make lab BACKBONE=notebooks/DIYModel.py
（或设 DIY_BACKBONE=/完整路径/notebooks/DIYModel.py）；
检查它：python -m diy.classroom.doctor --backbone notebooks/DIYModel.py
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
'''


def source_of(obj) -> str:
    """The source of a function or class, also when it was defined in a notebook cell (where
    ``inspect.getsource`` of a class fails: the class's module, __main__, has no file)."""
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        if not inspect.isclass(obj):
            raise
    functions = [f for f in vars(obj).values() if inspect.isfunction(f)]
    if not functions:
        raise OSError(f"{obj.__name__} 没有方法，找不到它的源代码")
    filename = functions[0].__code__.co_filename
    lines = linecache.getlines(filename)
    tree = ast.parse("".join(lines))
    line = functions[0].__code__.co_firstlineno
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == obj.__name__ \
                and node.lineno <= line <= node.end_lineno:
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            return "".join(lines[start - 1:node.end_lineno])
    raise OSError(f"找不到 {obj.__name__} 的源代码")


def write_backbone(path, parts) -> list[str]:
    """Write the learner's own parts (functions and classes defined in the notebook, in order) to
    ``path``; return the names written. Parts that are the course's references are refused."""
    exercise_names = {ReferenceRMSNorm: "RMSNorm", ReferenceRotaryEmbedding: "RotaryEmbedding",
                      reference_rotate_half: "rotate_half", reference_apply_rotary: "apply_rotary",
                      reference_causal_mask: "causal_mask", ReferenceAttention: "DIYAttention",
                      ReferenceMLP: "DIYMLP", ReferenceDecoderLayer: "DIYDecoderLayer",
                      reference_model.DIYModel: "DIYModel"}
    borrowed = [exercise_names.get(p, getattr(p, "__name__", repr(p))) for p in parts
                if getattr(p, "__module__", None) != "__main__"]
    if borrowed:
        raise Todo("这些还是课程的参考实现（自检没通过或还没写）："
                   + "、".join(borrowed) + "。自检全部 ✅ 之后再导出。")
    body = "\n\n".join(source_of(p).rstrip() + "\n" for p in parts)
    Path(path).write_text(HEADER + "\n\n" + body, encoding="utf-8")
    return [p.__name__ for p in parts]


def export_backbone(parts, path="DIYModel.py") -> bool:
    """Write the learner's parts to ``path`` (see write_backbone) and say so; never raises."""
    try:
        names = write_backbone(path, parts)
    except Todo as todo:
        print(f"⏳ 还不能导出 {path}：{todo}")
        return False
    except Exception as exc:  # noqa: BLE001 - a notebook cell must not raise
        print(f"❌ 导出 {path} 失败：{type(exc).__name__}: {exc}")
        return False
    lines = Path(path).read_text(encoding="utf-8").count("\n")
    print(f"✅ 写出了 {path}（{lines} 行）：" + "、".join(names))
    return True



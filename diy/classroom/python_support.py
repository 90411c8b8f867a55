"""Which Pythons run the course, said once: `make` runs this file before it creates the venv,
`python -m diy.classroom.doctor` imports it, and a test proves pyproject.toml's requires-python agrees.

    python3 diy/classroom/python_support.py     # exit 0 (perhaps with a note), or 1 and one clear message

Run as a script by whatever `python3` the learner has, so it uses nothing newer than Python 3.6
and imports only the standard library (importing the `diy` package would need torch).
"""

import sys

# The pinned requirements (numpy 2.4, matplotlib 3.11, transformers 5.24) need Python >= 3.11;
# 3.10 would need a second set of older pins, and every notebook output proven on both sets.
MINIMUM = (3, 11)
# Versions on which `make test` was run green from a fresh clone (README, "支持的 Python").
MEASURED = ((3, 11), (3, 12), (3, 13))

HOW_TO_GET_ONE = (
    "装一个 Python 3.12（任选一种）：\n"
    "  · uv：       uv python install 3.12，然后 make lab PYTHON=\"$(uv python find 3.12)\"\n"
    "  · pyenv：    pyenv install 3.12，pyenv local 3.12，然后 make lab\n"
    "  · Ubuntu：   sudo add-apt-repository ppa:deadsnakes/ppa && sudo apt install python3.12 python3.12-venv，"
    "然后 make lab PYTHON=python3.12\n"
    "  · conda：    conda create -n diy python=3.12，conda activate diy，然后 make lab PYTHON=python\n"
    "  · macOS：    brew install python@3.12，然后 make lab PYTHON=python3.12（或从 python.org 安装）\n"
    "  · Windows：  从 python.org 安装 3.12，再按 README「Windows（没有 make）」的命令\n"
    "换了 Python 之后先 make clean（删掉旧的 .venv）。"
)


def dotted(version) -> str:
    return ".".join(str(part) for part in version)


def verdict(version=None, has_venv=True):
    """(status, message): status is "ok", "note" (works, not measured) or "stop"."""
    version = tuple((version or sys.version_info)[:3])
    found = "Python {} ({})".format(dotted(version), sys.executable)
    if version[:2] < MINIMUM:
        return "stop", (
            "❌ 找到的是 {found}，课程需要 Python {min} 或更新的版本（测过：{measured}）。\n"
            "   Python {min}+ is required: the pinned numpy/matplotlib/transformers need it.\n{how}"
        ).format(found=found, min=dotted(MINIMUM),
                 measured="、".join(dotted(v) for v in MEASURED), how=HOW_TO_GET_ONE)
    if not has_venv:
        minor = dotted(version[:2])
        return "stop", (
            "❌ {found} 缺少 venv / ensurepip 模块，建不了虚拟环境（the venv module is missing）。\n"
            "   Debian / Ubuntu：sudo apt install python{minor}-venv，然后重新运行。"
        ).format(found=found, minor=minor)
    if version[:2] not in MEASURED:
        return "note", (
            "⚠️ {found}：课程只在 {measured} 上测过，这个版本多半也能用；"
            "如果安装失败，请换成 3.12（not measured on this version）。"
        ).format(found=found, measured="、".join(dotted(v) for v in MEASURED))
    return "ok", found


def has_venv_module() -> bool:
    try:
        import ensurepip  # noqa: F401  (Debian splits it into pythonX.Y-venv)
        import venv  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    status, message = verdict(has_venv=has_venv_module())
    if status != "ok":
        print(message, file=sys.stderr if status == "stop" else sys.stdout)
    sys.exit(1 if status == "stop" else 0)

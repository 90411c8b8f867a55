"""diy/ has two rooms: the library (everything in diy/ outside diy/classroom/: the model, training,
generation, their command-line tools, and the subpackages backbone/, hf/ and pretraining/) and the
classroom (diy/classroom/: the registry, self-checks, grader, doctor, course runs). The classroom
imports the library; the library never imports the classroom."""

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLASSROOM = sorted((ROOT / "diy" / "classroom").rglob("*.py"))
LIBRARY = sorted(set((ROOT / "diy").rglob("*.py")) - set(CLASSROOM))


def imported_modules(path: Path, source: str | None = None) -> list[str]:
    """Every module an import statement in the file names (anywhere: top level or inside a
    function), relative imports resolved against the file's package."""
    package = list(path.parent.relative_to(ROOT).parts)
    names = []
    for node in ast.walk(ast.parse(source or path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]  # from diy import classroom
    return names


def test_the_library_imports_nothing_from_the_classroom():
    offenders = {str(path.relative_to(ROOT)): [name for name in imported_modules(path)
                             if name == "diy.classroom" or name.startswith("diy.classroom.")]
                 for path in LIBRARY}
    assert not {name: found for name, found in offenders.items() if found}


def test_the_check_reads_relative_and_absolute_imports():
    """The check above would pass vacuously if it missed import forms: it must see these."""
    names = set(imported_modules(ROOT / "diy" / "classroom" / "course_model.py"))
    assert "diy.causal_lm" in names  # from ..causal_lm import ...
    probe = ("from .classroom import grade\nimport diy.classroom.checks\n"
             "def f():\n    from . import classroom\n")
    names = set(imported_modules(ROOT / "diy" / "probe.py", probe))
    assert {"diy.classroom.grade", "diy.classroom.checks", "diy.classroom"} <= names


def test_importing_the_whole_library_loads_no_classroom_module():
    modules = [".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
               for path in LIBRARY]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print(sorted(m for m in sys.modules if m.startswith('diy.classroom')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_every_module_is_in_one_room():
    """The library's folders and the classroom's, nothing else with code; the library's top
    level stays small enough to read (the step-4 and own-backbone code live in subpackages)."""
    folders = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "diy").rglob("*.py")}
    assert folders == {"diy", "diy/backbone", "diy/hf", "diy/pretraining", "diy/classroom",
                       "diy/classroom/checks"}
    assert len([p for p in (ROOT / "diy").glob("*.py") if p.name != "__init__.py"]) <= 16
    assert len(LIBRARY) > 20 and len(CLASSROOM) > 10


def test_the_readme_map_names_every_module():
    """README's 仓库地图 lists every module of both rooms (a new module must be placed, and said
    where, when it is added)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## 仓库地图")
    section = readme[start:readme.index("\n## ", start + 10)]
    named = set(re.findall(r"`(diy/[\w/]+\.py)`", section))
    listed_checks = "diy/classroom/checks/" in section
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "diy").rglob("*.py")
               if p.name != "__init__.py" or p.parent.name in ("backbone", "hf", "pretraining")}
    modules = {m for m in modules if not m.startswith("diy/classroom/checks/")} | (
        set() if listed_checks else {"diy/classroom/checks/"})
    missing = sorted(m for m in modules if m not in named and m != "diy/classroom/__init__.py")
    assert not missing, f"add to README's 仓库地图: {missing}"

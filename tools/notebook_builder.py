"""Build the learner notebooks and their solutions from one source per lesson.

    python -m tools.notebook_builder            # write and execute every notebook
    python -m tools.notebook_builder --check    # exit 1 if a committed notebook's cells drifted

A lesson (tools/lessons/*.py) is a list of cells. An exercise cell has a solution and a stub;
everything else is shared. So notebooks/X.ipynb and solutions/X.ipynb differ only in the
exercise cells (what `nbdiff -s` shows an instructor), and the tests prove it.

Outputs come from a clean top-to-bottom run in a fresh kernel (nbclient, no timing metadata).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import nbformat

from diy.notebook_runner import run_notebook

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ["step1_1_lm_head", "step1_2_loss_backward", "step1_3_causal_lm"]
EXERCISE_TAG, CHECK_TAG = "exercise", "self-check"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


@dataclass
class Cell:
    kind: str  # "markdown" or "code"
    source: str
    stub: str | None = None  # exercise cells only: what the learner starts from
    tag: str | None = None


def _clean(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def md(text: str) -> Cell:
    return Cell("markdown", _clean(text))


def code(text: str) -> Cell:
    return Cell("code", _clean(text))


def exercise(solution: str, stub: str) -> Cell:
    return Cell("code", _clean(solution), stub=_clean(stub), tag=EXERCISE_TAG)


def check(text: str) -> Cell:
    return Cell("code", _clean(text), tag=CHECK_TAG)


def lesson_cells(name: str) -> list[Cell]:
    return importlib.import_module(f"tools.lessons.{name}").CELLS


def build(name: str, solution: bool) -> nbformat.NotebookNode:
    """The notebook's cells, without outputs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    for index, cell in enumerate(lesson_cells(name)):
        source = cell.source if (solution or cell.stub is None) else cell.stub
        metadata = {"tags": [cell.tag]} if cell.tag else {}
        if cell.kind == "markdown":
            new = nbformat.v4.new_markdown_cell(source, metadata=metadata)
        else:
            new = nbformat.v4.new_code_cell(source, metadata=metadata)
        new.id = f"cell-{index:02d}"  # stable ids let nbdiff pair the two notebooks' cells
        nb.cells.append(new)
    return nb


def execute(nb: nbformat.NotebookNode, folder: Path) -> None:
    run_notebook(nb, folder)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}  # no interpreter version in the file


def path_of(name: str, solution: bool) -> Path:
    return ROOT / ("solutions" if solution else "notebooks") / f"{name}.ipynb"


def sources(nb) -> list[tuple]:
    return [(c.cell_type, c.source, c.get("id"), dict(c.metadata)) for c in nb.cells]


def drifted() -> list[str]:
    """Committed notebooks whose cells differ from what their lesson builds."""
    problems = []
    for name in LESSONS:
        for solution in (False, True):
            path = path_of(name, solution)
            if not path.exists():
                problems.append(f"{path.relative_to(ROOT)} is missing")
                continue
            committed = nbformat.read(path, as_version=4)
            if sources(committed) != sources(build(name, solution)):
                problems.append(f"{path.relative_to(ROOT)} differs from tools/lessons/{name}.py")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drift, write nothing")
    parser.add_argument("lessons", nargs="*", default=LESSONS)
    args = parser.parse_args(argv)
    if args.check:
        problems = drifted()
        print("\n".join(problems) or "notebooks match their lessons")
        return 1 if problems else 0
    for name in args.lessons:
        for solution in (False, True):
            nb = build(name, solution)
            path = path_of(name, solution)
            path.parent.mkdir(exist_ok=True)
            execute(nb, path.parent)
            nbformat.write(nb, path)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

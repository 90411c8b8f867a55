"""Build the learner notebooks and their solutions from one source per lesson.

    python -m tools.notebook_builder            # write and execute every notebook
    python -m tools.notebook_builder --check    # exit 1 if a committed notebook's cells drifted

A lesson (tools/lessons/NAME.py) is a list of cells; its entry in the course registry
(diy/classroom/course.py) gives the title, the time estimate and the exercises. An exercise cell
has a solution and a stub; everything else is shared. So notebooks/X.ipynb and solutions/X.ipynb
differ only in the exercise cells (what `nbdiff -s` shows an instructor), and the tests prove it.

The builder writes what the grader reads: the notebook's lesson in its metadata
({"diy": {"lesson": NAME}}) and, on the k-th exercise and check cell, the tags of the lesson's
k-th exercise ("exercise-1.2a", "self-check-1.2a"). It also writes the README's lesson table.

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

from diy.classroom import course
from diy.classroom.course import CHECK_TAG, EXERCISE_TAG, check_tag, exercise_tag
from diy.classroom.notebook_runner import run_notebook

ROOT = Path(__file__).resolve().parent.parent
LESSONS = list(course.LESSONS)
README = ROOT / "README.md"
TABLE_START, TABLE_END = "<!-- lessons: start (make notebooks) -->", "<!-- lessons: end -->"
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
    lesson = course.LESSONS[name]
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"},
                   course.METADATA_KEY: {"lesson": name}}
    cells = lesson_cells(name)
    exercise_ids = {EXERCISE_TAG: iter(e.id for e in lesson.exercises),
                    CHECK_TAG: iter(e.id for e in lesson.exercises)}
    for index, cell in enumerate(cells):
        source = cell.source if (solution or cell.stub is None) else cell.stub
        if index == 0:  # title and time estimate come from the registry
            source = f"{course.heading(lesson)}\n\n{source}"
        metadata = {"tags": [cell.tag]} if cell.tag else {}
        if cell.tag:
            exercise_id = next(exercise_ids[cell.tag], None)
            if exercise_id is None:
                raise ValueError(f"{name}: more {cell.tag} cells than exercises in "
                                 "diy/classroom/course.py")
            metadata["tags"].append(exercise_tag(exercise_id) if cell.tag == EXERCISE_TAG
                                    else check_tag(exercise_id))
            check_fn = course.EXERCISES[exercise_id].check
            if cell.tag == CHECK_TAG and f"{check_fn}(" not in source:
                raise ValueError(f"{name}: the check cell of {exercise_id} must call {check_fn}")
        if cell.kind == "markdown":
            new = nbformat.v4.new_markdown_cell(source, metadata=metadata)
        else:
            new = nbformat.v4.new_code_cell(source, metadata=metadata)
        new.id = f"cell-{index:02d}"  # stable ids let nbdiff pair the two notebooks' cells
        nb.cells.append(new)
    for tag, remaining in exercise_ids.items():
        if next(remaining, None) is not None:
            raise ValueError(f"{name}: fewer {tag} cells than exercises in diy/classroom/course.py")
    return nb


def execute(nb: nbformat.NotebookNode, folder: Path) -> None:
    # 30 minutes: a lesson may train a course cache on first use (step 4's course pretraining
    # takes minutes on one core, more on a busy machine); graded notebooks keep their limit
    run_notebook(nb, folder, timeout=1800)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}  # no interpreter version in the file


def path_of(name: str, solution: bool) -> Path:
    return ROOT / ("solutions" if solution else "notebooks") / f"{name}.ipynb"


def sources(nb) -> list[tuple]:
    return [(c.cell_type, c.source, c.get("id"), dict(c.metadata)) for c in nb.cells]


def readme_with_table(text: str) -> str:
    """README text with the registry's lesson table between the markers."""
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    return f"{text[:start]}\n{course.readme_table()}\n{text[end:]}"


def drifted() -> list[str]:
    """Committed notebooks whose cells differ from what their lesson builds, and a README whose
    lesson table differs from the registry."""
    problems = []
    readme = README.read_text(encoding="utf-8")
    if TABLE_START not in readme or readme_with_table(readme) != readme:
        problems.append("README.md's lesson table differs from diy/classroom/course.py")
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
    readme = README.read_text(encoding="utf-8")
    README.write_text(readme_with_table(readme), encoding="utf-8")
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

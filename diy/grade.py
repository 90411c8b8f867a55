"""Grade learner notebooks: python -m diy.grade PATH... [options]

Each notebook runs in a fresh kernel of this environment, in a temporary folder, from a copy
(the submission on disk is never touched). The self-check cells report their verdicts through
DIY_CHECK_LOG; the grader collects them, one row per learner file and exercise:

    ✅ passed   ⏳ still to do   ❌ wrong, or could not be graded (with the reason)

Exit status: 0 when every exercise of every notebook passed, 1 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from . import course
from .checks.report import FAIL, ICONS, LOG_ENV, PASS, TODO

ERROR = "error"  # the notebook (or this exercise) could not be graded
ICON = {**ICONS, ERROR: "❌"}


@dataclass
class Row:
    file: str  # the submission, relative to what was given on the command line
    lesson: str  # the lesson's name in diy.course, or "" when unknown
    exercise: str  # e.g. 1.2a, or "-" for a problem with the whole notebook
    status: str  # pass / todo / fail / error
    hint: str  # the check's summary, or why it could not be graded


class UsageError(Exception):
    pass


# --------------------------------------------------------------------------- finding the work

def find_notebooks(paths: list[str]) -> list[tuple[Path, str]]:
    """(notebook path, display name) for every notebook in paths, folders searched recursively."""
    found = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            notebooks = sorted(p for p in path.rglob("*.ipynb")
                               if ".ipynb_checkpoints" not in p.parts)
            found += [(p, str(p.relative_to(path.parent)) if path.name else str(p))
                      for p in notebooks]
        elif path.is_file():
            found.append((path, str(path)))
        else:
            raise UsageError(f"找不到 {given}（不是文件也不是文件夹）。")
    if not found:
        raise UsageError("给出的路径里没有任何 .ipynb 文件。")
    return found


def cell_tags(cell: dict) -> list:
    tags = cell.get("metadata", {}).get("tags", [])
    return tags if isinstance(tags, list) else []


def joined_sources(nb: dict) -> str:
    return "\n".join("".join(c.get("source", "")) for c in nb.get("cells", []))


def detect_lesson(nb: dict) -> str | None:
    """The lesson a notebook belongs to, from what the builder wrote: the notebook's metadata,
    else its cells' exercise / self-check tags, else (cells pasted into a new notebook) the
    self-check functions its code calls."""
    written = nb.get("metadata", {}).get(course.METADATA_KEY, {})
    if isinstance(written, dict) and written.get("lesson") in course.LESSONS:
        return written["lesson"]
    for cell in nb.get("cells", []):
        for tag in cell_tags(cell):
            for exercise in course.EXERCISES:
                if tag in (course.check_tag(exercise), course.exercise_tag(exercise)):
                    return course.LESSON_OF_EXERCISE[exercise]
    sources = joined_sources(nb)
    for exercise in course.EXERCISES.values():
        if f"{exercise.check}(" in sources:
            return course.LESSON_OF_EXERCISE[exercise.id]
    return None


def has_check_cell(nb: dict, exercise: course.Exercise) -> bool:
    """The exercise's check cell is still there (by its tag, or by the call it makes)."""
    return any(course.check_tag(exercise.id) in cell_tags(c) for c in nb["cells"]) or \
        f"{exercise.check}(" in joined_sources(nb)


# --------------------------------------------------------------------------- grading one file

def grade_file(path: Path, name: str, lesson_wanted: str | None, timeout: float) -> list[Row]:
    """The rows of one submission; whatever is wrong with it becomes a row, never a crash."""
    try:
        return _grade_file(path, name, lesson_wanted, timeout)
    except Exception as exc:  # noqa: BLE001 - one broken submission must not stop the class
        return [Row(name, "", "-", ERROR, f"无法批改这个文件（{type(exc).__name__}: {exc}）。")]


def _grade_file(path: Path, name: str, lesson_wanted: str | None, timeout: float) -> list[Row]:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise ValueError("没有 cells 列表")
    except (ValueError, UnicodeDecodeError) as exc:
        return [Row(name, "", "-", ERROR, f"不是有效的 notebook 文件（{exc}）。")]
    lesson = detect_lesson(nb)
    if lesson is None:
        return [Row(name, "", "-", ERROR,
                    "认不出这是课程的哪个 notebook（不是本课程的 notebook？）。")]
    if lesson_wanted and lesson != lesson_wanted:
        return [Row(name, lesson, "-", ERROR,
                    f"交错了 notebook：这是 {lesson}，本次批改的是 {lesson_wanted}。")]
    return [Row(name, lesson, exercise, status, hint) for exercise, status, hint
            in grade_lesson(nb, lesson, timeout)]


def grade_lesson(nb: dict, lesson: str, timeout: float):
    """Yield (exercise, status, hint) after running a copy of the notebook in a fresh kernel."""
    with tempfile.TemporaryDirectory(prefix="diy-grade-") as folder:
        log = Path(folder) / "checks.jsonl"
        run = execute_copy(nb, Path(folder), log, timeout)
        verdicts = {}
        if log.exists():
            for line in log.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                verdicts[record["exercise"]] = record  # a check run twice: the last one counts
    for exercise in course.LESSONS[lesson].exercises:
        record = verdicts.get(exercise.id)
        if record is not None:
            hint = record["summary"] if record["status"] != PASS else ""
            yield exercise.id, record["status"], hint
        elif run.get("timeout"):
            yield exercise.id, ERROR, f"超时：运行超过 {timeout:g} 秒，已停止（{run['timeout']}）。"
        elif not has_check_cell(nb, exercise):
            yield exercise.id, ERROR, (f"自检单元格被删掉了（找不到 {exercise.check}(...)），"
                                       "无法评分；请恢复该单元格。")
        elif run.get("first_error"):
            yield exercise.id, ERROR, f"自检没有运行：前面的单元格出错（{run['first_error']}）。"
        else:
            yield exercise.id, ERROR, f"自检没有运行（{run.get('crash', '原因不明')}）。"


def execute_copy(nb: dict, folder: Path, log: Path, timeout: float) -> dict:
    """Run an in-memory copy with folder as working directory; report what went wrong."""
    import nbformat
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from .notebook_runner import run_notebook

    result = {}
    try:
        notebook = nbformat.reads(json.dumps(nb), as_version=4)  # a copy, sources joined
    except Exception as exc:  # noqa: BLE001 - malformed cells: report, do not crash
        return {"crash": f"notebook 结构不合法：{type(exc).__name__}: {str(exc)[:120]}"}
    try:
        run_notebook(notebook, folder, timeout=timeout, allow_errors=True, env={LOG_ENV: str(log)})
    except CellTimeoutError:
        running = next((i for i, c in enumerate(notebook.cells, start=1)
                        if c.cell_type == "code" and c.get("execution_count") is None), "?")
        result["timeout"] = f"停在第 {running} 个单元格，可能是死循环"
    except DeadKernelError as exc:
        result["crash"] = f"kernel 崩溃：{str(exc).splitlines()[0][:120]}"
    except Exception as exc:  # noqa: BLE001 - a broken submission must not stop the class
        result["crash"] = f"{type(exc).__name__}: {str(exc)[:120]}"
    for index, cell in enumerate(notebook.cells, start=1):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors and "first_error" not in result:
            result["first_error"] = (f"第 {index} 个单元格 {errors[0]['ename']}: "
                                     f"{str(errors[0]['evalue'])[:120]}")
    return result


# --------------------------------------------------------------------------- reporting

def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, size: int) -> str:
    return text + " " * max(0, size - width(text))


def print_table(rows: list[Row], elapsed: float, n_files: int) -> None:
    headers = ("文件", "练习", "结果", "说明")
    file_width = max(width(headers[0]), *(width(r.file) for r in rows))
    print(f"{pad(headers[0], file_width)}  {pad(headers[1], 5)}  {headers[2]}  {headers[3]}")
    for r in rows:
        hint = r.hint if width(r.hint) <= 70 else r.hint[:34] + "…"
        print(f"{pad(r.file, file_width)}  {pad(r.exercise, 5)}  {ICON[r.status]}    {hint}")
    counts = {s: sum(r.status == s for r in rows) for s in (PASS, TODO, FAIL, ERROR)}
    graded = sum(r.exercise != "-" for r in rows)
    print(f"\n共 {n_files} 个 notebook、{graded} 项练习：✅ {counts[PASS]}  ⏳ {counts[TODO]}  "
          f"❌ {counts[FAIL]}  无法评分 {counts[ERROR]}（用时 {elapsed:.1f} 秒）")


def write_csv(rows: list[Row], path: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(Row.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


def write_json(rows: list[Row], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump([asdict(r) for r in rows], f, ensure_ascii=False, indent=1)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m diy.grade", description="批改学习者的 notebook / grade learner notebooks")
    parser.add_argument("paths", nargs="*", help="notebook 文件或文件夹（递归查找 .ipynb）")
    parser.add_argument("--lesson", choices=list(course.LESSONS),
                        help="只接受这一节的 notebook，其它的记为交错")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="同时运行的 notebook 数（默认 = CPU 核数）")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="每个 notebook 的时间上限，秒（默认 120）")
    parser.add_argument("--csv", metavar="FILE", help="把结果写成 CSV")
    parser.add_argument("--json", metavar="FILE", help="把结果写成 JSON")
    args = parser.parse_args(argv)
    if not args.paths:
        parser.error("至少给出一个 notebook 文件或文件夹。")
    if args.jobs < 1 or args.timeout <= 0:
        parser.error("--jobs 和 --timeout 必须是正数。")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        notebooks = find_notebooks(args.paths)
    except UsageError as exc:
        print(f"python -m diy.grade: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = pool.map(lambda item: grade_file(item[0], item[1], args.lesson, args.timeout),
                           notebooks)
        rows = [row for file_rows in results for row in file_rows]
    print_table(rows, time.perf_counter() - start, len(notebooks))
    if args.csv:
        write_csv(rows, args.csv)
    if args.json:
        write_json(rows, args.json)
    return 0 if all(r.status == PASS for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

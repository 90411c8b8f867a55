"""Grade learner notebooks: python -m diy.classroom.grade PATH... [options]

Each notebook runs in a fresh kernel of this environment, in a temporary folder, from a copy
(the submission on disk is never touched), as untrusted code: a clean environment, resource
limits and, where bubblewrap is installed, a sandbox (diy/classroom/sandbox.py). The self-check cells
report their verdicts through DIY_CHECK_LOG; the grader collects them, one row per learner file
and exercise, then a gradebook with one row per learner:

    ✅ passed   ⏳ still to do   ❌ wrong, or could not be graded (with the reason)

Exit status: 0 when every exercise of every notebook passed, 1 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sys
import tempfile
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import course
from .checks.report import FAIL, ICONS, LOG_ENV, PASS, TODO
from .sandbox import Limits, bwrap_path, clean_environment, kernel_argv

ERROR = "error"  # the notebook (or this exercise) could not be graded
ICON = {**ICONS, ERROR: "❌"}


@dataclass
class Row:
    file: str  # the submission, relative to what was given on the command line
    lesson: str  # the lesson's name in diy.classroom.course, or "" when unknown
    exercise: str  # e.g. 1.2a, or "-" for a problem with the whole notebook
    status: str  # pass / todo / fail / error
    hint: str  # the check's summary, or why it could not be graded


class UsageError(Exception):
    pass


@dataclass
class Isolation:
    """How each graded kernel runs: its limits, whether inside bubblewrap, the few extra
    environment variables it is given (where the read-only caches are), the caches it may read,
    the matplotlib font list it gets a copy of, and the grader's home folder (hidden)."""

    limits: Limits = field(default_factory=Limits)
    sandbox: bool = False
    extra_env: dict = field(default_factory=dict)
    caches: tuple = ()
    font_cache: str | None = None
    home: str | None = None


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

def grade_file(path: Path, name: str, lesson_wanted: str | None, timeout: float,
               isolation: Isolation | None = None) -> list[Row]:
    """The rows of one submission; whatever is wrong with it becomes a row, never a crash."""
    try:
        return _grade_file(path, name, lesson_wanted, timeout, isolation or Isolation())
    except Exception as exc:  # noqa: BLE001 - one broken submission must not stop the class
        return [Row(name, "", "-", ERROR, f"无法批改这个文件（{type(exc).__name__}: {exc}）。")]


def _grade_file(path: Path, name: str, lesson_wanted: str | None, timeout: float,
                isolation: Isolation) -> list[Row]:
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
            in grade_lesson(nb, lesson, timeout, isolation)]


def grade_lesson(nb: dict, lesson: str, timeout: float, isolation: Isolation):
    """Yield (exercise, status, hint) after running a copy of the notebook in a fresh kernel,
    in its own temporary folder (deleted afterwards)."""
    with tempfile.TemporaryDirectory(prefix="diy-grade-") as folder:
        log = Path(folder) / "checks.jsonl"
        run = execute_copy(nb, Path(folder), log, timeout, isolation)
        verdicts = {}
        if log.exists():
            for line in log.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                verdicts[record["exercise"]] = record  # a check run twice: the last one counts
    for exercise in course.LESSONS[lesson].exercises:
        record = verdicts.get(exercise.id)
        if run.get("limit"):  # a limit was hit: whatever ran after it does not count
            yield exercise.id, ERROR, run["limit"]
        elif record is not None:
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


def execute_copy(nb: dict, folder: Path, log: Path, timeout: float,
                 isolation: Isolation | None = None) -> dict:
    """Run an in-memory copy with folder as working directory, isolated; report what went
    wrong (a limit that was hit, a timeout, a crash, the first cell error)."""
    import nbformat
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from .notebook_runner import CurrentEnvKernelManager, run_notebook

    isolation = isolation or Isolation()
    limits = isolation.limits
    km = CurrentEnvKernelManager(kernel_name="python3")
    km.kernel_argv = kernel_argv(limits, folder, isolation.sandbox, isolation.home,
                                 isolation.caches)
    km.transport, km.ip = "ipc", str(folder / "ipc")  # sockets in the folder: no network needed
    km.connection_file = str(folder / "kernel.json")
    env = clean_environment(folder, {**isolation.extra_env, LOG_ENV: str(log)},
                            isolation.font_cache)

    result = {}
    try:
        notebook = nbformat.reads(json.dumps(nb), as_version=4)  # a copy, sources joined
    except Exception as exc:  # noqa: BLE001 - malformed cells: report, do not crash
        return {"crash": f"notebook 结构不合法：{type(exc).__name__}: {str(exc)[:120]}"}
    try:
        run_notebook(notebook, folder, timeout=timeout, allow_errors=True, km=km, exact_env=env)
    except CellTimeoutError:
        running = next((i for i, c in enumerate(notebook.cells, start=1)
                        if c.cell_type == "code" and c.get("execution_count") is None), "?")
        result["timeout"] = f"停在第 {running} 个单元格，可能是死循环"
    except DeadKernelError as exc:
        result["crash"] = f"kernel 崩溃：{str(exc).splitlines()[0][:120]}"
    except Exception as exc:  # noqa: BLE001 - a broken submission must not stop the class
        result["crash"] = f"{type(exc).__name__}: {str(exc)[:120]}"
    # The limits that were hit, in the order they were hit: those the cells' errors show, then
    # the CPU limit, whose signal ends the kernel.
    reasons = []
    for index, cell in enumerate(notebook.cells, start=1):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors and "first_error" not in result:
            result["first_error"] = (f"第 {index} 个单元格 {errors[0]['ename']}: "
                                     f"{str(errors[0]['evalue'])[:120]}")
        for error in errors:
            text = f"{error.get('ename')}: {error.get('evalue')}"
            if "MemoryError" in text or "can't allocate memory" in text or "bad_alloc" in text:
                reasons.append(f"内存超过 {limits.memory_gb:g} GB，已停止。")
            elif "File too large" in text:
                reasons.append(f"写入的文件超过 {limits.file_mb} MB，已停止。")
    process = getattr(getattr(km, "provisioner", None), "process", None)
    returncode = process.poll() if process is not None else None
    if returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        reasons.append(f"CPU 时间超过 {limits.cpu_seconds} 秒，已停止。")
    if reasons:
        result["limit"] = "".join(dict.fromkeys(reasons))  # each reason once
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


MISSING = "missing"  # the learner handed in no notebook of this exercise's lesson
MARK = {PASS: "✅", TODO: "⏳", FAIL: "❌", ERROR: "❌", MISSING: "—"}


def learner_of(file: str) -> str:
    """The learner a submission belongs to: its sub-folder (class/alice/x.ipynb), else the
    file name before the lesson's name (alice_<lesson>.ipynb), else — a file named exactly
    after its lesson, as in solutions/ — its folder, else the file name."""
    parts = Path(file).parts
    if len(parts) >= 3:
        return parts[-2]
    stem = Path(file).stem
    for lesson in course.LESSONS:
        if lesson in stem:
            prefix = stem[:stem.index(lesson)].rstrip("_-. ")
            return prefix or (parts[-2] if len(parts) == 2 else stem)
    return stem


def gradebook(rows: list[Row]) -> dict:
    """One row per learner, one column per exercise of the registry, with totals."""
    exercises = list(course.EXERCISES)
    learners = sorted({learner_of(r.file) for r in rows})
    table = {learner: dict.fromkeys(exercises, MISSING) for learner in learners}
    for r in rows:
        if r.exercise in course.EXERCISES:
            table[learner_of(r.file)][r.exercise] = r.status
    learner_rows = [{"learner": learner, **table[learner],
                     "passed": sum(s == PASS for s in table[learner].values()),
                     "total": len(exercises)} for learner in learners]
    totals = {e: sum(table[learner][e] == PASS for learner in learners) for e in exercises}
    return {"exercises": exercises, "learners": learner_rows, "passed_per_exercise": totals}


def print_gradebook(book: dict) -> None:
    exercises = book["exercises"]
    name_width = max([width("学习者")] + [width(r["learner"]) for r in book["learners"]])
    print("\n成绩册（✅ 通过  ⏳ 待完成  ❌ 未通过或无法评分  — 没交这一节）")
    print(pad("学习者", name_width) + "  " + " ".join(f"{e:>5}" for e in exercises) + "  通过")
    for r in book["learners"]:
        marks = " ".join(pad("", 5 - width(MARK[r[e]])) + MARK[r[e]] for e in exercises)
        print(f"{pad(r['learner'], name_width)}  {marks}  {r['passed']}/{r['total']}")
    totals = " ".join(f"{book['passed_per_exercise'][e]:>5}" for e in exercises)
    print(f"{pad('通过人数', name_width)}  {totals}")


def write_gradebook_csv(book: dict, path: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["learner", *book["exercises"], "passed", "total"])
        writer.writeheader()
        writer.writerows(book["learners"])


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
        prog="python -m diy.classroom.grade", description="批改学习者的 notebook / grade learner notebooks")
    parser.add_argument("paths", nargs="*", help="notebook 文件或文件夹（递归查找 .ipynb）")
    parser.add_argument("--lesson", choices=list(course.LESSONS),
                        help="只接受这一节的 notebook，其它的记为交错")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="同时运行的 notebook 数（默认 = CPU 核数）")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="每个 notebook 的时间上限，秒（默认 120）")
    parser.add_argument("--csv", metavar="FILE", help="把结果（文件 × 练习）写成 CSV")
    parser.add_argument("--json", metavar="FILE", help="把结果（文件 × 练习）写成 JSON")
    parser.add_argument("--gradebook-csv", metavar="FILE", help="把成绩册（学习者 × 练习）写成 CSV")
    parser.add_argument("--gradebook-json", metavar="FILE",
                        help="把成绩册（学习者 × 练习）写成 JSON")
    parser.add_argument("--sandbox", choices=("auto", "on", "off"), default="auto",
                        help="用 bubblewrap 隔离每个 kernel：auto = 装了就用（默认），on = 必须用，off = 不用")
    defaults = Limits()
    parser.add_argument("--memory-gb", type=float, default=defaults.memory_gb,
                        help=f"每个 notebook 可写入的内存上限，GB（不含共享库和预留的地址空间；"
                             f"默认 {defaults.memory_gb:g}）")
    parser.add_argument("--cpu-seconds", type=int, default=defaults.cpu_seconds,
                        help=f"每个 notebook 的 CPU 时间上限，秒（默认 {defaults.cpu_seconds}）")
    parser.add_argument("--file-mb", type=int, default=defaults.file_mb,
                        help=f"每个文件的大小上限，MB（默认 {defaults.file_mb}）")
    parser.add_argument("--processes", type=int, default=defaults.processes,
                        help=f"进程数上限（默认 {defaults.processes}；Linux 上对 root 无效）")
    args = parser.parse_args(argv)
    if not args.paths:
        parser.error("至少给出一个 notebook 文件或文件夹。")
    if args.jobs < 1 or args.timeout <= 0:
        parser.error("--jobs 和 --timeout 必须是正数。")
    if min(args.memory_gb, args.cpu_seconds, args.file_mb, args.processes) <= 0:
        parser.error("--memory-gb、--cpu-seconds、--file-mb、--processes 必须是正数。")
    return args


def prepare_isolation(args, notebooks) -> Isolation:
    """Limits and sandbox from the arguments; caches the kernels may read (the matplotlib font
    list, the trained course model, step 4's course run, stream and BPE) built here once, so no
    graded kernel has to."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.font_manager  # noqa: F401 - builds the font list if missing
    import torch

    from ..checkpoint import cache_folder
    from .course_model import course_model

    # The kernels run torch on one thread (OMP_NUM_THREADS=1), and the cache's entries are per
    # thread count (it changes the float sums): prepare them on one thread too, or no kernel
    # would find them.
    torch.set_num_threads(1)
    sources = [p.read_text(encoding="utf-8", errors="replace") for p, _ in notebooks]
    if any("course_run(" in text for text in sources):
        from .course_runs import RECIPES, course_run

        for recipe in RECIPES:  # each recorded once (about 12 s) if the cache has no record yet
            course_run(recipe)
    if any("course_model(" in text for text in sources):
        course_model()  # trains once (about 13 s) if the cache has no model yet
    if any("course_pretrain(" in text for text in sources):
        from .course_pretrain import course_pretrain

        course_pretrain()  # step 4: trains once (about two minutes) if the cache has none yet
    if any("course_bpe(" in text for text in sources):
        from .course_pretrain import course_bpe

        course_bpe()  # lesson 4.1's BPE of 6,400 entries (about 15 s), likewise
    extra, caches = {}, ()
    if cache_folder().is_dir():  # the course model (and whatever else diy caches), read-only
        extra["DIY_CACHE"], caches = str(cache_folder()), (str(cache_folder()),)
    limits = Limits(args.memory_gb, args.cpu_seconds, args.file_mb, args.processes)
    return Isolation(limits, args.sandbox_on, extra, caches, matplotlib.get_cachedir(),
                     str(Path.home()))


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        notebooks = find_notebooks(args.paths)
    except UsageError as exc:
        print(f"python -m diy.classroom.grade: {exc}", file=sys.stderr)
        return 2
    has_bwrap = bwrap_path() is not None
    if args.sandbox == "on" and not has_bwrap:
        print("python -m diy.classroom.grade: --sandbox on 需要 bubblewrap（bwrap），但没有找到。\n"
              "修复方法：sudo apt-get install bubblewrap（Debian/Ubuntu），或用 --sandbox auto / off。\n"
              "(English: --sandbox on needs bubblewrap (bwrap), which is not installed.)",
              file=sys.stderr)
        return 2
    args.sandbox_on = args.sandbox != "off" and has_bwrap
    if args.sandbox == "auto" and not has_bwrap:
        print("注意：没有找到 bubblewrap（bwrap），kernel 不在沙箱里运行；"
              "仍然使用干净的环境变量、独立的临时文件夹和资源限制。"
              "安装：sudo apt-get install bubblewrap。", file=sys.stderr)
    isolation = prepare_isolation(args, notebooks)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = pool.map(lambda item: grade_file(item[0], item[1], args.lesson, args.timeout,
                                                   isolation), notebooks)
        rows = [row for file_rows in results for row in file_rows]
    print_table(rows, time.perf_counter() - start, len(notebooks))
    book = gradebook(rows)
    print_gradebook(book)
    if args.csv:
        write_csv(rows, args.csv)
    if args.json:
        write_json(rows, args.json)
    if args.gradebook_csv:
        write_gradebook_csv(book, args.gradebook_csv)
    if args.gradebook_json:
        with open(args.gradebook_json, "w", encoding="utf-8") as f:
            json.dump(book, f, ensure_ascii=False, indent=1)
    return 0 if all(r.status == PASS for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

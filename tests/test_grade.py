"""python -m diy.classroom.grade on a solution, an untouched notebook and broken submissions.

Grading executes notebooks, the slowest thing a test can do, and the grader treats every lesson
alike (it finds lessons and check cells through the registry, see test_course.py, and reads the
verdicts the checks log). So these tests grade copies of one small lesson, and the loop test
one multi-exercise lesson with a short timeout; nbval executes every notebook once anyway."""

import copy
import csv
import hashlib
import json
import os
import subprocess
import sys

import nbformat
import pytest

from diy.classroom import course
from tests.check_helpers import minimal_lesson_notebook
from tools.notebook_builder import ROOT, path_of

SMALL = "step1_1_lm_head"  # one exercise, a few seconds to run
MULTI = "step1_2_loss_backward"  # three exercises


def grade(*args, cwd=ROOT, env=None):
    out = subprocess.run([sys.executable, "-m", "diy.classroom.grade", *map(str, args)], cwd=cwd,
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, **(env or {})})
    return out.returncode, out.stdout, out.stderr


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file()}


def load(name, solution):
    """The lesson's notebook; the small lesson cut down to what the grader needs (faster)."""
    if name == SMALL:
        return minimal_lesson_notebook(name, solution)
    return nbformat.read(path_of(name, solution), as_version=4)


def save(nb, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def code_cell(source):
    return nbformat.v4.new_code_cell(source)


def without_check_cells(nb):
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if "self-check" not in c.metadata.get("tags", [])]
    return nb


def with_exercise(nb, source):
    nb = copy.deepcopy(nb)
    cell = next(c for c in nb.cells if "exercise" in c.metadata.get("tags", []))
    cell.source = source
    return nb


ENVIRONMENT_CHECK = """
import os
assert "DIY_TEST_SECRET" not in os.environ, "the grader's secret is visible"
here = os.getcwd()
assert os.environ["HOME"].startswith(here) and os.environ["TMPDIR"].startswith(here), "HOME/TMPDIR"
"""
# Untrusted submissions that hit the (small) limits of the class run below. The class run is
# the unsandboxed path (clean environment and limits only); test_grade_isolation.py runs the
# bubblewrap sandbox. Each hog reaches its own limit and no other, whatever the machine's load:
# the CPU limit is far above what an ordinary kernel uses (~3 s), so only the CPU hog meets it.
LIMITS = ("--sandbox", "off", "--memory-gb", "2.5", "--file-mb", "1", "--cpu-seconds", "60",
          "--timeout", "60")
HOGS = {
    # 10 GiB in one allocation, 4x the limit: it fails at once, whatever the kernel had in use
    "memory": "import torch\nhog = torch.empty(10 * 1024 ** 3, dtype=torch.uint8)",
    # one write of 3 MB, 3x the limit
    "disk": "open('big.bin', 'wb').write(b'x' * 3 * 1024 ** 2)",
    # No memory, only CPU. It lowers its own soft limit (any process may) to 1 s, so that the
    # kernel gets SIGXCPU within a second rather than after 60 s of spinning; that the launcher
    # sets the limit itself is checked in test_grade_isolation.py.
    "cpu": ("import resource\n"
            "_, hard = resource.getrlimit(resource.RLIMIT_CPU)\n"
            "resource.setrlimit(resource.RLIMIT_CPU, (1, hard))\n"
            "while True:\n    pass"),
}
# What a CUDA build of torch does at import: it maps gigabytes of address space (libraries,
# reservations) that it never writes. The memory limit must not count them: 16 GiB reserved
# (6x the limit) before torch is imported, then the lesson runs as usual and passes; the
# exercise cell first checks that the reservation was made.
RESERVE = """
import mmap
reserved = mmap.mmap(-1, 16 * 1024 ** 3, flags=mmap.MAP_PRIVATE, prot=0)  # PROT_NONE
"""
RESERVED = "assert len(reserved) == 16 * 1024 ** 3\n"


def with_first_cell(nb, source):
    nb = copy.deepcopy(nb)
    nb.cells.insert(1, code_cell(source))
    return nb


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory):
    """A class of submissions: good, untouched, wrong and broken ones, one that looks at its
    environment and one for each resource limit."""
    folder = tmp_path_factory.mktemp("class")
    solution = load(SMALL, True)
    save(solution, folder / "ada" / f"{SMALL}.ipynb")
    save(load(SMALL, False), folder / "bo" / f"{SMALL}.ipynb")  # untouched
    exercise_source = next(c.source for c in solution.cells
                           if "exercise" in c.metadata.get("tags", []))
    wrong = with_exercise(solution, exercise_source.replace("bias=False)", ")", 1))
    save(wrong, folder / "cy" / f"{SMALL}.ipynb")
    save(without_check_cells(solution), folder / "di" / f"{SMALL}.ipynb")
    broken = with_exercise(solution, "def build_lm_head(hidden_size, vocab_size)\n    pass")
    save(broken, folder / "ed" / f"{SMALL}.ipynb")
    (folder / "fa").mkdir()
    (folder / "fa" / f"{MULTI}.ipynb").write_text("{ not json", encoding="utf-8")
    unrelated = nbformat.v4.new_notebook()
    unrelated.cells = [nbformat.v4.new_markdown_cell("# my own notes"), code_cell("1 + 1")]
    save(unrelated, folder / "gu" / "notes.ipynb")
    (folder / "ha").mkdir()
    (folder / "ha" / f"{SMALL}.ipynb").write_text('{"cells": [1, "x"]}', encoding="utf-8")
    # the checks stand before the exercise's code: if one fails, the exercise is not done
    save(with_exercise(solution, ENVIRONMENT_CHECK + exercise_source),
         folder / "env" / f"{SMALL}.ipynb")
    for learner, source in HOGS.items():
        save(with_first_cell(solution, source), folder / learner / f"{SMALL}.ipynb")
    save(with_first_cell(with_exercise(solution, RESERVED + exercise_source), RESERVE),
         folder / "reserve" / f"{SMALL}.ipynb")
    return folder


@pytest.fixture(scope="module")
def class_result(class_folder, tmp_path_factory):
    before = digest(class_folder)
    out_dir = tmp_path_factory.mktemp("out")
    code, stdout, stderr = grade(class_folder, "--jobs", "2", "--json", out_dir / "r.json",
                                 "--csv", out_dir / "r.csv", *LIMITS,
                                 env={"DIY_TEST_SECRET": "s3cr3t"})
    rows = json.loads((out_dir / "r.json").read_text(encoding="utf-8"))
    return dict(code=code, stdout=stdout, stderr=stderr, rows=rows, before=before,
                csv=list(csv.DictReader(open(out_dir / "r.csv", encoding="utf-8"))))


def rows_of(result, learner):
    return [r for r in result["rows"] if r["file"].split("/")[1] == learner]


def test_solution_passes(class_result):
    rows = rows_of(class_result, "ada")
    assert [(r["exercise"], r["status"], r["hint"]) for r in rows] == \
        [(e.id, "pass", "") for e in course.LESSONS[SMALL].exercises]


def test_untouched_notebook_is_todo(class_result):
    rows = rows_of(class_result, "bo")
    assert [(r["exercise"], r["status"]) for r in rows] == \
        [(e.id, "todo") for e in course.LESSONS[SMALL].exercises]
    assert all("占位代码" in r["hint"] for r in rows)


def test_wrong_answer_gets_the_checks_hint(class_result):
    [row] = rows_of(class_result, "cy")
    assert (row["exercise"], row["status"]) == ("1.1", "fail")
    assert "bias" in row["hint"]


def test_deleted_self_check_cells(class_result):
    [row] = rows_of(class_result, "di")
    assert (row["exercise"], row["status"]) == ("1.1", "error")
    assert "自检单元格被删掉了" in row["hint"] and "check_lm_head" in row["hint"]


def test_cell_that_raises(class_result):
    [row] = rows_of(class_result, "ed")
    assert row["status"] == "error"
    assert "自检没有运行" in row["hint"] and "SyntaxError" in row["hint"]


def test_invalid_json(class_result):
    [row] = rows_of(class_result, "fa")
    assert (row["exercise"], row["status"]) == ("-", "error")
    assert "不是有效的 notebook" in row["hint"]


def test_malformed_cells_do_not_stop_the_run(class_result):
    [row] = rows_of(class_result, "ha")
    assert row["status"] == "error" and row["exercise"] == "-"
    assert "无法批改" in row["hint"]


def test_not_a_course_notebook(class_result):
    [row] = rows_of(class_result, "gu")
    assert row["status"] == "error" and "认不出" in row["hint"]


def test_table_summary_exit_code_and_files(class_result):
    assert class_result["code"] == 1
    out = class_result["stdout"]
    assert out.splitlines()[0].split() == ["文件", "练习", "结果", "说明"]
    [ada] = [line for line in out.splitlines() if f"/ada/{SMALL}.ipynb" in line]
    assert ada.split()[1:] == ["1.1", "✅"]
    assert "共 13 个 notebook" in out
    assert class_result["csv"] == [{k: str(v) for k, v in r.items()}
                                   for r in class_result["rows"]]


def test_submissions_are_never_modified(class_folder, class_result):
    assert digest(class_folder) == class_result["before"]
    assert not list(class_folder.rglob(".ipynb_checkpoints"))


def test_exit_status_is_zero_only_when_everything_passed(tmp_path, monkeypatch, capsys):
    from diy.classroom import grade as grader

    (tmp_path / "x.ipynb").write_text("{}", encoding="utf-8")
    for statuses, expected in [(["pass", "pass"], 0), (["pass", "todo"], 1),
                               (["fail"], 1), (["error"], 1)]:
        rows = [grader.Row("x.ipynb", MULTI, f"1.2{i}", s, "")
                for i, s in enumerate(statuses)]
        monkeypatch.setattr(grader, "grade_file", lambda *args, rows=rows: rows)
        assert grader.main([str(tmp_path)]) == expected
    assert "✅" in capsys.readouterr().out


def test_wrong_lesson_and_endless_loop(tmp_path):
    save(load(SMALL, True), tmp_path / "a" / f"{SMALL}.ipynb")
    looping = load(MULTI, False)
    looping.cells.insert(1, code_cell("while True:\n    pass"))
    save(looping, tmp_path / "b" / f"{MULTI}.ipynb")
    code, stdout, _ = grade(tmp_path, "--lesson", MULTI, "--timeout", "2")
    assert code == 1
    lines = stdout.splitlines()
    wrong = [line for line in lines if line.startswith(f"{tmp_path.name}/a/")]
    assert len(wrong) == 1 and "交错了" in wrong[0] and SMALL in wrong[0]
    looped = [line for line in lines if line.startswith(f"{tmp_path.name}/b/")]
    assert len(looped) == 3 and all("超时" in line for line in looped)


@pytest.mark.parametrize("args", [[], ["does/not/exist.ipynb"], ["--jobs", "0", "x"],
                                  ["--timeout", "-1", "x"], ["--lesson", "step9", "x"]])
def test_usage_errors_exit_2(tmp_path, monkeypatch, capsys, args):
    from diy.classroom import grade as grader

    monkeypatch.chdir(tmp_path)
    try:
        code = grader.main(args)
    except SystemExit as exit_:  # argparse reports usage errors by exiting with 2
        code = exit_.code
    assert code == 2
    assert capsys.readouterr().err.strip()


def test_folder_without_notebooks_is_a_usage_error(tmp_path, capsys):
    from diy.classroom import grade as grader

    assert grader.main([str(tmp_path)]) == 2
    assert ".ipynb" in capsys.readouterr().err


def test_the_kernel_sees_no_secret_and_lives_in_its_own_folder(class_result):
    [row] = rows_of(class_result, "env")
    assert row["status"] == "pass", row["hint"]


def test_each_limit_gives_its_reason_and_the_good_submission_still_passes(class_result):
    reasons = {learner: rows_of(class_result, learner)[0] for learner in HOGS}
    assert all(r["status"] == "error" for r in reasons.values())
    assert reasons["memory"]["hint"] == "内存超过 2.5 GB，已停止。"
    assert reasons["disk"]["hint"] == "写入的文件超过 1 MB，已停止。"
    assert reasons["cpu"]["hint"] == "CPU 时间超过 60 秒，已停止。"
    assert [r["status"] for r in rows_of(class_result, "ada")] == ["pass"]


def test_reserved_address_space_does_not_count_as_memory(class_result):
    [row] = rows_of(class_result, "reserve")
    assert row["status"] == "pass", row["hint"]


def test_a_folder_of_files_named_after_the_lessons_is_one_learner(tmp_path, monkeypatch):
    from diy.classroom import grade as grader

    folder = tmp_path / "solutions"  # as in: python -m diy.classroom.grade solutions/
    folder.mkdir()
    lessons = [SMALL, MULTI]
    for name in lessons:
        (folder / f"{name}.ipynb").write_text("{}", encoding="utf-8")
    monkeypatch.setattr(grader, "grade_file", lambda path, name, *args: [
        grader.Row(name, path.stem, e.id, "pass", "") for e in course.LESSONS[path.stem].exercises])
    monkeypatch.setattr(grader, "prepare_isolation", lambda args, notebooks: grader.Isolation())
    book = tmp_path / "book.json"
    assert grader.main([str(folder), "--sandbox", "off", "--gradebook-json", str(book)]) == 0
    [learner] = json.loads(book.read_text(encoding="utf-8"))["learners"]
    assert learner["learner"] == "solutions"
    assert learner["passed"] == sum(len(course.LESSONS[n].exercises) for n in lessons)
    # a learner's own prefix still names the learner, and a class folder's sub-folder
    assert grader.learner_of(f"solutions/bo_{SMALL}.ipynb") == "bo"
    assert grader.learner_of(f"class/ada/{SMALL}.ipynb") == "ada"

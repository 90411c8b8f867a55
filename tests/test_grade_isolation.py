"""The grader treats submissions as untrusted code: a clean environment, a folder of their own,
resource limits, bubblewrap where installed, and a gradebook per learner."""

import csv
import json
import os
import shutil
import subprocess
import sys
import uuid

import nbformat
import pytest

from diy import course
from diy import grade as grader
from tests.check_helpers import minimal_lesson_notebook
from tools.notebook_builder import ROOT

SMALL = "step1_1_lm_head"


def with_cell(source, name):
    """The small lesson's (cut-down) solution with one cell inserted after its title."""
    nb = minimal_lesson_notebook(SMALL, True)
    nb.cells.insert(1, nbformat.v4.new_code_cell(source))
    return name, nb


def grade_folder(folder, *args, env=None):
    out = subprocess.run([sys.executable, "-m", "diy.grade", str(folder), "--jobs", "2",
                          "--json", str(folder.parent / f"{folder.name}.json"), *map(str, args)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, **(env or {})})
    rows = json.loads((folder.parent / f"{folder.name}.json").read_text(encoding="utf-8"))
    return out, {r["file"].split("/")[1]: r for r in rows}


ENVIRONMENT_CHECK = """
import os
assert "DIY_TEST_SECRET" not in os.environ, "the grader's secret is visible"
here = os.getcwd()
assert os.environ["HOME"].startswith(here) and os.environ["TMPDIR"].startswith(here), "HOME/TMPDIR"
"""


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """One run without the sandbox: a good submission, one that looks at its environment, and
    one for each limit (small limits so the tests are quick)."""
    folder = tmp_path_factory.mktemp("limits") / "class"
    submissions = [
        with_cell("pass", "good"),
        with_cell(ENVIRONMENT_CHECK, "env"),
        with_cell("import torch\nhog = torch.ones(3 * 1024 ** 3, dtype=torch.uint8)", "memory"),
        with_cell("open('big.bin', 'wb').write(b'x' * 3 * 1024 ** 2)", "disk"),
        with_cell("while True:\n    pass", "cpu"),
    ]
    for learner, nb in submissions:
        (folder / learner).mkdir(parents=True)
        nbformat.write(nb, folder / learner / f"{SMALL}.ipynb")
    return grade_folder(folder, "--sandbox", "off", "--memory-gb", "2.5", "--file-mb", "1",
                        "--cpu-seconds", "4", "--timeout", "60",
                        env={"DIY_TEST_SECRET": "s3cr3t"})


def test_the_good_submission_passes_beside_the_others(limited):
    _, rows = limited
    assert rows["good"]["status"] == "pass"


def test_the_kernel_sees_no_secret_and_lives_in_its_own_folder(limited):
    _, rows = limited
    assert rows["env"]["status"] == "pass", rows["env"]["hint"]


def test_each_limit_gives_its_reason(limited):
    _, rows = limited
    assert rows["memory"]["status"] == "error" and "内存超过 2.5 GB" in rows["memory"]["hint"]
    assert rows["disk"]["status"] == "error" and "超过 1 MB" in rows["disk"]["hint"]
    assert rows["cpu"]["status"] == "error" and "CPU 时间超过 4 秒" in rows["cpu"]["hint"]


def test_without_bubblewrap_the_run_says_so_once(limited, monkeypatch, capsys, tmp_path):
    out, _ = limited
    assert "bubblewrap" not in out.stderr  # --sandbox off: nothing to say
    monkeypatch.setattr(grader, "bwrap_path", lambda: None)
    (tmp_path / "x.ipynb").write_text("{}", encoding="utf-8")
    assert grader.main([str(tmp_path), "--sandbox", "on"]) == 2
    assert "bubblewrap" in capsys.readouterr().err


ESCAPE = """
import pathlib
escaped = []
for target in [pathlib.Path("/tmp/TARGET"), pathlib.Path("SUBMISSIONS") / "escaped.txt",
               pathlib.Path.home() / ".." / ".." / "outside.txt"]:
    try:
        target.write_text("x")
        escaped.append(str(target))
    except OSError:
        pass
(pathlib.Path.cwd() / "inside.txt").write_text("fine")  # its own folder is writable
assert not escaped, escaped
"""


@pytest.mark.skipif(shutil.which("bwrap") is None and os.environ.get("DIY_REQUIRE_BWRAP") != "1",
                    reason="bubblewrap is not installed (.ci/run installs it where apt exists)")
def test_in_the_sandbox_nothing_outside_its_folder_is_writable(tmp_path):
    target = f"diy-escape-{uuid.uuid4().hex}"
    folder = tmp_path / "class"
    source = ESCAPE.replace("TARGET", target).replace("SUBMISSIONS", str(folder))
    for learner, nb in (with_cell(source, "escape"), with_cell(ENVIRONMENT_CHECK, "env")):
        (folder / learner).mkdir(parents=True)
        nbformat.write(nb, folder / learner / f"{SMALL}.ipynb")
    out, rows = grade_folder(folder, "--sandbox", "on", env={"DIY_TEST_SECRET": "s3cr3t"})
    assert rows["escape"]["status"] == "pass", rows["escape"]["hint"]
    assert rows["env"]["status"] == "pass", rows["env"]["hint"]
    assert not (tmp_path / "class" / "escaped.txt").exists()
    assert not os.path.exists(f"/tmp/{target}")


def test_gradebook_one_row_per_learner_and_missing_lessons(monkeypatch, tmp_path, capsys):
    rows = [grader.Row("c/ada/step1_1_lm_head.ipynb", SMALL, "1.1", "pass", ""),
            grader.Row("c/ada/step1_3_causal_lm.ipynb", "step1_3_causal_lm", "1.3", "fail", "x"),
            grader.Row("c/bo_step1_1_lm_head.ipynb", SMALL, "1.1", "todo", "")]
    for row in rows:
        (tmp_path / row.file.split("/")[-1]).write_text("{}", encoding="utf-8")
    monkeypatch.setattr(grader, "grade_file",
                        lambda path, *args: [r for r in rows if r.file.endswith(path.name)])
    monkeypatch.setattr(grader, "prepare_isolation", lambda args, notebooks: grader.Isolation())
    code = grader.main([str(tmp_path), "--sandbox", "off",
                        "--gradebook-csv", str(tmp_path / "book.csv"),
                        "--gradebook-json", str(tmp_path / "book.json")])
    assert code == 1
    book = json.loads((tmp_path / "book.json").read_text(encoding="utf-8"))
    assert book["exercises"] == list(course.EXERCISES)
    by_learner = {r["learner"]: r for r in book["learners"]}
    assert sorted(by_learner) == ["ada", "bo"]
    assert by_learner["ada"]["1.1"] == "pass" and by_learner["ada"]["1.3"] == "fail"
    assert by_learner["ada"]["2.1"] == "missing" and by_learner["bo"]["1.3"] == "missing"
    assert (by_learner["ada"]["passed"], by_learner["ada"]["total"]) == (1, len(course.EXERCISES))
    assert book["passed_per_exercise"]["1.1"] == 1
    table = list(csv.DictReader(open(tmp_path / "book.csv", encoding="utf-8")))
    assert [r["learner"] for r in table] == ["ada", "bo"] and table[1]["1.1"] == "todo"
    out = capsys.readouterr().out
    assert "成绩册" in out and "—" in out

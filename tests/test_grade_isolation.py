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


def test_sandbox_on_without_bubblewrap_exits_2(monkeypatch, capsys, tmp_path):
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
import os
assert "DIY_TEST_SECRET" not in os.environ, "the grader's secret is visible"
assert os.environ["HOME"].startswith(os.getcwd()) and os.environ["TMPDIR"].startswith(os.getcwd())
"""


@pytest.mark.skipif(shutil.which("bwrap") is None and os.environ.get("DIY_REQUIRE_BWRAP") != "1",
                    reason="bubblewrap is not installed (.ci/run installs it where apt exists)")
def test_in_the_sandbox_nothing_outside_its_folder_is_writable(tmp_path):
    target = f"diy-escape-{uuid.uuid4().hex}"
    folder = tmp_path / "class"
    source = ESCAPE.replace("TARGET", target).replace("SUBMISSIONS", str(folder))
    learner, nb = with_cell(source, "escape")
    (folder / learner).mkdir(parents=True)
    nbformat.write(nb, folder / learner / f"{SMALL}.ipynb")
    out, rows = grade_folder(folder, "--sandbox", "on", env={"DIY_TEST_SECRET": "s3cr3t"})
    assert rows["escape"]["status"] == "pass", rows["escape"]["hint"]
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

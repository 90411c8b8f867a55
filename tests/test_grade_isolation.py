"""The grader treats submissions as untrusted code: a clean environment, a folder of their own,
resource limits, bubblewrap where installed (a view of the file system with nothing in it but
what a kernel needs), and a gradebook per learner."""

import csv
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import matplotlib
import nbformat
import pytest

import diy
from diy.classroom import course, sandbox
from diy.classroom import grade as grader
from tests.check_helpers import minimal_lesson_notebook
from tools.notebook_builder import ROOT

SMALL = "step1_1_lm_head"
needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None and os.environ.get("DIY_REQUIRE_BWRAP") != "1",
    reason="bubblewrap is not installed (.ci/run installs it where apt exists)")


def exercise_source(nb):
    return next(c.source for c in nb.cells if "exercise" in c.metadata.get("tags", []))


def with_exercise(source):
    """The small lesson's (cut-down) learner notebook with this exercise cell."""
    nb = minimal_lesson_notebook(SMALL, False)
    next(c for c in nb.cells if "exercise" in c.metadata.get("tags", [])).source = source
    return nb


def grade_folder(folder, *args, env=None):
    out = subprocess.run([sys.executable, "-m", "diy.classroom.grade", str(folder), "--jobs", "2",
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


# --------------------------------------------------------------------------- the limits

def launch(limits, code):
    """Run ``code`` through the kernel launcher (no sandbox) with these limits."""
    argv = sandbox.kernel_argv(limits, Path.cwd(), False)
    argv = argv[:argv.index("--") + 1] + [sys.executable, "-c", code]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


LIMITS_SEEN = """
import mmap, resource
print(resource.getrlimit(resource.RLIMIT_DATA)[0], resource.getrlimit(resource.RLIMIT_CPU),
      resource.getrlimit(resource.RLIMIT_FSIZE)[0])
reserved = mmap.mmap(-1, 16 * 1024 ** 3, flags=mmap.MAP_PRIVATE, prot=0)  # address space only
kept = bytearray(256 * 1024 ** 2)  # memory, within the limit
try:
    bytearray(1024 ** 3)  # memory, past it: fails in this one allocation
except MemoryError:
    print("MemoryError")
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_DATA counts mmap on Linux only")
def test_the_launcher_limits_memory_not_address_space():
    out = launch(sandbox.Limits(memory_gb=0.75, cpu_seconds=30, file_mb=3), LIMITS_SEEN)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == [f"{int(0.75 * 1024 ** 3)} (30, 35) {3 * 1024 ** 2}",
                                          "MemoryError"]


# --------------------------------------------------------------------------- the view

def test_the_view_shows_diy_but_not_its_checkout_and_hides_every_home(tmp_path):
    view = sandbox.sandbox_view(tmp_path / "sub", "/var/lib/grader-home", [str(tmp_path)])
    read_only = {m.path for m in view if m.kind == "ro-bind"}
    hidden = {m.path for m in view if m.kind == "tmpfs"}
    package = Path(diy.__file__).resolve().parent
    assert str(package) in read_only and str(package.parent) not in read_only
    assert not any(path in (str(ROOT), str(ROOT / "notebooks")) for path in read_only)
    assert {"/tmp", "/home", "/root", "/var/lib/grader-home"} <= hidden
    assert os.path.realpath(sys.base_prefix) in read_only and str(tmp_path) in read_only
    assert [m.source for m in view if m.path == "/etc/passwd"][0].endswith(
        f":{tmp_path / 'sub' / 'home'}:/bin/sh\n")
    # a home folder that holds the system (/ in some containers) is not hidden
    assert "/" not in {m.path for m in sandbox.sandbox_view(tmp_path, "/") if m.kind == "tmpfs"}


def test_bwrap_mounts_parents_first_and_only_the_folder_stays_writable(tmp_path):
    view = [sandbox.Mount("ro-bind", "/root/.pyenv/versions/3"), sandbox.Mount("tmpfs", "/root"),
            sandbox.Mount("ro-bind", "/usr/lib"), sandbox.Mount("ro-bind", "/usr"),
            sandbox.Mount("data", "/etc/passwd", "x:x:1:1::/h:/bin/sh\n")]
    fds = []
    argv = sandbox.bwrap_argv(tmp_path, view, fds)
    for fd in fds:
        os.close(fd)
    text = " ".join(argv)
    assert text.index("--tmpfs /root") < text.index("--ro-bind /root/.pyenv/versions/3")
    assert "/usr/lib" not in text  # inside /usr, already visible
    assert f"--bind {tmp_path} {tmp_path}" in text and text.count("--bind ") == 1
    assert text.endswith(f"--remount-ro /root --remount-ro / --chdir {tmp_path} --")
    assert "--unshare-all" in argv and len(fds) == 1


# --------------------------------------------------------------------------- a class in bwrap

# Copies another learner's answer: finds the class folder's notebooks and execs the code of
# alice's exercise cell (what follows her "# answer" line, when she has one).
COPY_FROM_CLASSMATE = """
import glob, json
for path in glob.glob("CLASS/**/*.ipynb", recursive=True):
    if "alice" in path:
        cells = json.load(open(path, encoding="utf-8"))["cells"]
        exec("".join(next(c["source"] for c in cells
                          if "exercise" in c["metadata"].get("tags", []))).split("# answer\\n")[-1])
"""
# Reads an answer the instructor keeps in their home folder.
READ_INSTRUCTORS_FILE = """
try:
    exec(open("PLANTED", encoding="utf-8").read())
except OSError:
    pass
"""
# Looks around: nothing writable outside its folder, no network, no secret, and no file to see
# outside its folder, the Python installation, the diy package and the caches. It stands at the
# top of alice's exercise cell, before her (correct) code: a failed assertion leaves the
# exercise undone, and the check does not pass.
LOOK_AROUND = """
import importlib.util, os, pathlib, socket, sys
escaped = []
for target in [pathlib.Path("/tmp/TARGET"), pathlib.Path("CLASS") / "escaped.txt",
               pathlib.Path.home() / ".." / ".." / "outside.txt", pathlib.Path("/TARGET"),
               pathlib.Path(sys.prefix) / "TARGET", pathlib.Path("GRADER_HOME") / "TARGET"]:
    try:
        target.write_text("x")
        escaped.append(str(target))
    except OSError:
        pass
(pathlib.Path.cwd() / "inside.txt").write_text("fine")  # its own folder is writable
assert not escaped, escaped
assert [name for _, name in socket.if_nameindex()] == ["lo"], "a network interface"
assert "DIY_TEST_SECRET" not in os.environ, "the grader's secret is visible"
assert os.environ["HOME"].startswith(os.getcwd()) and os.environ["TMPDIR"].startswith(os.getcwd())
allowed = [os.getcwd(), sys.prefix, sys.base_prefix, os.environ.get("DIY_CACHE") or "/nothing",
           importlib.util.find_spec("diy").submodule_search_locations[0]]
allowed = {os.path.realpath(p) for p in allowed} | set(allowed)
def shown(path):
    return any(path == a or path.startswith(a + os.sep) for a in allowed)
seen = []
for top in ["/tmp", "/home", "/root", "GRADER_HOME", "CHECKOUT"]:
    for folder, subfolders, files in os.walk(top):
        subfolders[:] = [s for s in subfolders if not shown(os.path.join(folder, s))]
        seen += [os.path.join(folder, f) for f in files if not shown(os.path.join(folder, f))]
assert not seen, seen[:5]
"""


@pytest.fixture(scope="module")
def sandboxed_class(tmp_path_factory):
    """alice (a correct solution that looks around first) and mallory (tries to copy alice's
    answer, then to read the answer the instructor keeps in HOME), graded with --sandbox on by
    an instructor whose HOME is a temporary folder."""
    base = tmp_path_factory.mktemp("isolation")
    folder, home = base / "class", base / "home"
    planted = home / "answers" / f"{SMALL}.py"
    planted.parent.mkdir(parents=True)
    planted.write_text(exercise_source(minimal_lesson_notebook(SMALL, True)), encoding="utf-8")
    stub = exercise_source(minimal_lesson_notebook(SMALL, False))
    solution = exercise_source(minimal_lesson_notebook(SMALL, True))
    target = f"diy-escape-{uuid.uuid4().hex}"
    look = LOOK_AROUND.replace("TARGET", target)
    sources = {
        "alice": with_exercise(look.replace("CLASS", str(folder))
                               .replace("GRADER_HOME", str(home))
                               .replace("CHECKOUT", str(ROOT)) + "# answer\n" + solution),
        "mallory": with_exercise(stub + COPY_FROM_CLASSMATE.replace("CLASS", str(folder))
                                 + READ_INSTRUCTORS_FILE.replace("PLANTED", str(planted))),
    }
    for learner, nb in sources.items():
        (folder / learner).mkdir(parents=True)
        nbformat.write(nb, folder / learner / f"{SMALL}.ipynb")
    # the grader's own matplotlib font list (a fresh HOME would have to build one first)
    env = {"HOME": str(home), "MPLCONFIGDIR": matplotlib.get_cachedir(),
           "DIY_TEST_SECRET": "s3cr3t"}
    out, rows = grade_folder(folder, "--sandbox", "on", env=env)
    return dict(out=out, rows=rows, folder=folder, target=target)


@needs_bwrap
def test_a_correct_submission_passes_and_sees_nothing_outside_its_folder(sandboxed_class):
    row = sandboxed_class["rows"]["alice"]
    assert row["status"] == "pass", (row, sandboxed_class["out"].stderr[-2000:])
    assert not (sandboxed_class["folder"] / "escaped.txt").exists()
    assert not os.path.exists(f"/tmp/{sandboxed_class['target']}")


@needs_bwrap
def test_a_submission_cannot_read_another_one_or_the_instructors_files(sandboxed_class):
    row = sandboxed_class["rows"]["mallory"]
    assert (row["exercise"], row["status"]) == ("1.1", "todo") and "占位代码" in row["hint"]


def test_the_cheats_work_where_the_files_are_visible(tmp_path):
    """Outside a sandbox each of mallory's two cheats gets the answer on its own: the sandbox
    test fails if the sandbox lets either see its file."""
    nb = minimal_lesson_notebook(SMALL, True)
    (tmp_path / "alice").mkdir()
    nbformat.write(nb, tmp_path / "alice" / f"{SMALL}.ipynb")
    (tmp_path / "answer.py").write_text(exercise_source(nb), encoding="utf-8")
    stub = exercise_source(minimal_lesson_notebook(SMALL, False))
    for cheat in (COPY_FROM_CLASSMATE.replace("CLASS", str(tmp_path)),
                  READ_INSTRUCTORS_FILE.replace("PLANTED", str(tmp_path / "answer.py"))):
        namespace = {"nn": __import__("torch").nn}
        exec(stub + cheat, namespace)
        assert namespace["build_lm_head"](4, 8).weight.shape == (8, 4)


# --------------------------------------------------------------------------- the gradebook

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

"""Repository-wide pytest set-up (applies to the unit tests and to nbval's notebook runs)."""

import os
from pathlib import Path

# One thread per process. pytest-xdist runs a worker per core and each worker starts notebook
# kernels; torch's default (an OpenMP thread per core in every process) oversubscribes the
# cores, and OpenMP's spinning threads make small tensor ops crawl: measured on 2 cores, a check
# cell that takes 1 s alone took 235 s. Set before torch is imported; kernels inherit it.
for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

# One cache of the trained course model for the whole run (test workers and notebook kernels
# inherit the variable): it is trained at most once per run, by whoever needs it first, and
# kept for the next run. Inside the repository (git ignores it), not in the user's home.
os.environ.setdefault("DIY_CACHE", str(Path(__file__).resolve().parent / ".cache" / "diy-llm"))

# The committed outputs are the course's reference backbone's: a learner's DIY_BACKBONE in the
# shell that runs the tests would change them (tests that want a backbone set it themselves).
os.environ.pop("DIY_BACKBONE", None)

# matplotlib builds its font cache on first import and says so on stderr. Inside a notebook
# that message would be an unexpected output under strict nbval on a fresh machine, so build
# the cache here, once, before any notebook runs.
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.font_manager  # noqa: E402,F401

# Step 4's course pretraining run trains for minutes on first use, and every notebook of 4.2 and
# 4.3 waits for it. Left to the first notebook that needs it, the other worker would reach a
# step-4 notebook too and sit idle on the lock. So the run starts here, in a process of its own,
# when the session starts (in the controller, once), and the workers go on with everything else
# meanwhile; the notebooks find it cached or wait for the rest of it. One torch thread, as the
# kernels, so it is the cache entry they look for.
PREPARE_STEP4 = ("from diy.classroom.course_pretrain import course_bpe, course_pretrain; "
                 "course_bpe(); course_pretrain()")


def pytest_sessionstart(session):
    import subprocess
    import sys

    config = session.config
    if hasattr(config, "workerinput"):  # an xdist worker: the controller starts it
        return
    if config.option.collectonly:  # nothing runs (e.g. tests/test_notebooks.py's collection
        return                     # check): waiting for the training would only hold a worker
    selected = [str(arg) for arg in config.args] or ["notebooks", "solutions"]
    if not any("notebooks" in arg or "solutions" in arg for arg in selected):
        return  # no notebook in this run
    config._diy_prepare = subprocess.Popen(
        [sys.executable, "-c", PREPARE_STEP4], cwd=Path(__file__).resolve().parent,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pytest_sessionfinish(session):
    process = getattr(session.config, "_diy_prepare", None)
    if process is not None:
        process.wait()  # never leave it behind (it ends with the cache written)

"""The grader's speed on a class: 10 learners × the three step-1 solutions (30 notebooks),
graded by `python -m diy.classroom.grade` as an instructor runs it.

    python benchmarks/bench_grading.py [--learners 10] [--jobs 2] [--sandbox on] [--repeats 3]
        [--compare OTHER_PYTHON OTHER_CHECKOUT]

Each repeat is one whole grader run (start-up, caches, every kernel, the tables), timed from
outside; the figure to compare is the minimum over the repeats (the run least slowed by whatever
else the machine was doing), the median is printed beside it. Every notebook must pass: a
faster grader that grades nothing is not faster.

--compare grades the same class with another version of the grader (an interpreter whose
`diy` is that checkout's, run from that checkout), alternating the two run by run so that a
change in the machine's load slows both alike.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from diy.classroom.course import LESSONS

ROOT = Path(__file__).resolve().parent.parent
STEP1 = [name for name in LESSONS if name.startswith("step1_")]


def make_class(folder: Path, learners: int) -> int:
    """folder/learner00/<lesson>.ipynb ... : every learner hands in every step-1 solution."""
    for i in range(learners):
        (folder / f"learner{i:02d}").mkdir(parents=True)
        for name in STEP1:
            shutil.copy(ROOT / "solutions" / f"{name}.ipynb", folder / f"learner{i:02d}")
    return learners * len(STEP1)


def grade_once(folder: Path, jobs: int, sandbox: str, python: str = sys.executable,
               checkout: Path = ROOT) -> float:
    report = folder.parent / "rows.json"
    start = time.perf_counter()
    out = subprocess.run([python, "-m", "diy.classroom.grade", str(folder), "--jobs", str(jobs),
                          "--sandbox", sandbox, "--json", str(report)],
                         cwd=checkout, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    rows = json.loads(report.read_text(encoding="utf-8"))
    failed = [r for r in rows if r["status"] != "pass"]
    if out.returncode != 0 or failed:
        sys.exit(f"the grader did not pass every solution (exit {out.returncode}): "
                 f"{failed[:3]}\n{out.stderr[-2000:]}")
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sandbox", choices=("auto", "on", "off"), default="on")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare", nargs=2, metavar=("OTHER_PYTHON", "OTHER_CHECKOUT"))
    args = parser.parse_args(argv)
    graders = {"this checkout": (sys.executable, ROOT)}
    if args.compare:
        graders["other"] = (args.compare[0], Path(args.compare[1]).resolve())
    times = {name: [] for name in graders}
    with tempfile.TemporaryDirectory(prefix="diy-bench-grading-") as tmp:
        folder = Path(tmp) / "class"
        n = make_class(folder, args.learners)
        for _ in range(args.repeats):
            for name, (python, checkout) in graders.items():
                times[name].append(grade_once(folder, args.jobs, args.sandbox, python, checkout))
    print(f"{n} notebooks ({args.learners} learners × {len(STEP1)} step-1 solutions), "
          f"--jobs {args.jobs}, --sandbox {args.sandbox}:")
    for name, (_, checkout) in graders.items():
        runs = times[name]
        print(f"  {name} ({checkout}): min {min(runs):.1f} s, median "
              f"{statistics.median(runs):.1f} s ({', '.join(f'{t:.1f}' for t in runs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

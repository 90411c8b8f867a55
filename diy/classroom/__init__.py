"""The classroom: everything that teaches and grades the course, around the library in ``diy``.

The library (``diy.*`` outside this folder) is what a learner's model and the command-line tools
use; it never imports from here. The classroom imports the library:

    course.py          the course's only list of steps → lessons → exercises → self-checks
    checks/            the self-checks that follow each exercise (✅ / ⏳ / ❌ with a hint)
    course_model.py    the course's trained model and cache (trained once, then read)
    course_runs.py     the course's reference training records (2.2 / 2.3's figures)
    conformance.py     a learner's backbone checked item by item against the contract
    doctor.py          python -m diy.classroom.doctor: the learner's set-up, and --backbone
    python_support.py  which Pythons the course supports (run before the venv exists)
    grade.py           python -m diy.classroom.grade: grade a class's notebooks
    sandbox.py         how each graded kernel is started (environment, limits, bubblewrap)
    notebook_runner.py run a notebook in a fresh kernel (grading and building the notebooks)
"""

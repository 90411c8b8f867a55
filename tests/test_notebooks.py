"""The notebooks: clean, in sync with their lessons, and every self-check passes when the
solution code is typed into the learner notebook.

Every notebook is executed once per test run, by nbval (strict: each output compared with the
committed one). The tests here read the committed notebooks and so cost no kernel; together with
nbval they prove what re-executing the notebooks again would (see the filled-in test)."""

import json
import re
import subprocess
import sys

import nbformat
import pytest

from diy.classroom import course
from diy.classroom.course import CHECK_TAG, EXERCISE_TAG
from diy.classroom.notebook_runner import run_notebook
from tools.notebook_builder import LESSONS, ROOT, drifted, path_of

NOTEBOOKS = [path_of(name, solution) for name in LESSONS for solution in (False, True)]
MACHINE_PATH = re.compile(r"(/(work|root|home|tmp|Users|private)/|[A-Za-z]:\\\\)")


def read(path):
    return nbformat.read(path, as_version=4)


def tags(cell):
    return cell.metadata.get("tags", [])


def stdout_of(cell):
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")


def exercise_ids(name):
    return [e.id for e in course.LESSONS[name].exercises]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_hygiene(path):
    nb = read(path)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "version" not in nb.metadata.get("language_info", {})
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code_cells]
    assert counts == list(range(1, len(code_cells) + 1)), "not run top to bottom in one kernel"
    for cell in code_cells:
        assert "execution" not in cell.metadata, "timing metadata"
        for output in cell.outputs:
            assert output.output_type != "error", f"saved with an error: {output.get('ename')}"
            assert output.get("name") != "stderr", f"stderr output: {output.get('text')!r}"
            assert not MACHINE_PATH.search(json.dumps(output)), "machine path in an output"
        assert not MACHINE_PATH.search(cell.source), "machine path in a cell"
    silent = [c.id for c in code_cells if not c.outputs and EXERCISE_TAG not in tags(c)]
    assert silent == [], "every cell but the exercises prints what it made"


@pytest.mark.parametrize("name", LESSONS)
def test_learner_and_solution_differ_only_in_exercise_cells(name):
    learner, solution = read(path_of(name, False)), read(path_of(name, True))
    assert len(learner.cells) == len(solution.cells)
    n_exercises = 0
    for a, b in zip(learner.cells, solution.cells, strict=True):
        assert (a.id, a.cell_type, a.metadata) == (b.id, b.cell_type, b.metadata)
        if EXERCISE_TAG in tags(a):
            n_exercises += 1
            assert a.source != b.source, f"exercise cell {a.id} holds the answer"
            assert "NotImplementedError" in a.source or "None" in a.source
        else:
            assert a.source == b.source, f"cell {a.id} differs outside the exercises"
    assert n_exercises == len(exercise_ids(name))


def test_notebooks_match_their_lessons():
    assert drifted() == [], "run: python -m tools.notebook_builder"


@pytest.mark.parametrize("name", LESSONS)
def test_committed_verdicts(name):
    """Untouched learner notebooks say ⏳ for every exercise; the solutions say ✅."""
    for solution, icon in ((False, "⏳"), (True, "✅")):
        checks = [c for c in read(path_of(name, solution)).cells if CHECK_TAG in tags(c)]
        verdicts = [stdout_of(c) for c in checks]
        assert [v[:1] for v in verdicts] == [icon] * len(exercise_ids(name)), verdicts
        for verdict, exercise in zip(verdicts, exercise_ids(name), strict=True):
            assert verdict.startswith(f"{icon} 练习 {exercise} ")


@pytest.mark.parametrize("name", LESSONS)
def test_solution_code_typed_into_the_learner_notebook_passes_every_check(name):
    """A learner who types the answers into the exercise cells has, cell for cell, the code of
    the solution notebook. nbval re-executes that code in this run and compares each output with
    the committed one, and the committed check outputs are ✅ for every exercise
    (test_committed_verdicts): so every check passes, without executing the notebook twice."""
    learner, solution = read(path_of(name, False)), read(path_of(name, True))
    for mine, answer in zip(learner.cells, solution.cells, strict=True):
        if EXERCISE_TAG in tags(mine):
            mine.source = answer.source  # the learner types the answer
    assert [(c.cell_type, c.source) for c in learner.cells] == \
        [(c.cell_type, c.source) for c in solution.cells]
    checks = [c for c in solution.cells if CHECK_TAG in tags(c)]
    assert len(checks) == len(exercise_ids(name))
    assert all(stdout_of(c).startswith("✅ 练习 ") for c in checks)


def test_nbval_collects_every_code_cell():
    """Guards against nbval silently checking nothing (not installed, or notebooks skipped)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0",
                          "notebooks", "solutions"], cwd=ROOT, capture_output=True, text=True)
    collected = [line for line in out.stdout.splitlines() if ".ipynb::Cell" in line]
    expected = sum(1 for p in NOTEBOOKS for c in read(p).cells if c.cell_type == "code")
    assert len(collected) == expected, out.stdout[-2000:]


def test_check_cell_run_before_its_exercise_gets_a_hint_not_a_traceback(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from diy.classroom.checks import check_lm_head"),
                nbformat.v4.new_code_cell("check_lm_head(build_lm_head, forward_to_logits)"),
                nbformat.v4.new_code_cell("undefined_name_of_the_learner")]
    run_notebook(nb, tmp_path, allow_errors=True)
    hint = stdout_of(nb.cells[1])
    assert hint.startswith("❌ build_lm_head 还没有定义") and "Run All Above" in hint
    assert not [o for o in nb.cells[1].outputs if o.output_type == "error" and o.get("traceback")]
    # any other NameError keeps IPython's usual traceback
    [error] = [o for o in nb.cells[2].outputs if o.output_type == "error"]
    assert error.ename == "NameError"


PLAN_FOLLOWING_1_3 = '''
class DIYForCausalLM(nn.Module):
    def __init__(self, vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout=0.1):
        super().__init__()
        self.model = DIYModel(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)
        self.lm_head = nn.Linear(hidden_size, vocab_size, bias=False)

    def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                is_training=True):
        hidden_states = self.model(input_ids, seq_lengths=seq_lengths,
                                   past_key_values=past_key_values, is_training=is_training)
        return self.lm_head(hidden_states)  # presents 先不往外返，等第三步再改
'''


def test_plan_following_learner_passes_1_3_and_the_notebook_runs_to_the_end(tmp_path):
    """The study plan allows 1.3 to return only logits with use_cache=True: ✅ with a note, and
    the cells after it (which unpack presents) still run."""
    nb = read(path_of("step1_3_causal_lm", False))
    [exercise] = [c for c in nb.cells if EXERCISE_TAG in tags(c)]
    exercise.source = PLAN_FOLLOWING_1_3
    run_notebook(nb, tmp_path, allow_errors=True)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    [check] = [c for c in nb.cells if CHECK_TAG in tags(c)]
    assert stdout_of(check).startswith("✅ 练习 1.3 通过") and "第三步" in stdout_of(check)

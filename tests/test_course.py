"""The course registry (diy/classroom/course.py) is the only list of lessons: every place that
needs the list derives it from there, and this file proves they agree."""

import copy
import re
from pathlib import Path

import nbformat
import pytest

from diy.classroom import checks, course, grade
from diy.classroom.checks import ipython_hints
from tools import notebook_builder
from tools.notebook_builder import ROOT, path_of

LESSONS = list(course.LESSONS.values())


def read(path):
    return nbformat.read(path, as_version=4)


def test_ids_are_unique_and_numbered_by_their_step():
    names = [lesson.name for step in course.STEPS for lesson in step.lessons]
    assert len(names) == len(set(names)) == len(course.LESSONS)
    ids = [e.id for lesson in LESSONS for e in lesson.exercises]
    assert len(ids) == len(set(ids)) == len(course.EXERCISES)
    for step in course.STEPS:
        for lesson in step.lessons:
            assert lesson.number.startswith(f"{step.number}."), lesson
            assert lesson.name.startswith(f"step{lesson.number.replace('.', '_')}_"), lesson
            for exercise in lesson.exercises:
                assert exercise.id.startswith(lesson.number), exercise
                assert re.fullmatch(r"\d+～\d+", lesson.minutes), lesson


def test_every_lesson_has_its_source_and_both_notebooks():
    for lesson in LESSONS:
        assert (ROOT / "tools" / "lessons" / f"{lesson.name}.py").exists()
        assert path_of(lesson.name, False).exists() and path_of(lesson.name, True).exists()
    assert sorted(p.stem for p in (ROOT / "tools" / "lessons").glob("step*.py")) == \
        sorted(course.LESSONS)
    for folder in ("notebooks", "solutions"):
        assert sorted(p.stem for p in (ROOT / folder).glob("*.ipynb")) == sorted(course.LESSONS)


def test_builder_and_grader_take_the_lessons_from_the_registry():
    assert notebook_builder.LESSONS == list(course.LESSONS)
    for lesson in LESSONS:
        assert grade.parse_args(["--lesson", lesson.name, "x"]).lesson == lesson.name
    with pytest.raises(SystemExit):
        grade.parse_args(["--lesson", "step9_9_not_a_lesson", "x"])


def test_every_check_function_is_exported_by_diy_checks():
    for exercise in course.EXERCISES.values():
        function = checks.check_function(exercise.id)
        assert callable(function) and function.__name__ == exercise.check
        assert exercise.check in checks.__all__


def test_kernel_hints_know_every_name_an_exercise_defines():
    defined = {name for e in course.EXERCISES.values() for name in e.defines}
    assert ipython_hints.EXERCISE_NAMES == defined


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_notebooks_carry_the_registrys_title_time_and_tags(lesson):
    for solution in (False, True):
        nb = read(path_of(lesson.name, solution))
        assert nb.metadata[course.METADATA_KEY] == {"lesson": lesson.name}
        assert nb.cells[0].source.startswith(course.heading(lesson))
        tagged = [(tag, c) for c in nb.cells for tag in c.metadata.get("tags", [])]
        assert [t for t, _ in tagged if t.startswith(f"{course.EXERCISE_TAG}-")] == \
            [course.exercise_tag(e.id) for e in lesson.exercises]
        check_cells = [c for t, c in tagged if t.startswith(f"{course.CHECK_TAG}-")]
        assert len(check_cells) == len(lesson.exercises)
        for cell, exercise in zip(check_cells, lesson.exercises, strict=True):
            assert course.check_tag(exercise.id) in cell.metadata["tags"]
            assert f"{exercise.check}(" in cell.source
            # the check function prints the registry's exercise id
            verdict = "".join(o.get("text", "") for o in cell.outputs)
            assert re.match(rf"[✅⏳❌] 练习 {re.escape(exercise.id)} ", verdict), verdict


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_grader_finds_the_lesson_by_metadata_then_tags_then_calls(lesson):
    nb = dict(read(path_of(lesson.name, False)))
    assert grade.detect_lesson(nb) == lesson.name
    without_metadata = copy.deepcopy(nb)
    without_metadata["metadata"] = {}
    assert grade.detect_lesson(without_metadata) == lesson.name
    pasted = copy.deepcopy(without_metadata)  # cells pasted into a new notebook: no tags
    for cell in pasted["cells"]:
        cell["metadata"] = {}
    assert grade.detect_lesson(pasted) == lesson.name
    for exercise in lesson.exercises:
        assert grade.has_check_cell(pasted, exercise)


def test_readme_lesson_table_is_the_registrys():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert course.readme_table() in readme
    for lesson in LESSONS:
        assert f"`{lesson.name}.ipynb`" in course.readme_table()


def test_no_module_names_a_lesson_outside_the_registry():
    """Lesson names live in diy/classroom/course.py only (lesson sources and tests may name their
    own)."""
    pattern = re.compile(r"step\d+_\d+_[a-z_]+")
    offenders = []
    for path in [*Path(ROOT, "diy").rglob("*.py"), Path(ROOT, "tools", "notebook_builder.py"),
                 *Path(ROOT, "benchmarks").rglob("*.py")]:
        if path.name == "course.py":
            continue
        offenders += [f"{path.relative_to(ROOT)}: {m}" for m in
                      pattern.findall(path.read_text(encoding="utf-8"))]
    assert offenders == []

"""Assertions shared by the self-check tests of every step."""


def verdict(capsys):
    out = capsys.readouterr().out
    assert out.strip(), "a check must print its verdict"
    return out


def placeholder(*args, **kwargs):
    raise NotImplementedError("✏️ 在这里写")


def assert_caught(capsys, returned, reference, exercise, words):
    """The check printed ❌ for this exercise with the expected hint and fell back."""
    assert returned == reference
    text = verdict(capsys)
    assert text.startswith(f"❌ 练习 {exercise} 未通过"), text
    assert words in text, text
    assert "修复：" in text


def minimal_lesson_notebook(name: str, solution: bool):
    """A lesson notebook cut down to its title, its first code cell (the imports) and its
    exercise and self-check cells: what the grader needs, at a fraction of the run time."""
    import nbformat

    from tools.notebook_builder import path_of

    nb = nbformat.read(path_of(name, solution), as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    nb.cells = [c for c in nb.cells if c is nb.cells[0] or c is first_code
                or {"exercise", "self-check"} & set(c.metadata.get("tags", []))]
    return nb

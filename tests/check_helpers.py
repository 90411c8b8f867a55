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

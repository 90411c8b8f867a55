"""Figures speak Chinese where a CJK font is installed and English, without warnings, elsewhere."""

import io
import math
import os
import warnings

import matplotlib
import pytest
from matplotlib import font_manager

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from diy import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_choice():
    """Each test decides afresh, from matplotlib's default fonts (another test in this process
    may have chosen a CJK font already), and leaves the settings as it found them."""
    plotting.chinese_font.cache_clear()
    defaults = {key: matplotlib.rcParamsDefault[key]
                for key in ("font.family", "font.sans-serif", "axes.unicode_minus")}
    with matplotlib.rc_context(defaults):
        yield
    plotting.chinese_font.cache_clear()


def dejavu_file() -> str:
    """matplotlib's own font file, as its font list records it."""
    return next(e.fname for e in font_manager.fontManager.ttflist if e.name == "DejaVu Sans")


def render(title: str) -> list[str]:
    """Draw a figure with ``title`` to PNG; the warnings matplotlib gave while drawing."""
    fig, ax = plt.subplots()
    ax.plot([0, -1, 2])
    ax.set_title(title)
    ax.set_xlabel(title)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)
    return [str(w.message) for w in caught]


def test_without_a_cjk_font_the_text_is_english_and_draws_without_warnings(monkeypatch):
    monkeypatch.setattr(plotting, "find_cjk_font",
                        lambda candidates=("No Such Font SC",): None)
    text = plotting.zh_or_en("下一个 token 的分布", "next-token distribution")
    assert text == "next-token distribution"
    assert render(text) == []
    # what the fallback avoids: Chinese text in the default font warns about every glyph
    assert any("missing from font" in w for w in render("下一个"))


def test_with_a_cjk_font_it_becomes_matplotlibs_font(monkeypatch):
    # A font entry named like a CJK font (the file is DejaVu, enough to test the choice).
    dejavu = dejavu_file()
    entry = font_manager.FontEntry(fname=dejavu, name="Noto Sans CJK SC")
    monkeypatch.setattr(font_manager.fontManager, "ttflist",
                        [*font_manager.fontManager.ttflist, entry])
    assert plotting.find_cjk_font() == "Noto Sans CJK SC"
    assert plotting.zh_or_en("中文", "English") == "中文"
    assert matplotlib.rcParams["font.sans-serif"][0] == "Noto Sans CJK SC"
    assert matplotlib.rcParams["axes.unicode_minus"] is False


def test_a_font_installed_after_matplotlibs_cache_is_found(monkeypatch, tmp_path):
    dejavu = dejavu_file()
    added = []
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda: [dejavu, str(tmp_path / "x.ttf")])
    monkeypatch.setattr(font_manager.fontManager, "addfont", lambda path: added.append(path))
    assert plotting.find_cjk_font(("No Such Font SC",)) is None
    # only files matplotlib had not seen are added; DejaVu is known already
    assert added == [str(tmp_path / "x.ttf")]


def test_a_real_cjk_font_draws_chinese_without_warnings():
    """Runs where a CJK font is installed (.ci/run installs one where apt is available)."""
    font = plotting.chinese_font()
    if font is None:
        if os.environ.get("DIY_REQUIRE_CJK_FONT") == "1":
            pytest.fail("a CJK font was installed for this run but matplotlib does not find it")
        pytest.skip("no CJK font installed on this machine")
    assert plotting.zh_or_en("中文", "English") == "中文"
    assert render("每个位置的 loss；灰色 = padding −1") == []


def test_token_ticks_show_the_newline_and_space_and_draw_without_warnings(monkeypatch):
    monkeypatch.setattr(plotting, "find_cjk_font",
                        lambda candidates=("No Such Font SC",): None)
    labels = [plotting.token_tick(t, i) for i, t in enumerate(["\n", " ", "a", "灯", "<eos>"])]
    assert labels == ["⏎", "␣", "a", "3", "<eos>"]  # no Chinese font: the id, not a box
    assert draw_token_ticks(labels) == []


def draw_token_ticks(labels) -> list[str]:
    fig, ax = plt.subplots()
    ax.bar(range(len(labels)), range(len(labels)))
    plotting.set_token_ticks(ax, labels)
    plotting.integer_ticks(ax, "y")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)
    return [str(w.message) for w in caught]


def test_token_ticks_with_a_cjk_font_draw_the_newline_without_warnings():
    if plotting.chinese_font() is None:
        pytest.skip("no CJK font installed on this machine")
    labels = [plotting.token_tick(t, i) for i, t in enumerate(["\n", " ", "灯", "，"])]
    assert labels[:3] == ["⏎", "␣", "灯"]
    assert draw_token_ticks(labels) == []


def perplexity_tick_offsets(scale: str, give_it_a_scale: bool = False) -> dict[str, float]:
    """Draw a loss curve on a ``scale`` axis with add_perplexity_axis; for every tick label of
    the perplexity axis, how many pixels it stands from where the loss axis draws ln(tick)."""
    fig, ax = plt.subplots()
    ax.plot([1, 70], [8.9, 0.012])
    ax.set_yscale(scale)
    perplexity = plotting.add_perplexity_axis(ax)
    if give_it_a_scale:  # the mistake the helper's docstring warns about
        perplexity.set_yscale("log")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a log(0) or an overflow would warn here
        fig.canvas.draw()
    offsets = {}
    for tick in perplexity.yaxis.get_major_ticks():
        p = tick.get_loc()
        where = perplexity.transData.transform([[0, p]])[0, 1]
        should = ax.transData.transform([[0, math.log(p)]])[0, 1]
        offsets[tick.label2.get_text()] = abs(where - should)
    plt.close(fig)
    return offsets


@pytest.mark.parametrize("scale", ["log", "linear"])
def test_every_perplexity_tick_stands_at_the_loss_ln_p(scale):
    offsets = perplexity_tick_offsets(scale)
    assert list(offsets) == [f"{p:g}" for p in plotting.PERPLEXITY_TICKS]  # 1.05 at the 0.05 target
    assert max(offsets.values()) < 0.01  # pixels


def test_a_perplexity_axis_given_its_own_log_scale_is_wrong_between_its_ends():
    # 2.2's figure once did this: the right axis then read about 21 at the 0.05 target
    offsets = perplexity_tick_offsets("log", give_it_a_scale=True)
    assert max(offsets.values()) > 10

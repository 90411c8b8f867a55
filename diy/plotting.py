"""Chinese text in matplotlib figures where the machine has a Chinese font, English otherwise.

matplotlib's bundled font (DejaVu Sans) has no Chinese glyphs: Chinese titles would come out
as empty boxes with a "Glyph ... missing from font" warning for every character. So every
figure of the course writes its text through ``zh_or_en``:

    from diy.plotting import zh_or_en
    ax.set_title(zh_or_en("下一个 token 的分布", "Next-token distribution"))

``zh_or_en`` returns the Chinese text when an installed CJK font was found (and makes it
matplotlib's font), the English text otherwise. How to install a font: README, 常见问题.
"""

from __future__ import annotations

from functools import cache

# Common CJK fonts of Linux, macOS and Windows, best first.
CJK_FONTS = (
    "Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC", "Hiragino Sans GB", "Heiti SC",
    "SimHei", "Arial Unicode MS",
)


def find_cjk_font(candidates=CJK_FONTS) -> str | None:
    """The first of ``candidates`` that matplotlib can use, or None."""
    from matplotlib import font_manager

    manager = font_manager.fontManager
    if not any(entry.name in candidates for entry in manager.ttflist):
        # matplotlib's font list is cached on disk; a font installed after the cache was built
        # is missing from it. Add the system's font files it has not seen yet.
        known = {entry.fname for entry in manager.ttflist}
        for path in font_manager.findSystemFonts():
            if path not in known:
                try:
                    manager.addfont(path)
                except (OSError, RuntimeError, ValueError):  # unreadable font file: skip it
                    continue
    installed = {entry.name for entry in manager.ttflist}
    return next((name for name in candidates if name in installed), None)


@cache
def chinese_font() -> str | None:
    """Make the first installed CJK font matplotlib's sans-serif font; its name, or None."""
    import matplotlib

    name = find_cjk_font()
    if name is not None:
        matplotlib.rcParams["font.sans-serif"] = [name, *matplotlib.rcParams["font.sans-serif"]]
        matplotlib.rcParams["font.family"] = "sans-serif"
        # CJK fonts often lack U+2212 (the minus sign of tick labels): use an ASCII hyphen.
        matplotlib.rcParams["axes.unicode_minus"] = False
    return name


def zh_or_en(zh: str, en: str) -> str:
    """Figure text: Chinese when a CJK font is installed, English (no missing glyphs) otherwise."""
    return zh if chinese_font() is not None else en


SYMBOLS = {"\n": "⏎", " ": "␣"}  # tokens a tick would show as nothing


def token_tick(token: str, token_id: int) -> str:
    """A token as a tick label: ⏎ for the newline and ␣ for a space, the character itself
    where a font can draw it, else its id."""
    if token in SYMBOLS:
        return SYMBOLS[token]
    if token.isascii() and token.isprintable():
        return token
    return token if chinese_font() is not None else str(token_id)


def set_token_ticks(ax, labels, fontsize: float = 9) -> None:
    """One x tick per token, labelled with ``token_tick`` texts. ⏎ and ␣ are drawn with
    matplotlib's own DejaVu Sans: CJK fonts often lack them (a "Glyph missing" warning)."""
    ax.set_xticks(range(len(labels)), labels, fontsize=fontsize)
    for label in ax.get_xticklabels():
        if label.get_text() in SYMBOLS.values():
            label.set_fontfamily("DejaVu Sans")


def integer_ticks(ax, axis: str = "x") -> None:
    """Whole-number ticks only (steps, token positions): no 2.5th step."""
    from matplotlib.ticker import MaxNLocator

    getattr(ax, f"{axis}axis").set_major_locator(MaxNLocator(integer=True))


def plot_loss_curve(history, ax=None, vocab_size: int = 6400):
    """The loss of every training step and the eval loss, on a log scale, with the ln(V)
    line where a model that guesses uniformly starts. Returns the figure."""
    import math

    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(history.step, history.train_loss, linewidth=1,
            label=zh_or_en("训练 loss（每步的 batch）", "train loss (each step's batch)"))
    ax.plot(history.eval_step, history.eval_loss, "o-", markersize=4,
            label=zh_or_en("评估 loss（整段文字，eval 模式）", "eval loss (whole text, eval mode)"))
    ax.axhline(math.log(vocab_size), color="gray", linestyle="--",
               label=zh_or_en(f"起点 ln {vocab_size} ≈ {math.log(vocab_size):.2f}",
                              f"start: ln {vocab_size} ≈ {math.log(vocab_size):.2f}"))
    ax.axhline(0.05, color="green", linestyle=":", label=zh_or_en("目标 0.05", "target 0.05"))
    ax.set_yscale("log")
    ax.set_xlabel(zh_or_en("步数", "step"))
    ax.set_ylabel(zh_or_en("loss（对数刻度）", "loss (log scale)"))
    ax.set_title(zh_or_en("训练曲线", "Training curve"))
    integer_ticks(ax)
    ax.legend(loc="upper right", fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


# Perplexities worth a tick on a loss axis from about 0.01 to ln(6400): e^0.01 ... 6400.
PERPLEXITY_TICKS = (1.01, 1.05, 1.2, 2, 10, 100, 6400)


def add_perplexity_axis(ax, ticks=PERPLEXITY_TICKS):
    """A right-hand axis that reads ``ax``'s loss axis as perplexity e^loss; returns it.

    Each tick ``p`` stands where ``ax`` draws the loss ln(p), whatever ``ax``'s scale (log or
    linear): the secondary axis follows the parent's scale through the two functions and must
    not be given a scale of its own (``set_yscale("log")`` on it would replace the mapping and
    put every tick but the ends in the wrong place). Ticks are fixed, labelled plainly.
    """
    import numpy as np
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    axis = ax.secondary_yaxis("right", functions=(
        lambda loss: np.exp(np.clip(loss, -700, 700)),  # loss -> perplexity, no overflow
        lambda p: np.log(np.clip(p, 1e-300, None)),  # perplexity -> loss, no log(0)
    ))
    axis.yaxis.set_major_locator(FixedLocator(list(ticks)))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda p, _pos: f"{p:g}"))
    axis.yaxis.set_minor_locator(NullLocator())
    axis.set_ylabel(zh_or_en("困惑度 e^loss", "perplexity e^loss"))
    return axis


def plot_bpc_curve(history, baselines: dict, ax=None):
    """Step 4's curve: the training loss in bits per character (one character per token) and
    the held-out bits per character, with the unigram and bigram baselines a model must beat.
    Returns the figure."""
    import math

    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(history.steps, [loss / math.log(2) for loss in history.losses], linewidth=0.6,
            alpha=0.6, label=zh_or_en("训练 batch（bits/字）", "train batch (bits/char)"))
    ax.plot(history.eval_steps, history.eval_bpc, "o-", markersize=4,
            label=zh_or_en("留出的词（bits/字）", "held-out ci (bits/char)"))
    for (name, value), style in zip(baselines.items(), (":", "--"), strict=False):
        ax.axhline(value, color="gray", linestyle=style, label=f"{name} {value:.2f}")
    ax.set_xlabel(zh_or_en("步数", "step"))
    ax.set_ylabel(zh_or_en("bits / 字", "bits per character"))
    ax.set_title(zh_or_en("宋词上的预训练", "Pretraining on 宋词"))
    integer_ticks(ax)
    ax.legend(loc="upper right", fontsize=8)
    ax.figure.tight_layout()
    return ax.figure

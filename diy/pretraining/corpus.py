"""The 宋词 corpus of step 4: 21,053 ci, read from a compressed file shipped inside the package.

    cis = load_songci()                   # list[Ci] in corpus order; cached after the first call
    train, held_out = split_songci(cis)   # about 95 % / 5 %, decided by each ci's text
    text = "".join(format_ci(ci) for ci in train)

The file (diy/corpora/songci.jsonl.xz, one JSON object per line) comes from the npm package
``chinese-poetry`` 2.0.1 (MIT, © 2016 JackeyGao; the poems themselves are classical and in the
public domain). ``python -m tools.build_songci`` rebuilds it byte for byte from that package;
diy/corpora/README.md gives the source, the licence, the counts and the hashes.

The held-out split is by *document*: a ci is held out or not as a whole, decided by a hash of its
text. Cutting one long character stream into random windows and splitting the windows would put
the two halves of one ci on both sides, and the held-out score would reward memorising.
"""

from __future__ import annotations

import functools
import hashlib
import json
import lzma
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import DIYError, DIYInputError

SONGCI_FILE = resources.files("diy") / "corpora" / "songci.jsonl.xz"
# sha256 of the .xz file itself; tools/build_songci.py imports it from here (one source of truth)
SONGCI_SHA256 = "8ec3449116939727bf31562a450d205c9eea260fcd13d4b7fce2ebddb8845852"

RESTORE_FIX = ("在仓库根目录运行 `git checkout -- diy/corpora/songci.jsonl.xz` 取回原文件，"
               "或者用 `python -m tools.build_songci` 从 npm 包重新生成它")
RESTORE_GLOSS = ("restore it with `git checkout -- diy/corpora/songci.jsonl.xz`, or rebuild it "
                 "with `python -m tools.build_songci`")


class DIYCorpusError(DIYError):
    """The corpus file is missing or is not the file the course was built on."""


@dataclass(frozen=True)
class Ci:
    """One ci: its 词牌 (``rhythmic``), its author and its lines, as in the source."""

    rhythmic: str
    author: str
    paragraphs: tuple[str, ...]


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_verified(path) -> bytes:
    """The bytes of the corpus file, after checking that they are exactly the pinned file.

    The check comes before any parsing: a truncated or edited file would otherwise load as a
    slightly different corpus, and every number measured on it would quietly change.
    """
    if not path.is_file():
        raise DIYCorpusError(f"找不到宋词语料文件 {path}。", RESTORE_FIX + "。",
                             f"the corpus file {path} is missing; {RESTORE_GLOSS}.")
    data = path.read_bytes()
    digest = file_sha256(data)
    if digest != SONGCI_SHA256:
        raise DIYCorpusError(
            f"宋词语料文件 {path} 损坏或被改动过：它的 sha256 是 {digest}，"
            f"应该是 {SONGCI_SHA256}。",
            RESTORE_FIX + "；不要手动编辑这个文件。",
            f"the corpus file {path} has sha256 {digest}, expected {SONGCI_SHA256} "
            f"(corrupted or edited); {RESTORE_GLOSS}.")
    return data


def parse_songci(data: bytes) -> tuple[Ci, ...]:
    """Decompress and parse the corpus file's bytes: one JSON object per line."""
    lines = lzma.decompress(data).decode("utf-8").splitlines()
    cis = []
    for line in lines:
        record = json.loads(line)
        cis.append(Ci(record["rhythmic"], record["author"], tuple(record["paragraphs"])))
    return tuple(cis)


@functools.lru_cache(maxsize=1)
def _load_default() -> tuple[Ci, ...]:
    return parse_songci(read_verified(SONGCI_FILE))


def load_songci(path=None) -> list[Ci]:
    """Every ci of the corpus, in corpus order; ``path`` defaults to the shipped file.

    The shipped file is read, checked and parsed once per process (about 0.3 s); later calls
    return a new list of the same ``Ci`` objects, so shuffling the list you got changes nothing
    for the next caller. A ``path`` of your own must hold the same bytes (its sha256 is checked).
    """
    if path is None:
        return list(_load_default())
    return list(parse_songci(read_verified(Path(path))))


def format_ci(ci: Ci) -> str:
    """A ci as the models of step 4 see it: 词牌, newline, one line per row, then a blank line.

    Every step-4 measure (baselines, training, held-out bits per character) uses this format,
    so their numbers can be compared.
    """
    return ci.rhythmic + "\n" + "\n".join(ci.paragraphs) + "\n\n"


def check_percent(percent) -> None:
    """``percent`` is a whole number of percent: 5 means 5 %, not 0.05."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise DIYInputError(f"percent={percent!r} 不合法：它是留出集占的百分数，0 到 100 的整数。",
                            "例如留出 5% 就写 percent=5（不是 0.05）。",
                            f"percent must be an integer from 0 to 100, got {percent!r}.")


def is_held_out(ci: Ci, percent: int = 5) -> bool:
    """Whether ``ci`` is in the held-out split: sha256 of its body, first 8 bytes, mod 100.

    The hash is of the *body* (the lines joined by "\\n", UTF-8), not of the title or the author:
    the same text appears under two authors or two 词牌 names a few times in the corpus, and
    both copies must land on the same side, or the model is tested on text it was trained on.
    """
    check_percent(percent)
    body = "\n".join(ci.paragraphs).encode("utf-8")
    bucket = int.from_bytes(hashlib.sha256(body).digest()[:8], "big") % 100
    return bucket < percent


def split_songci(cis: list[Ci] | None = None,
                 percent: int = 5) -> tuple[list[Ci], list[Ci]]:
    """(train, held_out), each in corpus order; the same corpus always gives the same split."""
    check_percent(percent)
    if cis is None:
        cis = load_songci()
    train, held_out = [], []
    for ci in cis:
        (held_out if is_held_out(ci, percent) else train).append(ci)
    return train, held_out

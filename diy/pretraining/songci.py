"""The 宋词 corpus as step 4's models see it: split by document, formatted, tokenized, packed.

    data = songci_data()        # read once per process; the packed stream is cached on disk
    data.tokenizer              # CharTokenizer of the training text's own characters
    data.stream                 # numpy.memmap of the training ci's ids (uint16), one long stream
    data.held_out_ids           # the held-out ci's ids, never trained on

Every ci becomes ``format_ci(ci)`` (词牌, its lines, a blank line) and the ci are concatenated in
corpus order. The vocabulary is built from the training ci only: a character that occurs only in
held-out ci (49 of them) is <unk> to the model, as it would be for any text it never saw.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoint import cache_folder, exclusive
from ..tokenizer import CharTokenizer
from .corpus import SONGCI_SHA256, Ci, format_ci, split_songci
from .packed import open_stream, write_stream


@dataclass(frozen=True)
class SongciData:
    tokenizer: CharTokenizer
    train_cis: tuple[Ci, ...]
    held_out_cis: tuple[Ci, ...]
    train_text: str
    held_out_text: str
    stream: np.memmap  # (N,) uint16: the training text's ids
    held_out_ids: tuple[int, ...]


def stream_path(tokenizer: CharTokenizer, percent: int) -> Path:
    """The packed training stream in the cache, named by what it is made of."""
    key = hashlib.sha256(("\n".join(tokenizer.id_to_token) + SONGCI_SHA256 + str(percent))
                         .encode("utf-8")).hexdigest()[:12]
    return cache_folder() / f"songci-train-{key}.bin"


def encode_quietly(tokenizer: CharTokenizer, text: str) -> list[int]:
    """ids of ``text``; characters outside the vocabulary become <unk> without a warning (the
    held-out text's 49 unseen characters are expected and counted in lesson 4.1)."""
    unknown = tokenizer.unk_token_id
    return [tokenizer.token_to_id.get(ch, unknown) for ch in text]


@functools.lru_cache(maxsize=2)
def songci_data(percent: int = 5) -> SongciData:
    train, held_out = split_songci(percent=percent)
    train_text = "".join(format_ci(ci) for ci in train)
    held_out_text = "".join(format_ci(ci) for ci in held_out)
    tokenizer = CharTokenizer.from_text(train_text)
    path = stream_path(tokenizer, percent)
    try:
        with exclusive(path.with_name(path.name + ".lock")):  # notebooks that start together
            if not path.is_file() or path.stat().st_size != 2 * len(train_text):
                write_stream(encode_quietly(tokenizer, train_text), path)  # atomically
        stream = open_stream(path)
    except OSError:  # a read-only cache without the file (a sandbox): keep it in memory
        stream = np.asarray(encode_quietly(tokenizer, train_text), dtype=np.uint16)
    return SongciData(tokenizer, tuple(train), tuple(held_out), train_text, held_out_text,
                      stream, tuple(encode_quietly(tokenizer, held_out_text)))

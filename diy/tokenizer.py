"""CharTokenizer: one character, one token id, with exactly the course's 6400 ids.

Real LLMs use byte-level BPE (subword pieces learned from a corpus; MiniMind's vocabulary also
has 6400 entries). This course uses characters: every id is one character you can read, the
vocabulary is built offline from standard tables, and `decode(encode(text)) == text`.

The vocabulary, in order (deterministic, no downloaded files):

    0..3     special tokens <pad> <unk> <bos> <eos>       (pad_token_id = 0)
    4..      "\\n" and printable ASCII (space .. ~)
    then     common Chinese / full-width punctuation
    then     the 3,755 hanzi of GB2312 level 1 (frequent characters, pinyin order)
    then     GB2312 level 2 hanzi (radical order) until there are vocab_size ids

Step 4 builds its vocabulary from its corpus instead (`CharTokenizer.from_text`: the special
tokens, then every character of the training text, most frequent first) and saves it next to
the checkpoint (`save_pretrained` / `from_pretrained`: tokenizer.json), as transformers does.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

from .errors import DIYInputError

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")
ASCII = "\n" + "".join(chr(c) for c in range(0x20, 0x7F))
CJK_PUNCTUATION = ("，。、；：？！“”‘’（）《》〈〉【】「」『』—…·～￥"
                   "％＃＆＊＋－／＝＜＞＠［］＾＿｛｝｜０１２３４５６７８９")


def gb2312_hanzi(level: int) -> list[str]:
    """GB2312's hanzi: level 1 is rows 0xB0-0xD7 (3,755), level 2 rows 0xD8-0xF7 (3,008)."""
    rows = range(0xB0, 0xD8) if level == 1 else range(0xD8, 0xF8)
    chars = []
    for row in rows:
        for cell in range(0xA1, 0xFF):
            try:
                chars.append(bytes([row, cell]).decode("gb2312"))
            except UnicodeDecodeError:  # the few unassigned cells at the end of a level
                continue
    return chars


class UnknownCharactersWarning(UserWarning):
    """Text had characters outside the vocabulary; they were encoded as <unk>."""


TOKENIZER_NAME = "tokenizer.json"  # in a checkpoint folder, beside config.json


class CharTokenizer:
    """encode(text) -> list[int] and decode(ids) -> str over a fixed character vocabulary.

    ``CharTokenizer()`` is the course's standard 6400 ids; ``tokens`` gives a vocabulary of your
    own (the special tokens first, then one character per id), as ``from_text`` builds."""

    def __init__(self, vocab_size: int = 6400, tokens: list[str] | None = None):
        if tokens is None:
            tokens = list(SPECIAL_TOKENS) + list(ASCII) + list(CJK_PUNCTUATION)
            for level in (1, 2):
                tokens += gb2312_hanzi(level)
            tokens = list(dict.fromkeys(tokens))  # first occurrence wins; keeps the order
            if not len(SPECIAL_TOKENS) + len(ASCII) < vocab_size <= len(tokens):
                raise ValueError(f"vocab_size must be in ({len(SPECIAL_TOKENS) + len(ASCII)}, "
                                 f"{len(tokens)}], got {vocab_size}")
            tokens = tokens[:vocab_size]
        elif (tuple(tokens[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS
              or any(len(t) != 1 for t in tokens[len(SPECIAL_TOKENS):])
              or len(set(tokens)) != len(tokens)):
            raise DIYInputError("词表不合法：应以 <pad> <unk> <bos> <eos> 开头，"
                                "之后每个 id 一个字符、不重复。",
                                "用 CharTokenizer.from_text(文本) 从语料建词表。",
                                "tokens must start with the 4 special tokens, then distinct "
                                "single characters.")
        self.id_to_token: list[str] = list(tokens)
        self.token_to_id: dict[str, int] = {t: i for i, t in enumerate(self.id_to_token)}
        self.pad_token_id, self.unk_token_id, self.bos_token_id, self.eos_token_id = range(4)

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """A vocabulary of ``text``'s own characters: the special tokens, then every character
        of the text, most frequent first (equal counts: by code point, so it is deterministic).
        Characters that are not in ``text`` will encode as <unk>."""
        counts = Counter(text)
        chars = sorted(counts, key=lambda ch: (-counts[ch], ord(ch)))
        return cls(tokens=list(SPECIAL_TOKENS) + [ch for ch in chars if ch not in SPECIAL_TOKENS])

    def save_pretrained(self, folder) -> Path:
        """Write the vocabulary to ``folder``/tokenizer.json (the checkpoint's folder)."""
        from .checkpoint import write_atomically

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"kind": "char", "tokens": self.id_to_token}, ensure_ascii=False)
        write_atomically(folder / TOKENIZER_NAME,
                         lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        return folder / TOKENIZER_NAME

    @classmethod
    def from_pretrained(cls, folder) -> CharTokenizer:
        """The vocabulary saved in ``folder``; a folder without tokenizer.json was trained with
        the course's standard vocabulary (steps 2-3), which is what it gets."""
        path = Path(folder) / TOKENIZER_NAME
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            tokens = data["tokens"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DIYInputError(f"{path} 读不出来（{type(exc).__name__}），词表文件损坏了。",
                                "用训练时的 tokenizer.json 替换它，或重新训练。",
                                f"{path} is not a readable tokenizer file.") from None
        return cls(tokens=tokens)

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_token)

    def __len__(self) -> int:
        return self.vocab_size

    def unknown_characters(self, text: str) -> Counter:
        """Characters of ``text`` outside the vocabulary, with how often each occurs."""
        return Counter(ch for ch in text if ch not in self.token_to_id)

    def unknown_report(self, text: str) -> str | None:
        """A sentence naming the characters of ``text`` outside the vocabulary, or None."""
        unknown = self.unknown_characters(text)
        if not unknown:
            return None
        listed = "、".join(f"{ch!r}×{n}" for ch, n in unknown.most_common(10))
        total = sum(unknown.values())
        return (f"{total} 个字符（{len(unknown)} 种）不在词表里，编码成了 <unk>：{listed}"
                f"{' …' if len(unknown) > 10 else ''} "
                f"(English: {total} characters outside the vocabulary became <unk>)")

    def encode(self, text: str) -> list[int]:
        """One id per character; characters outside the vocabulary become unk, with a warning
        that names them (never dropped silently)."""
        report = self.unknown_report(text)
        if report is not None:
            warnings.warn(UnknownCharactersWarning(report), stacklevel=2)
        return [self.token_to_id.get(ch, self.unk_token_id) for ch in text]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """The text of ``ids`` (a list, or a 1-D tensor). Special tokens appear as <eos> etc.
        unless ``skip_special_tokens``."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < self.vocab_size]
        if bad:
            raise DIYInputError(
                f"decode 收到了词表范围 [0, {self.vocab_size}) 以外的 id：{bad[:5]}。",
                "只解码模型输出或 encode 得到的 id；labels 里的 -100 要先去掉。",
                f"ids must be in [0, {self.vocab_size}), got {bad[:5]}.")
        n_special = len(SPECIAL_TOKENS)
        return "".join(self.id_to_token[i] for i in ids
                       if not (skip_special_tokens and i < n_special))

    def __repr__(self) -> str:
        return (f"CharTokenizer(vocab_size={self.vocab_size}, pad_token_id={self.pad_token_id}, "
                f"eos_token_id={self.eos_token_id})")

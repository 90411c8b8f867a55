"""Byte-level BPE, as GPT-2 and Llama 3 tokenize: the reference answer of lesson 4.1.

    merges = train_bpe(text, num_merges=50)    # [(a, b), ...]: the pair merged into id 256 + i
    tokenizer = ByteBPE(merges)
    ids = tokenizer.encode("东风夜放花千树")     # bytes, then the merges in the order learned
    tokenizer.decode(ids)                       # == "东风夜放花千树"

Start from the text's UTF-8 bytes (ids 0-255: every text can be written, nothing is unknown);
count every pair of neighbouring ids; replace the most frequent pair, everywhere, by a new id;
repeat. A Chinese character is 3 bytes, so its first merges rebuild characters, and only then
can merges join characters into words.

Ties (two pairs equally frequent, common on short texts) go to the smallest pair (left id, then
right id), the bytes 0-255 taken in ``byte_order``. Hugging Face `tokenizers`' BpeTrainer breaks
ties the same way, but it numbers the 256 bytes in the order of the printable characters GPT-2
maps them to (``gpt2_byte_order()``); with that order the merges are identical (lesson 4.1).
"""

from __future__ import annotations

from collections import Counter


def count_pairs(ids: list[int]) -> Counter:
    """How often each pair of neighbours occurs: [1, 2, 1, 2] -> {(1, 2): 2, (2, 1): 1}."""
    return Counter(zip(ids, ids[1:], strict=False))


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """``ids`` with every occurrence of ``pair`` replaced by ``new_id``, left to right
    ([1, 1, 1] with (1, 1) -> [new, 1]). A new list; ``ids`` is left as it was."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def gpt2_byte_order() -> list[int]:
    """The 256 bytes in the order Hugging Face's byte-level BPE numbers them. GPT-2 shows each
    byte as a printable character: the printable Latin-1 bytes (! .. ~, ¡ .. ¬, ® .. ÿ) as
    themselves, the 68 others as the characters 256, 257, ... in byte order; the tokenizer then
    numbers the 256 characters in sorted order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    shown = {b: b for b in printable} | {b: 256 + i for i, b in enumerate(others)}
    return sorted(range(256), key=shown.__getitem__)


def best_pair(counts: Counter, byte_order: list[int] | None = None) -> tuple[int, int]:
    """The most frequent pair; among equally frequent ones, the smallest (left, right), with
    bytes ranked by ``byte_order`` (default: by value) and merged ids (256 and up) after them."""
    rank = {b: r for r, b in enumerate(byte_order)} if byte_order else {}
    return min(counts, key=lambda pair: (-counts[pair], *(rank.get(i, i) for i in pair)))


def train_bpe(text: str, num_merges: int,
              byte_order: list[int] | None = None) -> list[tuple[int, int]]:
    """The first ``num_merges`` merges BPE learns on ``text`` (fewer if no pair repeats)."""
    ids = list(text.encode("utf-8"))
    merges = []
    for new_id in range(256, 256 + num_merges):
        counts = count_pairs(ids)
        if not counts:
            break
        pair = best_pair(counts, byte_order)
        if counts[pair] < 2:  # nothing repeats: a merge would save nothing
            break
        ids = merge(ids, pair, new_id)
        merges.append(pair)
    return merges


class ByteBPE:
    """encode / decode with learned merges (id 256 + i is merges[i])."""

    def __init__(self, merges: list[tuple[int, int]]):
        self.merges = [tuple(pair) for pair in merges]
        self.rank = {pair: i for i, pair in enumerate(self.merges)}  # earlier learned = first
        self.vocab = {i: bytes([i]) for i in range(256)}  # id -> the bytes it stands for
        for i, (a, b) in enumerate(self.merges):
            self.vocab[256 + i] = self.vocab[a] + self.vocab[b]

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges)

    def encode(self, text: str) -> list[int]:
        """The text's bytes, then the merges in the order they were learned: at each turn the
        present pair learned earliest is merged (as training did)."""
        ids = list(text.encode("utf-8"))
        while len(ids) >= 2:
            present = [pair for pair in set(zip(ids, ids[1:], strict=False)) if pair in self.rank]
            if not present:
                break
            pair = min(present, key=self.rank.__getitem__)
            ids = merge(ids, pair, 256 + self.rank[pair])
        return ids

    def decode(self, ids) -> str:
        """The text of ``ids``; bytes that are not whole UTF-8 characters show as �."""
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")

"""Has the model learned 宋词, or only memorised them? Three measures on held-out ci (lesson 4.3).

    next_line_accuracy(model, tokenizer, held_out)    # 下一句: the true next line among 4
    meter_shares(generated, cis)                      # 格律: line lengths of a 词牌's usual form
    longest_shared_run(text, train_text)              # copied? the longest run also in training

下一句: given a ci's 词牌 and its first lines, the model scores four candidate lines of the same
length — the true next line and three lines of other held-out ci — by their log-probability; a
model that knows nothing picks the true one 25 % of the time.
格律: a 词牌 fixes the length of every phrase (浣溪沙: 7·7·7·7·7·7). The most common pattern of
phrase lengths among a 词牌's training ci is its form; a generated ci follows it or not.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter

import numpy as np
import torch

from ..tokenizer import UnknownCharactersWarning
from .corpus import Ci

PHRASE_END = re.compile(r"[，。、？！；：,.?!;:]")  # punctuation that ends a phrase


# ------------------------------------------------------------------------------------ 下一句

def candidate_log_prob(model, context_ids: list[int], candidate_ids: list[int]) -> float:
    """log P(candidate | context): the sum of the log-probabilities the model gives each
    candidate token, each predicted from the context and the candidate tokens before it."""
    ids = torch.tensor([context_ids + candidate_ids], device=next(model.parameters()).device)
    with torch.no_grad():
        log_probs = torch.log_softmax(model(ids).float(), dim=-1)  # (1, T, V)
    start = len(context_ids)
    targets = ids[0, start:]  # (n,) the candidate's tokens
    predicted_by = log_probs[0, start - 1:-1]  # (n, V): position t predicts token t + 1
    return float(predicted_by.gather(1, targets[:, None]).sum())


def next_line_questions(cis: list[Ci], count: int = 200, seed: int = 0, max_chars: int = 100):
    """``count`` questions (context, [4 candidates], index of the true one) from ``cis``: a ci's
    词牌 and first k lines (k drawn at random), its line k + 1, and three lines of the same length
    from other ci. Deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    by_length: dict[int, list[tuple[int, str]]] = {}
    for index, ci in enumerate(cis):
        for line in ci.paragraphs:
            by_length.setdefault(len(line), []).append((index, line))
    questions = []
    for index in rng.permutation(len(cis)).tolist():
        ci = cis[index]
        if len(ci.paragraphs) < 2:
            continue
        k = int(rng.integers(1, len(ci.paragraphs)))
        true_line = ci.paragraphs[k]
        context = ci.rhythmic + "\n" + "".join(line + "\n" for line in ci.paragraphs[:k])
        others = [line for i, line in by_length.get(len(true_line), [])
                  if i != index and line != true_line]
        if len(set(others)) < 3 or len(context) + len(true_line) > max_chars:
            continue
        distractors = rng.choice(sorted(set(others)), size=3, replace=False).tolist()
        answer = int(rng.integers(0, 4))
        candidates = distractors[:answer] + [true_line] + distractors[answer:]
        questions.append((context, candidates, answer))
        if len(questions) == count:
            break
    return questions


def next_line_accuracy(model, tokenizer, cis: list[Ci], count: int = 200, seed: int = 0,
                       scorer=candidate_log_prob) -> float:
    """Share of questions where the true next line has the highest log-probability."""
    was_training = model.training
    model.eval()
    right = 0
    questions = next_line_questions(cis, count, seed)
    try:
        with warnings.catch_warnings():  # held-out text has a few characters training never had
            warnings.simplefilter("ignore", UnknownCharactersWarning)
            for context, candidates, answer in questions:
                context_ids = tokenizer.encode(context)
                scores = [scorer(model, context_ids, tokenizer.encode(line))
                          for line in candidates]
                right += int(np.argmax(scores) == answer)
    finally:
        model.train(was_training)
    return right / len(questions)


# -------------------------------------------------------------------------------------- 格律

def meter(lines) -> str:
    """The lengths of a ci's phrases, in order: "7·7·7·7·7·7" for a 浣溪沙. A phrase ends at
    punctuation; where the lines break does not count (the source breaks them inconsistently)."""
    return "·".join(str(len(p)) for line in lines for p in PHRASE_END.split(line) if p)


def usual_meters(cis: list[Ci], min_count: int = 20) -> dict[str, tuple[str, int, int]]:
    """For every 词牌 with at least ``min_count`` ci: (its most common meter, how many ci have
    it, how many ci there are)."""
    by_name: dict[str, Counter] = {}
    for ci in cis:
        by_name.setdefault(ci.rhythmic, Counter())[meter(ci.paragraphs)] += 1
    return {name: (counts.most_common(1)[0][0], counts.most_common(1)[0][1], sum(counts.values()))
            for name, counts in by_name.items() if sum(counts.values()) >= min_count}


def ci_lines(generated: str) -> list[str]:
    """The lines of one generated ci (text after the 词牌 line, up to the blank line)."""
    body = generated.split("\n\n")[0]
    return [line for line in body.split("\n")[1:] if line]


def meter_share(texts: list[str], usual: str) -> float:
    """Share of ``texts`` (generated ci, 词牌 line first) whose meter is ``usual``."""
    return sum(meter(ci_lines(t)) == usual for t in texts) / max(1, len(texts))


# ----------------------------------------------------------------------------------- copying

def _ngram_hashes(codes: np.ndarray, n: int) -> np.ndarray:
    """A 64-bit polynomial hash of every run of n consecutive codes (wrapping arithmetic)."""
    count = len(codes) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    hashes = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            hashes = hashes * np.uint64(1_000_003) + codes[k:k + count]
    return hashes


def codes_of(text: str) -> np.ndarray:
    """The code points of ``text`` as uint64 (one per character)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


class SharedRuns:
    """Longest runs a text shares with a fixed (long) training text; the training text's n-gram
    hashes are computed once per n (each from the one for n - 1) and kept, so many texts are
    checked quickly."""

    def __init__(self, train_text: str):
        self.train_text = train_text
        self.codes = codes_of(train_text)
        self.sorted_hashes: dict[int, np.ndarray] = {}  # n -> sorted 32-bit hashes of the n-runs
        self._last = (0, np.zeros(len(self.codes) + 1, dtype=np.uint64))  # (n, hashes of n-runs)

    def _table(self, n: int) -> np.ndarray:
        """The sorted hashes of the training text's n-runs (n grows one at a time)."""
        while n not in self.sorted_hashes:
            m, hashes = self._last  # hashes of the (m)-runs -> of the (m + 1)-runs
            count = len(self.codes) - m
            with np.errstate(over="ignore"):
                hashes = hashes[:count] * np.uint64(1_000_003) + self.codes[m:m + count]
            self._last = (m + 1, hashes)
            # kept as 32 bits (half the memory; a rare false match is caught by the check below)
            self.sorted_hashes[m + 1] = np.sort(hashes.astype(np.uint32))
        return self.sorted_hashes[n]

    def _present(self, text: str, n: int) -> str | None:
        """A run of n characters of ``text`` that occurs in the training text, or None."""
        table = self._table(n)
        hashes = _ngram_hashes(codes_of(text), n).astype(np.uint32)
        found = np.flatnonzero(table[np.clip(np.searchsorted(table, hashes), 0, len(table) - 1)]
                               == hashes)
        for start in found.tolist():  # confirm: a hash match is almost surely a real one
            if text[start:start + n] in self.train_text:
                return text[start:start + n]
        return None

    def longest(self, text: str) -> str:
        """The longest run of ``text`` that also occurs in the training text ("" if none).
        Grows one character at a time (a run of n + 1 present means one of n is): shared runs
        are short, so only the short n-gram tables are ever built."""
        best = ""
        while len(best) < len(text):
            run = self._present(text, len(best) + 1)
            if run is None:
                break
            best = run
        return best


def longest_shared_run(text: str, train_text: str) -> str:
    """The longest run of ``text`` that also occurs somewhere in ``train_text``."""
    return SharedRuns(train_text).longest(text)


# ---------------------------------------------------------------------------------- report

FORMS = ("浣溪沙", "鹧鸪天", "菩萨蛮", "西江月", "减字木兰花")  # five 词牌 with a very fixed form


def write_ci(model, tokenizer, name: str, count: int = 8, seed: int = 0,
             temperature: float = 0.8, top_k: int = 50) -> list[str]:
    """``count`` ci for the 词牌 ``name`` (sampled, seeded), each up to its first blank line."""
    prompt = torch.tensor([tokenizer.encode(name + "\n")] * count,
                          device=next(model.parameters()).device)
    out = model.generate(prompt, max_new_tokens=model.config.max_seq_len - prompt.shape[1],
                         do_sample=True, temperature=temperature, top_k=top_k,
                         generator=torch.Generator(device=prompt.device).manual_seed(seed))
    return [tokenizer.decode(row.tolist(), skip_special_tokens=True).split("\n\n")[0]
            for row in out]


def measure(model, tokenizer, data, questions: int = 200, per_form: int = 8, seed: int = 0):
    """The three measures of lesson 4.3 on a trained model (``data``: diy.pretraining.songci's
    SongciData): 下一句 accuracy, the share of generated and of real held-out ci that follow
    their 词牌's usual meter, and the longest runs generated text shares with the training text."""
    held = list(data.held_out_cis)
    usual = usual_meters(list(data.train_cis))
    generated, real_hits, real_total, hits = [], 0, 0, 0
    for index, name in enumerate(FORMS):
        texts = write_ci(model, tokenizer, name, per_form, seed + index)
        generated += texts
        hits += sum(meter(ci_lines(text + "\n\n")) == usual[name][0] for text in texts)
        real = [ci for ci in held if ci.rhythmic == name]
        real_hits += sum(meter(ci.paragraphs) == usual[name][0] for ci in real)
        real_total += len(real)
    runs = SharedRuns(data.train_text)
    lengths = [len(runs.longest(text.split("\n", 1)[-1])) for text in generated]
    return {"next_line": next_line_accuracy(model, tokenizer, held, questions, seed),
            "meter_generated": hits / len(generated), "meter_real": real_hits / real_total,
            "shared_run_median": float(np.median(lengths)), "shared_run_max": max(lengths)}

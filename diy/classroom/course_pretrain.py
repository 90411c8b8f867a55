"""The course's pretraining run on 宋词 (lessons 4.2 and 4.3), trained on first use and cached.

    from diy.classroom.course_pretrain import course_pretrain
    run = course_pretrain()    # .model (eval), .tokenizer, .history, .baselines, .data

It is `python -m diy.pretrain`'s default recipe (diy.pretraining.PretrainConfig) cut short to
COURSE_STEPS steps, so that it trains in about two minutes on a 2-core CPU, 3 min 45 s on one
thread (the first notebook that needs it trains it; the test suite trains it once per run).
The full recipe's results are in the README. The folder's name is a fingerprint of everything
the run depends on (recipe, corpus, torch version, thread count, the learner's backbone file),
like diy.classroom.course_model.

`course_bpe()` is the other thing lesson 4.1 computes once: a byte-level BPE with 6,400 entries
trained on the training ci by Hugging Face `tokenizers` (about 15 s), kept in the same cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .. import __version__, backbone
from ..causal_lm import DIYForCausalLM
from ..checkpoint import cache_folder, exclusive, write_atomically
from ..errors import DIYInputError
from ..pretraining import PretrainConfig, PretrainHistory, pretrain, pretrain_model
from ..pretraining.baselines import bigram_bpc, unigram_bpc
from ..pretraining.corpus import SONGCI_SHA256
from ..pretraining.songci import SongciData, songci_data
from ..tokenizer import CharTokenizer

COURSE_STEPS = 600  # of the default recipe's 3,000: well below the bigram, in ~2 minutes
RECORD_VERSION = 1  # bump when the training code changes what the run computes
BPE_VOCAB = 6400  # the course tokenizer's size, and MiniMind's


def course_recipe() -> PretrainConfig:
    return replace(PretrainConfig(), steps=COURSE_STEPS, eval_every=100)


@dataclass
class CoursePretrain:
    model: DIYForCausalLM
    tokenizer: CharTokenizer
    history: PretrainHistory
    baselines: dict  # {"unigram": bpc, "bigram": bpc} on the held-out ci
    data: SongciData


def build_model(recipe: PretrainConfig, vocab_size: int) -> DIYForCausalLM:
    """The recipe's model before any training: the same initial weights every time."""
    with torch.random.fork_rng(devices=[]):  # the notebook's own random numbers stay as they were
        return pretrain_model(recipe, vocab_size)


def baselines_of(data: SongciData) -> dict:
    vocab = len(data.tokenizer)
    return {"unigram": unigram_bpc(data.stream, data.held_out_ids, vocab),
            "bigram": bigram_bpc(data.stream, data.held_out_ids, vocab)}


def fingerprint(recipe: PretrainConfig) -> str:
    record = {"recipe": recipe.to_dict(), "corpus": SONGCI_SHA256, "torch": torch.__version__,
              "diy": __version__, "threads": torch.get_num_threads(), "version": RECORD_VERSION}
    made_by = backbone.record(backbone.active())
    if made_by is not None:  # a learner's backbone: its own run, keyed on the file's content
        record["backbone"] = made_by
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]


def course_pretrain() -> CoursePretrain:
    """The course's pretraining run (trained now if the cache has none), model in eval mode."""
    recipe = course_recipe()
    data = songci_data()
    folder = cache_folder() / f"course-pretrain-{fingerprint(recipe)}"
    with exclusive(folder.with_name(folder.name + ".lock")):
        try:
            model = DIYForCausalLM.from_pretrained(folder)
            record = json.loads((folder / "history.json").read_text(encoding="utf-8"))
            history = PretrainHistory(**record["history"])
        except (DIYInputError, OSError, ValueError, KeyError, TypeError):  # none yet, or damaged
            model = build_model(recipe, len(data.tokenizer))
            history = pretrain(model, data.stream, data.held_out_ids, recipe)
            model.save_pretrained(folder)
            data.tokenizer.save_pretrained(folder)
            text = json.dumps({"recipe": recipe.to_dict(), "history": history.to_dict()})
            write_atomically(folder / "history.json",  # last: its presence means "complete"
                             lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return CoursePretrain(model.eval(), data.tokenizer, history, baselines_of(data), data)


def course_bpe():
    """A byte-level BPE of BPE_VOCAB entries trained on the training ci with Hugging Face
    `tokenizers` (GPT-2's pre-tokenizer), cached: lesson 4.1 compares it with characters."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from tokenizers.pre_tokenizers import ByteLevel

    data = songci_data()
    key = hashlib.sha256(f"{SONGCI_SHA256}{BPE_VOCAB}{_tokenizers_version()}".encode())
    path = cache_folder() / f"songci-bpe-{key.hexdigest()[:12]}.json"
    with exclusive(path.with_name(path.name + ".lock")):
        if path.is_file():
            return Tokenizer.from_file(str(path))
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB, show_progress=False,
                                      initial_alphabet=ByteLevel.alphabet())
        tokenizer.train_from_iterator([ci for ci in data.train_text.split("\n\n") if ci],
                                      trainer)
        try:
            write_atomically(path, lambda tmp: tokenizer.save(tmp))
        except OSError:  # a read-only cache: use it without keeping it
            pass
        return tokenizer


def _tokenizers_version() -> str:
    import tokenizers

    return tokenizers.__version__

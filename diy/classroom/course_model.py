"""The trained model the lessons after 2.2 start from, trained once per machine.

    from diy.classroom.course_model import course_model
    model = course_model()   # DIYForCausalLM in eval mode, recites the course passage

It is exactly what `python -m diy.train` makes with its defaults (`train_on_text()`: course
defaults, TrainConfig(), the course passage). The first call trains it (about 13 s on 2 CPU
cores) and saves it to the cache folder (``$DIY_CACHE``, else ``$XDG_CACHE_HOME/diy-llm``, else
``~/.cache/diy-llm``); later calls, in any notebook, read it back in a fraction of a second.
The folder's name is a fingerprint of everything the training depends on (passage, defaults,
torch version, thread count, the learner's backbone file when DIY_BACKBONE is set), so a change
trains a new one instead of reusing a stale model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from .. import backbone
from ..causal_lm import DIYForCausalLM
from ..checkpoint import cache_folder, exclusive
from ..config import DIYConfig
from ..data import load_passage
from ..errors import DIYInputError
from ..training import TrainConfig, train_on_text


def fingerprint() -> str:
    import torch

    from .. import __version__

    # the thread count changes float summation order, so it is part of the recipe too
    recipe = {"model": DIYConfig().to_dict(), "train": asdict(TrainConfig()),
              "text": load_passage(), "torch": torch.__version__, "diy": __version__,
              "threads": torch.get_num_threads()}
    made_by = backbone.record(backbone.active())
    if made_by is not None:  # a learner's backbone (DIY_BACKBONE): its own model, keyed on content
        recipe["backbone"] = made_by
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def course_model(progress: bool = False) -> DIYForCausalLM:
    """The course's trained model, in eval mode (trained now if the cache has none)."""
    folder = cache_folder() / f"course-model-{fingerprint()}"
    with exclusive(folder.with_name(folder.name + ".lock")):
        if folder.is_dir():
            try:
                return DIYForCausalLM.from_pretrained(folder)
            except DIYInputError:  # an unreadable cache entry: train again and overwrite it
                pass
        model, _ = train_on_text(progress=progress)
        model.save_pretrained(folder)  # each file written atomically
    return model


# Where lesson 2.3 saves the learner's model, relative to the notebook's folder.
STEP2_CHECKPOINT = "checkpoints/step2"


def step3_model(folder=STEP2_CHECKPOINT) -> tuple[DIYForCausalLM, str]:
    """The model step 3 generates with, in eval mode, and a sentence saying which it is: the
    learner's own, saved by lesson 2.3 into ``folder`` (``save_pretrained``), when it is there
    and loads; else the course model. A checkpoint that does not load (half-written, another
    vocabulary) falls back to the course model too, and the sentence says so."""
    path = Path(folder)
    if path.is_dir():
        try:
            model = DIYForCausalLM.from_pretrained(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint: the course model
            why = getattr(exc, "problem", None) or type(exc).__name__  # a DIYError says why
            reason = f"{folder} 读不出来：{why}"
        else:
            if model.config.vocab_size == DIYConfig().vocab_size:
                return model, f"2.3 保存的模型（{folder}）"
            reason = f"{folder} 的词表大小是 {model.config.vocab_size}，不是课程分词器的"
    else:
        reason = f"没有找到 2.3 保存的 {folder}"
    return course_model(), f"课程模型 course_model()（{reason}）"


def tiny_gpt2(vocab_size: int = 6400, seed: int = 0):
    """A small random GPT-2 from transformers (2 layers, 64 wide), in eval mode: a model with
    *absolute* learned positions, for lesson 3.3 to set beside the course's RoPE model."""
    import torch

    from ..hf import _transformers

    transformers = _transformers()  # quiet import (no tqdm warning in notebooks)
    config = transformers.GPT2Config(vocab_size=vocab_size, n_positions=128, n_embd=64,
                                     n_layer=2, n_head=2, bos_token_id=1, eos_token_id=3)
    with torch.random.fork_rng(devices=[]):  # the notebook's own random numbers stay as they were
        torch.manual_seed(seed)
        return transformers.GPT2LMHeadModel(config).eval()

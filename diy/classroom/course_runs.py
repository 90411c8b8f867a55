"""The course's reference training runs, recorded once per machine and shared by the lessons.

    from diy.classroom.course_runs import course_run
    run = course_run("clip")      # TrainConfig() as `python -m diy.train` runs it
    run = course_run("no_clip")   # the same, without gradient clipping
    run.history                   # diy.training.History: every step's loss, the eval losses
    run.grad_norm                 # the gradient norm of every step, before clipping
    run.held_out_loss             # at every evaluation: the loss on HELD_OUT, text never trained on

Lessons 2.2 and 2.3 plot these curves. Training 70 steps takes about 12 s on a 2-core CPU
(README, 速度), too long to repeat in every notebook (and in notebooks/ and solutions/ under the
tests), so each recipe runs once and its record is kept in the cache folder of
diy.classroom.course_model, under the same kind of lock: notebooks that start together wait for
the first one's run. The "clip" run is exactly
`train_on_text()`, the recipe of the course model, so it also stores that model when the cache
has none yet (one training instead of two).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

import torch

from ..checkpoint import cache_folder, exclusive
from ..tokenizer import CharTokenizer
from ..training import History, clipped_step, evaluate, train_on_text
from . import course_model as course_model_module

# Two sentences in the passage's style and vocabulary that the passage does not contain.
HELD_OUT = "山脚下的村子里有一口老井。每天早上，一位老奶奶提着木桶去井边打水，顺便和邻居说说话。"
RECIPES = {"clip": 1.0, "no_clip": math.inf}  # max_grad_norm of the step; inf: measured only
RECORD_VERSION = 1  # bump when the record's content changes


@dataclass
class CourseRun:
    recipe: str
    history: History
    grad_norm: list[float] = field(default_factory=list)  # every step, before clipping
    held_out_loss: list[float] = field(default_factory=list)  # at history.eval_step


def held_out_batch() -> torch.Tensor:
    """HELD_OUT as one row of ids (1, L): its own input_ids and labels."""
    return torch.tensor([CharTokenizer().encode(HELD_OUT)])


def record(recipe: str) -> tuple[CourseRun, object]:
    """Train once with ``recipe`` and record everything; (the record, the trained model)."""
    max_grad_norm = RECIPES[recipe]
    run = CourseRun(recipe, History())
    held_out = held_out_batch()  # (1, L)

    def step(model, optimizer, input_ids, _max_grad_norm):
        loss, norm = clipped_step(model, optimizer, input_ids, max_grad_norm)
        run.grad_norm.append(norm)
        return loss

    def on_eval(_step, _eval_loss, model):
        # eval mode, no gradients: draws no random numbers, so training goes on unchanged
        run.held_out_loss.append(evaluate(model, held_out, held_out))

    model, run.history = train_on_text(progress=False, on_eval=on_eval, train_step=step)
    return run, model


def fingerprint(recipe: str) -> str:
    key = {"model": course_model_module.fingerprint(), "recipe": recipe, "held_out": HELD_OUT,
           "version": RECORD_VERSION}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def course_run(recipe: str = "clip") -> CourseRun:
    """The record of ``recipe`` ("clip" or "no_clip"), trained now if the cache has none."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {recipe!r}")
    path = cache_folder() / f"course-run-{recipe}-{fingerprint(recipe)}.json"
    with exclusive(path.with_name(path.name + ".lock")):
        if path.is_file():
            try:
                return from_json(json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, KeyError, TypeError):  # a damaged record: run again
                pass
        run, model = record(recipe)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(to_json(run)), encoding="utf-8")
            tmp.replace(path)  # atomically: a reader never sees half a record
        except OSError:  # a read-only cache (the grader's sandbox): use the run, keep nothing
            return run
    if recipe == "clip":  # the course model's recipe: keep its model too
        folder = cache_folder() / f"course-model-{course_model_module.fingerprint()}"
        with exclusive(folder.with_name(folder.name + ".lock")):
            if not folder.is_dir():
                try:
                    model.save_pretrained(folder)
                except OSError:
                    pass
    return run


def to_json(run: CourseRun) -> dict:
    return {"recipe": run.recipe, "history": run.history.to_dict(), "grad_norm": run.grad_norm,
            "held_out_loss": run.held_out_loss}


def from_json(data: dict) -> CourseRun:
    return CourseRun(data["recipe"], History(**data["history"]), list(data["grad_norm"]),
                     list(data["held_out_loss"]))

"""diy.classroom.course_runs: the recorded reference runs change nothing about training, are made
once and then read from the cache, and survive a damaged or read-only cache."""

import math

import pytest
import torch

from diy import TrainConfig
from diy.classroom import course_runs as runs
from diy.training import train_on_text

TINY = TrainConfig(steps=3, batch_size=2, seq_len=32, eval_every=2)


@pytest.fixture
def tiny(monkeypatch):
    """course_runs trains 3 small steps instead of the 70-step recipe."""
    calls = []

    def tiny_train_on_text(**kwargs):
        calls.append(1)
        return train_on_text(config=TINY, **kwargs)

    monkeypatch.setattr(runs, "train_on_text", tiny_train_on_text)
    return calls


def test_recording_changes_nothing_about_training(tiny):
    run, model = runs.record("clip")
    _, plain = train_on_text(config=TINY, progress=False)
    assert run.history == plain  # the same losses, bit for bit
    assert len(run.grad_norm) == TINY.steps and all(n > 0 for n in run.grad_norm)
    assert len(run.held_out_loss) == len(plain.eval_step) == 2
    assert all(math.isfinite(x) for x in run.held_out_loss)
    assert model.training is False


def test_no_clip_differs_once_the_norm_exceeds_the_limit(tiny):
    clipped, _ = runs.record("clip")
    unclipped, _ = runs.record("no_clip")
    assert clipped.grad_norm[0] == unclipped.grad_norm[0] > 1.0  # same first step, then apart
    assert clipped.history.train_loss[1] != unclipped.history.train_loss[1]


def test_trained_once_then_read_from_the_cache(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("DIY_CACHE", str(tmp_path))
    first = runs.course_run("clip")
    second = runs.course_run("clip")
    assert len(tiny) == 1 and runs.to_json(first) == runs.to_json(second)
    # the clip run is the course model's recipe: its model is kept for course_model()
    assert any(p.name.startswith("course-model-") and p.is_dir() for p in tmp_path.iterdir())
    [record] = tmp_path.glob("course-run-clip-*.json")
    record.write_text("{ damaged")
    runs.course_run("clip")
    assert len(tiny) == 2
    with pytest.raises(ValueError, match="recipe"):
        runs.course_run("sgd")


def test_a_read_only_cache_still_gives_the_run(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("DIY_CACHE", str(tmp_path / "missing"))

    def read_only(self, *args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(type(tmp_path), "mkdir", read_only)
    run = runs.course_run("no_clip")
    assert len(run.grad_norm) == TINY.steps and torch.is_grad_enabled()

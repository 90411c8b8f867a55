"""Step 4's training loop (diy.pretraining), packed stream (diy.pretraining.packed), baselines
(diy.pretraining.baselines) and the `python -m diy.pretrain` command: schedule, accumulation,
weight decay, windows, bits per character, resume ≡ uninterrupted, and clear errors before any
work."""

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from diy import DIYConfig, DIYForCausalLM
from diy.errors import DIYInputError
from diy.pretraining import (
    PretrainConfig,
    PretrainHistory,
    bits_per_char,
    lr_at,
    make_optimizer,
    param_groups,
    pretrain,
    training_step,
    window_starts,
)
from diy.pretraining.baselines import bigram_bpc, unigram_bpc
from diy.pretraining.packed import open_stream, windows, write_stream

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(hidden_size=32, num_layers=1, num_heads=2, seq_len=16, batch_size=4,
            micro_batch_size=4, warmup_steps=2, eval_every=3, eval_tokens=200)


def tiny_model(vocab_size=50, seed=0, **overrides):
    torch.manual_seed(seed)
    settings = {**TINY, **overrides}
    return DIYForCausalLM(DIYConfig(vocab_size=vocab_size, hidden_size=settings["hidden_size"],
                                    num_layers=settings["num_layers"],
                                    num_heads=settings["num_heads"],
                                    max_seq_len=settings["seq_len"], dropout=0.0))


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    ids = np.random.default_rng(0).integers(0, 50, 5000)
    return open_stream(write_stream(ids, tmp_path_factory.mktemp("s") / "train.bin"))


# ------------------------------------------------------------------------------ schedule


def test_lr_warms_up_linearly_then_follows_a_cosine_to_min_lr():
    config = PretrainConfig(lr=1e-2, min_lr=1e-3, warmup_steps=10, steps=111)
    lrs = [lr_at(step, config) for step in range(111)]  # the cosine spans steps 10 .. 110
    assert lrs[0] == pytest.approx(1e-3) and lrs[9] == pytest.approx(1e-2)  # 1/10 .. 10/10
    assert lrs[-1] == pytest.approx(1e-3)  # the last step is at min_lr
    assert lrs[60] == pytest.approx(5.5e-3)  # half-way down the cosine: the mean of the two
    assert all(a >= b - 1e-12 for a, b in zip(lrs[9:], lrs[10:], strict=False))  # never rises


def test_weight_decay_only_on_matrices():
    model = tiny_model()
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() == 1 for p in no_decay["params"])
    norms = {id(p) for name, p in model.named_parameters() if "norm" in name}
    assert norms == {id(p) for p in no_decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_window_starts_depend_only_on_seed_and_step():
    a = window_starts(0, 7, 8, 1000, 16)
    assert np.array_equal(a, window_starts(0, 7, 8, 1000, 16))
    assert not np.array_equal(a, window_starts(0, 8, 8, 1000, 16))
    assert not np.array_equal(a, window_starts(1, 7, 8, 1000, 16))
    assert a.min() >= 0 and a.max() <= 1000 - 17  # every window has its seq_len + 1 tokens


def test_windows_are_inputs_and_next_token_targets(stream):
    x, y = windows(stream, [0, 10], 16)
    assert x.shape == y.shape == (2, 16) and x.dtype == torch.long
    assert torch.equal(x[0, 1:], y[0, :-1])  # the same text, one token later
    assert x[1, 0] == int(stream[10]) and y[1, -1] == int(stream[26])
    with pytest.raises(DIYInputError):
        windows(stream, [len(stream) - 10], 16)


def test_stream_file_errors(tmp_path):
    with pytest.raises(DIYInputError, match="uint16"):
        write_stream([70000], tmp_path / "big.bin")
    with pytest.raises(DIYInputError, match="找不到"):
        open_stream(tmp_path / "missing.bin")
    assert not (tmp_path / "big.bin").exists()


# --------------------------------------------------------------------------- one step


def test_accumulated_micro_batches_give_the_one_big_batch_step(stream):
    """k micro-batches of b windows, each loss / k, then one step == one batch of k * b."""
    results = []
    for micro in (8, 4, 2):
        model = tiny_model()
        config = PretrainConfig(**{**TINY, "batch_size": 8, "micro_batch_size": micro})
        optimizer = make_optimizer(model, config)
        loss = training_step(model, optimizer, stream, 0, config)
        results.append((loss, torch.cat([p.detach().flatten() for p in model.parameters()])))
    for loss, params in results[1:]:
        assert loss == pytest.approx(results[0][0], abs=1e-5)
        assert torch.allclose(params, results[0][1], atol=1e-6)


def test_bits_per_char_of_a_uniform_model_is_log2_vocab():
    model = tiny_model(vocab_size=64)
    with torch.no_grad():
        model.lm_head.weight.zero_()  # every logit 0: every token 1/64
    assert bits_per_char(model, list(range(60)) * 3, seq_len=16) == pytest.approx(6.0, abs=1e-5)
    # with two characters per token the same loss is half as many bits per character
    assert bits_per_char(model, list(range(60)) * 3, n_chars=2 * 179, seq_len=16) == \
        pytest.approx(3.0, abs=1e-5)


def test_baselines_on_a_text_they_can_count_by_hand():
    train = [0, 1, 0, 1, 0, 1]  # "abababa..."; vocabulary of 3, token 2 never seen
    held = [0, 1, 0]
    p = {0: 4 / 9, 1: 4 / 9, 2: 1 / 9}  # add-one: (3 + 1) / (6 + 3)
    assert unigram_bpc(train, held, 3) == pytest.approx(-(math.log2(p[1]) + math.log2(p[0])) / 2)
    # bigram: after 0 always 1 (3 of 3), after 1 always 0 (2 of 2)
    want = -(math.log2(0.8 * 1 + 0.2 * p[1]) + math.log2(0.8 * 1 + 0.2 * p[0])) / 2
    assert bigram_bpc(train, held, 3) == pytest.approx(want)
    assert bigram_bpc(train, held, 3) < unigram_bpc(train, held, 3)


def test_pretrain_learns_and_records(stream):
    model = tiny_model()
    config = PretrainConfig(**{**TINY, "steps": 12, "lr": 1e-2})
    history = pretrain(model, stream, list(stream[:400]), config)
    assert history.steps == list(range(1, 13)) and history.eval_steps == [3, 6, 9, 12]
    assert history.final_bpc is not None and history.losses[-1] < history.losses[0]


def test_pretrain_refuses_a_bad_recipe_before_any_step(stream):
    model = tiny_model()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(DIYInputError, match="batch_size"):
        pretrain(model, stream, list(stream[:100]),
                 PretrainConfig(**{**TINY, "batch_size": 6, "micro_batch_size": 4}))
    with pytest.raises(DIYInputError, match="min_lr"):
        PretrainConfig(lr=1e-3, min_lr=1e-2).validate()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_stop_and_resume_equals_an_uninterrupted_run(stream):
    """Bit for bit on CPU: the windows of a step depend only on (seed, step), and the optimizer
    state travels with the checkpoint."""
    config = PretrainConfig(**{**TINY, "steps": 8})
    whole = tiny_model()
    full = pretrain(whole, stream, list(stream[:300]), config)

    first = tiny_model()
    optimizer = make_optimizer(first, config)
    calls = iter(range(100))
    part = pretrain(first, stream, list(stream[:300]), config, optimizer=optimizer,
                    should_stop=lambda: next(calls) == 4)  # stops after step 5
    assert part.steps[-1] == 5
    saved_model, saved_optimizer = first.state_dict(), optimizer.state_dict()
    second = tiny_model(seed=123)  # other initial weights: everything comes from the save
    second.load_state_dict(saved_model)
    optimizer2 = make_optimizer(second, config)
    optimizer2.load_state_dict(saved_optimizer)
    rest = pretrain(second, stream, list(stream[:300]), config, optimizer=optimizer2,
                    start_step=5, history=PretrainHistory(**part.to_dict()))
    assert rest.losses == full.losses  # every step's loss, exactly
    assert all(torch.equal(a, b) for a, b in zip(whole.parameters(), second.parameters(),
                                                 strict=True))


# ------------------------------------------------------------------------ the command


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "diy.pretrain", "--no-progress", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


def test_cli_bad_arguments_write_nothing(tmp_path, capsys):
    from diy.pretrain import main

    for args, words in ((["--minutes", "0"], "--minutes"),
                        (["--batch-size", "6", "--micro-batch-size", "4"], "batch_size"),
                        (["--steps", "5", "--minutes", "1"], "只能给一个"),
                        (["--resume", str(tmp_path / "nothing")], "pretrain_state.pt")):
        out = tmp_path / "out"
        assert main([*args, "--out", str(out), "--no-progress"]) == 2
        assert words in capsys.readouterr().err
        assert not out.exists()


def test_cli_trains_resumes_and_refuses_a_changed_recipe(tmp_path, capsys):
    from diy.pretrain import STATE_NAME, main

    out = tmp_path / "run"
    small = ["--hidden-size", "32", "--num-layers", "1", "--num-heads", "2", "--seq-len", "16",
             "--batch-size", "4", "--micro-batch-size", "4", "--warmup-steps", "2",
             "--eval-tokens", "300", "--eval-every", "3"]
    assert main([*small, "--steps", "6", "--out", str(out), "--no-progress"]) == 0
    written = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", STATE_NAME, "history.json",
            "curve.csv", "curve.png"} <= written
    history = json.loads((out / "history.json").read_text(encoding="utf-8"))
    assert history["steps"] == [1, 2, 3, 4, 5, 6] and history["final_bpc"] > 0
    capsys.readouterr()
    assert main(["--resume", str(out), "--no-progress"]) == 2  # already finished
    assert "全部 6 步" in capsys.readouterr().err
    assert main(["--resume", str(out), "--lr", "0.1", "--no-progress"]) == 2
    assert "--lr 0.1" in capsys.readouterr().err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cli_ctrl_c_or_sigterm_saves_and_says_how_to_continue(tmp_path, signum):
    """SIGINT (Ctrl-C) or SIGTERM (a scheduler ending the job): the step in flight finishes,
    the checkpoint is saved, exit 130 with the resume command."""
    out = tmp_path / "run"
    small = ["--hidden-size", "32", "--num-layers", "1", "--num-heads", "2", "--seq-len", "16",
             "--batch-size", "4", "--micro-batch-size", "4", "--warmup-steps", "2",
             "--eval-tokens", "300", "--eval-every", "1000", "--save-every", "1000"]
    process = subprocess.Popen([sys.executable, "-m", "diy.pretrain", *small, "--steps", "100000",
                                "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while "步" not in (process.stderr.readline() or "步") and time.monotonic() < deadline:
        pass  # the progress bar has started: training is under way
    time.sleep(1)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert f"--resume {out}" in stderr
    state = torch.load(out / "pretrain_state.pt", weights_only=False)
    assert state["step"] >= 1 and len(state["history"]["steps"]) == state["step"]


def test_cli_stop_and_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch, capsys):
    """The command's own path (checkpoint files, --resume): stopped after step 5 of 8 and
    resumed, the loss of every step and the final weights are exactly the uninterrupted run's
    (CPU, one thread)."""
    from safetensors.torch import load_file

    import diy.pretrain as cli

    small = ["--hidden-size", "32", "--num-layers", "1", "--num-heads", "2", "--seq-len", "16",
             "--batch-size", "4", "--micro-batch-size", "2", "--warmup-steps", "2",
             "--eval-tokens", "300", "--eval-every", "3", "--steps", "8", "--no-progress"]
    assert cli.main([*small, "--out", str(tmp_path / "whole")]) == 0

    class StopAfterFive(cli.StopRequest):
        asked = 0

        @property
        def requested(self):
            StopAfterFive.asked += 1
            return StopAfterFive.asked >= 5  # asked once after each step

        @requested.setter
        def requested(self, value):
            pass

    monkeypatch.setattr(cli, "StopRequest", StopAfterFive)
    assert cli.main([*small, "--out", str(tmp_path / "parts")]) == 130
    assert "--resume" in capsys.readouterr().err
    monkeypatch.undo()
    assert cli.main(["--resume", str(tmp_path / "parts"), "--no-progress"]) == 0
    whole = json.loads((tmp_path / "whole" / "history.json").read_text(encoding="utf-8"))
    parts = json.loads((tmp_path / "parts" / "history.json").read_text(encoding="utf-8"))
    assert parts["steps"] == whole["steps"] == list(range(1, 9))
    assert parts["losses"] == whole["losses"]
    a, b = (load_file(tmp_path / name / "model.safetensors") for name in ("whole", "parts"))
    assert all(torch.equal(a[k], b[k]) for k in a)

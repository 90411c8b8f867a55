"""How long each self-check takes on its first call, with 1 and with 2 torch threads.

    python benchmarks/bench_checks.py [--threads 1 2] [--repeats 3] [--only 3.3c 3.1b]

A learner's kernel runs a check once, right after the exercise cell, in a process that has
already imported what the lesson's first cell imports (transformers' Llama modules in step 0).
So each measurement is a fresh Python process: it imports diy.classroom.checks (and, for step 0,
transformers' Llama modules), sets the thread count, then times the first call of the check
on the course's own answer (the path a correct learner takes: every comparison runs). The
figure per check is the minimum over the repeats (the run least slowed by whatever else the
machine was doing); the median is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

# exercise -> the code that builds the call (run in the child; `c` is diy.classroom.checks)
CALLS = {
    "0.1": "c.check_rms_norm(norm.ReferenceRMSNorm)",
    "0.2a": "c.check_rotary(rope.ReferenceRotaryEmbedding)",
    "0.2b": "c.check_apply_rotary(rope.reference_rotate_half, rope.reference_apply_rotary)",
    "0.3a": "c.check_causal_mask(attention.reference_causal_mask)",
    "0.3b": "c.check_attention(attention.ReferenceAttention)",
    "0.4a": "c.check_backbone_parts(norm.ReferenceRMSNorm, rope.ReferenceRotaryEmbedding, "
            "rope.reference_rotate_half, rope.reference_apply_rotary, "
            "attention.reference_causal_mask, attention.ReferenceAttention)",
    "0.4b": "c.check_mlp(decoder.ReferenceMLP)",
    "0.4c": "c.check_decoder_layer(decoder.ReferenceDecoderLayer)",
    "0.4d": "c.check_diy_model(diy.DIYModel)",
    "1.1": "c.check_lm_head(lm_head.reference_build_lm_head, lm_head.reference_forward_to_logits)",
    "1.2a": "c.check_next_token_loss(loss.reference_next_token_loss)",
    "1.2c": "c.check_train_step(loss.reference_train_step)",
    "1.3": "c.check_causal_lm(diy.DIYForCausalLM)",
    "2.1": "c.check_get_batch(diy.data.get_batch)",
    "2.2a": "c.check_training_step(diy.training.train_step)",
    "2.2b": "c.check_evaluate(diy.training.evaluate)",
    "2.2c": "c.check_train_loop(training.reference_train_loop)",
    "2.3": "c.check_greedy_continue(greedy.reference_greedy_continue)",
    "3.1a": "c.check_greedy_no_cache(cached_greedy.reference_greedy_no_cache)",
    "3.1b": "c.check_greedy_with_cache(cached_greedy.reference_greedy_with_cache)",
    "3.2a": "c.check_top_p(diy.generation.apply_top_p)",
    "3.2b": "c.check_sample_next_token(diy.generation.sample_next_token)",
    "3.3a": "c.check_left_pad(diy.generation.left_pad)",
    "3.3b": "c.check_position_ids(diy.generation.position_ids_from_mask)",
    "3.3c": "c.check_my_generate(batched.reference_my_generate)",
}

CHILD = """
import contextlib, io, json, sys, time
import torch
torch.set_num_threads({threads})
if {step0}:
    from transformers.models.llama import modeling_llama  # the lesson's first cell imports it
import diy, diy.data, diy.training, diy.generation
import diy.classroom.checks as c
from diy.classroom.checks import (attention, batched, cached_greedy, decoder, greedy, lm_head,
                                  loss, norm, rope, training)
out = io.StringIO()
start = time.perf_counter()
with contextlib.redirect_stdout(out):
    {call}
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "passed": out.getvalue().startswith("✅")}}))
"""


def measure(exercise: str, threads: int) -> dict:
    code = CHILD.format(threads=threads, step0=exercise.startswith("0."), call=CALLS[exercise])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", default=list(CALLS))
    args = parser.parse_args()
    print("exercise | " + " | ".join(f"{t} thread(s): min (median) s" for t in args.threads))
    worst = {t: 0.0 for t in args.threads}
    for exercise in args.only:
        cells = []
        for threads in args.threads:
            runs = [measure(exercise, threads) for _ in range(args.repeats)]
            if not all(run["passed"] for run in runs):
                raise SystemExit(f"{exercise}: the course's own answer did not pass")
            seconds = [run["seconds"] for run in runs]
            worst[threads] = max(worst[threads], min(seconds))
            cells.append(f"{min(seconds):.2f} ({statistics.median(seconds):.2f})")
        print(f"{exercise} | " + " | ".join(cells), flush=True)
    print("slowest | " + " | ".join(f"{worst[t]:.2f}" for t in args.threads))


if __name__ == "__main__":
    main()

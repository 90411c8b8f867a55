"""Step 2's speed figures: training throughput DIY vs transformers' Llama on the same loop,
time to learn the course passage, `python -m diy.train`, and each notebook's run time.

    python benchmarks/bench_training.py [--skip-notebooks]

Throughput: the course's train_step (forward, causal_lm_loss, zero_grad, backward, clipping,
AdamW step) on batches of (8, 128) windows of the passage, with DIYForCausalLM and with
LlamaForCausalLM holding the same weights (dropout 0: Llama has no residual dropout, so both do
the same work). Blocks of steps alternate between the two so a busy core slows both alike.
Everything else runs as a learner runs it: torch's default thread count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from diy import CharTokenizer, DIYConfig, DIYForCausalLM, get_batch, load_passage, training_stream
from diy.classroom.course import LESSONS
from diy.hf import to_llama_for_causal_lm
from diy.training import TrainConfig, train_on_text, train_step

ROOT = Path(__file__).resolve().parent.parent


class LogitsOnly(nn.Module):
    """LlamaForCausalLM called like DIYForCausalLM: input_ids -> logits."""

    def __init__(self, hf):
        super().__init__()
        self.hf = hf

    def forward(self, input_ids):
        return self.hf(input_ids=input_ids).logits


def throughput(blocks: int = 6, steps_per_block: int = 5, batch_size: int = 8, seq_len: int = 128):
    tokenizer = CharTokenizer()
    tokens = training_stream(tokenizer.encode(load_passage()), tokenizer.eos_token_id, seq_len)
    torch.manual_seed(0)
    diy = DIYForCausalLM(DIYConfig(dropout=0.0))
    models = {"DIYForCausalLM": diy, "LlamaForCausalLM": LogitsOnly(to_llama_for_causal_lm(diy))}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=3e-3) for name, m in models.items()}
    generator = torch.Generator().manual_seed(0)
    batches = [get_batch(tokens, batch_size, seq_len, generator) for _ in range(steps_per_block)]
    rates = {name: [] for name in models}
    for name, model in models.items():  # warm-up
        train_step(model, optimizers[name], batches[0])
    for _ in range(blocks):
        for name, model in models.items():
            start = time.perf_counter()
            for ids in batches:
                train_step(model, optimizers[name], ids)
            rates[name].append(batch_size * seq_len * steps_per_block /
                               (time.perf_counter() - start))
    return {name: statistics.median(r) for name, r in rates.items()}


def time_to_learn():
    start = time.perf_counter()
    _, history = train_on_text(progress=False)
    seconds = time.perf_counter() - start
    reached = next((s for s, loss in zip(history.eval_step, history.eval_loss, strict=True)
                    if loss < 0.05), None)
    return seconds, reached, history.eval_loss[-1]


def time_cli():
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "diy.train", "--out", out, "--no-progress"],
                       check=True, capture_output=True)
        return time.perf_counter() - start


def time_notebooks(step_prefix: str):
    import nbformat

    from diy.classroom.notebook_runner import run_notebook

    threads = {"OMP_NUM_THREADS": str(torch.get_num_threads())}  # as in a learner's Jupyter
    times = {}
    for name in LESSONS:
        if not name.startswith(step_prefix):
            continue
        path = ROOT / "solutions" / f"{name}.ipynb"
        nb = nbformat.read(path, as_version=4)
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            run_notebook(nb, Path(folder), env=threads)
            times[name] = time.perf_counter() - start
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-notebooks", action="store_true")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    rates = throughput()
    ratio = rates["DIYForCausalLM"] / rates["LlamaForCausalLM"]
    print("\n| loop (B=8, L=128) | tokens/s (median of 6 blocks) |\n| --- | --- |")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} |")
    print(f"| throughput ratio DIY / Llama | {ratio:.2f} (time ratio {1 / ratio:.2f}) |")
    seconds, reached, final = time_to_learn()
    print(f"\ntrain_on_text() with TrainConfig() ({TrainConfig().steps} steps): {seconds:.1f} s, "
          f"eval loss < 0.05 first at step {reached}, final eval loss {final:.4f}")
    print(f"python -m diy.train (defaults, whole command): {time_cli():.1f} s")
    if not args.skip_notebooks:
        for name, secs in time_notebooks("step2_").items():
            print(f"notebook solutions/{name}.ipynb top to bottom: {secs:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

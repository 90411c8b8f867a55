"""Step 4's speed figures: pretraining throughput, DIY vs transformers' Llama, and its share of
the matmul-only bound; torch.compile; one process vs two (torchrun, gloo).

    python benchmarks/bench_pretrain.py [--skip-processes]

Throughput: diy.pretraining.training_step (forward, float32 cross-entropy, backward, clipping,
AdamW step at the schedule's learning rate) on the default recipe's model and batches
(PretrainConfig(): 16 windows of 128 characters of 宋词), with DIYForCausalLM and with
LlamaForCausalLM holding the same weights. Blocks of steps alternate between the two, so a busy
core slows both alike; the median block is reported. "Matmuls alone": the same step's weight
multiplications and nothing else (each weight matrix's forward product and the two products of
its backward), the bound any implementation making those multiplications is under.
Everything runs as a learner runs it: torch's default thread count.
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
from bench_training import LogitsOnly  # this folder: LlamaForCausalLM called like DIY

from diy.hf import to_llama_for_causal_lm
from diy.pretraining import PretrainConfig, make_optimizer, pretrain_model, training_step
from diy.pretraining.songci import songci_data

ROOT = Path(__file__).resolve().parent.parent


def matmul_operands(weights: list[torch.Tensor], tokens: int) -> list[tuple]:
    """For every weight matrix, an input x (tokens, in) and an output gradient dy (tokens, out),
    made once: the bound times products, not the making of random numbers."""
    return [(w, torch.randn(tokens, w.shape[1]), torch.randn(tokens, w.shape[0])) for w in weights]


def matmul_bound_step(operands) -> None:
    """The weight multiplications of one training step: forward x W^T, backward dx = dy W and
    dW = dy^T x, for every weight matrix (the embedding is a lookup, not a product)."""
    for w, x, dy in operands:
        _ = x @ w.T
        _ = dy @ w
        _ = dy.T @ x


def throughput(config: PretrainConfig, blocks: int = 7, steps_per_block: int = 4) -> dict:
    data = songci_data()
    diy = pretrain_model(config, len(data.tokenizer))
    models = {"DIYForCausalLM": diy, "LlamaForCausalLM": LogitsOnly(to_llama_for_causal_lm(diy))}
    optimizers = {name: make_optimizer(m, config) for name, m in models.items()}
    tokens = config.batch_size * config.seq_len
    operands = matmul_operands([p.detach() for name, p in diy.named_parameters()
                                if p.dim() == 2 and "embed_tokens" not in name], tokens)
    rates = {name: [] for name in [*models, "matmuls alone"]}
    for name, model in models.items():  # warm-up
        training_step(model, optimizers[name], data.stream, 0, config)
    for block in range(blocks):
        for name, model in models.items():
            start = time.perf_counter()
            for step in range(steps_per_block):
                training_step(model, optimizers[name], data.stream, 1 + block * 10 + step, config)
            rates[name].append(tokens * steps_per_block / (time.perf_counter() - start))
        start = time.perf_counter()
        for _ in range(steps_per_block):
            matmul_bound_step(operands)
        rates["matmuls alone"].append(tokens * steps_per_block / (time.perf_counter() - start))
    return {name: statistics.median(r) for name, r in rates.items()}


def compiled_throughput(config: PretrainConfig, steps: int = 30) -> dict:
    """Eager vs torch.compile on the same steps (after the compiled model's first steps)."""
    data = songci_data()
    result = {}
    for mode in ("eager", "compile"):
        model = pretrain_model(config, len(data.tokenizer))
        optimizer = make_optimizer(model, config)
        run = torch.compile(model) if mode == "compile" else model
        start = time.perf_counter()
        for step in range(3):
            training_step(run, optimizer, data.stream, step, config)
        first = time.perf_counter() - start
        start = time.perf_counter()
        for step in range(3, 3 + steps):
            training_step(run, optimizer, data.stream, step, config)
        result[mode] = (config.batch_size * config.seq_len * steps /
                        (time.perf_counter() - start), first)
    return result


def processes(steps: int = 300) -> dict:
    """tokens/s of `python -m diy.pretrain` with 1 and with 2 processes (torchrun, gloo), the
    same recipe and global batch; each run's time from its own step log (no start-up)."""
    result = {}
    for n in (1, 2):
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}",
                       f"--master_port={29561 + n}", "-m", "diy.pretrain", "--steps", str(steps),
                       "--eval-every", str(steps), "--eval-tokens", "2048", "--out", out,
                       "--no-progress"]
            threads = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // n))}
            start = time.perf_counter()
            subprocess.run(command, cwd=ROOT, check=True, capture_output=True, env=threads)
            seconds = time.perf_counter() - start
        result[n] = PretrainConfig().batch_size * PretrainConfig().seq_len * steps / seconds
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-processes", action="store_true")
    args = parser.parse_args()
    config = PretrainConfig()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; recipe: hidden "
          f"{config.hidden_size}, {config.num_layers} layers, batch {config.batch_size} x "
          f"{config.seq_len}")
    rates = throughput(config)
    bound = rates["matmuls alone"]
    print("| model | tokens/s | share of the matmul-only bound |")
    print("| --- | --- | --- |")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {rate / bound:.0%} |")
    print(f"DIY / Llama: {rates['DIYForCausalLM'] / rates['LlamaForCausalLM']:.2f}")
    compiled = compiled_throughput(config)
    for mode, (rate, first) in compiled.items():
        print(f"{mode}: {rate:,.0f} tokens/s after its first 3 steps ({first:.1f} s)")
    if not args.skip_processes:
        for n, rate in processes().items():
            print(f"{n} process(es), torchrun: {rate:,.0f} tokens/s (start-up included)")


if __name__ == "__main__":
    main()

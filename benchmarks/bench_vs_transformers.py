"""DIY backbone + lm_head vs transformers' LlamaForCausalLM: one training step each.

    python benchmarks/bench_vs_transformers.py [--scale 1.0]

Same config, same weights, same process; the two are timed alternately (DIY, HF, DIY, HF ...)
so that a busy core slows both alike, and the median and fastest runs are compared.
A step is forward + next-token loss + backward (train mode, dropout 0 so both do the same work).
Peak memory: the most tensor memory alive at once during one step (beyond the weights), from
torch.profiler's allocation events.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time

import torch

from diy import DIYConfig, DIYForCausalLM, causal_lm_loss
from diy.hf import to_llama_for_causal_lm

# (B, L) and the number of alternating runs: small steps are noisier, so they get more runs.
SHAPES = [((2, 10), 150), ((8, 128), 30)]


def build(which: str):
    torch.manual_seed(0)
    diy_model = DIYForCausalLM(DIYConfig(dropout=0.0)).train()
    if which == "diy":
        return diy_model
    return to_llama_for_causal_lm(diy_model).train()


def step(which: str, model, ids: torch.Tensor) -> None:
    if which == "diy":
        loss = causal_lm_loss(model(ids), ids)
    else:
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    model.zero_grad(set_to_none=True)


def time_alternating(models: dict, ids: torch.Tensor, repeats: int) -> dict:
    times = {name: [] for name in models}
    for name, model in models.items():  # warm-up
        for _ in range(3):
            step(name, model, ids)
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            step(name, model, ids)
            times[name].append(time.perf_counter() - start)
    return times


@contextlib.contextmanager
def silenced_stderr():
    """The profiler's C++ side logs start/stop lines straight to file descriptor 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def peak_tensor_mib(which: str, model, ids: torch.Tensor) -> float:
    """Peak of live tensor memory during one step, from the profiler's allocation events."""
    from torch.profiler import ProfilerActivity, profile

    step(which, model, ids)  # warm-up outside the measurement
    with silenced_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step(which, model, ids)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()  # + on allocation, - on free
        peak = max(peak, live)
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the number of runs per shape (0.2 for a quick look)")
    args = parser.parse_args()

    import transformers

    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.get_num_threads()} threads")
    models = {"diy": build("diy"), "hf": build("hf")}
    header = ("| (B, L) | runs | DIY median ms | HF median ms | ratio (median) | DIY best ms | "
              "HF best ms | ratio (best) | DIY peak MiB | HF peak MiB |")
    print(header)
    print("| --- " * (header.count("|") - 1) + "|")
    for (batch, length), runs in SHAPES:
        repeats = max(3, round(runs * args.scale))
        ids = torch.randint(0, 6400, (batch, length), generator=torch.Generator().manual_seed(0))
        times = time_alternating(models, ids, repeats)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        best = {k: min(v) * 1e3 for k, v in times.items()}
        mem = {k: peak_tensor_mib(k, m, ids) for k, m in models.items()}
        print(f"| ({batch}, {length}) | {repeats} | {med['diy']:.2f} | {med['hf']:.2f} | "
              f"{med['diy'] / med['hf']:.2f} | {best['diy']:.2f} | {best['hf']:.2f} | "
              f"{best['diy'] / best['hf']:.2f} | {mem['diy']:.1f} | {mem['hf']:.1f} |")


if __name__ == "__main__":
    main()

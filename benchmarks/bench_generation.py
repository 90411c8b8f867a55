"""Step 3's speed figures: tokens per second of generate() with and without the KV cache, and
of transformers' LlamaForCausalLM.generate on the same weights.

    python benchmarks/bench_generation.py

The course model, eval mode, an 8-token prompt from the passage, 120 new tokens (greedy, no
eos, so every run makes all of them), batch 1 and 8. The three are timed alternately, several
rounds, and the median is reported. torch's default thread count, as in a learner's Jupyter.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from diy import CharTokenizer, load_passage
from diy.classroom.course_model import course_model
from diy.hf import to_llama_for_causal_lm

NEW_TOKENS, ROUNDS = 120, 9


def matmuls_only(model, batch: int):
    """Only the weight multiplications one cached greedy generation makes (per new token: 7 per
    layer and the lm_head, on (B, 1, ·) inputs), nothing else. Both DIY and transformers make
    exactly these, so their speed bounds what any such implementation can reach here."""
    C, F = model.config.hidden_size, model.config.intermediate_size
    x, h = torch.randn(batch, 1, C), torch.randn(batch, 1, F)  # (B, 1, C), (B, 1, F)

    def run(ids):
        with torch.inference_mode():
            for _ in range(NEW_TOKENS):
                for layer in model.model.layers:
                    attn, mlp = layer.self_attn, layer.mlp
                    for proj in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj,
                                 mlp.gate_proj, mlp.up_proj):
                        proj(x)  # (B, 1, C) or (B, 1, F)
                    mlp.down_proj(h)  # (B, 1, C)
                model.lm_head(x)  # (B, 1, V)
    return run


def main() -> int:
    model = course_model()
    hf = to_llama_for_causal_lm(model).eval()
    prompt = CharTokenizer().encode(load_passage()[:8])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{NEW_TOKENS} new tokens after an 8-token prompt, median of {ROUNDS} rounds")
    runs = {
        "DIY generate (KV cache)": lambda ids: model.generate(ids, max_new_tokens=NEW_TOKENS),
        "DIY generate (use_cache=False)": lambda ids: model.generate(
            ids, max_new_tokens=NEW_TOKENS, use_cache=False),
        "transformers LlamaForCausalLM.generate": lambda ids: hf.generate(
            ids, max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0),
    }
    print("\n| B | " + " | ".join(runs) + " | the matmuls alone | cache / transformers "
          "| cache / no cache | bound: matmuls alone / transformers |")
    print("| --- " * (len(runs) + 5) + "|")
    for batch in (1, 8):
        ids = torch.tensor([prompt] * batch)
        outputs = {name: run(ids) for name, run in runs.items()}  # warm-up, and same ids?
        same = all(torch.equal(out, outputs["DIY generate (KV cache)"])
                   for out in outputs.values())
        timed = {**runs, "matmuls alone": matmuls_only(model, batch)}
        timed["matmuls alone"](ids)  # warm-up
        rates = {name: [] for name in timed}
        for _ in range(ROUNDS):
            for name, run in timed.items():
                start = time.perf_counter()
                run(ids)
                rates[name].append(batch * NEW_TOKENS / (time.perf_counter() - start))
        median = {name: statistics.median(r) for name, r in rates.items()}
        cache, plain, hf_rate, matmuls = median.values()
        print(f"| {batch} | " + " | ".join(f"{r:,.0f} tok/s" for r in median.values()) +
              f" | {cache / hf_rate:.2f}× | {cache / plain:.2f}× | {matmuls / hf_rate:.2f}× |" +
              ("" if same else " (ids differ!)"))
    print("\nThe last column bounds the first ratio: any generate that makes these matmuls "
          "(DIY and transformers both do) is slower than the matmuls alone.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

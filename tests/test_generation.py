"""generate(): the same ids as transformers' LlamaForCausalLM.generate on the same weights
(greedy and seeded sampling, one prompt and a left-padded batch), cache ≡ no cache, each row of
a batch ≡ that row alone, eos, streaming, bad arguments; the left-padded forward path."""

import pytest
import torch

from diy import DIYConfig, DIYForCausalLM, DIYInputError
from diy.generation import (
    apply_repetition_penalty,
    apply_top_k,
    apply_top_p,
    left_pad,
    position_ids_from_mask,
    sample_next_token,
)
from diy.hf import to_llama_for_causal_lm
from diy.kv_cache import PreallocatedKV

CONFIG = DIYConfig(vocab_size=97, hidden_size=64, num_layers=2, num_heads=4, max_seq_len=48,
                   dropout=0.1)
SAMPLING = dict(do_sample=True, temperature=0.8, top_k=20, top_p=0.9)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    diy = DIYForCausalLM(CONFIG).eval()
    with torch.no_grad():  # a peakier distribution than N(0, 0.02) gives: sampling matters
        diy.lm_head.weight.mul_(40)
    return diy, to_llama_for_causal_lm(diy).eval()


@pytest.fixture(scope="module")
def prompts():
    g = torch.Generator().manual_seed(3)
    return [torch.randint(4, 97, (n,), generator=g) for n in (7, 3, 5)]


def hf_generate(hf, *args, **kwargs):
    return hf.generate(*args, pad_token_id=0, **kwargs)


def test_greedy_matches_transformers_one_prompt(models, prompts):
    diy, hf = models
    ids = prompts[0][None]
    assert torch.equal(diy.generate(ids, max_new_tokens=30),
                       hf_generate(hf, ids, max_new_tokens=30, do_sample=False))


def test_sampling_matches_transformers_with_the_same_seed(models, prompts):
    diy, hf = models
    ids = prompts[0][None].repeat(2, 1)
    torch.manual_seed(11)
    ours = diy.generate(ids, max_new_tokens=30, **SAMPLING)
    torch.manual_seed(11)
    theirs = hf_generate(hf, ids, max_new_tokens=30, **SAMPLING)
    assert torch.equal(ours, theirs)
    assert not torch.equal(ours[0], ours[1])  # it really sampled


def test_left_padded_batch_matches_transformers(models, prompts):
    diy, hf = models
    input_ids, attention_mask = left_pad(prompts, 0)
    assert attention_mask.tolist()[1] == [0, 0, 0, 0, 1, 1, 1]
    assert torch.equal(diy.generate(input_ids, attention_mask=attention_mask, max_new_tokens=20),
                       hf_generate(hf, input_ids, attention_mask=attention_mask,
                                   max_new_tokens=20, do_sample=False))
    torch.manual_seed(5)
    ours = diy.generate(input_ids, attention_mask=attention_mask, max_new_tokens=20, **SAMPLING)
    torch.manual_seed(5)
    theirs = hf_generate(hf, input_ids, attention_mask=attention_mask, max_new_tokens=20,
                         **SAMPLING)
    assert torch.equal(ours, theirs)


def test_repetition_penalty_matches_transformers(models, prompts):
    diy, hf = models
    ids = prompts[0][None]
    assert torch.equal(diy.generate(ids, max_new_tokens=25, repetition_penalty=1.5),
                       hf_generate(hf, ids, max_new_tokens=25, do_sample=False,
                                   repetition_penalty=1.5))


def test_cache_is_only_an_optimisation(models, prompts):
    diy, _ = models
    batch = left_pad(prompts, 0)
    for kwargs in ({}, SAMPLING):
        torch.manual_seed(2)
        cached = diy.generate(batch[0], attention_mask=batch[1], max_new_tokens=15, **kwargs)
        torch.manual_seed(2)
        plain = diy.generate(batch[0], attention_mask=batch[1], max_new_tokens=15,
                             use_cache=False, **kwargs)
        assert torch.equal(cached, plain)


def test_preallocated_cache_gives_the_same_logits_as_the_growing_one(models, prompts):
    diy, _ = models
    ids, mask = left_pad(prompts, 0)  # (3, 7), left-padded rows exercise the key mask too
    B, L = ids.shape
    static = PreallocatedKV.for_model(CONFIG, B, capacity=L + 3)
    grown = None
    step_ids, step_mask = ids, mask
    with torch.no_grad():
        for _ in range(3):  # prefill, then two single tokens
            a, static_out = diy(step_ids, past_key_values=static, use_cache=True,
                                is_training=False, attention_mask=step_mask)
            b, grown = diy(step_ids, past_key_values=grown, use_cache=True, is_training=False,
                           attention_mask=step_mask)
            assert torch.equal(a, b)
            # the presents are the same buffers, advanced in place: pass them back as they are
            assert all(x is y for x, y in zip(static_out, static, strict=True))
            for layer, (k, v) in zip(static, grown, strict=True):
                assert torch.equal(layer.keys[:, :, :layer.length], k)
                assert torch.equal(layer.values[:, :, :layer.length], v)
            step_ids = a[:, -1].argmax(-1, keepdim=True)  # (B, 1)
            step_mask = torch.cat([step_mask, torch.ones(B, 1, dtype=torch.long)], dim=1)
    assert static[0].length == L + 2


def test_a_full_preallocated_cache_is_refused_before_anything_is_written(models, prompts):
    diy, _ = models
    cache = PreallocatedKV.for_model(CONFIG, 1, capacity=8)
    with torch.no_grad():
        diy(prompts[0][None], past_key_values=cache, use_cache=True, is_training=False)  # 7
        before = cache[0].keys.clone()
        with pytest.raises(DIYInputError, match="预分配的缓存.*放不下新的 2 个 token"):
            diy(prompts[1][None, :2], past_key_values=cache, use_cache=True, is_training=False)
        try:
            with pytest.raises(DIYInputError, match="换了 dtype"):  # e.g. a float64 model now
                diy.double()(prompts[1][None, :1], past_key_values=cache, use_cache=True,
                             is_training=False)
        finally:
            diy.float()  # float32 -> float64 -> float32 is exact
    assert [c.length for c in cache] == [7, 7] and torch.equal(cache[0].keys, before)


def test_one_cache_object_for_every_layer_is_refused(models, prompts):
    diy, _ = models
    shared = [PreallocatedKV(1, CONFIG.num_heads, 20, CONFIG.head_dim)] * CONFIG.num_layers
    with torch.no_grad(), pytest.raises(DIYInputError, match="同一个缓存对象"):
        diy(prompts[0][None], past_key_values=shared, use_cache=True, is_training=False)
    assert shared[0].length == 0


def test_generated_ids_can_be_trained_on(models, prompts):
    diy, _ = models
    ids = diy.generate(prompts[0][None], max_new_tokens=5)
    assert not ids.is_inference()  # generate runs in inference_mode; its result must not be
    diy.train()
    try:
        diy(ids).sum().backward()  # an inference tensor here: "cannot be saved for backward"
    finally:
        diy.zero_grad(set_to_none=True)
        diy.eval()


def test_each_row_of_a_batch_equals_that_row_alone(models, prompts):
    diy, _ = models
    batched = diy.generate(list(prompts), max_new_tokens=12)  # a list: padded inside
    width = max(len(p) for p in prompts)
    for row, prompt in enumerate(prompts):
        alone = diy.generate(prompt[None], max_new_tokens=12)[0]
        assert torch.equal(batched[row, width - len(prompt):], alone)
        assert bool((batched[row, :width - len(prompt)] == 0).all())  # left padding


def test_rows_stop_at_eos_and_are_padded(models, prompts):
    diy, _ = models
    free = diy.generate(list(prompts), max_new_tokens=12)
    width = max(len(p) for p in prompts)
    eos = int(free[0, width + 2])  # row 0's third new token plays eos
    out = diy.generate(list(prompts), max_new_tokens=12, eos_token_id=eos, pad_token_id=0)
    for row in range(len(prompts)):
        new = out[row, width:].tolist()
        if eos in new:
            after = new[new.index(eos) + 1:]
            assert after == [0] * len(after)  # padding after eos
    assert out.shape[1] <= free.shape[1]
    # every row finished: generation stops before max_new_tokens
    short = diy.generate(prompts[0][None], max_new_tokens=12, eos_token_id=eos)
    assert short.shape[1] == len(prompts[0]) + 3 and int(short[0, -1]) == eos


def test_streaming_receives_every_token_in_order(models, prompts):
    diy, _ = models
    seen = []
    out = diy.generate(prompts[0][None], max_new_tokens=8, streamer=seen.append)
    assert torch.equal(torch.stack(seen, dim=1), out[:, len(prompts[0]):])
    seen[0] += 1  # ordinary tensors (generate runs in inference_mode): the streamer may change them

    class Streamer:  # transformers-style: the prompt first, then each token, then end()
        def __init__(self):
            self.calls = []

        def put(self, value):
            self.calls.append(value.tolist())

        def end(self):
            self.calls.append("end")

    streamer = Streamer()
    out = diy.generate(prompts[0][None], max_new_tokens=3, streamer=streamer)
    assert streamer.calls[0] == [prompts[0].tolist()] and streamer.calls[-1] == "end"
    assert [c[0] for c in streamer.calls[1:-1]] == out[0, -3:].tolist()


def test_generate_restores_the_training_mode(models, prompts):
    diy, _ = models
    diy.train()
    try:
        a = diy.generate(prompts[0][None], max_new_tokens=10)
        b = diy.generate(prompts[0][None], max_new_tokens=10)
        assert torch.equal(a, b) and diy.training  # dropout was off during generation
    finally:
        diy.eval()


def test_processors():
    scores = torch.tensor([[1.0, 3.0, 2.0, 3.0, -1.0]])
    assert apply_top_k(scores, 2).isinf().tolist() == [[True, False, True, False, True]]
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    # 0.5 alone is not > 0.6; 0.5 + 0.3 crosses it: those two stay
    assert apply_top_p(probs, 0.6).isinf().tolist() == [[False, False, True, True]]
    assert apply_top_p(probs, 0.01).isinf().tolist() == [[False, True, True, True]]  # one stays
    penalised = apply_repetition_penalty(torch.tensor([[2.0, -2.0, 1.0]]), torch.tensor([[0, 1]]),
                                         2.0)
    assert penalised.tolist() == [[1.0, -4.0, 1.0]]
    logits = torch.randn(3, 10)
    assert torch.equal(sample_next_token(logits, temperature=0), logits.argmax(-1))
    assert torch.equal(sample_next_token(logits, top_k=1), logits.argmax(-1))
    g = torch.Generator().manual_seed(0)
    first = sample_next_token(logits, generator=g)
    assert torch.equal(sample_next_token(logits, generator=torch.Generator().manual_seed(0)),
                       first)


@pytest.mark.parametrize("kwargs, words", [
    (dict(temperature=-1.0), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(do_sample=True, temperature=0.0), "do_sample=False"), (dict(top_k=-1), "top_k"),
    (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"),
    (dict(repetition_penalty=0.0), "repetition_penalty"),
    (dict(max_new_tokens=-1), "max_new_tokens"),
    (dict(max_new_tokens=48), "max_seq_len"), (dict(eos_token_id=97), "eos_token_id"),
    (dict(attention_mask=torch.ones(1, 3)), "形状"),
    (dict(attention_mask=torch.tensor([[1, 1, 1, 1, 0]])), "左"),
])
def test_bad_arguments_are_refused_before_any_work(models, kwargs, words):
    diy, _ = models
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    calls = []
    handle = diy.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(DIYInputError, match=words):
            diy.generate(ids, **{"max_new_tokens": 5, **kwargs})
    finally:
        handle.remove()
    assert calls == []  # nothing ran


def test_bad_prompts(models):
    diy, _ = models
    with pytest.raises(DIYInputError, match="空"):
        diy.generate(torch.zeros(1, 0, dtype=torch.long), max_new_tokens=2)
    with pytest.raises(DIYInputError, match="词表"):
        diy.generate(torch.tensor([[5, 500]]), max_new_tokens=2)
    with pytest.raises(DIYInputError, match="空"):
        diy.generate([torch.tensor([5]), torch.tensor([], dtype=torch.long)], max_new_tokens=2)


def test_left_padded_forward_matches_transformers_hidden_states(models, prompts):
    diy, hf = models
    input_ids, attention_mask = left_pad(prompts, 0)
    with torch.no_grad():
        ours = diy(input_ids, is_training=False, attention_mask=attention_mask)
        theirs = hf(input_ids=input_ids, attention_mask=attention_mask).logits
    real = attention_mask.bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-4)
    assert torch.isfinite(ours).all()  # padding rows too: no NaN from fully masked rows


# ----------------------------------------------------------------- step 3's helpers

def test_position_ids_from_mask_count_from_each_rows_first_token():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1], [0, 1, 2, 3], [0, 0, 0, 0]]
    assert position_ids_from_mask(mask.bool()).dtype == torch.long


def test_generate_past_max_seq_len_says_why_it_cannot_slide():
    model = DIYForCausalLM(CONFIG)
    with pytest.raises(DIYInputError) as error:
        model.generate(torch.ones(1, 8, dtype=torch.long), max_new_tokens=CONFIG.max_seq_len)
    assert "RoPE" in error.value.problem and "2.3" in error.value.fix
    # the reason a cache cannot slide is the deeper layers' K/V, not RoPE (lesson 3.1, section 5)
    assert "第 1 层" in error.value.problem and "3.1" in error.value.problem
    assert "from layer 1 on" in error.value.gloss and "transformers" in error.value.gloss
    assert "带着各自的位置" not in error.value.problem  # the old, wrong reason


def test_step3_model_prefers_the_learners_checkpoint(tmp_path, monkeypatch):
    from diy.classroom import course_model as module

    stand_in = DIYForCausalLM(DIYConfig(vocab_size=6400, hidden_size=32, num_layers=1,
                                        num_heads=2, max_seq_len=16))
    monkeypatch.setattr(module, "course_model", lambda: stand_in)
    model, which = module.step3_model(tmp_path / "missing")
    assert model is stand_in and "没有找到" in which
    stand_in.save_pretrained(tmp_path / "step2")
    model, which = module.step3_model(tmp_path / "step2")
    assert model is not stand_in and "2.3" in which and not model.training
    assert torch.equal(model.lm_head.weight, stand_in.lm_head.weight)
    (tmp_path / "step2" / "config.json").write_text("{ not json", encoding="utf-8")
    model, which = module.step3_model(tmp_path / "step2")
    assert model is stand_in and "读不出来" in which

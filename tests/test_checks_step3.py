"""Step 3's self-checks: the reference passes, the placeholder is ⏳, every listed mistake gets
its own hint (one case per kind: test data that would hide it, reproducibility, side effects,
types, hostile return values, the nearest hint that must not fire), and correct but different
answers pass."""

import pytest
import torch

from diy.classroom.checks import (
    check_greedy_no_cache,
    check_greedy_with_cache,
    check_left_pad,
    check_my_generate,
    check_position_ids,
    check_sample_next_token,
    check_top_p,
)
from diy.classroom.checks.batched import reference_my_generate
from diy.classroom.checks.cached_greedy import (
    reference_greedy_no_cache,
    reference_greedy_with_cache,
)
from diy.classroom.checks.sampling import top_p_variant
from diy.generation import apply_top_p, position_ids_from_mask
from diy.generation import left_pad as reference_left_pad
from diy.generation import sample_next_token as reference_sample_next_token
from diy.kv_cache import PreallocatedKV
from tests.check_helpers import assert_caught, placeholder, verdict

CHECKS = [
    (check_greedy_no_cache, reference_greedy_no_cache, "3.1a"),
    (check_greedy_with_cache, reference_greedy_with_cache, "3.1b"),
    (check_top_p, apply_top_p, "3.2a"),
    (check_sample_next_token, reference_sample_next_token, "3.2b"),
    (check_left_pad, reference_left_pad, "3.3a"),
    (check_position_ids, position_ids_from_mask, "3.3b"),
    (check_my_generate, reference_my_generate, "3.3c"),
]


def passes(capsys, returned, learner, exercise):
    assert returned is learner
    text = verdict(capsys)
    assert text.startswith(f"✅ 练习 {exercise} 通过"), text


@pytest.mark.parametrize("check, reference, exercise", CHECKS, ids=[c[2] for c in CHECKS])
def test_reference_passes_placeholder_waits_rng_untouched(capsys, check, reference, exercise):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    passes(capsys, check(reference), reference, exercise)
    assert torch.equal(torch.rand(3), expected)
    assert check(placeholder) is reference
    assert verdict(capsys).startswith(f"⏳ 练习 {exercise} 待完成")


@pytest.mark.parametrize("check, reference, exercise", CHECKS, ids=[c[2] for c in CHECKS])
def test_hostile_return_values_get_a_verdict_not_an_exception(capsys, check, reference, exercise):
    for returned in (None, [1, 2], (torch.zeros(2),), "text"):
        assert check(lambda *args, value=returned, **kwargs: value) is reference
        assert verdict(capsys).startswith(f"❌ 练习 {exercise} 未通过")


# --------------------------------------------------------------------- 3.1a greedy_no_cache

def test_greedy_no_cache_mistake(capsys):
    def position_zero(model, input_ids, max_new_tokens):
        model.eval()
        for _ in range(max_new_tokens):
            next_id = model(input_ids)[:, 0, :].argmax(dim=-1, keepdim=True)
            input_ids = torch.cat([input_ids, next_id], dim=1)
        return input_ids

    assert_caught(capsys, check_greedy_no_cache(position_zero), reference_greedy_no_cache, "3.1a",
                  "第 0 个位置")


def test_greedy_no_cache_too_long_is_not_blamed_on_cropping(capsys):
    """3.1a needs no crop: a sequence past max_seq_len means too many tokens were appended."""
    def appends_every_position(model, input_ids, max_new_tokens):
        model.eval()
        with torch.no_grad():
            for _ in range(max_new_tokens):
                input_ids = torch.cat([input_ids, model(input_ids).argmax(dim=-1)], dim=1)
        return input_ids

    assert_caught(capsys, check_greedy_no_cache(appends_every_position),
                  reference_greedy_no_cache, "3.1a", "不需要裁剪")
    assert "128" not in verdict_of(capsys, appends_every_position)


def verdict_of(capsys, learner):
    check_greedy_no_cache(learner)
    return verdict(capsys)


def test_greedy_no_cache_float_ids_and_grad_mode_left_off(capsys):
    def float_ids(model, input_ids, max_new_tokens):
        return reference_greedy_no_cache(model, input_ids, max_new_tokens).float()

    def grad_left_off(model, input_ids, max_new_tokens):
        torch.set_grad_enabled(False)
        return reference_greedy_no_cache(model, input_ids, max_new_tokens)

    assert_caught(capsys, check_greedy_no_cache(float_ids), reference_greedy_no_cache, "3.1a",
                  "torch.long")
    assert_caught(capsys, check_greedy_no_cache(grad_left_off), reference_greedy_no_cache,
                  "3.1a", "set_grad_enabled")
    assert torch.is_grad_enabled()


# --------------------------------------------------------------------- 3.1b greedy_with_cache

def cached_with(*, eval_mode=True, whole_sequence=False, pass_past=True, update_past=True,
                position=-1):
    def greedy_with_cache(model, input_ids, max_new_tokens):
        if eval_mode:
            model.eval()
        with torch.no_grad():
            logits, past = model(input_ids, use_cache=True, is_training=False)
            first_past = past
            for _ in range(max_new_tokens):
                next_id = logits[:, position, :].argmax(dim=-1, keepdim=True)
                input_ids = torch.cat([input_ids, next_id], dim=1)
                feed = input_ids if whole_sequence else next_id
                given = (past if update_past else first_past) if pass_past else None
                logits, new_past = model(feed, past_key_values=given, use_cache=True,
                                         is_training=False)
                past = new_past
        return input_ids
    return greedy_with_cache


CACHE_MISTAKES = {
    "whole sequence again with the cache": (cached_with(whole_sequence=True), "整段"),
    "new token without past_key_values": (cached_with(pass_past=False), "past_key_values"),
    "cache never updated": (cached_with(update_past=False), "缓存没有随步数增长"),
    "position 0": (cached_with(position=0), "不一样"),
    "no eval()": (cached_with(eval_mode=False), "model.eval()"),
    "no cache at all": (lambda m, ids, n: reference_greedy_no_cache(m, ids, n), "use_cache"),
    "float ids": (lambda m, ids, n: reference_greedy_with_cache(m, ids, n).float(), "torch.long"),
    "1-D input": (lambda m, ids, n: reference_greedy_with_cache(m, ids[0], n),
                  "DIYModel 拒绝了输入"),
}


@pytest.mark.parametrize("mistake", CACHE_MISTAKES)
def test_cached_loop_mistakes(capsys, mistake):
    learner, words = CACHE_MISTAKES[mistake]
    assert_caught(capsys, check_greedy_with_cache(learner), reference_greedy_with_cache, "3.1b",
                  words)


def cached_positional_arguments(model, input_ids, max_new_tokens):
    """A correct loop that calls forward with positional arguments and skips the last call."""
    model.eval()
    with torch.inference_mode():
        logits, past = model(input_ids, None, None, True, False)
        for step in range(max_new_tokens):
            next_id = logits[:, -1].argmax(-1, keepdim=True)
            input_ids = torch.cat((input_ids, next_id), 1)
            if step < max_new_tokens - 1:
                logits, past = model(next_id, None, past, True, False)
    return input_ids


def cached_by_forward(model, input_ids, max_new_tokens):
    """Correct, calling model.forward(...) directly (a forward hook would not see it)."""
    model.eval()
    with torch.no_grad():
        logits, past = model.forward(input_ids, use_cache=True, is_training=False)
        for _ in range(max_new_tokens):
            next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)
            input_ids = torch.cat([input_ids, next_id], dim=1)
            logits, past = model.forward(next_id, past_key_values=past, use_cache=True,
                                         is_training=False)
    return input_ids


@torch.no_grad()
def cached_preallocated(model, input_ids, max_new_tokens):
    """Correct, with the preallocated cache lesson 3.3 presents."""
    model.eval()
    past = PreallocatedKV.for_model(model.config, input_ids.shape[0],
                                    input_ids.shape[1] + max_new_tokens)
    logits, past = model(input_ids, past_key_values=past, use_cache=True, is_training=False)
    for _ in range(max_new_tokens):
        next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)
        input_ids = torch.cat([input_ids, next_id], dim=1)
        logits, past = model(next_id, past_key_values=past, use_cache=True, is_training=False)
    return input_ids


@pytest.mark.parametrize("learner", [cached_positional_arguments, cached_by_forward,
                                     cached_preallocated])
def test_cached_loop_alternatives_pass(capsys, learner):
    passes(capsys, check_greedy_with_cache(learner), learner, "3.1b")


# ---------------------------------------------------------------------- 3.2a apply_top_p

def top_p_with(mistake):
    def apply(scores, top_p):
        return scores.masked_fill(~top_p_variant(scores, top_p, mistake), float("-inf"))
    return apply


def top_p_in_place(scores, top_p):
    return scores.masked_fill_(~torch.isfinite(apply_top_p(scores, top_p)), float("-inf"))


def top_p_zero_mask(scores, top_p):
    return torch.where(torch.isfinite(apply_top_p(scores, top_p)), scores, torch.zeros_like(scores))


TOP_P_MISTAKES = {
    "sorted positions never mapped back": (top_p_with("no_scatter"), "映射回"),
    "drops the crossing token": (top_p_with("drops_crossing"), "达到"),
    "removes the head": (top_p_with("head_removed"), "最大的那一头"),
    "changes the caller's scores": (top_p_in_place, "原地"),
    "returns probabilities": (lambda s, p: apply_top_p(s, p).softmax(-1), "返回的是概率"),
    "masks with 0": (top_p_zero_mask, "设成了 0"),
}


@pytest.mark.parametrize("mistake", TOP_P_MISTAKES)
def test_top_p_mistakes(capsys, mistake):
    learner, words = TOP_P_MISTAKES[mistake]
    assert_caught(capsys, check_top_p(learner), apply_top_p, "3.2a", words)


def top_p_descending(scores, top_p):
    """Correct, the other common way: sort descending, keep what comes before the mass p."""
    probs, order = scores.softmax(-1).sort(dim=-1, descending=True)
    keep_sorted = probs.cumsum(-1) - probs < top_p
    keep = torch.zeros_like(keep_sorted).scatter(1, order, keep_sorted)
    return torch.where(keep, scores, torch.full_like(scores, float("-inf")))


def test_top_p_alternative_passes(capsys):
    passes(capsys, check_top_p(top_p_descending), top_p_descending, "3.2a")


# ---------------------------------------------------------------------- 3.2b sample_next_token

def sampler_with(*, temperature="first", zero_as_division=False, k_offset=0,
                 mask_value=float("-inf"), top_p_first=False, on_logits=False, generator="given",
                 top_k_by_position=False, one_draw=False, in_place=False):
    def sample_next_token(logits, temperature_=1.0, top_k=None, top_p=None, generator_=None):
        if temperature_ == 0 and not zero_as_division:
            return logits.argmax(dim=-1)
        scores = logits if in_place else logits.float()
        if temperature == "first":
            scores = scores.div_(temperature_) if in_place else scores / temperature_

        def top_k_filter(s):
            if not top_k:
                return s
            if top_k_by_position:  # sorted positions used as token ids
                s = s.clone()
                s[:, top_k:] = float("-inf")
                return s
            k = max(1, min(top_k + k_offset, s.shape[-1]))
            kth = torch.topk(s, k).values[:, -1:]
            return s.masked_fill(s < kth, mask_value)

        def top_p_filter(s):
            return apply_top_p(s, top_p) if top_p is not None and top_p < 1 else s

        for step in ((top_p_filter, top_k_filter) if top_p_first else (top_k_filter, top_p_filter)):
            scores = step(scores)
        if temperature == "last":
            scores = scores / temperature_
        if on_logits:
            probs = scores.clamp(min=0) + 1e-9
        else:
            probs = scores.softmax(-1)
            if temperature == "after softmax":
                probs = (probs / temperature_) / (probs / temperature_).sum(-1, keepdim=True)
        if generator == "global":
            drawn = torch.multinomial(probs, 1)
        elif generator == "reseeded":
            fresh = torch.Generator().manual_seed(generator_.initial_seed())
            drawn = torch.multinomial(probs, 1, generator=fresh)
        elif generator == "global reseeded":
            torch.manual_seed(generator_.initial_seed())
            drawn = torch.multinomial(probs, 1)
        else:
            drawn = torch.multinomial(probs, 1, generator=generator_)
        if one_draw:
            drawn = drawn[:1].expand_as(drawn)
        return drawn.squeeze(1)
    return sample_next_token


SAMPLER_MISTAKES = {
    "temperature after softmax": (sampler_with(temperature="after softmax"), "softmax 之前"),
    "temperature applied last": (sampler_with(temperature="last"), "调过温度"),
    "top-p before top-k": (sampler_with(top_p_first=True), "重新归一化"),
    "temperature 0 divides by zero": (sampler_with(zero_as_division=True), "temperature=0"),
    "top-k keeps one too many": (sampler_with(k_offset=1), "k 算多了"),
    "top-k keeps one too few": (sampler_with(k_offset=-1), "k − 1 个"),
    "top-k masks with 0": (sampler_with(mask_value=0.0), "−inf"),
    "top-k never maps sorted positions back": (sampler_with(top_k_by_position=True), "映射回"),
    "multinomial on logits": (sampler_with(on_logits=True), "multinomial"),
    "ignores the generator": (sampler_with(generator="global"), "全局随机数"),
    "re-seeds from the generator's seed": (sampler_with(generator="reseeded"), "重新设了种子"),
    "re-seeds the global RNG": (sampler_with(generator="global reseeded"), "全局随机数"),
    "one draw for the whole batch": (sampler_with(one_draw=True), "各抽各的"),
    "changes the caller's logits": (sampler_with(in_place=True), "原地"),
    "float ids": (lambda *a, **k: reference_sample_next_token(*a, **k).float(), "torch.long"),
}


@pytest.mark.parametrize("mistake", SAMPLER_MISTAKES)
def test_sampler_mistakes(capsys, mistake):
    learner, words = SAMPLER_MISTAKES[mistake]
    assert_caught(capsys, check_sample_next_token(learner), reference_sample_next_token, "3.2b",
                  words)


def test_a_top_p_mistake_is_not_named_a_top_k_mistake(capsys):
    def top_p_drops_crossing(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
        if temperature == 0:
            return logits.argmax(dim=-1)
        scores = logits / temperature
        if top_p is not None and top_p < 1:
            scores = top_p_with("drops_crossing")(scores, top_p)
        return reference_sample_next_token(scores, 1.0, top_k, None, generator)

    check_sample_next_token(top_p_drops_crossing)
    text = verdict(capsys)
    assert text.startswith("❌ 练习 3.2b 未通过") and "top-p" in text and "top-k 多留" not in text


def sampler_by_hand(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """A correct sampler written differently: probabilities throughout, descending top-p."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_k:
        values, _ = probs.topk(top_k, dim=-1)
        probs = torch.where(probs >= values[:, -1:], probs, torch.zeros_like(probs))
        probs = probs / probs.sum(-1, keepdim=True)
    if top_p is not None and top_p < 1:
        ordered, order = probs.sort(dim=-1, descending=True)
        before = ordered.cumsum(-1) - ordered  # probability mass before each token
        keep = torch.zeros_like(before, dtype=torch.bool).scatter(1, order, before < top_p)
        probs = torch.where(keep, probs, torch.zeros_like(probs))
        probs = probs / probs.sum(-1, keepdim=True)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def test_sampler_alternative_passes(capsys):
    passes(capsys, check_sample_next_token(sampler_by_hand), sampler_by_hand, "3.2b")


def test_sampler_that_squeezes_the_batch_dimension_away(capsys):
    def squeezes_everything(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
        return reference_sample_next_token(logits, temperature, top_k, top_p, generator)[:, None] \
            .squeeze()

    assert_caught(capsys, check_sample_next_token(squeezes_everything),
                  reference_sample_next_token, "3.2b", ".squeeze(1)")


# ---------------------------------------------------------------------------- 3.3a left_pad

def right_pad(prompts, pad_token_id):
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, :len(p)] = p
        mask[row, :len(p)] = 1
    return ids, mask


LEFT_PAD_MISTAKES = {
    "right padding": (right_pad, "右边"),
    "mask inverted": (lambda ps, pad: (reference_left_pad(ps, pad)[0],
                                       1 - reference_left_pad(ps, pad)[1]), "反了"),
    "only the ids": (lambda ps, pad: reference_left_pad(ps, pad)[0], "两个张量"),
    "floats": (lambda ps, pad: (reference_left_pad(ps, pad)[0].float(),
                                reference_left_pad(ps, pad)[1]), "dtype"),
    "lists": (lambda ps, pad: tuple(t.tolist() for t in reference_left_pad(ps, pad)), "列表"),
    "padding hard-coded": (lambda ps, pad: reference_left_pad(ps, 0), "写死"),
}


@pytest.mark.parametrize("mistake", LEFT_PAD_MISTAKES)
def test_left_pad_mistakes(capsys, mistake):
    learner, words = LEFT_PAD_MISTAKES[mistake]
    assert_caught(capsys, check_left_pad(learner), reference_left_pad, "3.3a", words)


def left_pad_with_nn_utils(prompts, pad_token_id):
    flipped = [p.flip(0) for p in prompts]
    ids = torch.nn.utils.rnn.pad_sequence(flipped, batch_first=True,
                                          padding_value=pad_token_id).flip(1)
    return ids, (torch.nn.utils.rnn.pad_sequence([torch.ones_like(p) for p in flipped],
                                                 batch_first=True).flip(1)).bool()


def test_left_pad_alternative_passes(capsys):
    passes(capsys, check_left_pad(left_pad_with_nn_utils), left_pad_with_nn_utils, "3.3a")


# ------------------------------------------------------------------------ 3.3b position ids

POSITION_MISTAKES = {
    "ignores the mask": (lambda m: torch.arange(m.shape[1]).expand(m.shape),
                         "没有看 attention_mask"),
    "starts at 1": (lambda m: m.long().cumsum(-1), "从 1 开始"),
    "cumsum over the batch": (lambda m: (m.long().cumsum(0) - 1).clamp(min=0), "维度"),
    "no clamp": (lambda m: m.long().cumsum(-1) - 1, "clamp"),
    "float positions": (lambda m: (m.float().cumsum(-1) - 1).clamp(min=0), "torch.long"),
}


@pytest.mark.parametrize("mistake", POSITION_MISTAKES)
def test_position_mistakes(capsys, mistake):
    learner, words = POSITION_MISTAKES[mistake]
    assert_caught(capsys, check_position_ids(learner), position_ids_from_mask, "3.3b", words)


def test_transformers_style_positions_pass(capsys):
    def like_transformers(mask):  # padding positions get 1, as LlamaForCausalLM.generate does
        return (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)

    passes(capsys, check_position_ids(like_transformers), like_transformers, "3.3b")


# ---------------------------------------------------------------------- 3.3c my_generate

def generate_with(*, eos="pad", mask="pass", new_only=False, eval_mode=True):
    def my_generate(model, input_ids, max_new_tokens, pick, attention_mask=None,
                    eos_token_id=None, pad_token_id=0):
        if eval_mode:
            model.eval()
        ids, m = input_ids, (attention_mask if mask != "drop" else None)
        done = torch.zeros(ids.shape[0], dtype=torch.bool)
        with torch.no_grad():
            logits, past = model(ids, use_cache=True, is_training=False, attention_mask=m)
            for _ in range(max_new_tokens):
                next_id = pick(logits[:, -1, :])
                if eos_token_id is not None and eos == "pad":
                    next_id = torch.where(done, torch.full_like(next_id, pad_token_id), next_id)
                ids = torch.cat([ids, next_id[:, None]], dim=1)
                if eos_token_id is not None:
                    done |= next_id == eos_token_id
                    if (eos == "first" and done.any()) or (eos == "pad" and done.all()):
                        break
                if m is not None and mask != "frozen":
                    m = torch.cat([m, torch.ones_like(m[:, :1])], dim=1)
                logits, past = model(next_id[:, None], past_key_values=past, use_cache=True,
                                     is_training=False, attention_mask=m)
        return ids[:, input_ids.shape[1]:] if new_only else ids
    return my_generate


GENERATE_MISTAKES = {
    "keeps generating after eos": (generate_with(eos="continue"), "还在接着生成"),
    "stops every row at the first eos": (generate_with(eos="first"), "整个 batch 都停了"),
    "ignores the attention_mask": (generate_with(mask="drop"), "attention_mask 没有传给模型"),
    "mask never grows": (generate_with(mask="frozen"), "attention_mask"),
    "returns only the new tokens": (generate_with(new_only=True), "只返回了新生成的 token"),
    "no eval()": (generate_with(eval_mode=False), "model.eval()"),
}


@pytest.mark.parametrize("mistake", GENERATE_MISTAKES)
def test_my_generate_mistakes(capsys, mistake):
    learner, words = GENERATE_MISTAKES[mistake]
    assert_caught(capsys, check_my_generate(learner), reference_my_generate, "3.3c", words)


def test_my_generate_that_never_stops_early(capsys):
    def pads_to_the_end(model, input_ids, max_new_tokens, pick, attention_mask=None,
                        eos_token_id=None, pad_token_id=0):
        out = reference_my_generate(model, input_ids, max_new_tokens, pick, attention_mask,
                                    eos_token_id, pad_token_id)
        missing = input_ids.shape[1] + max_new_tokens - out.shape[1]
        return torch.cat([out, torch.full((out.shape[0], missing), pad_token_id)], dim=1)

    assert_caught(capsys, check_my_generate(pads_to_the_end), reference_my_generate, "3.3c",
                  "提前停下")


def generate_without_cache(model, input_ids, max_new_tokens, pick, attention_mask=None,
                           eos_token_id=None, pad_token_id=0):
    """Right ids, but the whole sequence every step: the lesson asks for prefill once, then
    one token with the cache (3.1b); a finished row's padding written by a mask."""
    model.eval()
    ids, mask = input_ids, attention_mask
    finished = torch.zeros(ids.shape[0], dtype=torch.bool)
    with torch.no_grad():
        for _ in range(max_new_tokens):
            next_id = pick(model(ids, is_training=False, attention_mask=mask)[:, -1, :])
            next_id = next_id.masked_fill(finished, pad_token_id)
            ids = torch.cat([ids, next_id.unsqueeze(1)], dim=1)
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            if eos_token_id is not None:
                finished = finished | (next_id == eos_token_id)
                if bool(finished.all()):
                    break
    return ids


def test_my_generate_without_the_cache_is_named(capsys):
    assert_caught(capsys, check_my_generate(generate_without_cache), reference_my_generate,
                  "3.3c", "prefill 一次")


def test_reference_my_generate_equals_generate_id_for_id():
    from diy import DIYConfig, DIYForCausalLM
    from diy.generation import left_pad

    torch.manual_seed(0)
    model = DIYForCausalLM(DIYConfig(vocab_size=50, hidden_size=32, num_layers=2, num_heads=2,
                                     max_seq_len=40))
    ids, mask = left_pad([torch.tensor([5, 6, 7, 8]), torch.tensor([9, 10])], 0)
    greedy = reference_my_generate(model, ids, 12, lambda s: s.argmax(-1), mask)
    assert torch.equal(greedy, model.generate(ids, attention_mask=mask, max_new_tokens=12))
    stop = int(greedy[0, 7])
    assert torch.equal(reference_my_generate(model, ids, 12, lambda s: s.argmax(-1), mask, stop),
                       model.generate(ids, attention_mask=mask, max_new_tokens=12,
                                      eos_token_id=stop))
    g = torch.Generator().manual_seed(3)
    sampled = reference_my_generate(model, ids, 12,
                                    lambda s: reference_sample_next_token(s, 1.3, 5, 0.9, g), mask)
    assert torch.equal(sampled, model.generate(ids, attention_mask=mask, max_new_tokens=12,
                                               do_sample=True, temperature=1.3, top_k=5,
                                               top_p=0.9,
                                               generator=torch.Generator().manual_seed(3)))


# ---------------------------------------------------------- side effect: the model's mode

def switches_to_train_at_the_end(reference):
    def learner(model, *args, **kwargs):
        out = reference(model, *args, **kwargs)
        model.train()
        return out
    return learner


def restores_the_mode(reference):
    def learner(model, *args, **kwargs):
        was_training = model.training
        out = reference(model, *args, **kwargs)
        model.train(was_training)
        return out
    return learner


@pytest.mark.parametrize("check, reference, exercise", [
    (check_greedy_no_cache, reference_greedy_no_cache, "3.1a"),
    (check_greedy_with_cache, reference_greedy_with_cache, "3.1b"),
    (check_my_generate, reference_my_generate, "3.3c"),
], ids=["3.1a", "3.1b", "3.3c"])
def test_model_left_in_train_mode_fails_restoring_the_mode_passes(capsys, check, reference,
                                                                  exercise):
    assert_caught(capsys, check(switches_to_train_at_the_end(reference)), reference, exercise,
                  "train 模式")
    learner = restores_the_mode(reference)
    passes(capsys, check(learner), learner, exercise)

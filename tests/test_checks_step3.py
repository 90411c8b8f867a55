"""Step 3's self-checks: the reference passes, the placeholder is ⏳, every listed mistake gets
its own hint, and correct but different answers pass."""

import pytest
import torch

from diy.checks import (
    check_greedy_no_cache,
    check_greedy_with_cache,
    check_left_pad,
    check_sample_next_token,
)
from diy.checks.generation import reference_greedy_no_cache, reference_greedy_with_cache
from diy.generation import apply_top_p
from diy.generation import left_pad as reference_left_pad
from diy.generation import sample_next_token as reference_sample_next_token
from tests.check_helpers import assert_caught, placeholder, verdict

CHECKS = [
    (check_greedy_no_cache, reference_greedy_no_cache, "3.1a"),
    (check_greedy_with_cache, reference_greedy_with_cache, "3.1b"),
    (check_sample_next_token, reference_sample_next_token, "3.2"),
    (check_left_pad, reference_left_pad, "3.3"),
]


def passes(capsys, returned, learner, exercise):
    assert returned is learner
    text = verdict(capsys)
    assert text.startswith(f"✅ 练习 {exercise} 通过"), text


@pytest.mark.parametrize("check, reference, exercise", CHECKS)
def test_reference_passes_placeholder_waits_rng_untouched(capsys, check, reference, exercise):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    passes(capsys, check(reference), reference, exercise)
    assert torch.equal(torch.rand(3), expected)
    assert check(placeholder) is reference
    assert verdict(capsys).startswith(f"⏳ 练习 {exercise} 待完成")


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


def test_cached_loop_alternative_passes(capsys):
    passes(capsys, check_greedy_with_cache(cached_positional_arguments),
           cached_positional_arguments, "3.1b")


def test_greedy_no_cache_mistake(capsys):
    def position_zero(model, input_ids, max_new_tokens):
        model.eval()
        for _ in range(max_new_tokens):
            next_id = model(input_ids)[:, 0, :].argmax(dim=-1, keepdim=True)
            input_ids = torch.cat([input_ids, next_id], dim=1)
        return input_ids

    assert_caught(capsys, check_greedy_no_cache(position_zero), reference_greedy_no_cache, "3.1a",
                  "第 0 个位置")


# ---------------------------------------------------------------------- 3.2 sample_next_token

def sampler_with(*, temperature_after_softmax=False, zero_as_division=False, k_offset=0,
                 mask_value=float("-inf"), top_p_drops_crossing=False, top_p_descending=False,
                 on_logits=False, global_rng=False):
    def sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
        if temperature == 0 and not zero_as_division:
            return logits.argmax(dim=-1)
        scores = logits.float()
        if not temperature_after_softmax:
            scores = scores / temperature
        if top_k:
            k = max(1, min(top_k + k_offset, scores.shape[-1]))
            kth = torch.topk(scores, k).values[:, -1:]
            scores = scores.masked_fill(scores < kth, mask_value)
        if top_p is not None and top_p < 1:
            if top_p_drops_crossing or top_p_descending:
                ordered, order = torch.sort(scores, descending=top_p_descending)
                cumulative = ordered.softmax(-1).cumsum(-1)
                if top_p_descending:  # keeps what adds up to <= top_p: drops the crossing one
                    remove = cumulative > top_p
                else:
                    remove = cumulative < 1 - top_p
                remove = remove.scatter(1, order, remove)
                scores = scores.masked_fill(remove, float("-inf"))
            else:
                scores = apply_top_p(scores, top_p)
        if on_logits:
            probs = scores.clamp(min=0) + 1e-9
        else:
            probs = scores.softmax(-1)
            if temperature_after_softmax:
                probs = (probs / temperature) / (probs / temperature).sum(-1, keepdim=True)
        drawn = torch.multinomial(probs, 1, generator=None if global_rng else generator)
        return drawn.squeeze(1)
    return sample_next_token


SAMPLER_MISTAKES = {
    "temperature after softmax": (sampler_with(temperature_after_softmax=True), "softmax 之前"),
    "temperature 0 divides by zero": (sampler_with(zero_as_division=True), "temperature=0"),
    "top-k keeps one too many": (sampler_with(k_offset=1), "k 算多了"),
    "top-k keeps one too few": (sampler_with(k_offset=-1), "采到了 2 种 token，应只有 3 种"),
    "top-k masks with 0": (sampler_with(mask_value=0.0), "−inf"),
    "top-p drops the crossing token": (sampler_with(top_p_descending=True), "越过阈值"),
    "multinomial on logits": (sampler_with(on_logits=True), "multinomial"),
    "ignores the generator": (sampler_with(global_rng=True), "generator"),
}


@pytest.mark.parametrize("mistake", SAMPLER_MISTAKES)
def test_sampler_mistakes(capsys, mistake):
    learner, words = SAMPLER_MISTAKES[mistake]
    assert_caught(capsys, check_sample_next_token(learner), reference_sample_next_token, "3.2",
                  words)


def sampler_by_hand(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """A correct sampler written differently: descending sort for top-p, exclusive cumsum."""
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
        keep_sorted = before < top_p  # the crossing token has before < top_p: it stays
        keep = torch.zeros_like(keep_sorted).scatter(1, order, keep_sorted)
        probs = torch.where(keep, probs, torch.zeros_like(probs))
        probs = probs / probs.sum(-1, keepdim=True)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def test_sampler_alternative_passes(capsys):
    passes(capsys, check_sample_next_token(sampler_by_hand), sampler_by_hand, "3.2")


# ---------------------------------------------------------------------------- 3.3 left_pad

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
}


@pytest.mark.parametrize("mistake", LEFT_PAD_MISTAKES)
def test_left_pad_mistakes(capsys, mistake):
    learner, words = LEFT_PAD_MISTAKES[mistake]
    assert_caught(capsys, check_left_pad(learner), reference_left_pad, "3.3", words)


def left_pad_with_nn_utils(prompts, pad_token_id):
    flipped = [p.flip(0) for p in prompts]
    ids = torch.nn.utils.rnn.pad_sequence(flipped, batch_first=True,
                                          padding_value=pad_token_id).flip(1)
    return ids, (torch.nn.utils.rnn.pad_sequence([torch.ones_like(p) for p in flipped],
                                                 batch_first=True).flip(1)).bool()


def test_left_pad_alternative_passes(capsys):
    passes(capsys, check_left_pad(left_pad_with_nn_utils), left_pad_with_nn_utils, "3.3")


def test_sampler_that_squeezes_the_batch_dimension_away(capsys):
    def squeezes_everything(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
        return reference_sample_next_token(logits, temperature, top_k, top_p, generator)[:, None] \
            .squeeze()

    assert_caught(capsys, check_sample_next_token(squeezes_everything),
                  reference_sample_next_token, "3.2", ".squeeze(1)")


def test_left_pad_that_ignores_the_pad_id(capsys):
    def zeros_padding(prompts, pad_token_id):
        return reference_left_pad(prompts, 0)

    assert_caught(capsys, check_left_pad(zeros_padding), reference_left_pad, "3.3", "写死")

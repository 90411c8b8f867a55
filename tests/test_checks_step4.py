"""Step 4's self-checks: the reference passes, the placeholder is ⏳, each mistake a learner is
likely to make gets its own hint, and correct but different answers pass. Every wrong answer
below is written the way a learner would write it, not taken from the checks."""

import math
import re
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diy.classroom.checks import (
    check_accumulation,
    check_bpe_codec,
    check_bpe_merge,
    check_line_log_prob,
    check_lr_schedule,
    check_meter,
    check_stream_batch,
)
from diy.classroom.checks.recipe import reference_accumulate, reference_lr_at
from diy.classroom.checks.stream import reference_get_batch
from diy.pretraining.bpe import ByteBPE
from diy.pretraining.bpe import count_pairs as ref_count_pairs
from diy.pretraining.bpe import merge as ref_merge
from diy.pretraining.measures import candidate_log_prob, meter
from tests.check_helpers import placeholder, verdict


def passed(capsys, exercise):
    text = verdict(capsys)
    assert text.startswith(f"✅ 练习 {exercise} 通过"), text
    return text


def failed(capsys, exercise, words):
    text = verdict(capsys)
    assert text.startswith(f"❌ 练习 {exercise} 未通过"), text
    assert words in text, text
    assert "按错误信息检查这一行" not in text  # a specific hint, not the generic fallback
    return text


def ref_encode(text, merges):
    return ByteBPE(merges).encode(text)


def ref_decode(ids, merges):
    return ByteBPE(merges).decode(ids)


# ----------------------------------------------------------------------------- 4.1a / 4.1b


def test_bpe_references_pass_and_placeholders_wait(capsys):
    assert check_bpe_merge(ref_count_pairs, ref_merge) == (ref_count_pairs, ref_merge)
    passed(capsys, "4.1a")
    assert check_bpe_codec(ref_encode, ref_decode) == (ref_encode, ref_decode)
    passed(capsys, "4.1b")
    returned = check_bpe_merge(placeholder, placeholder)
    assert returned == (ref_count_pairs, ref_merge)
    assert verdict(capsys).startswith("⏳ 练习 4.1a 待完成")


def count_with_dict(ids):  # a correct alternative: a plain dict and a loop
    counts = {}
    for i in range(len(ids) - 1):
        counts[(ids[i], ids[i + 1])] = counts.get((ids[i], ids[i + 1]), 0) + 1
    return counts


def count_defaultdict(ids):  # another: defaultdict
    counts = defaultdict(int)
    for pair in zip(ids, ids[1:], strict=False):
        counts[pair] += 1
    return counts


def merge_with_for(ids, pair, new_id):  # correct: a for loop with a skip flag
    out, skip = [], False
    for i, token in enumerate(ids):
        if skip:
            skip = False
            continue
        if i + 1 < len(ids) and (token, ids[i + 1]) == pair:
            out.append(new_id)
            skip = True
        else:
            out.append(token)
    return out


@pytest.mark.parametrize("count, merge_fn", [(count_with_dict, ref_merge),
                                             (count_defaultdict, merge_with_for)])
def test_bpe_merge_accepts_correct_alternatives(capsys, count, merge_fn):
    assert check_bpe_merge(count, merge_fn) == (count, merge_fn)
    passed(capsys, "4.1a")


def count_by_twos(ids):  # steps over every second position: misses overlapping pairs
    return Counter((ids[i], ids[i + 1]) for i in range(0, len(ids) - 1, 2))


def count_off_the_end(ids):
    return Counter((ids[i], ids[i + 1]) for i in range(len(ids)))


def count_with_lists(ids):
    counts = {}
    for i in range(len(ids) - 1):
        key = [ids[i], ids[i + 1]]
        counts[key] = counts.get(key, 0) + 1
    return counts


def count_as_ring(ids):
    return Counter(zip(ids, ids[1:] + ids[:1], strict=True)) if ids else Counter()


def pairs_only(ids):
    return list(zip(ids, ids[1:], strict=False))


def merge_overlapping(ids, pair, new_id):  # every position that starts the pair, overlaps too
    out = []
    for i in range(len(ids)):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
        elif not (i > 0 and (ids[i - 1], ids[i]) == pair):
            out.append(ids[i])
    return out


def merge_drops_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


def merge_no_return(ids, pair, new_id):
    out = ref_merge(ids, pair, new_id)  # noqa: F841 - the slip under test


@pytest.mark.parametrize("count, merge_fn, words", [
    (count_by_twos, ref_merge, "相邻对是重叠的"),
    (count_off_the_end, ref_merge, "下标越界"),
    (count_with_lists, ref_merge, "用 tuple"),
    (count_as_ring, ref_merge, "首尾不相连"),
    (pairs_only, ref_merge, "没有数每一对出现几次"),
    (ref_count_pairs, merge_overlapping, "两个 id 都用掉了"),
    (ref_count_pairs, merge_drops_last, "丢了最后一个 id"),
    (ref_count_pairs, merge_in_place, "改动了传进来的 ids"),
    (ref_count_pairs, merge_no_return, "忘了 return"),
])
def test_bpe_merge_mistakes_get_their_hint(capsys, count, merge_fn, words):
    assert check_bpe_merge(count, merge_fn) == (ref_count_pairs, ref_merge)
    failed(capsys, "4.1a", words)


def encode_by_rank(text, merges):  # a correct alternative: minbpe's "lowest rank first" loop
    rank = {tuple(p): i for i, p in enumerate(merges)}
    ids = list(text.encode("utf-8"))
    while len(ids) > 1:
        pairs = [p for p in zip(ids, ids[1:], strict=False) if p in rank]
        if not pairs:
            break
        pair = min(pairs, key=rank.get)
        ids = ref_merge(ids, pair, 256 + rank[pair])
    return ids


def decode_recursive(ids, merges):  # correct: expand each id by recursion
    def expand(i):
        return bytes([i]) if i < 256 else expand(merges[i - 256][0]) + expand(merges[i - 256][1])
    return b"".join(expand(i) for i in ids).decode("utf-8", errors="replace")


def test_bpe_codec_accepts_correct_alternatives(capsys):
    assert check_bpe_codec(encode_by_rank, decode_recursive) == (encode_by_rank, decode_recursive)
    passed(capsys, "4.1b")


def encode_chars(text, merges):
    return [ord(ch) for ch in text]


def encode_no_merges(text, merges):
    return list(text.encode("utf-8"))


def encode_reversed(text, merges):
    ids = list(text.encode("utf-8"))
    for i in reversed(range(len(merges))):
        ids = ref_merge(ids, tuple(merges[i]), 256 + i)
    return ids


def decode_strict(ids, merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for i, (a, b) in enumerate(merges):
        vocab[256 + i] = vocab[a] + vocab[b]
    return b"".join(vocab[i] for i in ids).decode("utf-8")


def decode_bytes_of_ids(ids, merges):
    return bytes(ids).decode("utf-8", errors="replace")


def decode_to_bytes(ids, merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for i, (a, b) in enumerate(merges):
        vocab[256 + i] = vocab[a] + vocab[b]
    return b"".join(vocab[i] for i in ids)


@pytest.mark.parametrize("encode, decode, words", [
    (encode_chars, ref_decode, "ord(ch)"),
    (encode_no_merges, ref_decode, "一次合并都没做"),
    (encode_reversed, ref_decode, "合并的顺序反了"),
    (ref_encode, decode_strict, "errors=\"replace\""),
    (ref_encode, decode_bytes_of_ids, "≥ 256 的 id"),
    (ref_encode, decode_to_bytes, "返回的是 bytes"),
])
def test_bpe_codec_mistakes_get_their_hint(capsys, encode, decode, words):
    returned = check_bpe_codec(encode, decode)
    assert returned[0] is not encode or returned[1] is not decode
    failed(capsys, "4.1b", words)


# ------------------------------------------------------------------------------------ 4.1c


def get_batch_numpy_rng(stream, batch_size, seq_len, generator=None):
    starts = np.random.randint(0, len(stream) - seq_len, batch_size)
    rows = np.stack([stream[s:s + seq_len + 1] for s in starts]).astype(np.int64)
    return torch.from_numpy(rows[:, :-1]), torch.from_numpy(rows[:, 1:])


def get_batch_misses_last(stream, batch_size, seq_len, generator=None):
    starts = torch.randint(0, len(stream) - seq_len - 1, (batch_size,), generator=generator)
    rows = np.stack([stream[s:s + seq_len + 1] for s in starts.tolist()]).astype(np.int64)
    return torch.from_numpy(rows[:, :-1]), torch.from_numpy(rows[:, 1:])


def get_batch_uint16(stream, batch_size, seq_len, generator=None):
    starts = torch.randint(0, len(stream) - seq_len, (batch_size,), generator=generator)
    rows = np.stack([stream[s:s + seq_len + 1] for s in starts.tolist()])
    x, y = rows[:, :-1].astype(np.int32), rows[:, 1:].astype(np.int32)
    return torch.from_numpy(x), torch.from_numpy(y)


def get_batch_same_y(stream, batch_size, seq_len, generator=None):
    starts = torch.randint(0, len(stream) - seq_len, (batch_size,), generator=generator)
    rows = np.stack([stream[s:s + seq_len] for s in starts.tolist()]).astype(np.int64)
    rows = torch.from_numpy(rows)
    return rows, rows.clone()


def get_batch_numpy_out(stream, batch_size, seq_len, generator=None):
    starts = torch.randint(0, len(stream) - seq_len, (batch_size,), generator=generator)
    rows = np.stack([stream[s:s + seq_len + 1] for s in starts.tolist()]).astype(np.int64)
    return rows[:, :-1], rows[:, 1:]


def get_batch_loop(stream, batch_size, seq_len, generator=None):  # correct: one window at a time
    xs, ys = [], []
    for _ in range(batch_size):
        s = int(torch.randint(0, len(stream) - seq_len, (1,), generator=generator))
        window = torch.tensor(stream[s:s + seq_len + 1].astype(np.int64))
        xs.append(window[:-1])
        ys.append(window[1:])
    return torch.stack(xs), torch.stack(ys)


def test_stream_batch_reference_and_alternative_pass(capsys):
    assert check_stream_batch(reference_get_batch) is reference_get_batch
    passed(capsys, "4.1c")
    assert check_stream_batch(get_batch_loop) is get_batch_loop
    passed(capsys, "4.1c")


@pytest.mark.parametrize("fn, words", [
    (get_batch_numpy_rng, "动了全局随机数"),
    (get_batch_misses_last, "一次都没出现"),
    (get_batch_uint16, "torch.long"),
    (get_batch_same_y, "没有错开一位"),
    (get_batch_numpy_out, "numpy 数组"),
])
def test_stream_batch_mistakes_get_their_hint(capsys, fn, words):
    assert check_stream_batch(fn) is reference_get_batch
    failed(capsys, "4.1c", words)


# ------------------------------------------------------------------------------------ 4.2a


def lr_numpy(step, warmup_steps, total_steps, max_lr, min_lr):  # correct: numpy, another shape
    if step < warmup_steps:
        return float(max_lr * (step + 1) / warmup_steps)
    p = np.clip((step - warmup_steps) / max(1, total_steps - 1 - warmup_steps), 0, 1)
    return float(min_lr + (max_lr - min_lr) * (np.cos(np.pi * p) + 1) / 2)


def lr_from_zero(step, warmup_steps, total_steps, max_lr, min_lr):
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    return reference_lr_at(step, warmup_steps, total_steps, max_lr, min_lr)


def lr_to_zero(step, warmup_steps, total_steps, max_lr, min_lr):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    p = min(1.0, (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps))
    return 0.5 * (1 + math.cos(math.pi * p)) * max_lr


def lr_ends_late(step, warmup_steps, total_steps, max_lr, min_lr):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    p = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (max_lr - min_lr)


def lr_without_half(step, warmup_steps, total_steps, max_lr, min_lr):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    p = min(1.0, (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps))
    return min_lr + math.cos(math.pi * p) * (max_lr - min_lr)


def lr_linear(step, warmup_steps, total_steps, max_lr, min_lr):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    p = min(1.0, (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps))
    return max_lr - (max_lr - min_lr) * p


def lr_divides_by_zero(step, warmup_steps, total_steps, max_lr, min_lr):
    if step <= warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    return reference_lr_at(step, warmup_steps, total_steps, max_lr, min_lr)


def test_lr_schedule_reference_and_alternative_pass(capsys):
    assert check_lr_schedule(reference_lr_at) is reference_lr_at
    passed(capsys, "4.2a")
    assert check_lr_schedule(lr_numpy) is lr_numpy
    passed(capsys, "4.2a")


@pytest.mark.parametrize("fn, words", [
    (lr_from_zero, "第 0 步的学习率是 0"),
    (lr_to_zero, "降到了 0"),
    (lr_ends_late, "还没降到 min_lr"),
    (lr_without_half, "少了 0.5"),
    (lr_linear, "直线下降"),
    (lr_divides_by_zero, "warmup"),
])
def test_lr_schedule_mistakes_get_their_hint(capsys, fn, words):
    assert check_lr_schedule(fn) is reference_lr_at
    failed(capsys, "4.2a", words)


# ------------------------------------------------------------------------------------ 4.2b


def accumulate_autograd(model, micro_batches):  # correct: torch.autograd.backward, a list of losses
    for p in model.parameters():
        p.grad = None
    losses = []
    for x, y in micro_batches:
        loss = F.cross_entropy(model(x).reshape(-1, model.config.vocab_size).float(), y.reshape(-1))
        torch.autograd.backward(loss * (1 / len(micro_batches)))
        losses.append(loss.item())
    return sum(losses) / len(losses)


def accumulate_no_division(model, micro_batches):
    model.zero_grad()
    total = 0.0
    for x, y in micro_batches:
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        loss.backward()
        total += loss.item()
    return total / len(micro_batches)


def accumulate_no_zero_grad(model, micro_batches):
    total = 0.0
    for x, y in micro_batches:
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        (loss / len(micro_batches)).backward()
        total += loss.item()
    return total / len(micro_batches)


def accumulate_zero_inside(model, micro_batches):
    total = 0.0
    for x, y in micro_batches:
        model.zero_grad()
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        (loss / len(micro_batches)).backward()
        total += loss.item()
    return total / len(micro_batches)


def accumulate_returns_scaled(model, micro_batches):
    model.zero_grad()
    total = 0.0
    for x, y in micro_batches:
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten()) / len(micro_batches)
        loss.backward()
        total += loss.item()
    return total / len(micro_batches)


def accumulate_and_step(model, micro_batches):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = reference_accumulate(model, micro_batches)
    optimizer.step()
    return result


def test_accumulation_reference_and_alternative_pass(capsys):
    assert check_accumulation(reference_accumulate) is reference_accumulate
    passed(capsys, "4.2b")
    assert check_accumulation(accumulate_autograd) is accumulate_autograd
    passed(capsys, "4.2b")


@pytest.mark.parametrize("fn, words", [
    (accumulate_no_division, "没有除以 k"),
    (accumulate_no_zero_grad, "没有先清零梯度"),
    (accumulate_zero_inside, "zero_grad 放进了循环里"),
    (accumulate_returns_scaled, "除以 k 之后的"),
    (accumulate_and_step, "不该 optimizer.step()"),
])
def test_accumulation_mistakes_get_their_hint(capsys, fn, words):
    assert check_accumulation(fn) is reference_accumulate
    failed(capsys, "4.2b", words)


# ------------------------------------------------------------------------------------ 4.3a


def line_log_prob_loop(model, context_ids, candidate_ids):  # correct: one token at a time
    total, ids = 0.0, list(context_ids)
    with torch.no_grad():
        for token in candidate_ids:
            log_probs = torch.log_softmax(model(torch.tensor([ids]))[0, -1], -1)
            total += float(log_probs[token])
            ids.append(token)
    return total


def line_same_position(model, context_ids, candidate_ids):
    ids = torch.tensor([context_ids + candidate_ids])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(ids), -1)[0]
    start = len(context_ids)
    return float(sum(log_probs[start + j, t] for j, t in enumerate(candidate_ids)))


def line_mean(model, context_ids, candidate_ids):
    return candidate_log_prob(model, context_ids, candidate_ids) / len(candidate_ids)


def line_probabilities(model, context_ids, candidate_ids):
    ids = torch.tensor([context_ids + candidate_ids])
    with torch.no_grad():
        probs = torch.softmax(model(ids), -1)[0]
    start = len(context_ids)
    return float(sum(probs[start - 1 + j, t] for j, t in enumerate(candidate_ids)))


def line_logits(model, context_ids, candidate_ids):
    ids = torch.tensor([context_ids + candidate_ids])
    with torch.no_grad():
        logits = model(ids)[0]
    start = len(context_ids)
    return float(sum(logits[start - 1 + j, t] for j, t in enumerate(candidate_ids)))


def line_with_context(model, context_ids, candidate_ids):
    ids = torch.tensor([context_ids + candidate_ids])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(ids), -1)[0]
    return float(sum(log_probs[j, t] for j, t in enumerate(ids[0, 1:].tolist())))


def line_with_grad(model, context_ids, candidate_ids):
    ids = torch.tensor([context_ids + candidate_ids])
    log_probs = torch.log_softmax(model(ids), -1)[0]
    start = len(context_ids)
    return sum(log_probs[start - 1 + j, t] for j, t in enumerate(candidate_ids))


def test_line_log_prob_reference_and_alternative_pass(capsys):
    assert check_line_log_prob(candidate_log_prob) is candidate_log_prob
    passed(capsys, "4.3a")
    assert check_line_log_prob(line_log_prob_loop) is line_log_prob_loop
    passed(capsys, "4.3a")


@pytest.mark.parametrize("fn, words", [
    (line_same_position, "取错了位置"),
    (line_mean, "平均值"),
    (line_probabilities, "不是 log 概率"),
    (line_logits, "没有做 softmax"),
    (line_with_context, "上文的 token 也算进去了"),
    (line_with_grad, "连着计算图"),
])
def test_line_log_prob_mistakes_get_their_hint(capsys, fn, words):
    assert check_line_log_prob(fn) is candidate_log_prob
    failed(capsys, "4.3a", words)


# ------------------------------------------------------------------------------------ 4.3b


def meter_findall(lines):  # correct: find the runs of non-punctuation
    runs = [run for line in lines for run in re.findall(r"[^，。、？！；：]+", line)]
    return "·".join(str(len(run)) for run in runs)


def meter_whole_lines(lines):
    return "·".join(str(len(line)) for line in lines)


def meter_spaces(lines):
    return " ".join(str(len(p)) for line in lines for p in re.split(r"[，。？！；：]", line) if p)


def meter_without_dun(lines):
    return "·".join(str(len(p)) for line in lines for p in re.split(r"[，。？！；：]", line) if p)


def test_meter_reference_and_alternative_pass(capsys):
    reference = check_meter(meter)
    assert reference("一二三，四五。".split("\n")) == "3·2"
    passed(capsys, "4.3b")
    assert check_meter(meter_findall) is meter_findall
    passed(capsys, "4.3b")


@pytest.mark.parametrize("fn, words", [
    (meter_whole_lines, "整行的长度"),
    (meter_spaces, "用「·」隔开"),
    (meter_without_dun, "顿号"),
])
def test_meter_mistakes_get_their_hint(capsys, fn, words):
    check_meter(fn)
    failed(capsys, "4.3b", words)


def test_step4_checks_leave_the_notebooks_random_numbers_alone(capsys):
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    for check, fn in ((check_stream_batch, reference_get_batch),
                      (check_accumulation, reference_accumulate),
                      (check_line_log_prob, candidate_log_prob)):
        check(fn)
    assert torch.equal(torch.rand(3), expected)


# ------------------------------------------- answers that are right in value, wrong in method


def accumulate_in_one_forward(model, micro_batches):  # the gradient of the big batch, no saving
    model.zero_grad()
    x = torch.cat([x for x, _ in micro_batches])
    y = torch.cat([y for _, y in micro_batches])
    loss = F.cross_entropy(model(x).flatten(0, 1).float(), y.flatten())
    loss.backward()
    return loss.item()


def accumulate_sum_then_backward(model, micro_batches):  # k graphs alive at once
    model.zero_grad()
    total = 0
    for x, y in micro_batches:
        total = total + F.cross_entropy(model(x).flatten(0, 1).float(), y.flatten())
    (total / len(micro_batches)).backward()
    return total.item() / len(micro_batches)


@pytest.mark.parametrize("fn, words", [
    (accumulate_in_one_forward, "内存一点没省"),
    (accumulate_sum_then_backward, "只 backward 了一次"),
])
def test_accumulation_that_saves_no_memory_is_refused(capsys, fn, words):
    assert check_accumulation(fn) is reference_accumulate
    failed(capsys, "4.2b", words)


def get_batch_reseeded(stream, batch_size, seq_len, generator=None):
    rng = np.random.default_rng(generator.initial_seed())  # the same batch every call
    starts = rng.integers(0, len(stream) - seq_len, batch_size)
    rows = torch.from_numpy(np.stack([stream[s:s + seq_len + 1] for s in starts]).astype(np.int64))
    return rows[:, :-1], rows[:, 1:]


def test_stream_batch_that_restarts_the_generator_is_refused(capsys):
    assert check_stream_batch(get_batch_reseeded) is reference_get_batch
    failed(capsys, "4.1c", "同一个 generator 连着用两次")


def line_without_no_grad(model, context_ids, candidate_ids):
    ids = torch.tensor([context_ids + candidate_ids])
    log_probs = torch.log_softmax(model(ids), -1)[0]
    start = len(context_ids)
    return float(sum(log_probs[start - 1 + j, t] for j, t in enumerate(candidate_ids)))


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_line_log_prob_without_no_grad_is_refused(capsys):
    assert check_line_log_prob(line_without_no_grad) is candidate_log_prob
    failed(capsys, "4.3a", "torch.no_grad()")


def meter_commas_and_stops_only(lines):
    return "·".join(str(len(p)) for line in lines for p in re.split(r"[，。、？]", line) if p)


def test_meter_missing_some_punctuation_is_refused(capsys):
    check_meter(meter_commas_and_stops_only)
    failed(capsys, "4.3b", "得到")

"""Batches: shapes, windows inside the text, reproducible with a generator; the eval batch
counts every next-token pair exactly once; the training stream; bad sizes."""

import pytest
import torch

from diy import IGNORE_INDEX, DIYInputError, get_batch, training_stream
from diy.data import eval_batch


def windows_are_in_text(batch, tokens):
    text = tokens.tolist()
    rows = []
    for row in batch.tolist():
        starts = [s for s in range(len(text) - len(row) + 1) if text[s:s + len(row)] == row]
        rows.append(starts)
    return all(rows), rows


def test_shape_dtype_and_windows():
    tokens = torch.arange(100, 400)
    batch = get_batch(tokens, 6, 32, torch.Generator().manual_seed(0))
    assert batch.shape == (6, 32) and batch.dtype == torch.long
    ok, _ = windows_are_in_text(batch, tokens)
    assert ok


def test_same_seed_same_batch_and_the_global_rng_is_untouched():
    tokens = torch.arange(500)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = get_batch(tokens, 4, 16, torch.Generator().manual_seed(7))
    b = get_batch(tokens, 4, 16, torch.Generator().manual_seed(7))
    c = get_batch(tokens, 4, 16, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_every_start_can_occur_including_the_last():
    tokens = torch.arange(10)
    g = torch.Generator().manual_seed(0)
    firsts = {int(row[0]) for _ in range(50) for row in get_batch(tokens, 8, 4, g)}
    assert firsts == set(range(7))  # starts 0 .. N - L


def test_eval_batch_scores_every_pair_once_with_long_context():
    tokens = torch.arange(1000, 1303)
    for seq_len in (2, 5, 64, 128, 303):
        input_ids, labels = eval_batch(tokens, seq_len)
        assert input_ids.shape == labels.shape and input_ids.shape[1] == seq_len
        targets = sorted(int(x) for x in labels[:, 1:].flatten() if x != IGNORE_INDEX)
        assert targets == list(range(1001, 1303)), seq_len  # each pair exactly once
        assert bool((labels[:, 0] == IGNORE_INDEX).all())
        for row in range(1, len(labels)):  # later windows: at least seq_len // 2 of context
            first_scored = int((labels[row] != IGNORE_INDEX).nonzero()[0])
            assert first_scored >= seq_len // 2 or first_scored == seq_len - 1


def test_training_stream_repeats_the_document_with_eos():
    stream = training_stream([5, 6, 7, 8], eos_token_id=3, seq_len=4)
    assert stream.tolist()[:10] == [5, 6, 7, 8, 3, 5, 6, 7, 8, 3]
    assert len(stream) >= 8 * 4 and len(stream) % 5 == 0


@pytest.mark.parametrize("args, words", [
    ((torch.arange(10), 0, 4), "batch_size"),
    ((torch.arange(10), 2, 1), "seq_len"),
    ((torch.arange(10), 2, 11), "比一个窗口"),
    ((torch.arange(10), 2.5, 4), "batch_size"),
])
def test_bad_sizes_are_refused(args, words):
    with pytest.raises(DIYInputError, match=words):
        get_batch(*args)


def test_empty_or_too_short_text_is_refused():
    with pytest.raises(DIYInputError, match="空"):
        training_stream([], 3, 8)
    with pytest.raises(DIYInputError, match="seq_len \\+ 1"):
        training_stream([5, 6, 7], 3, 8)

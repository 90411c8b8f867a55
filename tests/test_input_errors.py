"""Every bad input raises DIYInputError naming the problem and the fix (never a torch error)."""

import pytest
import torch

from diy import DIYInputError


def expect(model, words, *args, **kwargs):
    with pytest.raises(DIYInputError) as err:
        model(*args, **kwargs)
    error, text = err.value, str(err.value)
    assert words in text, text
    assert "修复方法" in text and "English" in text
    # the parts are data: the self-checks read .problem / .fix instead of parsing the text
    assert error.problem and error.fix and error.gloss
    assert text == f"{error.problem}\n修复方法：{error.fix}\n(English: {error.gloss})"
    return text


def test_not_a_tensor(model):
    expect(model, "torch.Tensor", [[1, 2, 3]])


def test_float_ids(model, input_ids):
    text = expect(model, "整数", input_ids.float())
    assert ".long()" in text


def test_one_dimensional_ids(model):
    text = expect(model, "两维", torch.tensor([1, 2, 3]))
    assert "unsqueeze(0)" in text


def test_three_dimensional_ids(model):
    expect(model, "两维", torch.ones(2, 3, 4, dtype=torch.long))


@pytest.mark.parametrize("shape", [(0, 5), (2, 0)])
def test_empty_ids(model, shape):
    expect(model, "空", torch.zeros(shape, dtype=torch.long))


@pytest.mark.parametrize("bad", [6400, 10_000, -1])
def test_ids_outside_vocab(model, input_ids, bad):
    ids = input_ids.clone()
    ids[1, 3] = bad
    expect(model, f"id {bad}", ids)


def test_too_long(model):
    expect(model, "max_seq_len=128", torch.ones(1, 129, dtype=torch.long))


def test_too_long_with_cache(model):
    _, cache = model(torch.ones(1, 120, dtype=torch.long), is_training=False, use_cache=True)
    text = expect(model, "max_seq_len", torch.ones(1, 9, dtype=torch.long),
                  past_key_values=cache, is_training=False)
    assert "缓存 120" in text


@pytest.mark.parametrize("lengths, words", [
    (torch.tensor([10]), "形状"),
    (torch.tensor([[10, 10]]), "形状"),
    (torch.tensor([10, 0]), "至少"),
    (torch.tensor([11, 10]), "超过"),
    (torch.tensor([10.0, 9.0]), "整数"),
    ("10", "seq_lengths"),
])
def test_bad_seq_lengths(model, input_ids, lengths, words):
    expect(model, words, input_ids, seq_lengths=lengths)


def test_use_cache_on_training_path(model, input_ids):
    expect(model, "use_cache=True", input_ids, use_cache=True, is_training=True)


def test_past_on_training_path(model, input_ids):
    _, cache = model(input_ids, is_training=False, use_cache=True)
    expect(model, "past_key_values", input_ids[:, :1], past_key_values=cache)


def test_cache_wrong_number_of_layers(model, input_ids):
    _, cache = model(input_ids, is_training=False, use_cache=True)
    expect(model, "共 2 层", input_ids[:, :1], past_key_values=cache[:1], is_training=False)


def test_cache_wrong_batch(model, input_ids):
    _, cache = model(input_ids, is_training=False, use_cache=True)
    expect(model, "形状", input_ids[:1, :1], past_key_values=cache, is_training=False)


def test_cache_wrong_head_dim(model, input_ids):
    cache = [(torch.zeros(2, 4, 3, 32), torch.zeros(2, 4, 3, 32))] * 2
    expect(model, "head_dim=64", input_ids[:, :1], past_key_values=cache, is_training=False)


def test_cache_inconsistent_lengths(model, input_ids):
    cache = [(torch.zeros(2, 4, 3, 64), torch.zeros(2, 4, 4, 64))] * 2
    expect(model, "不一致", input_ids[:, :1], past_key_values=cache, is_training=False)


def test_cache_not_pairs(model, input_ids):
    expect(model, "(k, v)", input_ids[:, :1], past_key_values=[torch.zeros(1), torch.zeros(1)],
           is_training=False)


def test_padded_rows_with_cache(model, input_ids):
    expect(model, "padding", input_ids, seq_lengths=[10, 7], use_cache=True, is_training=False)


def test_seq_lengths_with_past(model, input_ids):
    _, cache = model(input_ids, is_training=False, use_cache=True)
    expect(model, "seq_lengths", input_ids[:, :1], seq_lengths=[1, 1], past_key_values=cache,
           is_training=False)


def test_errors_keep_their_parts_through_pickling():
    import pickle

    from diy import DIYConfigError

    error = DIYConfigError("问题", "修复", "gloss")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.problem, copy.fix, copy.gloss, str(copy)) == \
        ("问题", "修复", "gloss", str(error))

import pytest
import torch
import torch.nn.functional as F

from diy import (
    IGNORE_INDEX,
    DIYInputError,
    causal_lm_loss,
    labels_from_input_ids,
    shift_for_next_token,
)


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 50, generator=generator, requires_grad=True)
    input_ids = torch.randint(1, 50, (3, 7), generator=generator)
    return logits, input_ids


def test_shift_pairs_position_t_with_token_t_plus_1(batch):
    logits, input_ids = batch
    flat_logits, flat_labels = shift_for_next_token(logits, input_ids)
    assert flat_logits.shape == (3 * 6, 50) and flat_labels.shape == (18,)
    assert torch.equal(flat_logits[0], logits[0, 0]) and flat_labels[0] == input_ids[0, 1]
    assert torch.equal(flat_logits[6], logits[1, 0]) and flat_labels[6] == input_ids[1, 1]


def test_causal_lm_loss_equals_the_explicit_shift(batch):
    logits, input_ids = batch
    labels = labels_from_input_ids(input_ids, seq_lengths=[7, 4, 2])
    expected = F.cross_entropy(*shift_for_next_token(logits, labels), ignore_index=IGNORE_INDEX)
    assert torch.allclose(causal_lm_loss(logits, labels), expected)


def test_labels_from_input_ids_marks_right_padding(batch):
    _, input_ids = batch
    labels = labels_from_input_ids(input_ids, seq_lengths=torch.tensor([7, 4, 2]))
    assert torch.equal(labels[0], input_ids[0])
    assert (labels[1, 4:] == IGNORE_INDEX).all() and torch.equal(labels[1, :4], input_ids[1, :4])
    assert (labels[2, 2:] == IGNORE_INDEX).all()
    assert torch.equal(labels_from_input_ids(input_ids), input_ids)


def test_ignored_positions_contribute_nothing(batch):
    logits, input_ids = batch
    labels = labels_from_input_ids(input_ids, seq_lengths=[7, 4, 2])
    changed = logits.detach().clone()
    changed[1, 4:] += 100.0  # logits at positions whose target is padding (and the last one)
    changed[2, 2:] -= 50.0
    assert torch.allclose(causal_lm_loss(changed, labels), causal_lm_loss(logits, labels))


def test_half_precision_logits_are_scored_in_float32(batch):
    logits, input_ids = batch
    loss = causal_lm_loss(logits.detach().bfloat16(), input_ids)
    assert loss.dtype == torch.float32
    assert abs(loss.item() - causal_lm_loss(logits, input_ids).item()) < 0.05


def test_all_targets_ignored_is_an_error_not_nan(batch):
    logits, input_ids = batch
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    with pytest.raises(DIYInputError, match="NaN"):
        causal_lm_loss(logits, labels)
    with pytest.raises(DIYInputError, match="NaN"):
        causal_lm_loss(logits[:, :1], input_ids[:, :1])  # length 1: no next token at all


def test_bad_shapes_and_dtypes(batch):
    logits, input_ids = batch
    with pytest.raises(DIYInputError, match="形状"):
        causal_lm_loss(logits, input_ids[:, :-1])
    with pytest.raises(DIYInputError, match="形状"):
        causal_lm_loss(logits.reshape(-1, 50), input_ids)
    with pytest.raises(DIYInputError, match="long"):
        causal_lm_loss(logits, input_ids.float())

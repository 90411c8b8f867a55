"""Each self-check passes the reference, says ⏳ for the placeholder, and catches each typical
mistake with its own hint. A check returns the learner's code when it passed, else the reference."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from diy import DIYForCausalLM, DIYModel
from diy.classroom.checks import (
    check_backward,
    check_causal_lm,
    check_lm_head,
    check_next_token_loss,
    check_train_step,
)
from diy.classroom.checks.lm_head import reference_build_lm_head, reference_forward_to_logits
from diy.classroom.checks.loss import reference_next_token_loss, reference_train_step
from tests.check_helpers import assert_caught, placeholder, verdict

# --------------------------------------------------------------------------------- 1.1 lm_head

def test_lm_head_reference_passes_and_is_returned(capsys):
    out = check_lm_head(reference_build_lm_head, reference_forward_to_logits)
    assert out == (reference_build_lm_head, reference_forward_to_logits)
    assert verdict(capsys).startswith("✅ 练习 1.1 通过")


def test_lm_head_placeholder_is_todo_and_falls_back(capsys):
    build, forward = check_lm_head(placeholder, placeholder)
    text = verdict(capsys)
    assert text.startswith("⏳ 练习 1.1 待完成") and "占位代码" in text
    assert build is reference_build_lm_head and forward is reference_forward_to_logits


LM_HEAD_MISTAKES = {
    "bias=True": ((lambda h, v: nn.Linear(h, v)), reference_forward_to_logits, "bias"),
    "swapped dims": ((lambda h, v: nn.Linear(v, h, bias=False)), reference_forward_to_logits,
                     "写反"),
    "hard-coded sizes": ((lambda h, v: nn.Linear(256, 6400, bias=False)),
                         reference_forward_to_logits, "不要写死"),
    "returns None": ((lambda h, v: None), reference_forward_to_logits, "None"),
    "returns a tensor": ((lambda h, v: torch.zeros(v, h)), reference_forward_to_logits,
                         "nn.Linear 层"),
    "head on input_ids": (reference_build_lm_head, (lambda m, h, ids: (m(ids), h(ids))),
                          "input_ids"),
    "head on float input_ids": (reference_build_lm_head,
                                (lambda m, h, ids: (m(ids), h(ids.float()))), "input_ids"),
    "hidden returned as logits": (reference_build_lm_head, (lambda m, h, ids: (m(ids), m(ids))),
                                  "还没过 lm_head"),
    "softmax on logits": (reference_build_lm_head,
                          (lambda m, h, ids: (m(ids), h(m(ids)).softmax(-1))), "softmax"),
    "only logits returned": (reference_build_lm_head, (lambda m, h, ids: h(m(ids))),
                             "(hidden_states, logits)"),
    "cached path tuple": (reference_build_lm_head,
                          (lambda m, h, ids: (m(ids, use_cache=True, is_training=False), None)),
                          "tuple"),
    "new head inside": (reference_build_lm_head,
                        (lambda m, h, ids: (m(ids), nn.Linear(h.in_features, h.out_features,
                                                              bias=False)(m(ids)))),
                        "传进来的 lm_head"),
}


@pytest.mark.parametrize("mistake", LM_HEAD_MISTAKES)
def test_lm_head_mistakes(capsys, mistake):
    build, forward, words = LM_HEAD_MISTAKES[mistake]
    assert_caught(capsys, check_lm_head(build, forward),
                  (reference_build_lm_head, reference_forward_to_logits), "1.1", words)


def test_check_does_not_disturb_the_notebooks_random_numbers(capsys):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_lm_head(reference_build_lm_head, reference_forward_to_logits)
    assert torch.equal(torch.rand(3), expected)


# ------------------------------------------------------------------------ 1.2a next_token_loss

def flat(logits):
    return logits.shape[-1]


LOSS_MISTAKES = {
    "no shift": (lambda lg, ids, p: F.cross_entropy(
        lg.reshape(-1, flat(lg)), ids.reshape(-1), ignore_index=p), "错位"),
    "shift in the wrong direction": (lambda lg, ids, p: F.cross_entropy(
        lg[:, 1:].reshape(-1, flat(lg)), ids[:, :-1].reshape(-1), ignore_index=p), "方向反了"),
    "padding not ignored": (lambda lg, ids, p: F.cross_entropy(
        lg[:, :-1].reshape(-1, flat(lg)), ids[:, 1:].reshape(-1)), "padding 位置也算进了 loss"),
    "ignore_index -100": (lambda lg, ids, p: F.cross_entropy(
        lg[:, :-1].reshape(-1, flat(lg)), ids[:, 1:].reshape(-1), ignore_index=-100),
        "ignore_index"),
    "ignore_index hard-coded 0": (lambda lg, ids, p: F.cross_entropy(
        lg[:, :-1].reshape(-1, flat(lg)), ids[:, 1:].reshape(-1), ignore_index=0), "写死成了 0"),
    "softmax before cross_entropy": (lambda lg, ids, p: F.cross_entropy(
        lg[:, :-1].reshape(-1, flat(lg)).softmax(-1), ids[:, 1:].reshape(-1), ignore_index=p),
        "softmax"),
    "not flattened": (lambda lg, ids, p: F.cross_entropy(
        lg[:, :-1], ids[:, 1:], ignore_index=p), "展平"),
    "float labels": (lambda lg, ids, p: F.cross_entropy(
        lg[:, :-1].reshape(-1, flat(lg)), ids[:, 1:].reshape(-1).float(), ignore_index=p),
        "torch.long"),
    "view on a non-contiguous slice": (lambda lg, ids, p: F.cross_entropy(
        lg[:, :-1].view(-1, flat(lg)), ids[:, 1:].reshape(-1), ignore_index=p), ".reshape"),
    "hard-coded vocab_size": (lambda lg, ids, p: F.cross_entropy(
        lg[:, :-1].reshape(-1, 6400), ids[:, 1:].reshape(-1), ignore_index=p), "vocab_size"),
    "only logits shifted": (lambda lg, ids, p: F.cross_entropy(
        lg[:, :-1].reshape(-1, flat(lg)), ids.reshape(-1), ignore_index=p), "对不上"),
    ".item() returned": (lambda lg, ids, p: reference_next_token_loss(lg, ids, p).item(),
                         ".item()"),
    "detached": (lambda lg, ids, p: reference_next_token_loss(lg.detach(), ids, p), "detach"),
    "reduction none": (lambda lg, ids, p: F.cross_entropy(
        lg[:, :-1].reshape(-1, flat(lg)), ids[:, 1:].reshape(-1), ignore_index=p,
        reduction="none"), "标量"),
    "reduction sum": (lambda lg, ids, p: F.cross_entropy(
        lg[:, :-1].reshape(-1, flat(lg)), ids[:, 1:].reshape(-1), ignore_index=p,
        reduction="sum"), "reduction='mean'"),
    "returns None": (lambda lg, ids, p: None, "None"),
    "no shift and padding counted": (lambda lg, ids, p: F.cross_entropy(
        lg.reshape(-1, flat(lg)), ids.reshape(-1)), "既没有错位"),
}


def mutate_ids(lg, ids, p):
    ids[ids == p] = -100
    return F.cross_entropy(lg[:, :-1].reshape(-1, flat(lg)), ids[:, 1:].reshape(-1))


LOSS_MISTAKES["input_ids modified in place"] = (mutate_ids, "原地修改")


def test_loss_reference_passes(capsys):
    assert check_next_token_loss(reference_next_token_loss) is reference_next_token_loss
    assert verdict(capsys).startswith("✅ 练习 1.2a 通过")


def test_loss_placeholder_is_todo(capsys):
    assert check_next_token_loss(placeholder) is reference_next_token_loss
    assert verdict(capsys).startswith("⏳ 练习 1.2a 待完成")


def test_loss_log_softmax_first_is_accepted(capsys):
    # log_softmax is idempotent inside cross_entropy: numerically the same loss, not a mistake
    def learner(lg, ids, p):
        return F.cross_entropy(lg[:, :-1].reshape(-1, flat(lg)).log_softmax(-1),
                               ids[:, 1:].reshape(-1), ignore_index=p)
    assert check_next_token_loss(learner) is learner
    assert "✅" in verdict(capsys)


@pytest.mark.parametrize("mistake", LOSS_MISTAKES)
def test_loss_mistakes(capsys, mistake):
    learner, words = LOSS_MISTAKES[mistake]
    assert_caught(capsys, check_next_token_loss(learner), reference_next_token_loss, "1.2a", words)


# ------------------------------------------------------------------------------- 1.2b backward

@pytest.fixture
def loss_setup():
    torch.manual_seed(0)
    model = DIYModel(97, 1, 32, 2, 16, 0.0)
    lm_head = nn.Linear(32, 97, bias=False)
    input_ids = torch.randint(1, 97, (2, 6))
    input_ids[1, 4:] = 0
    logits = lm_head(model(input_ids))
    return model, lm_head, logits, input_ids


def test_backward_done_passes(capsys, loss_setup):
    model, lm_head, logits, input_ids = loss_setup
    loss = reference_next_token_loss(logits, input_ids, 0)
    loss.backward()
    assert check_backward(model, lm_head, loss, logits, input_ids, 0) is loss
    assert verdict(capsys).startswith("✅ 练习 1.2b 通过")


def test_backward_todo_computes_gradients_for_the_cells_below(capsys, loss_setup):
    model, lm_head, logits, input_ids = loss_setup
    loss = check_backward(model, lm_head, None, logits, input_ids, 0)
    assert verdict(capsys).startswith("⏳ 练习 1.2b 待完成")
    assert isinstance(loss, torch.Tensor)
    assert all(p.grad is not None for p in model.parameters())


def test_backward_forgotten(capsys, loss_setup):
    model, lm_head, logits, input_ids = loss_setup
    loss = reference_next_token_loss(logits, input_ids, 0)
    check_backward(model, lm_head, loss, logits, input_ids, 0)
    text = verdict(capsys)
    assert text.startswith("⏳") and "backward()" in text


def test_backward_wrong_loss(capsys, loss_setup):
    model, lm_head, logits, input_ids = loss_setup
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, 97), input_ids[:, 1:].reshape(-1))
    loss.backward()
    check_backward(model, lm_head, loss, logits, input_ids, 0)
    assert "正确的 next-token loss" in verdict(capsys)


def test_backward_on_a_second_forward_pass_names_dropout(capsys):
    """A learner who runs the forward again (dropout on) gets a different loss: the hint says
    why and what to do, as the lesson's instruction does."""
    torch.manual_seed(0)
    model = DIYModel(97, 1, 32, 2, 16, 0.3)  # train mode, dropout on
    lm_head = nn.Linear(32, 97, bias=False)
    input_ids = torch.randint(1, 97, (2, 6))
    logits = lm_head(model(input_ids))
    loss = reference_next_token_loss(lm_head(model(input_ids)), input_ids, 0)  # forward again
    loss.backward()
    check_backward(model, lm_head, loss, logits, input_ids, 0)
    text = verdict(capsys)
    assert text.startswith("❌") and "dropout" in text and "重新做了一次前向" in text


def test_backward_partial_graph(capsys, loss_setup):
    model, lm_head, logits, input_ids = loss_setup
    # the head's input detached: the backbone gets no gradient
    detached_logits = lm_head(model(input_ids).detach())
    loss = reference_next_token_loss(detached_logits, input_ids, 0)
    loss.backward()
    check_backward(model, lm_head, loss, detached_logits, input_ids, 0)
    text = verdict(capsys)
    assert text.startswith("❌") and "没有梯度" in text


# ----------------------------------------------------------------------------- 1.2c train_step

def forward_loss(model, lm_head, input_ids, seq_lengths, padding_id):
    logits = lm_head(model(input_ids, seq_lengths=seq_lengths))
    return reference_next_token_loss(logits, input_ids, padding_id)


def no_zero_grad(model, lm_head, optimizer, input_ids, seq_lengths, padding_id):
    loss = forward_loss(model, lm_head, input_ids, seq_lengths, padding_id)
    loss.backward()
    optimizer.step()
    return loss


def no_step(model, lm_head, optimizer, input_ids, seq_lengths, padding_id):
    optimizer.zero_grad()
    loss = forward_loss(model, lm_head, input_ids, seq_lengths, padding_id)
    loss.backward()
    return loss


def zero_grad_after_backward(model, lm_head, optimizer, input_ids, seq_lengths, padding_id):
    loss = forward_loss(model, lm_head, input_ids, seq_lengths, padding_id)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss


def step_before_backward(model, lm_head, optimizer, input_ids, seq_lengths, padding_id):
    loss = forward_loss(model, lm_head, input_ids, seq_lengths, padding_id)
    optimizer.step()
    loss.backward()
    return loss


def step_first(model, lm_head, optimizer, input_ids, seq_lengths, padding_id):
    optimizer.step()
    optimizer.zero_grad()
    loss = forward_loss(model, lm_head, input_ids, seq_lengths, padding_id)
    loss.backward()
    return loss


def no_return(model, lm_head, optimizer, input_ids, seq_lengths, padding_id):
    reference_train_step(model, lm_head, optimizer, input_ids, seq_lengths, padding_id)


def loss_after_step(model, lm_head, optimizer, input_ids, seq_lengths, padding_id):
    reference_train_step(model, lm_head, optimizer, input_ids, seq_lengths, padding_id)
    return forward_loss(model, lm_head, input_ids, seq_lengths, padding_id)


def backward_twice(model, lm_head, optimizer, input_ids, seq_lengths, padding_id):
    optimizer.zero_grad()
    loss = forward_loss(model, lm_head, input_ids, seq_lengths, padding_id)
    loss.backward()
    loss.backward()
    optimizer.step()
    return loss


def item_returned(model, lm_head, optimizer, input_ids, seq_lengths, padding_id):
    return reference_train_step(model, lm_head, optimizer, input_ids, seq_lengths,
                                padding_id).item()


def zero_grad_at_the_end(model, lm_head, optimizer, input_ids, seq_lengths, padding_id):
    loss = forward_loss(model, lm_head, input_ids, seq_lengths, padding_id)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()  # the common "step(); zero_grad()" idiom
    return loss


TRAIN_MISTAKES = {
    "no zero_grad": (no_zero_grad, "zero_grad()"),
    "zero_grad at the end (the caller left gradients)": (zero_grad_at_the_end,
                                                          "step(); zero_grad()"),
    "no step": (no_step, "一点没变"),
    "zero_grad after backward": (zero_grad_after_backward, "一点没变"),
    "step before backward": (step_before_backward, "backward() 之前"),
    "step before the forward pass": (step_first, "旧梯度"),
    "no return": (no_return, "没有返回 loss"),
    "loss after the step": (loss_after_step, "step() 之前"),
    "backward twice": (backward_twice, "两次"),
}


def test_train_step_reference_passes(capsys):
    assert check_train_step(reference_train_step) is reference_train_step
    assert verdict(capsys).startswith("✅ 练习 1.2c 通过")


def test_train_step_returning_a_float_is_fine(capsys):
    assert check_train_step(item_returned) is item_returned
    assert "✅" in verdict(capsys)


def test_train_step_placeholder(capsys):
    assert check_train_step(placeholder) is reference_train_step
    assert verdict(capsys).startswith("⏳ 练习 1.2c 待完成")


@pytest.mark.parametrize("mistake", TRAIN_MISTAKES)
def test_train_step_mistakes(capsys, mistake):
    learner, words = TRAIN_MISTAKES[mistake]
    assert_caught(capsys, check_train_step(learner), reference_train_step, "1.2c", words)


# ---------------------------------------------------------------------- 1.3 DIYForCausalLM

def make_class(init=None, forward=None):
    """A DIYForCausalLM-like class with one piece replaced by a mistake."""

    class Learner(nn.Module):
        def __init__(self, vocab_size, num_layers, hidden_size, num_heads, max_seq_len,
                     dropout=0.1):
            if init is not None:
                init(self, vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)
                return
            super().__init__()
            self.model = DIYModel(vocab_size, num_layers, hidden_size, num_heads, max_seq_len,
                                  dropout)
            self.lm_head = nn.Linear(hidden_size, vocab_size, bias=False)

        def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                    is_training=True):
            if forward is not None:
                return forward(self, input_ids, seq_lengths, past_key_values, use_cache,
                               is_training)
            out = self.model(input_ids, seq_lengths=seq_lengths, past_key_values=past_key_values,
                             use_cache=use_cache, is_training=is_training)
            if use_cache:
                hidden, presents = out
                return self.lm_head(hidden), presents
            return self.lm_head(out)

    return Learner


def init_no_super(self, V, n, C, H, T, p):
    self.model = DIYModel(V, n, C, H, T, p)


def init_backbone_name(self, V, n, C, H, T, p):
    nn.Module.__init__(self)
    self.backbone = DIYModel(V, n, C, H, T, p)
    self.lm_head = nn.Linear(C, V, bias=False)


def init_bias(self, V, n, C, H, T, p):
    nn.Module.__init__(self)
    self.model = DIYModel(V, n, C, H, T, p)
    self.lm_head = nn.Linear(C, V)


def init_swapped(self, V, n, C, H, T, p):
    nn.Module.__init__(self)
    self.model = DIYModel(V, n, C, H, T, p)
    self.lm_head = nn.Linear(V, C, bias=False)


def init_hard_coded(self, V, n, C, H, T, p):
    nn.Module.__init__(self)
    self.model = DIYModel(6400, 2, 256, 4, 128, 0.1)
    self.lm_head = nn.Linear(256, 6400, bias=False)


def init_extra_embedding(self, V, n, C, H, T, p):
    nn.Module.__init__(self)
    self.model = DIYModel(V, n, C, H, T, p)
    self.lm_head = nn.Linear(C, V, bias=False)
    self.extra = nn.Embedding(V, C)


def fwd_no_unpack(self, ids, lengths, past, use_cache, is_training):
    return self.lm_head(self.model(ids, lengths, past, use_cache, is_training))


def fwd_hidden_states(self, ids, lengths, past, use_cache, is_training):
    return self.model(ids, seq_lengths=lengths, is_training=is_training)


def fwd_no_pass_through(self, ids, lengths, past, use_cache, is_training):
    return self.lm_head(self.model(ids))


def fwd_drops_seq_lengths(self, ids, lengths, past, use_cache, is_training):
    out = self.model(ids, past_key_values=past, use_cache=use_cache, is_training=is_training)
    if use_cache:
        return self.lm_head(out[0]), out[1]
    return self.lm_head(out)


def fwd_drops_past(self, ids, lengths, past, use_cache, is_training):
    out = self.model(ids, seq_lengths=lengths, use_cache=use_cache, is_training=is_training)
    if use_cache:
        return self.lm_head(out[0]), out[1]
    return self.lm_head(out)


def fwd_always_training(self, ids, lengths, past, use_cache, is_training):
    out = self.model(ids, seq_lengths=lengths, past_key_values=past, use_cache=use_cache,
                     is_training=True)
    return self.lm_head(out[0] if use_cache else out)


def fwd_drops_presents(self, ids, lengths, past, use_cache, is_training):
    out = self.model(ids, seq_lengths=lengths, past_key_values=past, use_cache=use_cache,
                     is_training=is_training)
    return self.lm_head(out[0] if use_cache else out)


def fwd_ignores_use_cache(self, ids, lengths, past, use_cache, is_training):
    return self.lm_head(self.model(ids, seq_lengths=lengths, past_key_values=past,
                                   is_training=is_training))


def fwd_always_tuple(self, ids, lengths, past, use_cache, is_training):
    out = self.model(ids, seq_lengths=lengths, past_key_values=past, use_cache=use_cache,
                     is_training=is_training)
    if use_cache:
        return self.lm_head(out[0]), out[1]
    return self.lm_head(out), None


def fwd_softmax(self, ids, lengths, past, use_cache, is_training):
    return self.lm_head(self.model(ids, seq_lengths=lengths)).softmax(-1)


def fwd_tuple_when_not_cached(self, ids, lengths, past, use_cache, is_training):
    out = self.model(ids, seq_lengths=lengths, past_key_values=past, use_cache=use_cache,
                     is_training=is_training)
    if use_cache:
        return self.lm_head(out[0]), out[1]
    if not is_training:
        return self.lm_head(out), None
    return self.lm_head(out)


CLASS_MISTAKES = {
    "super().__init__() missing": (make_class(init=init_no_super), "super().__init__()"),
    "backbone not named model": (make_class(init=init_backbone_name), "self.model"),
    "bias=True": (make_class(init=init_bias), "bias"),
    "swapped Linear": (make_class(init=init_swapped), "nn.Linear(32, 97)"),
    "hard-coded sizes": (make_class(init=init_hard_coded), "不要写死"),
    "extra parameters": (make_class(init=init_extra_embedding), "state_dict"),
    "tuple not unpacked": (make_class(forward=fwd_no_unpack), "拆包"),
    "hidden_states returned": (make_class(forward=fwd_hidden_states), "hidden_states"),
    "arguments not passed through": (make_class(forward=fwd_no_pass_through), "原样传给"),
    "seq_lengths dropped": (make_class(forward=fwd_drops_seq_lengths), "seq_lengths 没有传给"),
    "past_key_values dropped": (make_class(forward=fwd_drops_past), "past_key_values 没有传给"),
    "is_training hard-coded": (make_class(forward=fwd_always_training), "is_training"),
    "always a tuple": (make_class(forward=fwd_always_tuple), "只返回 logits"),
    "softmax in forward": (make_class(forward=fwd_softmax), "softmax"),
    "tuple on the uncached inference path": (make_class(forward=fwd_tuple_when_not_cached),
                                             "use_cache=False"),
    "not an nn.Module": (lambda *args: object(), "nn.Module"),
}


def test_causal_lm_reference_passes(capsys):
    assert check_causal_lm(DIYForCausalLM) is DIYForCausalLM
    assert verdict(capsys).startswith("✅ 练习 1.3 通过")


@pytest.mark.parametrize("forward", [fwd_drops_presents, fwd_ignores_use_cache])
def test_causal_lm_plan_following_logits_only_passes_with_a_note(capsys, forward):
    """The study plan lets step 1 return only logits when use_cache=True (presents come in
    step 3): the check passes with a note and hands back a class that adds the presents."""
    learner = make_class(forward=forward)
    returned = check_causal_lm(learner)
    text = verdict(capsys)
    assert text.startswith("✅ 练习 1.3 通过") and "第三步" in text and "(logits, presents)" in text
    assert issubclass(returned, learner) and returned.__name__ == learner.__name__
    clm = returned(97, 1, 32, 2, 16, 0.0).eval()
    logits, presents = clm(torch.randint(0, 97, (1, 5)), use_cache=True, is_training=False)
    assert logits.shape == (1, 5, 97) and presents[0][0].shape == (1, 2, 5, 16)
    assert clm(torch.randint(0, 97, (1, 5))).shape == (1, 5, 97)


def test_causal_lm_correct_learner_class_passes(capsys):
    learner = make_class()
    assert check_causal_lm(learner) is learner
    assert "✅" in verdict(capsys)


def test_causal_lm_placeholder(capsys):
    class Stub(nn.Module):
        def __init__(self, *args):
            super().__init__()
            raise NotImplementedError("✏️")

    assert check_causal_lm(Stub) is DIYForCausalLM
    assert verdict(capsys).startswith("⏳ 练习 1.3 待完成")


@pytest.mark.parametrize("mistake", CLASS_MISTAKES)
def test_causal_lm_mistakes(capsys, mistake):
    cls, words = CLASS_MISTAKES[mistake]
    assert_caught(capsys, check_causal_lm(cls), DIYForCausalLM, "1.3", words)

"""The shared machinery of every self-check (diy/classroom/checks/report.py): each common Python
slip gets a hint naming its real cause, a method named without () is found in the learner's
source, and a check never raises, whatever the learner's code returns."""

import pytest
import torch

from diy import DIYConfig, DIYForCausalLM
from diy.classroom.checks.report import (
    Failed,
    call_learner,
    common_hint,
    run_check,
    uncalled_methods,
)
from tests.check_helpers import verdict

SMALL = DIYConfig(vocab_size=97, hidden_size=32, num_layers=1, num_heads=2, max_seq_len=32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DIYForCausalLM(SMALL)


def no_grad_without_parentheses(model, ids):
    with torch.no_grad:
        return model(ids)


def unpack_without_use_cache(model, ids):
    logits, presents = model(ids[:1])
    return logits


SLIPS = {
    "with torch.no_grad:": (no_grad_without_parentheses, "with torch.no_grad():"),
    "randint size not a tuple": (lambda m, ids: torch.randint(0, 10, 3), "(n,)"),
    "randint generator positional": (
        lambda m, ids: torch.randint(0, 10, (3,), torch.Generator()), "关键字"),
    "model.parameters without ()": (
        lambda m, ids: torch.optim.AdamW(m.parameters, lr=1e-3), "model.parameters()"),
    ".logits on a tensor": (lambda m, ids: m(ids).logits, "不要再 .logits"),
    "labels= keyword": (lambda m, ids: m(ids, labels=ids), "causal_lm_loss"),
    "torch.tensor of tensors": (lambda m, ids: torch.tensor([ids[0], ids[1]]), "torch.stack"),
    "unpacking without use_cache=True": (unpack_without_use_cache, "use_cache=True"),
    "torch.cat on the wrong dim": (lambda m, ids: torch.cat([ids, ids[:, :1]], dim=0), "dim=1"),
}


@pytest.mark.parametrize("slip", SLIPS)
def test_each_common_slip_gets_its_hint(model, slip):
    learner, words = SLIPS[slip]
    ids = torch.randint(0, SMALL.vocab_size, (2, 5))
    with pytest.raises(Failed) as caught:
        call_learner(learner, model, ids, name="f")
    assert words in caught.value.problem + caught.value.fix, caught.value.problem
    assert not caught.value.problem.startswith("运行 f 时出错")  # not the bare fallback


def test_other_errors_get_the_plain_fallback_not_a_wrong_hint():
    assert common_hint(ValueError("too many values in a dict")) is None
    assert common_hint(TypeError("randint() takes at least 2 arguments")) is None
    assert common_hint(KeyError("x")) is None


def test_methods_named_without_parentheses_are_found():
    def sloppy(model, optimizer):
        model.eval  # noqa: B018 - the slip under test
        optimizer.zero_grad  # noqa: B018 - the slip under test
        model.training  # noqa: B018 - an attribute, not a method: not reported
        history.step.append(1)  # noqa: F821 - never run
        optimizer.step()

    assert uncalled_methods(sloppy) == ["model.eval", "optimizer.zero_grad"]
    assert uncalled_methods(len) == []  # no source: nothing to say


def test_a_check_never_raises_and_puts_grad_mode_back(capsys):
    def body():
        torch.set_grad_enabled(False)
        return {}["missing"]  # a check's own inspection blowing up on an odd value

    reference = object()
    assert run_check("9.9", body, "learner", reference) is reference
    text = verdict(capsys)
    assert text.startswith("❌ 练习 9.9 未通过") and "KeyError" in text and "修复：" in text
    assert torch.is_grad_enabled()

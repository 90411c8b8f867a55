"""Step 2's self-checks: the reference passes, the placeholder is ⏳, every listed mistake gets
its own hint, and correct but different answers pass."""

import pytest
import torch
import torch.nn.functional as F

from diy import causal_lm_loss
from diy.classroom.checks import (
    check_evaluate,
    check_get_batch,
    check_greedy_continue,
    check_train_loop,
    check_training_step,
)
from diy.classroom.checks.greedy import reference_greedy_continue
from diy.classroom.checks.training import (
    LOOP_MISTAKES,
    reference_loop_variant,
    reference_train_loop,
)
from diy.data import get_batch as reference_get_batch
from diy.training import History
from diy.training import evaluate as reference_evaluate
from diy.training import train_step as reference_train_step
from tests.check_helpers import assert_caught, placeholder, verdict


def passes(capsys, returned, learner, exercise):
    assert returned is learner
    text = verdict(capsys)
    assert text.startswith(f"✅ 练习 {exercise} 通过"), text
    return text


@pytest.mark.parametrize("check, reference, exercise", [
    (check_get_batch, reference_get_batch, "2.1"),
    (check_training_step, reference_train_step, "2.2a"),
    (check_evaluate, reference_evaluate, "2.2b"),
    (check_train_loop, reference_train_loop, "2.2c"),
    (check_greedy_continue, reference_greedy_continue, "2.3"),
])
def test_reference_passes_placeholder_waits(capsys, check, reference, exercise):
    passes(capsys, check(reference), reference, exercise)
    assert check(placeholder) is reference
    assert verdict(capsys).startswith(f"⏳ 练习 {exercise} 待完成")


@pytest.mark.parametrize("check, reference", [
    (check_get_batch, reference_get_batch), (check_training_step, reference_train_step),
    (check_evaluate, reference_evaluate), (check_greedy_continue, reference_greedy_continue),
    (check_train_loop, reference_train_loop),
])
def test_checks_leave_the_notebooks_random_numbers_alone(capsys, check, reference):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check(reference)
    assert torch.equal(torch.rand(3), expected)


# ------------------------------------------------------------------------------ 2.1 get_batch

def batch_with(starts_fn, length=0, stack=True):
    def get_batch(tokens, batch_size, seq_len, generator=None):
        starts = starts_fn(tokens, batch_size, seq_len, generator)
        rows = [tokens[s:s + seq_len + length] for s in starts.tolist()]
        return torch.stack(rows) if stack else rows
    return get_batch


def randint(high_offset):
    return lambda t, b, L, g: torch.randint(0, len(t) - L + high_offset, (b,), generator=g)


GET_BATCH_MISTAKES = {
    "runs past the end": (batch_with(randint(5)), "跑出了文本末尾"),
    "never reaches the last start": (batch_with(randint(0)), "起点"),
    "one token too many": (batch_with(randint(0), length=1), "多取了一个"),
    "ignores the generator": (batch_with(
        lambda t, b, L, g: torch.randint(0, len(t) - L + 1, (b,))), "generator"),
    "no randomness": (batch_with(lambda t, b, L, g: torch.zeros(b, dtype=torch.long)),
                      "不是随机的"),
    "transposed": (lambda t, b, L, g=None: reference_get_batch(t, b, L, g).T, "反了"),
    "floats": (lambda t, b, L, g=None: reference_get_batch(t, b, L, g).float(), "dtype"),
    "a list of windows": (batch_with(randint(1), stack=False), "张量"),
    "x and y misaligned": (lambda t, b, L, g=None: (reference_get_batch(t, b, L, g),) * 2,
                           "没有错开"),
    "shuffled window": (lambda t, b, L, g=None: reference_get_batch(t, b, L, g).flip(1), "连续"),
}


@pytest.mark.parametrize("mistake", GET_BATCH_MISTAKES)
def test_get_batch_mistakes(capsys, mistake):
    learner, words = GET_BATCH_MISTAKES[mistake]
    assert_caught(capsys, check_get_batch(learner), reference_get_batch, "2.1", words)


def nanogpt_get_batch(tokens, batch_size, seq_len, generator=None):
    starts = torch.randint(0, len(tokens) - seq_len, (batch_size,), generator=generator)
    x = torch.stack([tokens[s:s + seq_len] for s in starts])
    y = torch.stack([tokens[s + 1:s + 1 + seq_len] for s in starts])
    return x, y


def unfold_get_batch(tokens, batch_size, seq_len, generator=None):
    windows = tokens.unfold(0, seq_len, 1)  # every window, (N - L + 1, L)
    picks = torch.randint(len(windows), (batch_size,), generator=generator)
    return windows[picks]


def test_get_batch_alternatives_pass(capsys):
    passes(capsys, check_get_batch(unfold_get_batch), unfold_get_batch, "2.1")
    returned = check_get_batch(nanogpt_get_batch)
    text = verdict(capsys)
    assert text.startswith("✅ 练习 2.1 通过") and "(x, y)" in text
    tokens = torch.arange(100)
    x = returned(tokens, 2, 5, torch.Generator().manual_seed(0))  # the notebook goes on with x
    assert isinstance(x, torch.Tensor) and x.shape == (2, 5)


# ---------------------------------------------------------------------------- 2.2a train_step

def step_with(*, train=True, zero_grad=True, step=True, clip=True, item=True, shift="loss",
              clip_to=None):
    def train_step(model, optimizer, input_ids, max_grad_norm=1.0):
        if train:
            model.train()
        logits = model(input_ids)
        if shift == "loss":
            loss = causal_lm_loss(logits, input_ids)
        elif shift == "none":
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), input_ids.reshape(-1))
        else:  # "twice"
            loss = causal_lm_loss(logits[:, :-1], input_ids[:, 1:])
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_to or max_grad_norm)
        if step:
            optimizer.step()
        return loss.item() if item else loss
    return train_step


STEP_MISTAKES = {
    "forgets zero_grad": (step_with(zero_grad=False), "清零梯度"),
    "forgets optimizer.step()": (step_with(step=False), "optimizer.step()"),
    "returns the loss tensor": (step_with(item=False), "loss.item()"),
    "forgets model.train()": (step_with(train=False), "model.train()"),
    "forgets clipping": (step_with(clip=False), "没有裁剪"),
    "hard-codes the clipping norm": (step_with(clip_to=1.0), "max_grad_norm"),
    "no shift": (step_with(shift="none"), "没有错位"),
    "shifted twice": (step_with(shift="twice"), "错位了两次"),
}


@pytest.mark.parametrize("mistake", STEP_MISTAKES)
def test_train_step_mistakes(capsys, mistake):
    learner, words = STEP_MISTAKES[mistake]
    assert_caught(capsys, check_training_step(learner), reference_train_step, "2.2a", words)


def zero_grad_at_the_end(model, optimizer, input_ids, max_grad_norm=1.0):
    model.train()
    logits = model(input_ids)
    vocab_size = logits.shape[-1]
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, vocab_size),  # the shift done by hand
                           input_ids[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    model.zero_grad(set_to_none=True)  # the common "step(); zero_grad()" idiom
    return float(loss.detach())


def test_train_step_alternative_passes(capsys):
    passes(capsys, check_training_step(zero_grad_at_the_end), zero_grad_at_the_end, "2.2a")


# ------------------------------------------------------------------------------ 2.2b evaluate

def evaluate_with(*, eval_mode=True, no_grad=True, back_to_train=True, item=True,
                  use_labels=True):
    def evaluate(model, input_ids, labels):
        if eval_mode:
            model.eval()
        with torch.set_grad_enabled(not no_grad):
            loss = causal_lm_loss(model(input_ids), labels if use_labels else input_ids)
        if back_to_train:
            model.train()
        return loss.item() if item else loss
    return evaluate


EVALUATE_MISTAKES = {
    "no eval()": (evaluate_with(eval_mode=False), "train 模式"),
    "no no_grad()": (evaluate_with(no_grad=False), "torch.no_grad()"),
    "stays in eval mode": (evaluate_with(back_to_train=False), "停在了 eval 模式"),
    "returns a tensor": (evaluate_with(item=False), "loss.item()"),
    "ignores labels": (evaluate_with(use_labels=False), "labels"),
}


@pytest.mark.parametrize("mistake", EVALUATE_MISTAKES)
def test_evaluate_mistakes(capsys, mistake):
    learner, words = EVALUATE_MISTAKES[mistake]
    assert_caught(capsys, check_evaluate(learner), reference_evaluate, "2.2b", words)


def evaluate_restoring_the_mode(model, input_ids, labels):
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        value = float(causal_lm_loss(model(input_ids), labels))
    model.train(was_training)
    return value


def test_evaluate_alternative_passes(capsys):
    passes(capsys, check_evaluate(evaluate_restoring_the_mode), evaluate_restoring_the_mode,
           "2.2b")


# ------------------------------------------------------------------------ 2.3 greedy_continue

def greedy_with(*, eval_mode=True, crop=True, position=-1, dim=-1):
    def greedy_continue(model, input_ids, max_new_tokens):
        if eval_mode:
            model.eval()
        for _ in range(max_new_tokens):
            context = input_ids[:, -model.config.max_seq_len:] if crop else input_ids
            logits = model(context)
            if dim == -1:
                next_id = logits[:, position, :].argmax(dim=-1, keepdim=True)
            else:
                next_id = logits[:, -1:, :].argmax(dim=1)[:, :1]
            input_ids = torch.cat([input_ids, next_id], dim=1)
        return input_ids
    return greedy_continue


GREEDY_MISTAKES = {
    "no eval()": (greedy_with(eval_mode=False), "model.eval()"),
    "no cropping": (greedy_with(crop=False), "截断"),
    "position 0": (greedy_with(position=0), "第 0 个位置"),
    "argmax over the wrong dimension": (greedy_with(dim=1), "维度"),
    "returns only the new tokens": (
        lambda m, ids, n: reference_greedy_continue(m, ids, n)[:, ids.shape[1]:], "形状"),
    "returns a list": (lambda m, ids, n: reference_greedy_continue(m, ids, n).tolist(), "张量"),
}


@pytest.mark.parametrize("mistake", GREEDY_MISTAKES)
def test_greedy_mistakes(capsys, mistake):
    learner, words = GREEDY_MISTAKES[mistake]
    assert_caught(capsys, check_greedy_continue(learner), reference_greedy_continue, "2.3", words)


def greedy_one_row_at_a_time(model, input_ids, max_new_tokens):
    model.eval()
    rows = []
    with torch.inference_mode():
        for row in input_ids:
            ids = row.tolist()
            for _ in range(max_new_tokens):
                logits = model(torch.tensor([ids[-model.config.max_seq_len:]]))
                ids.append(int(logits[0, -1].argmax()))
            rows.append(ids)
    return torch.tensor(rows)


def test_greedy_alternative_passes(capsys):
    passes(capsys, check_greedy_continue(greedy_one_row_at_a_time), greedy_one_row_at_a_time,
           "2.3")


def test_greedy_that_crops_to_a_hard_coded_length(capsys):
    def crops_to_128(model, input_ids, max_new_tokens):
        model.eval()
        for _ in range(max_new_tokens):
            next_id = model(input_ids[:, -128:])[:, -1].argmax(-1, keepdim=True)
            input_ids = torch.cat([input_ids, next_id], dim=1)
        return input_ids

    assert_caught(capsys, check_greedy_continue(crops_to_128), reference_greedy_continue, "2.3",
                  "写死")


# ------------------------------------------------- issue 15: one case per kind of check gap

def reseeding_get_batch(tokens, batch_size, seq_len, generator=None):
    fresh = torch.Generator().manual_seed(generator.initial_seed())  # starts over every call
    return reference_get_batch(tokens, batch_size, seq_len, fresh)


def global_seed_get_batch(tokens, batch_size, seq_len, generator=None):
    torch.manual_seed(generator.initial_seed())  # the global RNG, re-seeded
    starts = torch.randint(0, len(tokens) - seq_len + 1, (batch_size,))
    return torch.stack([tokens[s:s + seq_len] for s in starts])


def one_start_get_batch(tokens, batch_size, seq_len, generator=None):
    start = torch.randint(0, len(tokens) - seq_len + 1, (1,), generator=generator)
    return torch.stack([tokens[start:start + seq_len]] * batch_size)  # every row the same


def positional_generator_get_batch(tokens, batch_size, seq_len, generator=None):
    starts = torch.randint(0, len(tokens) - seq_len + 1, (batch_size,), generator)
    return torch.stack([tokens[s:s + seq_len] for s in starts])


def int_size_get_batch(tokens, batch_size, seq_len, generator=None):
    starts = torch.randint(0, len(tokens) - seq_len + 1, batch_size, generator=generator)
    return torch.stack([tokens[s:s + seq_len] for s in starts])


def tensor_of_tensors_get_batch(tokens, batch_size, seq_len, generator=None):
    starts = torch.randint(0, len(tokens) - seq_len + 1, (batch_size,), generator=generator)
    return torch.tensor([tokens[s:s + seq_len] for s in starts])


GET_BATCH_GAPS = {
    "re-seeds from the generator's seed": (reseeding_get_batch, "重新开始"),
    "re-seeds the global RNG": (global_seed_get_batch, "全局随机数"),
    "every row the same": (one_start_get_batch, "每一行都一模一样"),
    "generator passed positionally": (positional_generator_get_batch, "关键字"),
    "size not a tuple": (int_size_get_batch, "不是元组"),
    "torch.tensor of tensors": (tensor_of_tensors_get_batch, "torch.stack"),
    "int32 ids": (lambda t, b, L, g=None: reference_get_batch(t, b, L, g).int(), "torch.long"),
    "returns None": (lambda t, b, L, g=None: None, "None"),
    "returns nested lists": (lambda t, b, L, g=None: reference_get_batch(t, b, L, g).tolist(),
                             "张量"),
    "returns a 1-D tensor": (lambda t, b, L, g=None: reference_get_batch(t, b, L, g)[0], "形状"),
    "returns a string": (lambda t, b, L, g=None: "batch", "张量"),
}


@pytest.mark.parametrize("mistake", GET_BATCH_GAPS)
def test_get_batch_gaps(capsys, mistake):
    learner, words = GET_BATCH_GAPS[mistake]
    assert_caught(capsys, check_get_batch(learner), reference_get_batch, "2.1", words)


def forward_called_directly(model, optimizer, input_ids, max_grad_norm=1.0):
    model.train()
    loss = causal_lm_loss(model.forward(input_ids), input_ids)  # no hooks run: still a call
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item()


def numpy_loss_step(model, optimizer, input_ids, max_grad_norm=1.0):
    import numpy as np

    return np.float32(reference_train_step(model, optimizer, input_ids, max_grad_norm))


def test_train_step_correct_alternatives_pass(capsys):
    for learner in (forward_called_directly, numpy_loss_step):
        passes(capsys, check_training_step(learner), learner, "2.2a")


def zero_grad_between(model, optimizer, input_ids, max_grad_norm=1.0):
    model.train()
    loss = causal_lm_loss(model(input_ids), input_ids)
    loss.backward()
    optimizer.zero_grad()  # between backward and step: step sees no gradient
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item()


def zero_grad_without_parentheses(model, optimizer, input_ids, max_grad_norm=1.0):
    model.train()
    loss = causal_lm_loss(model(input_ids), input_ids)
    optimizer.zero_grad  # noqa: B018 - the slip under test
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item()


def train_after_forward(model, optimizer, input_ids, max_grad_norm=1.0):
    logits = model(input_ids)
    model.train()  # too late: the forward ran in the mode the model was in
    loss = causal_lm_loss(logits, input_ids)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item()


def grad_left_off_step(model, optimizer, input_ids, max_grad_norm=1.0):
    loss = reference_train_step(model, optimizer, input_ids, max_grad_norm)
    torch.set_grad_enabled(False)  # breaks every later training cell
    return loss


def parameters_without_parentheses(model, optimizer, input_ids, max_grad_norm=1.0):
    model.train()
    loss = causal_lm_loss(model(input_ids), input_ids)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters, max_grad_norm)
    optimizer.step()
    return loss.item()


def logits_attribute(model, optimizer, input_ids, max_grad_norm=1.0):
    model.train()
    loss = causal_lm_loss(model(input_ids).logits, input_ids)
    return loss.item()


def labels_keyword(model, optimizer, input_ids, max_grad_norm=1.0):
    model.train()
    return model(input_ids, labels=input_ids).item()


def clip_after_step(model, optimizer, input_ids, max_grad_norm=1.0):
    model.train()
    loss = causal_lm_loss(model(input_ids), input_ids)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)  # too late
    return loss.item()


TRAIN_STEP_GAPS = {
    "clipping after step()": (clip_after_step, "step() 之后"),
    "zero_grad between backward and step": (zero_grad_between, "backward() 和 step() 之间"),
    "optimizer.zero_grad without ()": (zero_grad_without_parentheses, "optimizer.zero_grad()"),
    "train() after the forward": (train_after_forward, "之后才调用"),
    "grad mode left off": (grad_left_off_step, "梯度计算被关掉"),
    "model.parameters without ()": (parameters_without_parentheses, "model.parameters()"),
    ".logits on a tensor": (logits_attribute, ".logits"),
    "labels= keyword": (labels_keyword, "labels"),
    "returns None": (lambda m, o, ids, n=1.0: None, "浮点数"),
    "returns a string": (lambda m, o, ids, n=1.0: "0.5", "浮点数"),
}


@pytest.mark.parametrize("mistake", TRAIN_STEP_GAPS)
def test_train_step_gaps(capsys, mistake):
    learner, words = TRAIN_STEP_GAPS[mistake]
    assert_caught(capsys, check_training_step(learner), reference_train_step, "2.2a", words)
    assert torch.is_grad_enabled()  # the check put grad mode back


def evaluate_forward_directly(model, input_ids, labels):
    model.eval()
    with torch.no_grad():
        loss = causal_lm_loss(model.forward(input_ids), labels)
    model.train()
    return loss.item()


def evaluate_backbone_eval(model, input_ids, labels):
    model.model.eval()  # every dropout lives in the backbone: dropout is off
    with torch.no_grad():
        loss = causal_lm_loss(model(input_ids), labels)
    model.train()
    return loss.item()


@torch.no_grad()
def evaluate_decorated(model, input_ids, labels):
    model.eval()
    loss = causal_lm_loss(model(input_ids), labels).item()
    model.train()
    return loss


def test_evaluate_correct_alternatives_pass(capsys):
    for learner in (evaluate_forward_directly, evaluate_backbone_eval, evaluate_decorated):
        passes(capsys, check_evaluate(learner), learner, "2.2b")


def evaluate_grad_left_off(model, input_ids, labels):
    model.eval()
    torch.set_grad_enabled(False)
    loss = causal_lm_loss(model(input_ids), labels)
    model.train()
    return loss.item()


def evaluate_eval_after_forward(model, input_ids, labels):
    with torch.no_grad():
        loss = causal_lm_loss(model(input_ids), labels)
    model.eval()
    model.train()
    return loss.item()


def evaluate_eval_without_parentheses(model, input_ids, labels):
    model.eval  # noqa: B018 - the slip under test
    with torch.no_grad():
        loss = causal_lm_loss(model(input_ids), labels)
    model.train()
    return loss.item()


def evaluate_no_grad_without_parentheses(model, input_ids, labels):
    model.eval()
    with torch.no_grad:
        loss = causal_lm_loss(model(input_ids), labels)
    model.train()
    return loss.item()


EVALUATE_GAPS = {
    "grad mode left off": (evaluate_grad_left_off, "梯度计算被关掉"),
    "eval() after the forward": (evaluate_eval_after_forward, "之后才调用"),
    "model.eval without ()": (evaluate_eval_without_parentheses, "model.eval()"),
    "with torch.no_grad:": (evaluate_no_grad_without_parentheses, "少了括号"),
    "returns None": (lambda m, ids, labels: None, "浮点数"),
}


@pytest.mark.parametrize("mistake", EVALUATE_GAPS)
def test_evaluate_gaps(capsys, mistake):
    learner, words = EVALUATE_GAPS[mistake]
    assert_caught(capsys, check_evaluate(learner), reference_evaluate, "2.2b", words)
    assert torch.is_grad_enabled()


# ------------------------------------------------------------------------ 2.2c train_loop

def test_train_loop_reference_passes_placeholder_waits(capsys):
    passes(capsys, check_train_loop(reference_train_loop), reference_train_loop, "2.2c")
    assert check_train_loop(placeholder) is reference_train_loop
    assert verdict(capsys).startswith("⏳ 练习 2.2c 待完成")


def loop_with(*, first=1, last_eval=True, every_step=False, tensors=False, eval_at_end=False,
              grad_off=False, as_dict=False):
    def train_loop(model, tokens, eval_ids, eval_labels, config):
        generator = torch.Generator().manual_seed(config.seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
        history = History()
        for step in range(first, config.steps + first):
            input_ids = reference_get_batch(tokens, config.batch_size, config.seq_len, generator)
            loss = reference_train_step(model, optimizer, input_ids, config.max_grad_norm)
            history.step.append(step)
            history.train_loss.append(torch.tensor(loss) if tensors else loss)
            if every_step or step % config.eval_every == 0 or (last_eval and step == config.steps):
                history.eval_step.append(step)
                history.eval_loss.append(reference_evaluate(model, eval_ids, eval_labels))
        if eval_at_end:
            model.eval()
        if grad_off:
            torch.set_grad_enabled(False)
        return history.to_dict() if as_dict else history
    return train_loop


def test_train_loop_correct_alternatives_pass(capsys):
    learner = loop_with(as_dict=True)  # a dict with History's four lists is fine too
    passes(capsys, check_train_loop(learner), learner, "2.2c")


def test_train_loop_uses_the_course_functions_not_the_learners_earlier_code(capsys):
    """The loop reads get_batch / train_step / evaluate from its notebook; the check compares the
    loop alone, so an earlier exercise's different-but-accepted code does not fail it."""
    namespace = {}
    exec("def train_loop(model, tokens, eval_ids, eval_labels, config):\n"
         "    generator = torch.Generator().manual_seed(config.seed)\n"
         "    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)\n"
         "    history = History()\n"
         "    for step in range(1, config.steps + 1):\n"
         "        loss = train_step(model, optimizer, get_batch(tokens, config.batch_size,\n"
         "                          config.seq_len, generator), config.max_grad_norm)\n"
         "        history.step.append(step)\n"
         "        history.train_loss.append(loss)\n"
         "        if step % config.eval_every == 0 or step == config.steps:\n"
         "            history.eval_step.append(step)\n"
         "            history.eval_loss.append(evaluate(model, eval_ids, eval_labels))\n"
         "    return history\n",
         {"torch": torch, "History": History, "__builtins__": __builtins__}, namespace)
    learner = namespace["train_loop"]
    learner.__globals__.update(get_batch=nanogpt_get_batch, train_step=zero_grad_at_the_end,
                               evaluate=evaluate_restoring_the_mode)
    passes(capsys, check_train_loop(learner), learner, "2.2c")
    assert learner.__globals__["get_batch"] is nanogpt_get_batch  # put back afterwards


TRAIN_LOOP_GAPS = {
    "steps counted from 0": (loop_with(first=0), "从 0 开始"),
    "no evaluation at the last step": (loop_with(last_eval=False), "最后一步没有评估"),
    "evaluates every step": (loop_with(every_step=True), "评估的步数"),
    "stores tensors": (loop_with(tensors=True), "张量"),
    "leaves the model in eval mode": (loop_with(eval_at_end=True), "eval 模式"),
    "leaves grad mode off": (loop_with(grad_off=True), "梯度计算被关掉"),
    "returns None": (lambda *args: None, "None"),
    "returns a list": (lambda *args: [1.0, 2.0], "History"),
    **{f"variant: {mistake}": ((lambda *args, m=mistake: reference_loop_variant(*args, mistake=m)),
                               hint[0][:8]) for mistake, hint in LOOP_MISTAKES.items()},
}


@pytest.mark.parametrize("mistake", TRAIN_LOOP_GAPS)
def test_train_loop_gaps(capsys, mistake):
    learner, words = TRAIN_LOOP_GAPS[mistake]
    assert_caught(capsys, check_train_loop(learner), reference_train_loop, "2.2c", words)
    assert torch.is_grad_enabled()

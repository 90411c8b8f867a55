"""Self-checks of lesson 1.2: next_token_loss (1.2a), backward (1.2b), train_step (1.2c)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ...backbone import build_active_backbone
from ...config import DIYConfig
from .report import Failed, Todo, call_learner, mistake_matcher, run_check


def reference_next_token_loss(logits, input_ids, padding_id):
    vocab_size = logits.shape[-1]
    shifted_logits = logits[:, :-1, :].reshape(-1, vocab_size)  # (N, V), N = B*(L-1)
    shifted_labels = input_ids[:, 1:].reshape(-1)  # (N,)
    return F.cross_entropy(shifted_logits, shifted_labels, ignore_index=padding_id)


# ---------------------------------------------------------------------------------------------
# 1.2a  next_token_loss(logits, input_ids, padding_id)
# ---------------------------------------------------------------------------------------------

def padded_batch(batch, length, vocab_size, padding_id, lengths, seed):
    """Random real tokens (never padding_id) followed by right padding, and random logits."""
    generator = torch.Generator().manual_seed(seed)
    real = torch.randint(0, vocab_size - 1, (batch, length), generator=generator)
    input_ids = real + (real >= padding_id).long()  # skip padding_id among the real tokens
    for row, n in enumerate(lengths):
        input_ids[row, n:] = padding_id
    logits = torch.randn(batch, length, vocab_size, generator=generator) * 2.0
    return logits.requires_grad_(), input_ids


LOSS_CASES = [  # the course's shape; then another vocab, batch and a padding id other than 0
    dict(batch=2, length=10, vocab_size=6400, padding_id=0, lengths=[10, 6], seed=0),
    dict(batch=3, length=7, vocab_size=97, padding_id=96, lengths=[7, 4, 2], seed=1),
]


def loss_mistakes(logits, input_ids, padding_id) -> dict:
    """The values that typical mistakes produce, by name of the mistake."""
    V = logits.shape[-1]
    ce = F.cross_entropy
    shifted, targets = logits[:, :-1].reshape(-1, V), input_ids[:, 1:].reshape(-1)
    n_real = (targets != padding_id).sum()
    correct = ce(shifted, targets, ignore_index=padding_id)
    return {
        "no_shift": ce(logits.reshape(-1, V), input_ids.reshape(-1), ignore_index=padding_id),
        "wrong_direction": ce(logits[:, 1:].reshape(-1, V), input_ids[:, :-1].reshape(-1),
                              ignore_index=padding_id),
        "padding_counted": ce(shifted, targets),
        "ignore_zero": ce(shifted, targets, ignore_index=0) if padding_id != 0 else None,
        "softmax_first": ce(shifted.softmax(-1), targets, ignore_index=padding_id),
        "sum_reduction": correct * n_real,
        "no_shift_padding_counted": ce(logits.reshape(-1, V), input_ids.reshape(-1)),
    }


LOSS_HINTS = {
    "no_shift": ("没有做 next-token 错位：logits 与 input_ids 同位置对齐了，模型在「预测自己已经看到的 token」。",
                 "用 logits[:, :-1] 去预测 input_ids[:, 1:]：位置 t 的 logits 预测第 t+1 个 token。"),
    "no_shift_padding_counted": ("既没有错位，也没有排除 padding。",
                                 "logits[:, :-1] 对 input_ids[:, 1:]，并传 ignore_index=padding_id。"),
    "wrong_direction": ("错位方向反了：用 logits[:, 1:] 预测 input_ids[:, :-1]，等于让模型预测「上一个」token。",
                        "logits 去掉最后一个位置 logits[:, :-1]，labels 去掉第一个 input_ids[:, 1:]。"),
    "padding_counted": ("padding 位置也算进了 loss：ignore_index 没设，或者设成了别的值（PyTorch 默认 -100）。",
                        "F.cross_entropy(..., ignore_index=padding_id)：ignore_index 必须等于 padding 位置上 "
                        "label 的值。"),
    "ignore_zero": ("ignore_index 写死成了 0：padding_id 换成别的值时 padding 又被算进了 loss。",
                    "用函数参数：ignore_index=padding_id。"),
    "softmax_first": ("先做了 softmax 再交给 F.cross_entropy：cross_entropy 内部已经做了 log_softmax，"
                      "相当于做了两次。",
                      "把原始 logits 直接传给 F.cross_entropy。"),
    "sum_reduction": ("loss 是所有位置的和，而不是平均：数值会随 batch 大小变化。",
                      "用 F.cross_entropy 默认的 reduction='mean'。"),
}


def diagnose_loss(exc: Exception):
    text = str(exc)
    if "Expected target size" in text or ("only batches of spatial targets" in text):
        return ("F.cross_entropy 收到了三维的 logits：它把第 1 维当成了类别维。",
                "先展平：logits[:, :-1].reshape(-1, vocab_size) 得到 (N, V)，"
                "labels 用 input_ids[:, 1:].reshape(-1) 得到 (N,)。")
    if "class probabilities" in text or ("Float" in text and "Long" in text) or \
            "expected scalar type Long" in text:
        return ("labels 是浮点数：F.cross_entropy 需要整数的类别编号（torch.long）。",
                "labels 直接用 input_ids[:, 1:]（已经是 long），不要 .float()；必要时 .long()。")
    if "to match target batch_size" in text:
        return (f"logits 与 labels 的个数对不上（{text.splitlines()[0]}）：只对其中一个做了错位。",
                "两边一起错位：logits[:, :-1] 和 input_ids[:, 1:]，展平后都是 N = B*(L-1) 个。")
    if "is invalid for input of size" in text:
        return ("reshape 的形状与张量大小不符：多半把 vocab_size 写死成了 6400。",
                "用 vocab_size = logits.shape[-1]，或 reshape(-1, logits.size(-1))。")
    return None


def check_next_token_loss(next_token_loss):
    """Check exercise 1.2a; return the next_token_loss to use from here on."""

    def body() -> str:
        for case in LOSS_CASES:
            check_loss_case(next_token_loss, **case)
        return ("在 (2, 10, 6400)、padding_id=0 与 (3, 7, 97)、padding_id=96 两组带 padding 的数据上，"
                "loss 都等于正确的 next-token 交叉熵，且能反向传播。")

    return run_check("1.2a", body, next_token_loss, reference_next_token_loss)


def check_loss_case(next_token_loss, batch, length, vocab_size, padding_id, lengths, seed):
    logits, input_ids = padded_batch(batch, length, vocab_size, padding_id, lengths, seed)
    ids_before = input_ids.clone()
    loss = call_learner(next_token_loss, logits, input_ids, padding_id, name="next_token_loss",
                        diagnose=diagnose_loss)
    if loss is None:
        raise Failed("next_token_loss 返回了 None：忘了 return？",
                     "最后一行 return F.cross_entropy(...)。")
    if not torch.equal(input_ids, ids_before):
        raise Failed("next_token_loss 原地修改了传进来的 input_ids。",
                     "需要改 labels 时先 .clone()，不要改调用者的张量。")
    if isinstance(loss, (float, int)):
        raise Failed("返回的是 Python 数（用了 .item()）：它和计算图断开了，无法 backward。",
                     "直接返回 F.cross_entropy(...) 的结果张量；只在打印时用 loss.item()。")
    if not isinstance(loss, torch.Tensor):
        raise Failed(f"next_token_loss 应返回一个标量张量，实际返回的是 {type(loss).__name__}。",
                     "return F.cross_entropy(logits_flat, labels_flat, ignore_index=padding_id)。")
    if loss.dim() != 0:
        raise Failed(f"loss 不是标量，形状是 {tuple(loss.shape)}（用了 reduction='none'？）。",
                     "用默认的 reduction='mean'，得到一个数，才能 loss.backward()。")
    if not loss.requires_grad:
        raise Failed("loss 不需要梯度：它和 logits 的计算图断开了（.detach() 或 torch.no_grad()？）。",
                     "直接用传进来的 logits 计算，不要 detach。")
    mistakes = loss_mistakes(logits, input_ids, padding_id)
    correct = reference_next_token_loss(logits, input_ids, padding_id)
    if torch.allclose(loss.detach(), correct.detach(), atol=1e-5, rtol=1e-5):
        return
    mistake = mistake_matcher(loss, mistakes)
    if mistake is not None:
        raise Failed(*LOSS_HINTS[mistake])
    raise Failed(f"loss 数值不对：得到 {loss.item():.4f}，正确值是 {correct.item():.4f}"
                 f"（数据 {tuple(logits.shape)}、padding_id={padding_id}）。",
                 "对照三步：logits[:, :-1] 与 input_ids[:, 1:] 错位；reshape 成 (N, V) 和 (N,)；"
                 "F.cross_entropy(..., ignore_index=padding_id)。")


# ---------------------------------------------------------------------------------------------
# 1.2b  loss.backward(): every parameter has a gradient
# ---------------------------------------------------------------------------------------------

def computed_from(result: torch.Tensor, source: torch.Tensor) -> bool:
    """Whether ``source`` is in ``result``'s computation graph (the graph's structure survives
    backward, only its saved tensors are freed)."""
    target, seen, stack = source.grad_fn, set(), [result.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        if node is target:
            return True
        seen.add(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return False


def check_backward(model: nn.Module, lm_head: nn.Module, loss, logits, input_ids, padding_id):
    """Check exercise 1.2b (loss, then loss.backward()). Returns the loss to use from here on.

    When the exercise is still to do, it computes the reference loss and calls backward, so
    that the gradient cells below have something to show.
    """
    named = [(f"model.{n}", p) for n, p in model.named_parameters()] + \
        [(f"lm_head.{n}", p) for n, p in lm_head.named_parameters()]
    expected = reference_next_token_loss(logits, input_ids, padding_id)

    def body() -> str:
        if loss is None:
            raise Todo("loss 还是 None：先用 next_token_loss 算出 loss。")
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise Failed(f"loss 应是一个标量张量，实际是 {type(loss).__name__}。",
                         "loss = next_token_loss(logits, input_ids, padding_id)。")
        if abs(loss.item() - expected.item()) > 1e-5:
            if not computed_from(loss, logits) and all(p.grad is not None for _, p in named):
                raise Failed(f"loss = {loss.item():.4f}，和上面那次前向的 {expected.item():.4f} 不同："
                             "多半是重新做了一次前向。模型在 train 模式，dropout 每次随机丢弃不同的激活，"
                             "所以每次前向的 logits 和 loss 都不一样。",
                             "直接用上面单元格算好的 logits：loss = next_token_loss(logits, input_ids, padding_id)；"
                             "如果已经 backward 过，先重跑那个前向单元格（它会清掉旧的计算图）。")
            raise Failed(f"loss = {loss.item():.4f}，但这批数据正确的 next-token loss 是 "
                         f"{expected.item():.4f}。",
                         "用上面通过自检的 next_token_loss(logits, input_ids, padding_id)。")
        missing = [n for n, p in named if p.grad is None]
        if len(missing) == len(named):
            raise Todo("还没有调用 loss.backward()：所有参数的 .grad 都是 None。")
        if missing:
            raise Failed(f"{len(missing)} 个参数没有梯度，例如 {missing[0]}：loss 不是由它们算出来的。",
                         "确认 logits 来自这个 model 和这个 lm_head，且中间没有 detach()。")
        bad = [n for n, p in named if not torch.isfinite(p.grad).all()]
        if bad:
            raise Failed(f"参数 {bad[0]} 的梯度里有 NaN/inf。",
                         "检查 loss 是否是有限数；若所有 label 都被忽略，平均 loss 会是 NaN。")
        total = sum(p.numel() for _, p in named)
        return (f"loss = {loss.item():.4f} > 0；全部 {len(named)} 个参数张量"
                f"（{total:,} 个数）都有梯度。")

    passed = run_check("1.2b", body, True, False)
    if passed:
        return loss
    if all(p.grad is None for _, p in named):
        expected.backward()  # so that the cells below have gradients to show
    return expected


# ---------------------------------------------------------------------------------------------
# 1.2c  train_step(model, lm_head, optimizer, input_ids, seq_lengths, padding_id)
# ---------------------------------------------------------------------------------------------

def reference_train_step(model, lm_head, optimizer, input_ids, seq_lengths, padding_id):
    optimizer.zero_grad()
    hidden_states = model(input_ids, seq_lengths=seq_lengths, is_training=True)  # (B, L, C)
    logits = lm_head(hidden_states)  # (B, L, V)
    loss = reference_next_token_loss(logits, input_ids, padding_id)
    loss.backward()
    optimizer.step()
    return loss


def diagnose_train_step(exc: Exception):
    if "modified by an inplace operation" in str(exc):
        return ("optimizer.step() 在 loss.backward() 之前调用了：参数被原地更新，"
                "计算图里保存的旧值失效，backward 无法进行。",
                "顺序是 optimizer.zero_grad() → 前向 → loss.backward() → optimizer.step()。")
    return diagnose_loss(exc)


def check_train_step(train_step):
    """Check exercise 1.2c; return the train_step to use from here on."""

    def body() -> str:
        config = DIYConfig(vocab_size=97, hidden_size=32, num_layers=1, num_heads=2,
                           max_seq_len=16, dropout=0.0)
        torch.manual_seed(0)
        model = build_active_backbone(config)
        lm_head = nn.Linear(32, 97, bias=False)
        _, input_ids = padded_batch(3, 8, 97, 0, [8, 5, 3], seed=2)
        seq_lengths = torch.tensor([8, 5, 3])
        lr = 0.5
        params = list(model.parameters()) + list(lm_head.parameters())
        # Expected update: one plain SGD step with the gradient of this batch only.
        ref_model, ref_head = copy.deepcopy(model), copy.deepcopy(lm_head)
        ref_opt = torch.optim.SGD(list(ref_model.parameters()) + list(ref_head.parameters()), lr=lr)
        ref_loss = reference_train_step(ref_model, ref_head, ref_opt, input_ids, seq_lengths, 0)
        # Stale gradients from "an earlier step": train_step must clear them first.
        stale = [torch.full_like(p, 0.01) for p in params]
        for p, g in zip(params, stale, strict=True):
            p.grad = g.clone()
        before = [p.detach().clone() for p in params]
        optimizer = torch.optim.SGD(params, lr=lr)
        loss = call_learner(train_step, model, lm_head, optimizer, input_ids, seq_lengths, 0,
                            name="train_step", diagnose=diagnose_train_step)
        if loss is None:
            raise Failed("train_step 没有返回 loss。", "最后 return loss（打印曲线时要用）。")
        after = [p.detach() for p in params]
        expected = [p.detach() for p in list(ref_model.parameters()) + list(ref_head.parameters())]
        if all(torch.equal(a, b) for a, b in zip(after, before, strict=True)):
            raise Failed("调用 train_step 后参数一点没变。",
                         "顺序是 optimizer.zero_grad() → 前向 → loss.backward() → optimizer.step()；"
                         "不要漏掉 step()，也不要在 backward 之后、step 之前清零梯度。")
        if all(torch.allclose(a, e - lr * g, atol=1e-6)
               for a, e, g in zip(after, expected, stale, strict=True)):
            raise Failed("没有在这一步开头清零梯度：调用前留下的 .grad（比如 1.2b 刚 backward 过的那份）"
                         "被累加进了这一步的更新。",
                         "在 train_step 的开头调用 optimizer.zero_grad()（PyTorch 的梯度默认是累加的）。"
                         "「step(); zero_grad()」放在最后的写法也很常见，但它假设进来时梯度已经是空的；"
                         "这个函数不知道调用者之前做过什么，所以先清零最稳妥。")
        if all(torch.allclose(a, b - lr * g, atol=1e-6)
               for a, b, g in zip(after, before, stale, strict=True)):
            raise Failed("optimizer.step() 用的是旧梯度：它在 loss.backward() 之前被调用了。",
                         "顺序是 zero_grad() → 前向 → loss.backward() → step()。")
        if not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(after, expected, strict=True)):
            raise Failed("参数更新量与一次 SGD 步不一致。",
                         "train_step 里只做一次 zero_grad() → 前向 → loss.backward() → step()，"
                         "用传进来的 model、lm_head、optimizer。")
        loss_value = loss.item() if isinstance(loss, torch.Tensor) else float(loss)
        if abs(loss_value - ref_loss.item()) > 1e-4:
            raise Failed(f"train_step 返回的 loss 是 {loss_value:.4f}，这一步前向的 loss 应是 "
                         f"{ref_loss.item():.4f}。",
                         "返回本次前向计算出的 loss（在 optimizer.step() 之前算的那个）。")
        return (f"zero_grad → 前向 → backward → step 顺序正确；在自检自己的小模型（词表 97）上，"
                f"返回的 loss = {loss_value:.4f} 与参数更新量都和参考实现一致。")

    return run_check("1.2c", body, train_step, reference_train_step)

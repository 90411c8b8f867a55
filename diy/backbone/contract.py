"""The backbone contract's required items: what steps 1–3 call on a backbone, each run on a model
and raising ContractBroken (what happened, how to fix it) when it does not hold.

The first build of a learner's file runs them on the new model (``diy.backbone.check_contract``,
through ``first_broken`` below); ``python -m diy.classroom.doctor --backbone`` runs them with the
optional items (diy/classroom/conformance.py). The course calls a backbone with is_training equal
to model.training (except the cached inference path: is_training=False), and so do the items: a
backbone whose dropout follows is_training (the study plan's F.dropout(x, p, training=is_training))
passes as one whose dropout follows train() / eval().
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import torch

from ..config import DIYConfig
from ..errors import describe_value

ATOL = 1e-4  # float32 on any BLAS; a real mistake moves outputs by far more


class ContractBroken(Exception):
    """A contract item found broken: what happened and the hint."""

    def __init__(self, what: str, hint: str):
        super().__init__(what)
        self.what, self.hint = what, hint


def course_ids(config: DIYConfig, rows: int, length: int) -> torch.Tensor:
    """(rows, length) token ids from the course passage, each row a different window. The
    characters' code points modulo the vocabulary stand in for the tokenizer's ids: the contract
    needs text-like ids (repeats, varied windows), not the tokenizer (which would import the
    checkpoint code that imports this module)."""
    ids = _passage_codes() % config.vocab_size
    ids = ids.repeat(1 + rows * length // len(ids) + 1)
    return torch.stack([ids[i * 37: i * 37 + length] for i in range(rows)])  # (rows, length)


def _passage_codes() -> torch.Tensor:
    global _PASSAGE_CODES
    if _PASSAGE_CODES is None:
        from ..data import load_passage

        _PASSAGE_CODES = torch.tensor([ord(ch) for ch in load_passage()], dtype=torch.long)
    return _PASSAGE_CODES


_PASSAGE_CODES = None


def hidden_of(output, what: str) -> torch.Tensor:
    """The hidden_states tensor a non-cached call returned, or ContractBroken saying what came."""
    if isinstance(output, (tuple, list)):
        raise ContractBroken(f"{what} 返回了 {type(output).__name__}（{len(output)} 项），应只返回一个张量",
                             "use_cache=False 时 forward 只返回 hidden_states（只有 use_cache=True 时才返回 "
                             "(hidden_states, presents)）。")
    if not isinstance(output, torch.Tensor):
        raise ContractBroken(f"{what} 返回了 {describe_value(output)}，应为张量 hidden_states",
                             "forward 最后 return 最终 norm 之后的 hidden_states。")
    return output


def eval_hidden(model, ids, **kwargs) -> torch.Tensor:
    """hidden_states in eval mode, called as the course calls it there: is_training=False."""
    return hidden_of(model.eval()(ids, is_training=False, **kwargs),
                     "eval() 下 model(input_ids, is_training=False)")


def with_cache(model, ids, **kwargs):
    output = model(ids, is_training=False, use_cache=True, **kwargs)
    if not (isinstance(output, (tuple, list)) and len(output) == 2):
        raise ContractBroken(f"is_training=False, use_cache=True 返回了 {describe_value(output)}，"
                             "应为 (hidden_states, presents) 两项",
                             "use_cache=True 时 return hidden_states, presents（每层一个 (k, v)）。")
    return output


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=ATOL, rtol=ATOL)


def presents_problem(presents, config: DIYConfig, batch: int, length: int):
    """None when ``presents`` has the contract's layout — one (k, v) per layer, each
    (B, num_heads, length, head_dim), the course's and transformers' legacy cache — else
    (what was found, and the one-line change that gives the layout)."""
    H, C = config.num_heads, config.hidden_size
    D = C // H
    want = (batch, H, length, D)
    layout = (f"约定：presents 是每层一个 (k, v) 的列表（{config.num_layers} 层），k、v 的形状都是 "
              f"(B, num_heads, 长度, head_dim) = {want}（课程和 transformers 的旧格式）：1.3 和第三步"
              "从第 3 维读缓存的长度，再把它原样作为 past_key_values 传回来。")
    if not isinstance(presents, (list, tuple)):
        return (f"presents 是 {describe_value(presents)}，不是每层一项的列表",
                layout + " 例如 presents = []，每层 presents.append((k, v))。")
    if len(presents) != config.num_layers:
        return (f"presents 有 {len(presents)} 项，应为 num_layers = {config.num_layers} 项（每层一项）",
                layout)
    for i, layer in enumerate(presents):
        if isinstance(layer, torch.Tensor):
            shape = tuple(layer.shape)
            if shape == (2, *want):
                return (f"presents[{i}] 是叠成一个的张量 {shape} = (2, B, num_heads, 长度, head_dim)，"
                        f"约定是两个张量 (k, v)，各 {want}",
                        "一行改好：return hidden_states, [tuple(kv) for kv in presents]"
                        "（tuple(kv) 沿第 0 维拆成 (k, v)；读缓存的 k, v = past_key_values[i] 不用改）。")
            if shape == (batch, length, C):
                return (f"presents[{i}] 是一个张量 {shape} = (B, 长度, hidden_size)（像 nn.MultiheadAttention "
                        f"那样缓存了这一层的输入？），约定是 (k, v)，各 {want}",
                        "nn.MultiheadAttention 不交出 k、v：最好自己用 q_proj / k_proj / v_proj 算（0.3）；"
                        f"只想换个形状也行，一行存：h = x.view(B, T, {H}, {D}).transpose(1, 2); "
                        f"present = (h, h)，读回时 x_past = past[0].transpose(1, 2).reshape(B, P, {C})。")
            return (f"presents[{i}] 是一个张量 {shape}，约定是 (k, v) 两个张量，各 {want}", layout)
        if not (isinstance(layer, (list, tuple)) and len(layer) == 2
                and all(isinstance(t, torch.Tensor) for t in layer)):
            return (f"presents[{i}] 是 {describe_value(layer)}，约定是 (k, v) 两个张量，各 {want}", layout)
        shapes = [tuple(t.shape) for t in layer]
        if all(shape == want for shape in shapes):
            continue
        shape = next(s for s in shapes if s != want)
        if shape == (batch, length, H, D):
            return (f"presents[{i}] 的 k、v 是 {shape} = (B, 长度, num_heads, head_dim)，约定是 {want} = "
                    "(B, num_heads, 长度, head_dim)",
                    "一行改好：present = (k.transpose(1, 2), v.transpose(1, 2))"
                    "（读回来的 past 也是这个形状：拼接沿 dim=2）。")
        if shape == (batch, length, C):
            return (f"presents[{i}] 的 k、v 是 {shape} = (B, 长度, hidden_size)：还没分头；约定是 {want}",
                    f"一行改好：present = (k.view(B, T, {H}, {D}).transpose(1, 2), "
                    f"v.view(B, T, {H}, {D}).transpose(1, 2))。")
        if shape == (batch * H, length, D):
            return (f"presents[{i}] 的 k、v 是 {shape} = (B·num_heads, 长度, head_dim)"
                    f"（nn.MultiheadAttention 内部的布局），约定是 {want}",
                    f"一行改好：present = (k.view(B, {H}, T, {D}), v.view(B, {H}, T, {D}))。")
        return (f"presents[{i}] 的 k、v 是 {shapes[0]} 和 {shapes[1]}，约定是各 {want}", layout)
    return None


def _length(config: DIYConfig, wanted: int = 16) -> int:
    """The items' sequence length: 16, or less for a model whose max_seq_len is shorter (the
    self-checks build small ones)."""
    return min(wanted, config.max_seq_len)


def check_training_path(model, config):
    L = _length(config)
    ids = course_ids(config, 2, L)
    hidden = hidden_of(model.train()(ids, is_training=True), "model(input_ids, is_training=True)")
    want = (2, L, config.hidden_size)
    if tuple(hidden.shape) != want:
        raise ContractBroken(f"返回 {tuple(hidden.shape)}，应为 {want}",
                             "返回 embedding → 各层 → 最终 norm 之后的 hidden_states，不要接 lm_head。")
    if hidden.dtype != torch.float32:
        raise ContractBroken(f"hidden_states 的 dtype 是 {hidden.dtype}，课程的 lm_head 和 loss 用 float32",
                             "不要在骨干里 .double() / .half()；参数和计算都保持 PyTorch 默认的 float32。")
    return f"train() 下 model(input_ids, is_training=True) → {want} 的 float32 张量"


def check_cache_path(model, config):
    L = _length(config, 9) - 1  # L tokens, then one more
    ids = course_ids(config, 2, L + 1)
    with torch.no_grad():
        hidden, presents = with_cache(model.eval(), ids[:, :L])
        if not isinstance(hidden, torch.Tensor) or tuple(hidden.shape) != (2, L, config.hidden_size):
            raise ContractBroken(f"hidden_states 是 {describe_value(hidden)}",
                                 f"应为 (B, L, {config.hidden_size}) = {(2, L, config.hidden_size)} 的张量。")
        problem = presents_problem(presents, config, batch=2, length=L)
        if problem:
            raise ContractBroken(*problem)
        step_hidden, step_presents = with_cache(model, ids[:, -1:], past_key_values=presents)
    if not isinstance(step_hidden, torch.Tensor) or \
            tuple(step_hidden.shape) != (2, 1, config.hidden_size):
        raise ContractBroken(f"把 presents 作为 past_key_values 传回、再输入 1 个 token，得到 "
                             f"{describe_value(step_hidden)}", f"应为 (B, 1, {config.hidden_size})。")
    problem = presents_problem(step_presents, config, batch=2, length=L + 1)
    if problem:
        raise ContractBroken(f"传回缓存、再输入 1 个 token 之后：{problem[0]}", problem[1])
    return "use_cache=True 返回 (hidden_states, presents)，presents 能作为 past_key_values 传回"


def check_eval_is_deterministic(model, config):
    ids = course_ids(config, 2, _length(config))
    with torch.no_grad():
        first, second = eval_hidden(model, ids), eval_hidden(model, ids)
    if not torch.equal(first, second):
        raise ContractBroken("eval() 之后、is_training=False 时同样的输入两次输出不同：dropout 还在起作用",
                             "dropout 在 eval() 时要关掉：用 nn.Dropout，或 F.dropout(x, p, "
                             "training=self.training)（也可以 training=is_training：课程在 eval() "
                             "时总是传 is_training=False）。")
    return "eval() 后（is_training=False）输出确定"


def dropout_reading(model, config) -> str:
    """Which reading of is_training the backbone's dropout follows, said in the doctor's report
    (never required: the course calls a backbone with is_training equal to its mode)."""
    if config.dropout == 0:
        return ""
    ids = course_ids(config, 2, _length(config))
    try:
        with torch.no_grad():
            flagged = [model.eval()(ids, is_training=True) for _ in range(2)]
    except Exception:  # noqa: BLE001 - eval() with is_training=True is never the course's call
        return ""
    if all(isinstance(t, torch.Tensor) for t in flagged) and not torch.equal(*flagged):
        return ("你的 dropout 跟随 is_training（课程调用骨干时 is_training 总是和 train() / eval() 一致，"
                "所以也行）")
    return "dropout 跟随 train() / eval()"


def check_causal(model, config):
    L = _length(config)
    t = L * 5 // 8  # 10 of 16
    ids = course_ids(config, 2, L)
    changed = ids.clone()
    changed[:, t] = (changed[:, t] + 1) % config.vocab_size
    with torch.no_grad():
        before, after = eval_hidden(model, ids), eval_hidden(model, changed)
    if not close(before[:, :t], after[:, :t]):
        raise ContractBroken(f"只改第 {t} 个 token，它前面（0～{t - 1}）的输出也变了：后面的 token 泄露给了前面",
                             "注意力要加因果 mask：位置 i 只能看位置 ≤ i（scores 在 j > i 处填 -inf，"
                             "或 F.scaled_dot_product_attention(..., is_causal=True)）。")
    return "改第 t 个 token 不改变 t 之前的输出"


def check_padding(model, config):
    L = _length(config)
    n = L * 9 // 16  # 9 of 16 real tokens in row 1
    ids = course_ids(config, 2, L)
    lengths = torch.tensor([L, n])
    other = ids.clone()
    other[1, n:] = (other[1, n:] + 7) % config.vocab_size  # different padding content
    with torch.no_grad():
        padded = eval_hidden(model, ids, seq_lengths=lengths)
        repadded = eval_hidden(model, other, seq_lengths=lengths)
        alone = eval_hidden(model, ids[1:2, :n])
    if not torch.isfinite(padded).all():
        raise ContractBroken("右 padding 的 batch 输出里有 NaN / inf",
                             "padding 的 query 一个 key 都看不到时 softmax 得 NaN：让每个位置至少能看到自己。")
    if not (close(padded[1, :n], alone[0]) and close(padded[1, :n], repadded[1, :n])):
        raise ContractBroken("seq_lengths 之后的 padding 改变了真实位置的输出",
                             "用 seq_lengths 构造 key mask：第 b 行位置 ≥ seq_lengths[b] 的 key 不能被看到。")
    return "seq_lengths 右 padding 不改变真实位置的输出，没有 NaN"


def check_cache_equivalence(model, config):
    L = _length(config)
    p = L * 5 // 8  # prefill 10 of 16, then one token at a time
    ids = course_ids(config, 2, L)
    with torch.no_grad():
        full = eval_hidden(model, ids)
        hidden, presents = with_cache(model, ids[:, :p])
        steps = [hidden]
        for t in range(p, L):
            hidden, presents = with_cache(model, ids[:, t:t + 1], past_key_values=presents)
            steps.append(hidden)
    cached = torch.cat(steps, dim=1)  # (B, L, C)
    if not close(full, cached):
        first = int((~torch.isclose(full, cached, atol=ATOL, rtol=ATOL)).any(-1).any(0)
                    .nonzero()[0])
        raise ContractBroken(f"先 prefill {p} 个 token 再逐个解码，从位置 {first} 起与一次算完不同",
                             "新 token 的位置要从缓存长度接着数（RoPE / 位置编码加上 past_len 的偏移），"
                             "并且把过去的 k、v 与新的拼在一起再做注意力。")
    return "prefill + 逐个 token 解码 ≡ 一次算完整条序列（eval）"


def check_gradients(model, config):
    ids = course_ids(config, 2, _length(config))
    model.train().zero_grad(set_to_none=True)
    with torch.enable_grad():
        hidden_of(model(ids, is_training=True), "model(input_ids, is_training=True)") \
            .float().pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    bad = [n for n, p in model.named_parameters() if p.grad is not None
           and not torch.isfinite(p.grad).all()]
    model.zero_grad(set_to_none=True)
    if missing or bad:
        names = "、".join((missing or bad)[:3])
        raise ContractBroken(f"{'没有梯度' if missing else '梯度有 NaN / inf'} 的参数：{names}",
                             "每个参数都要出现在前向计算里：没用到的层删掉；"
                             "不要在前向里 .detach() 或用 torch.no_grad()。")
    return f"全部 {sum(1 for _ in model.parameters())} 个参数张量都得到有限的梯度"


def check_max_length(model, config):
    n = config.max_seq_len
    ids = course_ids(config, 1, n)
    with torch.no_grad():
        hidden = eval_hidden(model, ids)
        start = max(1, n - 4)  # prefill, then the last tokens one at a time
        _, presents = with_cache(model, ids[:, :start])
        for t in range(start, n):
            _, presents = with_cache(model, ids[:, t:t + 1], past_key_values=presents)
    if tuple(hidden.shape) != (1, n, config.hidden_size):
        raise ContractBroken(f"长度 {n} 的输入得到 {tuple(hidden.shape)}", "检查位置编码表的长度。")
    return f"长度 {n}（= max_seq_len）：一次算完和带缓存逐个解码都能运行"


# (name, lessons that need it, check, what it depends on: an item whose dependency failed is
# not run, it is reported as skipped because of that one). All required; the doctor adds the
# optional ones (diy/classroom/conformance.py).
REQUIRED = [
    ("训练路径", "1.1～1.3、2.2", check_training_path, ()),
    ("缓存路径", "3.1～3.3", check_cache_path, ()),
    ("eval 时确定", "2.3、第三步", check_eval_is_deterministic, ()),
    ("因果", "1.2、2.2、3.1", check_causal, ("eval 时确定",)),
    ("右 padding", "1.2", check_padding, ("eval 时确定",)),
    ("缓存 ≡ 无缓存", "3.1、3.3", check_cache_equivalence, ("缓存路径", "eval 时确定")),
    ("梯度", "1.2、2.2", check_gradients, ("训练路径",)),
    ("最长序列", "2.1～2.3", check_max_length, ("缓存路径", "eval 时确定")),
]
# How each item calls the backbone: said next to a runtime error, so the learner can reproduce it.
CALLS = {
    "训练路径": "train() 下 model(input_ids, is_training=True)，input_ids 是 (2, 16)",
    "缓存路径": "eval() 下 model(ids, is_training=False, use_cache=True)，再把 presents 作为 "
               "past_key_values 传回、输入 1 个 token",
    "eval 时确定": "eval() 下 model(input_ids, is_training=False) 两次",
    "因果": "eval() 下 model(input_ids, is_training=False)，只改第 10 个 token 再算一次",
    "右 padding": "eval() 下 model(input_ids, seq_lengths=torch.tensor([16, 9]), is_training=False)",
    "缓存 ≡ 无缓存": "eval() 下先 prefill 10 个 token（use_cache=True），再带着 past_key_values 逐个输入",
    "梯度": "train() 下 model(input_ids, is_training=True)，再 backward",
    "最长序列": "eval() 下长度 max_seq_len 的 model(input_ids, is_training=False)，再带缓存解码到这个长度",
}
ENGLISH = {"训练路径": "training path", "缓存路径": "cache path", "eval 时确定": "deterministic in eval",
           "因果": "causal", "右 padding": "right padding", "缓存 ≡ 无缓存": "cache = no cache",
           "梯度": "gradients", "最长序列": "max_seq_len"}
# run at the first build: the cheap ones, which catch a wrong return type or cache layout, dropout
# left on and the common cache and mask slips (the doctor's report runs every item)
ON_BUILD = ("训练路径", "缓存路径", "eval 时确定", "因果", "右 padding", "缓存 ≡ 无缓存")


def broken_item(name: str, exc: BaseException, path: Path) -> tuple[str, str]:
    """(what, hint) of an item that raised: its ContractBroken, or the learner's exception with
    the line of the learner's file it came from."""
    if isinstance(exc, ContractBroken):
        return exc.what, exc.hint
    where = where_in_file(exc, path)
    text = str(exc).strip()
    said = text.splitlines()[0][:160] if text else "（没有说明）"
    call = CALLS.get(name)
    return (f"运行出错{f'（{where}）' if where else ''}：{type(exc).__name__}: {said}",
            f"按错误信息改{'这一行' if where else ' forward'}"
            + (f"；这一项是这样调用的：{call}" if call else ""))


def where_in_file(exc: BaseException, path: Path) -> str:
    """"DIYModel.py 第 42 行：x = x.view(B, L, H, D)": the last line of the learner's file (or a
    file next to it) that the exception passed through, with its source; "" if none."""
    folder = str(path.parent)
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename == str(path) or (os.path.dirname(f.filename) == folder
                                             and f.filename.endswith(".py"))]
    if not frames:
        return ""
    frame = frames[-1]
    line = (frame.line or "").strip()
    return f"{Path(frame.filename).name} 第 {frame.lineno} 行" + (f"：{line}" if line else "")


def first_broken(model, config: DIYConfig, path: Path) -> tuple[str, str, str] | None:
    """(item, what, hint) of the first required item (ON_BUILD) that ``model`` breaks, else None;
    ``path`` is the learner's file (its lines name where an exception came from). The model's
    mode is restored, no gradient is kept and the global random state is left as it was."""
    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            for name, _, check, _ in REQUIRED:
                if name not in ON_BUILD:
                    continue
                try:
                    check(model, config)
                except Exception as exc:  # noqa: BLE001 - the learner's forward raised
                    return (name, *broken_item(name, exc, path))
    finally:
        model.train(was_training)
    return None

"""Does a backbone honour the course's contract? ``python -m diy.classroom.doctor --backbone FILE[:Class]``.

The contract is what steps 1–3 call on a backbone (the seed plan's DIYModel):

    Model(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)
    forward(input_ids, seq_lengths=None, past_key_values=None, use_cache=False, is_training=True)
        -> hidden_states (B, L, hidden_size), or (hidden_states, presents) with use_cache=True

Each item runs the backbone on the course's passage and reports ✅ / ❌ (required) or ⚠️
(optional: only some later features need it), with a Chinese hint and the lesson that needs it.
The global random state is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..backbone import BackboneSpec, DIYBackboneError
from ..config import DIYConfig

ATOL = 1e-4  # float32 on any BLAS; a real mistake moves outputs by far more


@dataclass
class Item:
    name: str  # short Chinese name, e.g. "因果"
    required: bool
    ok: bool
    what: str  # one line: what was checked and what happened
    hint: str = ""  # how to fix (for ❌ / ⚠️)
    needed_by: str = ""  # the lessons that need it

    @property
    def icon(self) -> str:
        return "✅" if self.ok else ("❌" if self.required else "⚠️")

    def render(self) -> str:
        line = f"{self.icon} {self.name}：{self.what}"
        if not self.ok:
            line += f"\n   提示：{self.hint}（用到它的：{self.needed_by}）"
        return line


class _Broken(Exception):
    """An item's check found the contract broken: what happened and the hint."""

    def __init__(self, what: str, hint: str):
        super().__init__(what)
        self.what, self.hint = what, hint


def _course_ids(config: DIYConfig, rows: int, length: int) -> torch.Tensor:
    """(rows, length) token ids from the course passage, each row a different window."""
    from ..data import load_passage
    from ..tokenizer import CharTokenizer

    ids = torch.tensor(CharTokenizer().encode(load_passage()), dtype=torch.long)
    ids = ids.clamp(max=config.vocab_size - 1).repeat(1 + rows * length // len(ids) + 1)
    return torch.stack([ids[i * 37: i * 37 + length] for i in range(rows)])  # (rows, length)


def _hidden(output, what: str) -> torch.Tensor:
    if isinstance(output, (tuple, list)):
        raise _Broken(f"{what} 返回了 {type(output).__name__}（{len(output)} 项），应只返回一个张量",
                      "use_cache=False 时 forward 只返回 hidden_states。")
    if not isinstance(output, torch.Tensor):
        raise _Broken(f"{what} 返回了 {type(output).__name__}，应为张量 hidden_states",
                      "forward 最后 return 最终 norm 之后的 hidden_states。")
    return output


def _with_cache(model, ids, **kwargs):
    output = model(ids, is_training=False, use_cache=True, **kwargs)
    if not (isinstance(output, (tuple, list)) and len(output) == 2):
        raise _Broken("is_training=False, use_cache=True 没有返回 (hidden_states, presents) 两项",
                      "use_cache=True 时 return hidden_states, presents（每层一个 (k, v)）。")
    return output


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=ATOL, rtol=ATOL)


def check_training_path(model, config):
    ids = _course_ids(config, 2, 16)
    hidden = _hidden(model.train()(ids), "model(input_ids)")
    want = (2, 16, config.hidden_size)
    if tuple(hidden.shape) != want:
        raise _Broken(f"返回 {tuple(hidden.shape)}，应为 {want}",
                      "返回 embedding → 各层 → 最终 norm 之后的 hidden_states，不要接 lm_head。")
    if hidden.dtype != torch.float32:
        raise _Broken(f"hidden_states 的 dtype 是 {hidden.dtype}，课程的 lm_head 和 loss 用 float32",
                      "不要在骨干里 .double() / .half()；参数和计算都保持 PyTorch 默认的 float32。")
    return f"model(input_ids) → {want} 的 float32 张量"


def check_cache_path(model, config):
    ids = _course_ids(config, 2, 8)
    with torch.no_grad():
        hidden, presents = _with_cache(model.eval(), ids)
        if tuple(hidden.shape) != (2, 8, config.hidden_size):
            raise _Broken(f"hidden_states 的形状是 {tuple(hidden.shape)}",
                          f"应为 (B, L, {config.hidden_size})。")
        _check_presents(presents, config, batch=2, length=8)
        step_hidden, _ = _with_cache(model, ids[:, -1:], past_key_values=presents)
    if tuple(step_hidden.shape) != (2, 1, config.hidden_size):
        raise _Broken(f"把 presents 作为 past_key_values 传回、再输入 1 个 token，得到 "
                      f"{tuple(step_hidden.shape)}", f"应为 (B, 1, {config.hidden_size})。")
    return "use_cache=True 返回 (hidden_states, presents)，presents 能作为 past_key_values 传回"


def _check_presents(presents, config, batch: int, length: int) -> None:
    """presents: one (k, v) per layer, each (B, num_heads, length, head_dim): the layout of the
    course (and of transformers' tuple caches) that steps 1.3 and 3 read the cache length from."""
    head_dim = config.hidden_size // config.num_heads
    want = (batch, config.num_heads, length, head_dim)
    layout = ("presents 是每层一个 (k, v) 的列表，k、v 的形状都是 (B, num_heads, 长度, head_dim)"
              "（课程和 transformers 的旧格式）：1.3 和第三步从第 3 维读缓存的长度。")
    if not isinstance(presents, (list, tuple)) or len(presents) != config.num_layers:
        got = f"{len(presents)} 项" if isinstance(presents, (list, tuple)) else \
            type(presents).__name__
        raise _Broken(f"presents 应是 {config.num_layers} 层各一项的列表，得到 {got}", layout)
    for layer in presents:
        if not (isinstance(layer, (list, tuple)) and len(layer) == 2
                and all(isinstance(t, torch.Tensor) and tuple(t.shape) == want for t in layer)):
            shapes = [tuple(t.shape) for t in layer if isinstance(t, torch.Tensor)] \
                if isinstance(layer, (list, tuple)) else type(layer).__name__
            raise _Broken(f"presents 里一层是 {shapes}，应为 (k, v)，各 {want}", layout)


def check_causal(model, config):
    ids = _course_ids(config, 2, 16)
    changed = ids.clone()
    changed[:, 10] = (changed[:, 10] + 1) % config.vocab_size
    with torch.no_grad():
        before, after = (_hidden(model.eval()(x), "model(input_ids)") for x in (ids, changed))
    if not _close(before[:, :10], after[:, :10]):
        raise _Broken("只改第 10 个 token，它前面（0～9）的输出也变了：后面的 token 泄露给了前面",
                      "注意力要加因果 mask：位置 i 只能看位置 ≤ i（scores 在 j > i 处填 -inf，"
                      "或 F.scaled_dot_product_attention(..., is_causal=True)）。")
    return "改第 t 个 token 不改变 t 之前的输出"


def check_padding(model, config):
    ids = _course_ids(config, 2, 16)
    lengths = torch.tensor([16, 9])
    other = ids.clone()
    other[1, 9:] = (other[1, 9:] + 7) % config.vocab_size  # different padding content
    with torch.no_grad():
        model.eval()
        padded = _hidden(model(ids, seq_lengths=lengths), "model(input_ids, seq_lengths)")
        repadded = _hidden(model(other, seq_lengths=lengths), "model(input_ids, seq_lengths)")
        alone = _hidden(model(ids[1:2, :9]), "model(input_ids)")
    if not torch.isfinite(padded).all():
        raise _Broken("右 padding 的 batch 输出里有 NaN / inf",
                      "padding 的 query 一个 key 都看不到时 softmax 得 NaN：让每个位置至少能看到自己。")
    if not (_close(padded[1, :9], alone[0]) and _close(padded[1, :9], repadded[1, :9])):
        raise _Broken("seq_lengths 之后的 padding 改变了真实位置的输出",
                      "用 seq_lengths 构造 key mask：第 b 行位置 ≥ seq_lengths[b] 的 key 不能被看到。")
    return "seq_lengths 右 padding 不改变真实位置的输出，没有 NaN"


def check_cache_equivalence(model, config):
    ids = _course_ids(config, 2, 16)
    with torch.no_grad():
        full = _hidden(model.eval()(ids), "model(input_ids)")
        hidden, presents = _with_cache(model, ids[:, :10])
        steps = [hidden]
        for t in range(10, 16):
            hidden, presents = _with_cache(model, ids[:, t:t + 1], past_key_values=presents)
            steps.append(hidden)
    cached = torch.cat(steps, dim=1)  # (B, 16, C)
    if not _close(full, cached):
        first = int((~torch.isclose(full, cached, atol=ATOL, rtol=ATOL)).any(-1).any(0)
                    .nonzero()[0])
        raise _Broken(f"先 prefill 10 个 token 再逐个解码，从位置 {first} 起与一次算完不同",
                      "新 token 的位置要从缓存长度接着数（RoPE / 位置编码加上 past_len 的偏移），"
                      "并且把过去的 k、v 与新的拼在一起再做注意力。")
    return "prefill + 逐个 token 解码 ≡ 一次算完整条序列（eval）"


def check_eval_is_deterministic(model, config):
    ids = _course_ids(config, 2, 16)
    with torch.no_grad():
        model.eval()
        first, second = model(ids), model(ids)
        inference = _hidden(model(ids, is_training=False), "model(input_ids, is_training=False)")
    if not torch.equal(_hidden(first, "model(input_ids)"), _hidden(second, "model(input_ids)")):
        raise _Broken("eval() 之后同样的输入两次输出不同：dropout 还在起作用",
                      "用 nn.Dropout 或 F.dropout(x, p, training=self.training)，"
                      "让 dropout 只跟随 model.train() / model.eval()。")
    if not _close(first, inference):
        raise _Broken("eval() 之后 is_training=True 与 is_training=False 的输出不同",
                      "is_training 只选择计算路径（要不要返回缓存），不该决定 dropout。")
    return "eval() 后输出确定，is_training 不改变结果"


def check_gradients(model, config):
    ids = _course_ids(config, 2, 16)
    model.train().zero_grad(set_to_none=True)
    _hidden(model(ids), "model(input_ids)").float().pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    bad = [n for n, p in model.named_parameters() if p.grad is not None
           and not torch.isfinite(p.grad).all()]
    model.zero_grad(set_to_none=True)
    if missing or bad:
        names = "、".join((missing or bad)[:3])
        raise _Broken(f"{'没有梯度' if missing else '梯度有 NaN / inf'} 的参数：{names}",
                      "每个参数都要出现在前向计算里：没用到的层删掉；"
                      "不要在前向里 .detach() 或用 torch.no_grad()。")
    return f"全部 {sum(1 for _ in model.parameters())} 个参数张量都得到有限的梯度"


def check_max_length(model, config):
    n = config.max_seq_len
    ids = _course_ids(config, 1, n)
    with torch.no_grad():
        hidden = _hidden(model.eval()(ids), "model(input_ids)")
        _, presents = _with_cache(model, ids[:, : n - 4])
        for t in range(n - 4, n):
            _, presents = _with_cache(model, ids[:, t:t + 1], past_key_values=presents)
    if tuple(hidden.shape) != (1, n, config.hidden_size):
        raise _Broken(f"长度 {n} 的输入得到 {tuple(hidden.shape)}", "检查位置编码表的长度。")
    return f"长度 {n}（= max_seq_len）：一次算完和带缓存逐个解码都能运行"


def check_train_dropout(model, config):
    ids = _course_ids(config, 2, 16)
    with torch.no_grad():
        model.train()
        first, second = model(ids), model(ids)
    model.eval()
    if config.dropout > 0 and torch.equal(first, second):
        raise _Broken(f"train() 时 dropout={config.dropout} 没有起作用（两次输出完全相同）",
                      "在注意力权重、注意力输出或 MLP 输出后加 nn.Dropout(dropout)。")
    return f"train() 时 dropout={config.dropout} 起作用"


def check_attention_mask(model, config):
    ids = _course_ids(config, 2, 12)
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # row 1: 5 left-padding tokens, then 7 real ones
    try:
        with torch.no_grad():
            hidden, _ = _with_cache(model.eval(), ids, attention_mask=mask)
            alone, _ = _with_cache(model, ids[1:2, 5:])
    except TypeError as exc:
        if "attention_mask" not in str(exc):
            raise
        raise _Broken("forward 不接受 attention_mask", "加一个关键字参数 attention_mask（1 = token，"
                      "0 = 左 padding）：每行的位置从第一个真实 token 数起，并遮住 padding 的 key。"
                      "没有它，generate 只能一次生成一行") from None
    if not _close(hidden[1, 5:], alone[0]):
        raise _Broken("左 padding 的行与单独计算这一行不同",
                      "位置 = attention_mask.cumsum(-1) - 1（截到 ≥ 0），并遮住 padding 的 key。")
    return "attention_mask（左 padding）：每行等于单独计算"


def check_transformers(model, config):
    from ..hf import _transformers, llama_config

    llama = _transformers().LlamaModel(llama_config(config))
    ours, theirs = model.state_dict(), llama.state_dict()
    missing = [k for k in theirs if k not in ours]
    extra = [k for k in ours if k not in theirs]
    shapes = [k for k in theirs if k in ours and ours[k].shape != theirs[k].shape]
    if missing or extra or shapes:
        found = (f"缺少 {len(missing)} 个名字（如 {missing[0]}）" if missing else "") + \
                (f"，多出 {len(extra)} 个（如 {extra[0]}）" if extra else "") + \
                (f"，{len(shapes)} 个形状不同（如 {shapes[0]}）" if shapes else "")
        raise _Broken(f"state_dict 不能 strict=True 加载进 transformers 的 LlamaModel：{found.lstrip('，')}",
                      "模块名照 Llama 取（embed_tokens、layers.N.self_attn.q_proj …、norm），"
                      "见第 0.4 节")
    llama.load_state_dict(ours, strict=True)
    ids = _course_ids(config, 2, 16)
    with torch.no_grad():
        ours = _hidden(model.eval()(ids), "model(input_ids)")
        theirs = llama.eval()(input_ids=ids).last_hidden_state
    if not _close(ours, theirs):
        raise _Broken("权重加载进 LlamaModel 后 hidden_states 不同",
                      "名字对上了，计算不同：检查 RMSNorm 的 eps、RoPE 的 rotate_half 约定、SwiGLU")
    return "能 strict=True 加载进 transformers 的 LlamaModel，hidden_states 相同"


# (name, required, lessons that need it, check). Items after "eval 时确定" that compare two
# outputs are only meaningful when eval() outputs are deterministic (COMPARES).
ITEMS: list[tuple[str, bool, str, Callable]] = [
    ("训练路径", True, "1.1～1.3、2.2", check_training_path),
    ("缓存路径", True, "3.1～3.3", check_cache_path),
    ("eval 时确定", True, "2.3、第三步", check_eval_is_deterministic),
    ("因果", True, "1.2、2.2、3.1", check_causal),
    ("右 padding", True, "1.2", check_padding),
    ("缓存 ≡ 无缓存", True, "3.1、3.3", check_cache_equivalence),
    ("梯度", True, "1.2、2.2", check_gradients),
    ("最长序列", True, "2.1～2.3", check_max_length),
    ("train 时 dropout", False, "2.2（没有 dropout 也能训练，只是少了正则化）", check_train_dropout),
    ("attention_mask", False, "3.3 的左 padding 批量生成", check_attention_mask),
    ("与 transformers 一致", False, "与 transformers 的对照、python -m diy.export", check_transformers),
]
COMPARES = {"因果", "右 padding", "缓存 ≡ 无缓存", "attention_mask", "与 transformers 一致"}


def run(spec: BackboneSpec, config: DIYConfig | None = None) -> list[Item]:
    """Every item, in order; when the backbone cannot even be built, that one ❌ only."""
    config = config or DIYConfig()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            model = spec.build(config)
        except DIYBackboneError as exc:
            return [Item("构造", True, False, exc.problem, exc.fix, "全部")]
        args = (config.vocab_size, config.num_layers, config.hidden_size, config.num_heads,
                config.max_seq_len, config.dropout)
        items = [Item("构造", True, True, f"{spec.class_name}{args}")]
        for name, required, needed_by, check in ITEMS:
            if name in COMPARES and not _item(items, "eval 时确定").ok:
                items.append(Item(name, required, False, "没有检查：eval() 后输出不确定（见「eval 时确定」）",
                                  "先修好「eval 时确定」这一项", needed_by))
                continue
            try:
                items.append(Item(name, required, True, check(model, config)))
            except _Broken as broken:
                items.append(Item(name, required, False, broken.what, broken.hint, needed_by))
            except Exception as exc:  # noqa: BLE001 - the learner's forward raised
                message = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
                items.append(Item(name, required, False, f"运行出错：{type(exc).__name__}: {message}",
                                  "按错误信息修改 forward；这一项调用的方式见本行的说明", needed_by))
    return items


def _item(items: list[Item], name: str) -> Item:
    return next(item for item in items if item.name == name)


def passed(items: list[Item]) -> bool:
    return all(item.ok for item in items if item.required)

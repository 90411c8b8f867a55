"""Does a backbone honour the course's contract? ``python -m diy.classroom.doctor --backbone FILE[:Class]``.

The contract is what steps 1–3 call on a backbone (the seed plan's DIYModel):

    Model(vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)
    forward(input_ids, seq_lengths=None, past_key_values=None, use_cache=False, is_training=True)
        -> hidden_states (B, L, hidden_size), or (hidden_states, presents) with use_cache=True

Each item runs the backbone on the course's passage and reports ✅ / ❌ (required) or ⚠️
(optional: only some later features need it), with a Chinese hint and the lesson that needs it.
The required items are the library's (diy.backbone.contract.REQUIRED: the first build of a learner's file
runs them too); this report adds the optional ones, and reports a failure once: an item that
depends on a failed one (or fails with the very same error) is shown as skipped because of it.
The global random state is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..backbone import BackboneSpec, DIYBackboneError, contract_values, named_values
from ..backbone.contract import (
    REQUIRED,
    ContractBroken,
    broken_item,
    close,
    course_ids,
    dropout_reading,
    eval_hidden,
    hidden_of,
    with_cache,
)
from ..config import DIYConfig


@dataclass
class Item:
    name: str  # short Chinese name, e.g. "因果"
    required: bool
    ok: bool
    what: str  # one line: what was checked and what happened
    hint: str = ""  # how to fix (for ❌ / ⚠️)
    needed_by: str = ""  # the lessons that need it
    because: str = ""  # not run: the item it depends on failed (its name)

    @property
    def icon(self) -> str:
        if self.because:
            return "⏭️"
        return "✅" if self.ok else ("❌" if self.required else "⚠️")

    def render(self) -> str:
        line = f"{self.icon} {self.name}：{self.what}"
        if not self.ok and not self.because:
            line += f"\n   提示：{self.hint}（用到它的：{self.needed_by}）"
        return line


def check_train_dropout(model, config):
    ids = course_ids(config, 2, min(16, config.max_seq_len))
    with torch.no_grad():
        model.train()
        first, second = (hidden_of(model(ids, is_training=True), "model(input_ids, is_training=True)")
                         for _ in range(2))
    model.eval()
    if config.dropout > 0 and torch.equal(first, second):
        raise ContractBroken(f"train() 时 dropout={config.dropout} 没有起作用（两次输出完全相同）",
                             "在注意力权重、注意力输出或 MLP 输出后加 nn.Dropout(dropout)。")
    return f"train() 时 dropout={config.dropout} 起作用"


def check_attention_mask(model, config):
    ids = course_ids(config, 2, 12)  # the doctor's config (max_seq_len 128)
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # row 1: 5 left-padding tokens, then 7 real ones
    try:
        with torch.no_grad():
            hidden, _ = with_cache(model.eval(), ids, attention_mask=mask)
            alone, _ = with_cache(model, ids[1:2, 5:])
    except TypeError as exc:
        if "attention_mask" not in str(exc):
            raise
        raise ContractBroken("forward 不接受 attention_mask",
                             "加一个关键字参数 attention_mask（1 = token，0 = 左 padding）：每行的位置从"
                             "第一个真实 token 数起，并遮住 padding 的 key（3.3d 一步步地加）。"
                             "没有它，generate 只能一次生成一行") from None
    if not isinstance(hidden, torch.Tensor) or not torch.isfinite(hidden[1, 5:]).all():
        raise ContractBroken("左 padding 的行输出里有 NaN / inf（或不是张量）",
                             "padding 的 query 一个 key 都看不到时 softmax 得 NaN：让每个位置至少能看到自己。")
    if not close(hidden[1, 5:], alone[0]):
        raise ContractBroken("左 padding 的行与单独计算这一行不同",
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
        raise ContractBroken("state_dict 不能 strict=True 加载进 transformers 的 LlamaModel："
                             f"{found.lstrip('，')}",
                             "模块名照 Llama 取（embed_tokens、layers.N.self_attn.q_proj …、norm），"
                             "见第 0.4 节")
    llama.load_state_dict(ours, strict=True)
    ids = course_ids(config, 2, 16)
    with torch.no_grad():
        ours = eval_hidden(model, ids)
        theirs = llama.eval()(input_ids=ids).last_hidden_state
    if not close(ours, theirs):
        raise ContractBroken("权重加载进 LlamaModel 后 hidden_states 不同",
                             "名字对上了，计算不同：检查 RMSNorm 的 eps、RoPE 的 rotate_half 约定、SwiGLU")
    return "能 strict=True 加载进 transformers 的 LlamaModel，hidden_states 相同"


# (name, required, lessons that need it, check, what it depends on).
ITEMS: list[tuple[str, bool, str, Callable, tuple[str, ...]]] = [
    *((name, True, needed_by, check, after) for name, needed_by, check, after in REQUIRED),
    ("train 时 dropout", False, "2.2（没有 dropout 也能训练，只是少了正则化）", check_train_dropout,
     ("训练路径",)),
    ("attention_mask", False, "3.3 的左 padding 批量生成", check_attention_mask,
     ("缓存路径", "eval 时确定")),
    ("与 transformers 一致", False, "与 transformers 的对照、python -m diy.hf.export", check_transformers,
     ("eval 时确定",)),
]


def run(spec: BackboneSpec, config: DIYConfig | None = None) -> list[Item]:
    """Every item, in order; when the backbone cannot even be built, that one ❌ only. An item
    whose dependency failed, or that fails with an error already reported (the same exception
    from the same line), is listed as skipped because of that item: one bug, one ❌."""
    config = config or DIYConfig()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            model = spec.build(config, check=False)
        except DIYBackboneError as exc:
            return [Item("构造", True, False, exc.problem, exc.fix, "全部")]
        args = contract_values(config)
        items = [Item("构造", True, True,
                      f"{spec.class_name}{args}，即 {named_values(type(model), args)}")]
        causes: dict[str, str] = {}  # each failure reported so far (its hint) -> its item
        for name, required, needed_by, check, after in ITEMS:
            failed_before = [dep for dep in after if not _item(items, dep).ok]
            if failed_before:
                cause = _root(items, failed_before[0])
                items.append(Item(name, required, False, f"没有检查：它要先通过「{cause}」", "",
                                  needed_by, because=cause))
                continue
            try:
                what = check(model, config)
                if name == "eval 时确定":
                    reading = dropout_reading(model, config)
                    what += f"；{reading}" if reading else ""
                items.append(Item(name, required, True, what))
            except Exception as exc:  # noqa: BLE001 - a broken item, or the learner's forward raised
                what, hint = broken_item(name, exc, spec.path)
                same = hint if isinstance(exc, ContractBroken) else what  # one bug, one key
                if same in causes:
                    cause = causes[same]
                    items.append(Item(name, required, False,
                                      f"没有单独计数：和「{cause}」是同一个问题（{what}）", "",
                                      needed_by, because=cause))
                    continue
                causes[same] = name
                items.append(Item(name, required, False, what, hint, needed_by))
    return items


def _item(items: list[Item], name: str) -> Item:
    return next(item for item in items if item.name == name)


def _root(items: list[Item], name: str) -> str:
    """The item that really failed: follows "skipped because of" back to its cause."""
    item = _item(items, name)
    return item.because or item.name


def passed(items: list[Item]) -> bool:
    return all(item.ok for item in items if item.required)


def failures(items: list[Item]) -> tuple[int, int]:
    """(required items that failed themselves, required items skipped because of them)."""
    failed = sum(item.required and not item.ok and not item.because for item in items)
    skipped = sum(item.required and bool(item.because) for item in items)
    return failed, skipped

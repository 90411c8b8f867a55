"""Exercise 3.3d: attention_mask added to the learner's own backbone. Its self-check (a wrong
answer of each kind gets its own hint, correct alternatives pass, hostile values do not make it
raise) and the cell that writes it into the learner's DIYModel.py: on the backbone 0.4 exports
(the recommended path), 3.3 then skips nothing."""

import itertools
import linecache

import pytest
import torch

from diy import DIYConfig, DIYForCausalLM
from diy import model as reference_model
from diy.backbone import ENV, BackboneSpec, supports
from diy.classroom import conformance
from diy.classroom.checks import check_forward_with_mask
from diy.classroom.checks.backbone_mask import MARK, add_attention_mask
from diy.generation import position_ids_from_mask
from diy.model import left_padding_mask
from tests.check_helpers import verdict
from tools.notebook_builder import lesson_cells

SOLUTION = next(c.source for c in lesson_cells("step3_3_generate")
                if c.stub is not None and "练习 3.3d" in c.source)
_names = itertools.count()


def cell(source: str, **names) -> dict:
    """A notebook cell run as the kernel runs it: in __main__, its source findable (IPython keeps
    each cell's source in linecache, which is how 0.4's and 3.3d's write cells read it)."""
    filename = f"<cell {next(_names)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"__name__": "__main__", "torch": torch, **names}
    exec(compile(source, filename, "exec"), namespace)
    return namespace


def define(source: str, base=reference_model.DIYModel):
    """The 3.3d exercise cell, with the backbone class the notebook calls DIYModel."""
    return cell(source, DIYModel=base, position_ids_from_mask=position_ids_from_mask,
                left_padding_mask=left_padding_mask)["DIYModelWithMask"]


# a mask by hand: causal and no padding key, (B, L, P+L); the answers add "each query sees itself"
BY_HAND = ("keys = torch.arange(past_len + L); queries = torch.arange(past_len, past_len + L)\n"
           "        itself = (keys[None, :] == queries[:, None])[None]\n"
           "        mask = ((keys[None, :] <= queries[:, None])[None]"
           " & attention_mask.bool()[:, None, :]")
POSITIONS_3_3B = ("def position_ids_from_mask(attention_mask):\n"
                  "    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)\n")


def learner(*edits, base=reference_model.DIYModel):
    source = SOLUTION
    for old, new in edits:
        assert old in source, old
        source = source.replace(old, new)
    return define(source, base)


@pytest.fixture
def reference_backbone(monkeypatch):
    monkeypatch.setenv(ENV, "")
    monkeypatch.delenv(ENV)


def test_the_solution_passes(capsys, reference_backbone):
    cls = learner()
    assert check_forward_with_mask(cls) is cls
    assert verdict(capsys).startswith("✅ 练习 3.3d 通过")


@pytest.mark.parametrize("edits", [
    # positions counted from 0 in every row: RoPE sees only differences (section 4 shows it)
    [("positions = position_ids_from_mask(attention_mask)[:, past_len:]",
      "positions = torch.arange(past_len, past_len + L).expand(B, L)")],
    # the tables indexed another way
    [("cos = self.rotary.cos[positions][:, None]",
      "cos = self.rotary.cos.index_select(0, positions.flatten()).view(B, 1, L, -1)")],
    # the mask written out by hand: causal, no padding key, each query sees itself
    [("mask = left_padding_mask(attention_mask.bool(), past_len, L)",
      BY_HAND + " | itself)[:, None]")],
], ids=["positions from 0", "index_select", "mask by hand"])
def test_correct_alternatives_pass(capsys, reference_backbone, edits):
    cls = learner(*edits)
    assert check_forward_with_mask(cls) is cls
    assert verdict(capsys).startswith("✅ 练习 3.3d 通过")


WRONG = {
    "no mask at all": ([("mask = left_padding_mask(attention_mask.bool(), past_len, L)",
                         "mask = left_padding_mask(torch.ones_like(attention_mask).bool(), "
                         "past_len, L)")], "与这一行单独运行时不同"),
    "mask ignored, positions from 0": (
        [("mask = left_padding_mask(attention_mask.bool(), past_len, L)",
          "mask = left_padding_mask(torch.ones_like(attention_mask).bool(), past_len, L)"),
         ("positions = position_ids_from_mask(attention_mask)[:, past_len:]",
          "positions = torch.arange(past_len, past_len + L).expand(B, L)")],
        "attention_mask 没有起作用"),
    "cos without the heads' dimension": ([("cos = self.rotary.cos[positions][:, None]",
                                           "cos = self.rotary.cos[positions]"),
                                          ("sin = self.rotary.sin[positions][:, None]",
                                           "sin = self.rotary.sin[positions]")], "[:, None]"),
    "every position, not the new ones": (
        [("positions = position_ids_from_mask(attention_mask)[:, past_len:]",
          "positions = position_ids_from_mask(attention_mask)")], "[:, past_len:]"),
    "the first L positions": (
        [("positions = position_ids_from_mask(attention_mask)[:, past_len:]",
          "positions = position_ids_from_mask(attention_mask)[:, :L]")], "带缓存"),
    "mask without the cache's length": (
        [("mask = left_padding_mask(attention_mask.bool(), past_len, L)",
          "mask = left_padding_mask(attention_mask.bool(), 0, L)")],
        "第二个参数是缓存里已有的长度"),
    "past_len from len(past_key_values)": (
        [("past_len = 0 if past_key_values is None else past_key_values[0][0].shape[2]",
          "past_len = 0 if past_key_values is None else len(past_key_values)")],
        "past_key_values[0][0].shape[2]"),
    "the past never given to the layers": (
        [("x, present = layer(x, cos, sin, mask, past_kv)",
          "x, present = layer(x, cos, sin, mask, None)")], "第 i 层拿"),
    "mask not bool": ([("left_padding_mask(attention_mask.bool(), past_len, L)",
                        "left_padding_mask(attention_mask, past_len, L)")], ".bool()"),
    "only hidden_states with use_cache": (
        [("return (hidden_states, presents) if use_cache else hidden_states",
          "return hidden_states")], "(hidden_states, presents)"),
    "seq_lengths dropped without a mask": (
        [("return super().forward(input_ids, seq_lengths, past_key_values, use_cache, is_training)",
          "return super().forward(input_ids, None, past_key_values, use_cache, is_training)")],
        "seq_lengths"),
    "attention_mask swallowed by **kwargs": (
        [("is_training=True,\n                attention_mask=None):",
          "is_training=True, **kwargs):\n        attention_mask = kwargs.get('attention_mask')")],
        "写出名为 attention_mask 的参数"),
}


@pytest.mark.parametrize("mistake", WRONG)
def test_each_wrong_answer_gets_its_hint(capsys, reference_backbone, mistake):
    edits, words = WRONG[mistake]
    returned = check_forward_with_mask(learner(*edits))
    text = verdict(capsys)
    assert text.startswith("❌ 练习 3.3d 未通过") and words in text, text
    assert returned.__name__ == "DIYModelWithMask" and returned.__module__ != "__main__"


@pytest.mark.parametrize("value", [None, 3, "DIYModelWithMask"])
def test_hostile_values_never_raise(capsys, reference_backbone, value):
    check_forward_with_mask(value)
    assert verdict(capsys)[0] in "⏳❌"


def test_a_forward_returning_nonsense_is_named(capsys, reference_backbone):
    cls = learner(("hidden_states = self.norm(x)", "hidden_states = None  #"))
    check_forward_with_mask(cls)
    text = verdict(capsys)
    assert text.startswith("❌") and "NoneType" in text


def test_the_placeholder_is_todo(capsys, reference_backbone):
    stub = next(c.stub for c in lesson_cells("step3_3_generate")
                if c.stub is not None and "练习 3.3d" in c.source)
    check_forward_with_mask(define(stub))
    assert verdict(capsys).startswith("⏳ 练习 3.3d 待完成")


def test_on_the_reference_the_write_cell_writes_nothing(capsys, reference_backbone):
    assert not add_attention_mask(position_ids_from_mask, learner())
    assert "本来就有 attention_mask" in verdict(capsys)


# ----------------------------------------------- the recommended path: 0.4's export, then 3.3d

@pytest.fixture
def exported(tmp_path, monkeypatch, capsys):
    """notebooks/DIYModel.py as 0.4's export writes it from the solution, as DIY_BACKBONE."""
    from tests.test_checks_step0 import PARTS, export_backbone, learner_namespace

    ns = learner_namespace()
    path = tmp_path / "DIYModel.py"
    assert export_backbone([ns[n] for n in (*PARTS, "DIYMLP", "DIYDecoderLayer", "DIYModel")],
                           path)
    capsys.readouterr()
    monkeypatch.setenv(ENV, str(path))
    return path


def test_the_exported_backbone_gets_attention_mask_and_3_3_skips_nothing(exported, capsys):
    from diy.backbone import backbone_class

    small = DIYConfig(vocab_size=6400, hidden_size=32, num_layers=2, num_heads=2, max_seq_len=32,
                      dropout=0.0)
    torch.manual_seed(0)
    DIYForCausalLM(small).save_pretrained(exported.parent / "step2")  # 2.3's checkpoint
    before = DIYForCausalLM.from_pretrained(exported.parent / "step2")
    assert not supports(before, "attention_mask") and supports(before, "0.4_parts")
    capsys.readouterr()

    own = define(SOLUTION, backbone_class())  # 3.3d, on the learner's own class
    assert check_forward_with_mask(own) is own
    assert verdict(capsys).startswith("✅ 练习 3.3d 通过")
    assert not add_attention_mask(position_ids_from_mask, own)  # 3.3b's reference: refused
    assert "还不能写进 DIYModel.py" in verdict(capsys)
    positions = cell(POSITIONS_3_3B)["position_ids_from_mask"]  # the learner's 3.3b
    for _ in range(2):  # a second run replaces what the first appended
        assert add_attention_mask(positions, own)
        assert verdict(capsys).startswith("✅ 把 attention_mask 写进了你的 DIYModel.py")
    text = exported.read_text(encoding="utf-8")
    assert text.count(MARK) == 1
    assert text.rstrip().endswith("DIYModel = DIYModelWithMask  # DIYModel 从此是加上 "
                                  "attention_mask 的这个类")
    assert "class DIYModelWithMask(DIYModel):" in text

    items = {item.name: item for item in conformance.run(BackboneSpec.parse(str(exported)))}
    assert all(item.ok for item in items.values()), [i.render() for i in items.values()]
    after = DIYForCausalLM.from_pretrained(exported.parent / "step2")  # same weights, said
    assert "骨干文件 DIYModel.py 在保存这个检查点之后改过" in capsys.readouterr().err
    assert all(supports(after, feature) for feature in ("attention_mask", "0.4_parts",
                                                        "transformers"))
    prompts = [[5, 6, 7, 8], [9, 10]]  # left padding, batched: each row as generated alone
    together = after.generate(prompts, max_new_tokens=6)
    for row, prompt in enumerate(prompts):
        alone = after.generate(torch.tensor([prompt]), max_new_tokens=6)
        assert torch.equal(together[row, -len(prompt) - 6:], alone[0])


def test_a_backbone_without_0_4s_parts_is_told_which_part(capsys, monkeypatch):
    from diy.backbone import backbone_class
    from tests.test_backbone_learners import GPT2

    monkeypatch.setenv(ENV, f"{GPT2}:GPT2Style")
    check_forward_with_mask(define(SOLUTION, backbone_class()))
    text = verdict(capsys)
    assert text.startswith("❌ 练习 3.3d 未通过") and "你的骨干没有 self.rotary" in text
    assert "换成你自己骨干里对应零件的名字" in text


def test_the_write_cell_refuses_a_file_it_would_break(exported, capsys):
    from diy.backbone import backbone_class

    own = define(SOLUTION, backbone_class())
    exported.write_text(exported.read_text(encoding="utf-8").replace(
        "super().__init__()", "super(DIYModel, self).__init__()", 1), encoding="utf-8")
    before = exported.read_text(encoding="utf-8")
    assert not add_attention_mask(cell(POSITIONS_3_3B)["position_ids_from_mask"], own)
    assert "super(DIYModel, self)" in verdict(capsys)
    assert exported.read_text(encoding="utf-8") == before


def test_a_mask_where_padding_sees_nothing_is_nan_on_a_softmax_backbone(exported, capsys):
    """0.3's attention (masked_fill with -inf, then softmax) turns a row with no key into NaN,
    which the next layer spreads to real tokens; SDPA (the course's) gives such a row zeros."""
    from diy.backbone import backbone_class

    cls = learner(("mask = left_padding_mask(attention_mask.bool(), past_len, L)",
                   BY_HAND + ")[:, None]"), base=backbone_class())
    check_forward_with_mask(cls)
    text = verdict(capsys)
    assert text.startswith("❌ 练习 3.3d 未通过") and "NaN" in text and "至少看得见自己" in text

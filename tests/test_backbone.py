"""A learner's own backbone file: loading it (diy.backbone) and checking it against the course's
contract (diy.classroom.conformance, python -m diy.classroom.doctor --backbone)."""

import sys
from pathlib import Path

import pytest
import torch

from diy.backbone import ENV, BackboneSpec, DIYBackboneError
from diy.classroom import conformance

GPT2 = Path(__file__).parent / "backbones" / "gpt2_style.py"


def items_of(spec_text):
    return {item.name: item for item in conformance.run(BackboneSpec.parse(spec_text))}


def test_parse_path_and_class():
    spec = BackboneSpec.parse("some/DIYModel.py:MyModel")
    assert spec.class_name == "MyModel" and spec.path.is_absolute()
    assert BackboneSpec.parse("some/DIYModel.py").class_name == "DIYModel"
    # a Windows drive letter is not a class name
    assert BackboneSpec.parse("C:\\work\\DIYModel.py").class_name == "DIYModel"


def test_from_env(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert BackboneSpec.from_env() is None
    monkeypatch.setenv(ENV, f"{GPT2}:GPT2Style")
    assert BackboneSpec.from_env() == BackboneSpec(GPT2.resolve(), "GPT2Style")


def test_the_reference_backbone_honours_every_item(tmp_path):
    (tmp_path / "DIYModel.py").write_text("from diy.model import DIYModel\n", encoding="utf-8")
    items = conformance.run(BackboneSpec.parse(str(tmp_path / "DIYModel.py")))
    assert [item.name for item in items if not item.ok] == []
    assert conformance.passed(items)


def test_a_gpt2_style_backbone_passes_the_required_items_and_warns_on_the_optional():
    items = items_of(f"{GPT2}:GPT2Style")
    assert conformance.passed(list(items.values()))
    not_ok = {name for name, item in items.items() if not item.ok}
    assert not_ok == {"attention_mask", "与 transformers 一致"}
    assert items["attention_mask"].render().startswith("⚠️")
    assert "wte.weight" in items["与 transformers 一致"].what  # names what does not load


@pytest.mark.parametrize("broken, item, words", [
    ("NoCausalMask", "因果", "因果 mask"),
    ("IgnoresCacheOffset", "缓存 ≡ 无缓存", "偏移"),
    ("NoPresents", "缓存路径", "presents"),
    ("AlwaysTuple", "训练路径", "只返回一个张量"),
    ("Double", "训练路径", "float32"),
    ("BTHDPresents", "缓存路径", "(B, num_heads, 长度, head_dim)"),
    ("DropoutInEval", "eval 时确定", "dropout"),
    ("PaddingOffByOne", "右 padding", "seq_lengths"),
])
def test_each_broken_backbone_is_rejected_with_the_right_item(broken, item, words):
    items = items_of(f"{GPT2}:{broken}")
    assert not conformance.passed(list(items.values()))
    first_failure = next(i for i in items.values() if i.required and not i.ok)
    assert first_failure.name == item, first_failure.render()
    assert words in first_failure.hint + first_failure.what
    assert first_failure.render().startswith("❌") and "用到它的" in first_failure.render()


@pytest.mark.parametrize("source, words", [
    (None, "找不到骨干文件"),
    ("def f(:\n", "语法错误"),
    ("raise RuntimeError('boom')\n", "导入 DIYModel.py 时出错（第 1 行）"),
    ("from torch import nn\nclass Other(nn.Module):\n    pass\n", "没有名为 DIYModel"),
    ("from torch import nn\nclass DIYModel(nn.Module):\n    def __init__(self, config):\n"
     "        super().__init__()\n    def forward(self, input_ids, seq_lengths=None,\n"
     "                past_key_values=None, use_cache=False, is_training=True):\n"
     "        return input_ids\n", "六个位置参数"),
    ("from torch import nn\nclass DIYModel(nn.Module):\n    pass\n", "没有定义 forward"),
    ("from torch import nn\nclass DIYModel(nn.Module):\n    def forward(self, ids):\n"
     "        return ids\n", "没有参数 seq_lengths、past_key_values、use_cache、is_training"),
    ("from my_layers import Block\n", "找不到模块 my_layers"),
])
def test_an_unusable_file_gets_one_clear_error_before_any_work(tmp_path, source, words):
    path = tmp_path / "DIYModel.py"
    if source is not None:
        path.write_text(source, encoding="utf-8")
    with pytest.raises(DIYBackboneError) as caught:
        BackboneSpec.parse(str(path)).build()
    assert words in caught.value.problem + caught.value.fix, caught.value
    assert caught.value.gloss  # English gloss
    [item] = conformance.run(BackboneSpec.parse(str(path)))
    assert item.name == "构造" and not item.ok


def test_no_such_class_lists_the_classes_in_the_file():
    with pytest.raises(DIYBackboneError) as caught:
        BackboneSpec.parse(f"{GPT2}:Nope").load()
    assert "GPT2Style" in caught.value.problem and "NoCausalMask" in caught.value.problem


def test_conformance_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    conformance.run(BackboneSpec.parse(f"{GPT2}:GPT2Style"))
    assert torch.equal(torch.rand(3), expected)


def test_doctor_backbone_command_exit_codes(capsys):
    """python -m diy.classroom.doctor --backbone, in-process (its module entry is run as a command
    in test_doctor.py)."""
    from diy.classroom.doctor import main

    assert main(["--backbone", f"{GPT2}:GPT2Style"]) == 0
    good = capsys.readouterr()
    assert "符合课程的约定" in good.out and "⚠️" in good.out and good.err == ""
    assert main(["--backbone", f"{GPT2}:PaddingOffByOne"]) == 1
    bad = capsys.readouterr()
    assert "❌ 右 padding" in bad.out and bad.err == ""


def test_a_forward_that_swallows_attention_mask_is_not_taken_for_one_that_uses_it():
    from diy.backbone import accepts_attention_mask

    items = items_of(f"{GPT2}:KwargsMask")
    assert conformance.passed(list(items.values()))  # the required items still hold
    assert items["attention_mask"].render().startswith("⚠️ attention_mask：左 padding 的行")
    model = BackboneSpec.parse(f"{GPT2}:KwargsMask").build()
    assert not accepts_attention_mask(model)  # so generate refuses left padding, not guesses


def test_a_file_next_to_the_backbone_can_be_imported(tmp_path):
    (tmp_path / "my_layers.py").write_text("from torch import nn\nBlock = nn.Linear\n",
                                           encoding="utf-8")
    (tmp_path / "DIYModel.py").write_text(
        f"from my_layers import Block\nimport sys\nsys.path.insert(0, {str(GPT2.parent)!r})\n"
        "from gpt2_style import GPT2Style as DIYModel\n", encoding="utf-8")
    assert BackboneSpec.parse(str(tmp_path / "DIYModel.py")).load().__name__ == "GPT2Style"
    assert str(tmp_path) not in sys.path  # put there for the import only


def test_a_bad_class_name_after_a_real_file_is_named():
    with pytest.raises(DIYBackboneError, match="没有名为 Outer.Inner"):
        BackboneSpec.parse(f"{GPT2}:Outer.Inner").load()

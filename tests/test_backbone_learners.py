"""Learners' own backbones, one per finding of issue 26 (tests/backbones/), each with the message
the learner gets: the study plan's is_training dropout runs the whole course; a backbone that
breaks the contract is refused where it is first built (the CLI, a notebook's first cell),
naming the file, the item and the doctor; the doctor reports the root cause once, with the line
of the learner's file and the one-line fix of a cache layout; checkpoints say what differs."""

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from diy import CharTokenizer, DIYConfig, DIYForCausalLM, backbone
from diy.backbone import ENV, BackboneSpec, DIYBackboneError
from diy.classroom import conformance
from diy.errors import DIYInputError
from tools.notebook_builder import ROOT

HERE = Path(__file__).parent / "backbones"
GPT2, PLAN, MHA = HERE / "gpt2_style.py", HERE / "plan_dropout.py", HERE / "mha_cache.py"
SMALL = DIYConfig(vocab_size=97, hidden_size=32, num_layers=2, num_heads=2, max_seq_len=32,
                  dropout=0.3)


@pytest.fixture
def no_backbone(monkeypatch):
    """DIY_BACKBONE unset during and after the test (the CLIs set it through backbone.use)."""
    monkeypatch.setenv(ENV, "")
    monkeypatch.delenv(ENV)


def report(spec_text):
    items = conformance.run(BackboneSpec.parse(spec_text))
    return {item.name: item for item in items}, items


# ------------------------------------------------------------ the plan's is_training dropout

@pytest.fixture
def plan(monkeypatch):
    monkeypatch.setenv(ENV, str(PLAN))


def test_the_plans_dropout_on_is_training_passes_the_doctor():
    items, listed = report(str(PLAN))
    assert conformance.passed(listed), [item.render() for item in listed]
    assert "你的 dropout 跟随 is_training" in items["eval 时确定"].what
    # refused before: eval() with the default is_training=True kept its dropout on
    model = BackboneSpec.parse(str(PLAN)).build(DIYConfig())
    ids = torch.arange(12)[None]
    with torch.no_grad():
        assert not torch.equal(model.eval()(ids), model(ids))


def test_the_course_calls_the_backbone_with_is_training_of_its_mode(plan):
    model = DIYForCausalLM(SMALL)
    seen = []
    model.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((module.training, kwargs["is_training"])),
        with_kwargs=True)
    ids = torch.randint(0, 97, (2, 6))
    with torch.no_grad():
        train = [model.train()(ids) for _ in range(2)]
        evals = [model.eval()(ids) for _ in range(2)] + [model(ids, is_training=True)]
        logits, past = model(ids, use_cache=True, is_training=False)
        model.train()(ids[:, :1], past_key_values=past, use_cache=True, is_training=False)
    assert seen == [(True, True)] * 2 + [(False, False)] * 4 + [(True, False)]
    assert not torch.equal(*train)  # dropout 0.3 on in train()
    assert torch.equal(evals[0], evals[1]) and torch.equal(evals[0], evals[2])
    with pytest.raises(DIYInputError, match="is_training=False"):  # refused as the reference does
        model.eval()(ids, use_cache=True)


def test_the_plans_backbone_through_training_evaluation_and_greedy(plan):
    from diy.classroom.checks.cached_greedy import (
        reference_greedy_no_cache,
        reference_greedy_with_cache,
    )
    from diy.classroom.checks.greedy import reference_greedy_continue
    from diy.training import TrainConfig, evaluate, train

    torch.manual_seed(0)
    model = DIYForCausalLM(SMALL)
    tokens = torch.randint(4, 97, (200,))
    history = train(model, tokens, TrainConfig(steps=4, batch_size=2, seq_len=16, eval_every=2),
                    eval_tokens=tokens[:40], progress=False)
    from diy.data import eval_batch

    ids, labels = eval_batch(tokens[:40], 16)
    assert model.training  # evaluate puts the mode back
    again = [evaluate(model, ids, labels) for _ in range(2)]
    assert again[0] == again[1] == history.eval_loss[-1]  # no dropout in evaluation
    prompt = tokens[None, :5]
    greedy = [reference_greedy_continue(model.train(), prompt, 12) for _ in range(2)]
    assert torch.equal(*greedy)  # 2.3's loop: eval() inside, repeatable
    assert torch.equal(greedy[0], reference_greedy_no_cache(model.train(), prompt, 12))
    assert torch.equal(greedy[0], reference_greedy_with_cache(model.train(), prompt, 12))  # 3.1
    assert torch.equal(greedy[0], model.generate(prompt, max_new_tokens=12))


def test_every_check_that_blamed_the_plans_backbone_now_passes_it(plan, capsys):
    """2.2b (evaluate), 2.3 and 3.1 (greedy loops) ran the model in eval() with is_training=True
    and told a correct answer it was wrong; 1.1 and 1.3 run it too."""
    from diy.classroom.checks import (
        check_causal_lm,
        check_evaluate,
        check_greedy_continue,
        check_greedy_no_cache,
        check_greedy_with_cache,
        check_lm_head,
    )
    from diy.classroom.checks.cached_greedy import (
        reference_greedy_no_cache,
        reference_greedy_with_cache,
    )
    from diy.classroom.checks.greedy import reference_greedy_continue
    from diy.classroom.checks.lm_head import reference_build_lm_head, reference_forward_to_logits
    from diy.training import evaluate

    answers = (reference_build_lm_head, reference_forward_to_logits)
    assert check_lm_head(*answers) == answers
    assert check_causal_lm(DIYForCausalLM) is DIYForCausalLM
    for check, answer in ((check_evaluate, evaluate),
                          (check_greedy_continue, reference_greedy_continue),
                          (check_greedy_no_cache, reference_greedy_no_cache),
                          (check_greedy_with_cache, reference_greedy_with_cache)):
        assert check(answer) is answer
    text = capsys.readouterr().out
    assert text.count("✅") == 6 and "❌" not in text, text


# ------------------------------------------------- refused where the backbone is first built

def broken_checkpoint(tmp_path, monkeypatch, spec_text):
    """A checkpoint of a backbone the contract refuses, saved as if the check had not run."""
    with monkeypatch.context() as patch:
        patch.setenv(ENV, spec_text)
        patch.setattr(backbone, "check_contract", lambda *args: None)
        DIYForCausalLM(DIYConfig(**{**SMALL.to_dict(), "vocab_size": 6400})) \
            .save_pretrained(tmp_path / "ck")
    return tmp_path / "ck"


@pytest.mark.parametrize("broken, words", [
    ("StackedCache", "[tuple(kv) for kv in presents]"),
    ("BTHDPresents", "k.transpose(1, 2)"),
])
def test_a_wrong_cache_layout_is_refused_by_the_cli_before_any_text(tmp_path, monkeypatch,
                                                                    capsys, no_backbone,
                                                                    broken, words):
    from diy import generate, train

    spec = f"{GPT2}:{broken}"
    folder = broken_checkpoint(tmp_path, monkeypatch, spec)
    monkeypatch.chdir(tmp_path)
    assert generate.main(["--checkpoint", str(folder), "--prompt", "海边的", "--backbone",
                          spec]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # not a word generated: refused before, not appended to half the text
    assert f"gpt2_style.py:{broken}" in err and "「缓存路径」" in err and words in err
    assert f"python -m diy.classroom.doctor --backbone {GPT2}:{broken}" in err
    assert "缓存必须来自" not in err and "原样传回来" not in err and "Traceback" not in err
    assert train.main(["--steps", "2", "--no-progress", "--out", "new", "--backbone", spec]) == 2
    assert "「缓存路径」" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_a_notebooks_first_cell_refuses_it_with_the_fix_not_a_traceback(monkeypatch, capsys):
    """1.1's first cell: DIYModel = backbone_class(), describe(); the kernel's handler prints
    the ❌ and the fix instead of a traceback through the course's code."""
    from diy.backbone import backbone_class, describe
    from diy.classroom.checks import ipython_hints

    monkeypatch.setenv(ENV, f"{GPT2}:StackedCache")
    for first_cell in (backbone_class, describe):
        with pytest.raises(DIYBackboneError) as caught:
            first_cell()
    printed = []
    shell = type("Shell", (), {"showtraceback": lambda self, *a, **k: printed.append("tb")})()
    assert ipython_hints._handler(shell, DIYBackboneError, caught.value, None) == []
    text = capsys.readouterr().out
    assert text.startswith("❌ 你的骨干 gpt2_style.py:StackedCache 不符合约定的「缓存路径」")
    assert "修复：一行改好" in text and "diy.classroom.doctor --backbone" in text
    assert printed == []


def test_the_first_build_leaves_the_random_state_and_the_mode_alone(monkeypatch):
    monkeypatch.setenv(ENV, str(PLAN))
    torch.manual_seed(3)
    expected = torch.rand(2)
    torch.manual_seed(3)
    backbone._VERDICTS.clear()
    backbone.backbone_class()  # builds one model and checks it
    assert torch.equal(torch.rand(2), expected)
    backbone._VERDICTS.clear()
    torch.manual_seed(0)
    model = DIYForCausalLM(SMALL)
    assert model.training and all(p.grad is None for p in model.parameters())


# ------------------------------------------------------------------------ the doctor's report

def test_a_constructor_with_the_contracts_names_in_another_order():
    items, listed = report(f"{GPT2}:SwappedOrder")
    assert [item.name for item in listed] == ["构造"]  # stopped there, not 8 items later
    what = items["构造"].what
    assert "参数顺序" in what and "hidden_size=2, num_layers=256" in what
    assert "def __init__(self, vocab_size, num_layers, hidden_size" in items["构造"].hint


def test_an_assert_in_the_constructor_shows_the_asserted_line():
    items, _ = report(f"{GPT2}:AssertsInInit")
    what = items["构造"].what
    assert "gpt2_style.py 第" in what and "assert hidden_size // num_heads == 32" in what
    assert "hidden_size=256, num_heads=4" in items["构造"].hint and "断言" in items["构造"].hint


def test_the_root_cause_is_reported_once(capsys):
    from diy.classroom.doctor import main

    items, listed = report(f"{GPT2}:AlwaysTuple")
    assert conformance.failures(listed) == (1, 6)
    assert items["eval 时确定"].because == "训练路径" and "同一个问题" in items["eval 时确定"].what
    assert items["因果"].because == "训练路径" and items["因果"].render().startswith("⏭️")
    assert main(["--backbone", f"{GPT2}:AlwaysTuple"]) == 1
    out = capsys.readouterr().out
    assert out.count("❌") == 1 and "1 项必需的约定没有满足（另有 6 项因此没有检查" in out


def test_a_runtime_error_names_the_line_of_the_learners_file():
    items, listed = report(f"{GPT2}:CrashesWithCache")
    what = items["缓存路径"].what
    assert what.startswith("运行出错（gpt2_style.py 第")
    assert "torch.cat([past[0], k], dim=2)" in what
    assert "use_cache=True" in items["缓存路径"].hint  # how the item called forward
    assert conformance.failures(listed)[0] == 1


@pytest.mark.parametrize("spec, found, fix", [
    (f"{GPT2}:StackedCache", "(2, 2, 4, 8, 64) = (2, B, num_heads, 长度, head_dim)",
     "[tuple(kv) for kv in presents]"),
    (str(MHA), "(2, 8, 256) = (B, 长度, hidden_size)", "h = x.view(B, T, 4, 64).transpose(1, 2)"),
    (f"{GPT2}:BTHDPresents", "(2, 8, 4, 64) = (B, 长度, num_heads, head_dim)",
     "present = (k.transpose(1, 2), v.transpose(1, 2))"),
])
def test_a_cache_of_another_layout_gets_its_shape_and_the_one_line_fix(spec, found, fix):
    items, _ = report(spec)
    item = items["缓存路径"]
    assert found in item.what and "(2, 4, 8, 64)" in item.what and fix in item.hint
    assert items["缓存 ≡ 无缓存"].because == "缓存路径"


# ----------------------------------------------------------------------------- checkpoints

def test_a_checkpoint_of_another_file_with_the_same_parameters(tmp_path, monkeypatch, capsys):
    first, second = tmp_path / "a" / "DIYModel.py", tmp_path / "b" / "Mine.py"
    for path, extra in ((first, ""), (second, "\n# my copy\n")):
        path.parent.mkdir()
        path.write_text(GPT2.read_text(encoding="utf-8") + extra, encoding="utf-8")
    monkeypatch.setenv(ENV, f"{first}:GPT2Style")
    DIYForCausalLM(SMALL).save_pretrained(tmp_path / "ck")
    monkeypatch.setenv(ENV, f"{second}:GPT2Style")
    DIYForCausalLM.from_pretrained(tmp_path / "ck")  # loads: the parameters fit
    said = capsys.readouterr().err
    sha = json.loads((tmp_path / "ck" / "config.json").read_text())["diy_backbone"]["sha256"]
    assert "保存时的骨干是 DIYModel.py:GPT2Style" in said
    assert "现在运行的是 Mine.py:GPT2Style" in said
    assert sha[:8] in said and "照样装上了" in said and "参数对不上" not in said
    moved = tmp_path / "c" / "DIYModel.py"  # the same content elsewhere: the same model, silent
    moved.parent.mkdir()
    shutil.copy(first, moved)
    monkeypatch.setenv(ENV, f"{moved}:GPT2Style")
    DIYForCausalLM.from_pretrained(tmp_path / "ck")
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------ a path with spaces

def test_a_backbone_path_with_spaces(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "my backbones"
    folder.mkdir()
    path = folder / "DIYModel.py"
    shutil.copy(PLAN, path)
    spec = BackboneSpec.parse(f"{path}:DIYModel")
    assert spec.path == path and spec.class_name == "DIYModel"
    assert backbone.doctor_command(spec) == \
        f"python -m diy.classroom.doctor --backbone {shlex.quote(str(path))}"
    monkeypatch.setenv(ENV, str(path))
    assert "DIYModel.py" in backbone.describe()


@pytest.mark.skipif(shutil.which("make") is None, reason="no make (Windows)")
@pytest.mark.parametrize("given, absolute", [
    ("tests/my backbones/DIYModel.py:Mine", f"{ROOT}/tests/my backbones/DIYModel.py:Mine"),
    ("/somewhere/with space/DIYModel.py", "/somewhere/with space/DIYModel.py"),
])
def test_make_lab_keeps_a_path_with_spaces_whole(given, absolute):
    dry = subprocess.run(["make", "-n", "lab", f"BACKBONE={given}"], cwd=ROOT,
                         capture_output=True, text=True)
    assert f'diy.classroom.doctor --backbone "{absolute}"' in dry.stdout, dry.stdout
    assert f'{ENV}="{absolute}"' in dry.stdout


def test_the_generate_cli_runs_the_plans_backbone(tmp_path, monkeypatch, capsys, no_backbone):
    from diy import generate

    with monkeypatch.context() as patch:
        patch.setenv(ENV, str(PLAN))
        torch.manual_seed(0)
        DIYForCausalLM(DIYConfig(**{**SMALL.to_dict(), "vocab_size": 6400})) \
            .save_pretrained(tmp_path / "ck")
    runs = []
    for _ in range(2):
        assert generate.main(["--checkpoint", str(tmp_path / "ck"), "--prompt", "海边的",
                              "--max-new-tokens", "6", "--backbone", str(PLAN)]) == 0
        runs.append(capsys.readouterr().out)
    assert runs[0] == runs[1] and runs[0].startswith("海边的")  # greedy in eval(): repeatable
    assert len(CharTokenizer().encode(runs[0].strip())) >= 3

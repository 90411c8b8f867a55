"""The whole course on a learner's backbone (DIY_BACKBONE): DIYForCausalLM, training, the course
model's cache, checkpoints, generation and the command-line tools use the learner's class; unset,
the course's reference. The learner's backbone here is GPT-2 style (tests/backbones), not
Llama-shaped: LayerNorm, learned absolute positions, its own module names, no attention_mask."""

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from diy import CharTokenizer, DIYConfig, DIYForCausalLM, DIYModel
from diy.backbone import ENV, backbone_class, describe
from diy.errors import DIYInputError
from diy.training import TrainConfig, train_on_text
from tools.notebook_builder import ROOT

GPT2 = Path(__file__).parent / "backbones" / "gpt2_style.py"
SMALL = DIYConfig(vocab_size=97, hidden_size=32, num_layers=2, num_heads=2, max_seq_len=32,
                  dropout=0.0)


@pytest.fixture
def no_backbone(monkeypatch):
    """DIY_BACKBONE unset now and after the test, whatever the test (or a tool it runs, through
    backbone.use) sets: a leaked variable would reach the next notebook kernels of the worker."""
    monkeypatch.setenv(ENV, "")  # recorded first, so that teardown removes it again
    monkeypatch.delenv(ENV)


@pytest.fixture
def gpt2(monkeypatch):
    monkeypatch.setenv(ENV, f"{GPT2}:GPT2Style")
    return backbone_class()


@pytest.fixture(scope="module")
def trained_gpt2():
    """The course recipe's first 6 steps on the GPT-2 style backbone (the env set only here)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV, f"{GPT2}:GPT2Style")
        model, history = train_on_text(config=TrainConfig(steps=6), progress=False)
    return model, history


def test_unset_the_course_runs_on_its_reference(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    model = DIYForCausalLM(SMALL)
    assert type(model.model) is DIYModel and model.is_reference
    assert backbone_class() is DIYModel and "diy.DIYModel" in describe()


def test_set_every_part_uses_the_learners_class(gpt2):
    model = DIYForCausalLM(SMALL)
    assert type(model.model) is gpt2 and not model.is_reference
    assert "model.wte.weight" in model.state_dict() and model.config == SMALL
    assert describe() == "骨干网络：你的 gpt2_style.py:GPT2Style（来自 DIY_BACKBONE）"
    ids = torch.randint(0, 97, (2, 10))
    logits = model(ids)
    assert logits.shape == (2, 10, 97) and logits.dtype == torch.float32
    # right padding through seq_lengths (a list, as the lessons pass it) and the cache path
    assert model(ids, seq_lengths=[10, 6]).shape == (2, 10, 97)
    logits, presents = model.eval()(ids, use_cache=True, is_training=False)
    assert len(presents) == SMALL.num_layers


def test_losses_and_gradients_on_the_learners_backbone(gpt2):
    from diy import causal_lm_loss

    model = DIYForCausalLM(SMALL)
    ids = torch.randint(0, 97, (3, 12))
    labels = ids.clone()
    labels[1, 9:], labels[2, 5:] = -100, -100  # right padding, ignored
    loss = causal_lm_loss(model(ids, seq_lengths=[12, 9, 5]), labels)
    assert abs(loss.item() - math.log(97)) < 1.0  # an untrained model is near uniform
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_the_course_recipe_overfits_the_passage_on_the_learners_backbone(trained_gpt2):
    model, history = trained_gpt2
    assert type(model.model).__name__ == "GPT2Style"
    assert history.eval_loss[-1] < 5.0  # measured 3.14 after 6 steps; ln 6400 = 8.76 before


def test_cached_generation_equals_uncached_on_the_learners_backbone(trained_gpt2, monkeypatch):
    monkeypatch.setenv(ENV, f"{GPT2}:GPT2Style")
    model, _ = trained_gpt2
    ids = torch.tensor([CharTokenizer().encode("海边的小镇上有一")])
    cached = model.generate(ids, max_new_tokens=30)
    assert torch.equal(cached, model.generate(ids, max_new_tokens=30, use_cache=False))
    sampled = [model.generate(ids, max_new_tokens=20, do_sample=True, top_k=20, use_cache=cache,
                              generator=torch.Generator().manual_seed(3))
               for cache in (True, False)]
    assert torch.equal(*sampled)
    # a mask of ones is no padding: accepted although this backbone takes no attention_mask
    assert torch.equal(model.generate(ids, max_new_tokens=30,
                                      attention_mask=torch.ones_like(ids)), cached)


def test_left_padding_needs_attention_mask_and_is_refused_before_any_work(gpt2):
    model = DIYForCausalLM(SMALL)
    calls = []
    model.model.register_forward_pre_hook(lambda module, args: calls.append(1))
    with pytest.raises(DIYInputError) as caught:
        model.generate([[5, 6, 7], [8]], max_new_tokens=3)
    assert "attention_mask" in caught.value.problem and "一条一条" in caught.value.fix
    assert calls == []


def test_checkpoints_remember_the_backbone(tmp_path, monkeypatch, gpt2):
    model = DIYForCausalLM(SMALL).eval()
    model.save_pretrained(tmp_path / "mine")
    saved = json.loads((tmp_path / "mine" / "config.json").read_text(encoding="utf-8"))
    assert saved["diy_backbone"]["class"] == "GPT2Style"
    ids = torch.randint(0, 97, (1, 8))
    again = DIYForCausalLM.from_pretrained(tmp_path / "mine")
    assert torch.equal(again(ids), model(ids))

    monkeypatch.delenv(ENV)
    with pytest.raises(DIYInputError) as caught:  # the reference cannot hold GPT-2's weights
        DIYForCausalLM.from_pretrained(tmp_path / "mine")
    assert "gpt2_style.py:GPT2Style" in caught.value.problem and ENV in caught.value.fix
    DIYForCausalLM(SMALL).save_pretrained(tmp_path / "reference")
    assert "diy_backbone" not in (tmp_path / "reference" / "config.json").read_text()
    monkeypatch.setenv(ENV, f"{GPT2}:GPT2Style")
    with pytest.raises(DIYInputError, match="diy.DIYModel"):
        DIYForCausalLM.from_pretrained(tmp_path / "reference")


def test_the_course_models_cache_is_keyed_on_the_backbone_file(tmp_path, monkeypatch):
    from diy.classroom.course_model import fingerprint

    monkeypatch.delenv(ENV, raising=False)
    reference = fingerprint()
    copy = tmp_path / "DIYModel.py"
    copy.write_text(GPT2.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv(ENV, f"{copy}:GPT2Style")
    learners = fingerprint()
    copy.write_text(GPT2.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert len({reference, learners, fingerprint()}) == 3


def test_train_and_generate_take_backbone(tmp_path, monkeypatch, capsys, no_backbone):
    """--backbone makes the file the active backbone (DIY_BACKBONE) for the whole run."""
    from diy import generate, train

    monkeypatch.chdir(tmp_path)
    assert train.main(["--steps", "2", "--no-progress", "--out", "ck",
                       "--backbone", f"{GPT2}:GPT2Style"]) == 0
    trained = capsys.readouterr()
    assert "gpt2_style.py:GPT2Style" in trained.err
    assert f"--backbone {GPT2}:GPT2Style" in trained.out  # the generate command to run next
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["diy_backbone"]
    assert generate.main(["--checkpoint", "ck", "--prompt", "海边", "--max-new-tokens", "5",
                          "--backbone", f"{GPT2}:GPT2Style"]) == 0
    assert capsys.readouterr().out.startswith("海边")
    monkeypatch.delenv(ENV)
    assert generate.main(["--checkpoint", "ck", "--prompt", "海边"]) == 2
    assert "--backbone" in capsys.readouterr().err


@pytest.mark.parametrize("spec, words", [
    ("missing.py", "找不到骨干文件"),
    (f"{GPT2}:NoSuchClass", "没有名为 NoSuchClass"),
])
def test_a_bad_backbone_option_stops_before_any_work(tmp_path, monkeypatch, capsys, spec, words,
                                                     no_backbone):
    from diy import train

    monkeypatch.chdir(tmp_path)
    assert train.main(["--no-progress", "--out", "ck", "--backbone", spec]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and not (tmp_path / "ck").exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="no make (Windows)")
def test_make_lab_passes_an_absolute_backbone_and_checks_it_first():
    dry = subprocess.run(["make", "-n", "lab", "BACKBONE=tests/backbones/gpt2_style.py:GPT2Style"],
                         cwd=ROOT, capture_output=True, text=True)
    lines = dry.stdout.splitlines()
    doctor = next(i for i, line in enumerate(lines) if "diy.classroom.doctor --backbone" in line)
    lab = next(i for i, line in enumerate(lines) if "jupyter lab" in line)
    assert doctor < lab and f'{ENV}="{GPT2}:GPT2Style"' in lines[lab]
    # opens step 1: step 0 is the backbone they have
    assert "diy.classroom.course --first 1)" in dry.stdout



def test_the_first_lesson_of_a_step(capsys):
    from diy.classroom.course import main

    for argv, first in ((["--first"], "step0_1_norm"), (["--first", "1"], "step1_1_lm_head")):
        main(argv)
        assert capsys.readouterr().out.strip() == first


def test_every_self_check_of_steps_1_to_3_passes_the_reference_on_the_learners_backbone(
        gpt2, capsys):
    """The checks build their models on the active backbone; a right answer still passes."""
    from diy.classroom.checks import (
        check_causal_lm,
        check_evaluate,
        check_get_batch,
        check_greedy_continue,
        check_lm_head,
        check_next_token_loss,
        check_train_loop,
        check_train_step,
        check_training_step,
    )
    from diy.classroom.checks.greedy import reference_greedy_continue
    from diy.classroom.checks.lm_head import reference_build_lm_head, reference_forward_to_logits
    from diy.classroom.checks.loss import reference_next_token_loss, reference_train_step
    from diy.classroom.checks.training import reference_train_loop
    from diy.data import get_batch
    from diy.training import evaluate, train_step
    from tests.test_checks_step3 import CHECKS as STEP3

    step2 = [(check_get_batch, get_batch), (check_training_step, train_step),
             (check_evaluate, evaluate), (check_train_loop, reference_train_loop),
             (check_greedy_continue, reference_greedy_continue)]

    answers = (reference_build_lm_head, reference_forward_to_logits)
    assert check_lm_head(*answers) == answers
    assert check_next_token_loss(reference_next_token_loss) is reference_next_token_loss
    assert check_train_step(reference_train_step) is reference_train_step
    assert check_causal_lm(DIYForCausalLM) is DIYForCausalLM
    for check, reference in step2:
        assert check(reference) is reference
    for check, reference, _ in STEP3:
        assert check(reference) is reference
    text = capsys.readouterr().out
    assert text.count("✅") == 4 + len(step2) + len(STEP3) and "❌" not in text, text
    assert "左 padding 的批量跳过了" in text  # 3.3c on a backbone without attention_mask


@pytest.mark.parametrize("broken, use_cache, words", [
    ("AlwaysTuple", False, "约定是一个 hidden_states 张量"),
    ("Double", False, "float32"),
    ("NoPresents", True, "约定是 (hidden_states, presents)"),
])
def test_a_contract_breach_at_run_time_is_named_not_a_traceback(monkeypatch, broken, use_cache,
                                                                words):
    """Refused where the backbone is first built; and should a breach show only later (a
    backbone that behaves on the first build's inputs), where its output is checked."""
    from diy import backbone
    from diy.backbone import DIYBackboneError

    monkeypatch.setenv(ENV, f"{GPT2}:{broken}")
    with pytest.raises(DIYBackboneError) as caught:
        DIYForCausalLM(SMALL)
    assert "gpt2_style.py" in caught.value.problem and "diy.classroom.doctor --backbone" in \
        caught.value.fix
    monkeypatch.setattr(backbone, "check_contract", lambda *args: None)
    model = DIYForCausalLM(SMALL).eval()
    for batch in (1, 2):  # a batch of 2 once split into "hidden" and "presents" unnoticed
        with pytest.raises(DIYBackboneError) as caught:
            model(torch.randint(0, 97, (batch, 6)), use_cache=use_cache, is_training=not use_cache)
        assert words in caught.value.problem
        assert "diy.classroom.doctor --backbone" in caught.value.fix


def test_the_learners_backbone_gets_the_courses_input_checks(gpt2):
    model = DIYForCausalLM(SMALL).eval()
    with pytest.raises(DIYInputError, match="max_seq_len"):
        model(torch.randint(0, 97, (1, SMALL.max_seq_len + 1)))
    with pytest.raises(DIYInputError, match="is_training=False"):
        model(torch.randint(0, 97, (1, 4)), use_cache=True)


def test_a_mask_swallowed_by_kwargs_is_refused_not_silently_wrong(monkeypatch):
    monkeypatch.setenv(ENV, f"{GPT2}:KwargsMask")
    model = DIYForCausalLM(SMALL)
    with pytest.raises(DIYInputError, match="attention_mask"):
        model.generate([[5, 6, 7], [8]], max_new_tokens=3)


def test_a_missing_backbone_file_is_a_clear_error_everywhere(tmp_path, monkeypatch):
    from diy.backbone import DIYBackboneError
    from diy.classroom.course_model import fingerprint

    monkeypatch.setenv(ENV, str(tmp_path / "nosuch" / "DIYModel.py"))
    for call in (describe, fingerprint, lambda: DIYForCausalLM(SMALL)):
        with pytest.raises(DIYBackboneError, match="找不到骨干文件"):
            call()


def test_a_checkpoint_saved_before_the_file_changed(tmp_path, monkeypatch, capsys):
    source = GPT2.read_text(encoding="utf-8")
    path = tmp_path / "DIYModel.py"
    path.write_text(source, encoding="utf-8")
    monkeypatch.setenv(ENV, f"{path}:GPT2Style")
    DIYForCausalLM(SMALL).save_pretrained(tmp_path / "ck")
    path.write_text(source + "\n# a comment\n", encoding="utf-8")  # same weights: loads, said
    DIYForCausalLM.from_pretrained(tmp_path / "ck")
    said = capsys.readouterr().err  # a course message, not a UserWarning with a source line
    assert said.startswith("⚠️ 检查点") and "骨干文件 DIYModel.py 在保存这个检查点之后改过" in said
    assert "UserWarning" not in said and "照样装上了" in said
    path.write_text(source.replace("nn.Linear(hidden_size, 3 * hidden_size)",
                                   "nn.Linear(hidden_size, 3 * hidden_size, bias=False)"),
                    encoding="utf-8")  # other weights: refused, saying why
    with pytest.raises(DIYInputError, match="在保存这个检查点之后改过") as caught:
        DIYForCausalLM.from_pretrained(tmp_path / "ck")
    assert "参数对不上" in caught.value.problem and "改回" in caught.value.fix


@pytest.mark.parametrize("spec, words", [
    (f"{GPT2}:GPT2Style", "装不进 transformers 的 Llama"),
    (f"{Path(__file__).parent / 'backbones' / 'tweaked_llama.py'}:TweakedEps", "logits 相差"),
])
def test_export_refuses_a_backbone_transformers_would_not_reproduce(tmp_path, capsys, no_backbone,
                                                                     spec, words):
    from diy.hf import export

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV, spec)
        small_with_the_course_vocabulary = DIYConfig(**{**SMALL.to_dict(), "vocab_size": 6400})
        DIYForCausalLM(small_with_the_course_vocabulary).save_pretrained(tmp_path / "ck")
    assert export.main(["--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "hf"),
                        "--backbone", spec]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "hf").exists()

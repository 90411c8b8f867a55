"""python -m diy.generate and python -m diy.hf.export on the course model."""

import pytest
import torch

from diy import CharTokenizer, load_passage
from diy import generate as generate_cli
from diy.classroom.course_model import course_model
from diy.hf import export as export_cli

PROMPT = load_passage()[:8]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    course_model().save_pretrained(folder)
    return folder


def run(capsys, *args):
    code = generate_cli.main([*map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_greedy_prints_the_continuation_as_generate_makes_it(capsys, checkpoint):
    code, out, err = run(capsys, "--checkpoint", checkpoint, "--prompt", PROMPT)
    assert code == 0, err
    tokenizer = CharTokenizer()
    ids = torch.tensor([tokenizer.encode(PROMPT)])
    expected = course_model().generate(ids, max_new_tokens=120, eos_token_id=3)
    assert out == tokenizer.decode(expected[0], skip_special_tokens=True) + "\n"
    assert out.startswith(load_passage()[:100])  # the model recites the passage
    assert run(capsys, "--checkpoint", checkpoint, "--prompt", PROMPT, "--no-cache")[1] == out


def test_sampling_is_reproducible_with_a_seed(capsys, checkpoint):
    args = ("--checkpoint", checkpoint, "--prompt", "老人", "--temperature", "1.5",
            "--top-k", "50", "--max-new-tokens", "30")
    first = run(capsys, *args, "--seed", "1")[1]
    assert run(capsys, *args, "--seed", "1")[1] == first
    assert run(capsys, *args, "--seed", "2")[1] != first


@pytest.mark.parametrize("args, words", [
    (["--prompt", "灯塔🗼"], "词表外"),
    (["--prompt", "老人", "--top-k", "5"], "--temperature"),
    (["--prompt", "老人", "--max-new-tokens", "500"], "max_seq_len"),
    (["--prompt", "老人", "--temperature", "-1"], "temperature"),
    (["--prompt", ""], "空"),
])
def test_bad_arguments_exit_2_and_print_nothing(capsys, checkpoint, args, words):
    code, out, err = run(capsys, "--checkpoint", checkpoint, *args)
    assert code == 2 and words in err and out == ""


def test_missing_checkpoint_names_the_command_that_makes_one(capsys, tmp_path):
    code, out, err = run(capsys, "--checkpoint", tmp_path / "none", "--prompt", "老人")
    assert code == 2 and "python -m diy.train" in err and out == ""


def test_export_loads_in_transformers_and_the_pipeline_says_the_same(capsys, checkpoint,
                                                                       tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    assert export_cli.main(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "hf")]) == 0
    hf_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    text = "海边\n的 A,。"
    assert hf_tokenizer.encode(text) == CharTokenizer().encode(text)
    assert hf_tokenizer.decode(hf_tokenizer.encode(text)) == text
    AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    generated = pipeline("text-generation", model=str(tmp_path / "hf"))(
        PROMPT, max_new_tokens=120, do_sample=False)[0]["generated_text"]
    capsys.readouterr()
    printed = run(capsys, "--checkpoint", checkpoint, "--prompt", PROMPT)[1]
    assert generated + "\n" == printed


def test_export_without_a_checkpoint(capsys, tmp_path):
    assert export_cli.main(["--checkpoint", str(tmp_path / "none"), "--out",
                            str(tmp_path / "hf")]) == 2
    assert "python -m diy.train" in capsys.readouterr().err
    assert not (tmp_path / "hf").exists()

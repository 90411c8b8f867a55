"""diy.pretraining.measures (lesson 4.3) and step 4's data: the 下一句 questions, 格律 patterns, the
longest run shared with the training text, the corpus vocabulary and packed stream."""

import random

import numpy as np
import pytest
import torch

from diy import CharTokenizer, DIYConfig, DIYForCausalLM
from diy.errors import DIYInputError
from diy.pretraining.corpus import Ci
from diy.pretraining.measures import (
    SharedRuns,
    candidate_log_prob,
    ci_lines,
    meter,
    meter_share,
    next_line_accuracy,
    next_line_questions,
    usual_meters,
)
from diy.pretraining.songci import songci_data


@pytest.fixture(scope="module")
def data():
    return songci_data()


def test_meter_counts_phrases_between_punctuation():
    lines = ("一曲新词酒一杯，去年天气旧亭台。夕阳西下几时回。",
             "无可奈何花落去，似曾相识燕归来。小园香径独徘徊。")
    assert meter(lines) == "7·7·7·7·7·7"
    assert meter(["慎莫负、狂风月。"]) == "3·3"
    assert ci_lines("浣溪沙\n一二三。\n四五。\n\n菩萨蛮\n六七。") == ["一二三。", "四五。"]


def test_usual_meter_of_huanxisha_is_seven_seven_seven(data):
    usual = usual_meters(list(data.train_cis))
    form, count, total = usual["浣溪沙"]
    assert form == "7·7·7·7·7·7" and count > total / 2
    real = ["浣溪沙\n" + "\n".join(ci.paragraphs) + "\n\n" for ci in data.train_cis
            if ci.rhythmic == "浣溪沙"]
    assert meter_share(real, form) == pytest.approx(count / total)


def test_next_line_questions_are_fair(data):
    questions = next_line_questions(list(data.held_out_cis), count=50, seed=3)
    assert questions == next_line_questions(list(data.held_out_cis), count=50, seed=3)
    assert len(questions) == 50
    answers = [answer for _, _, answer in questions]
    assert set(answers) == {0, 1, 2, 3}  # the true line is not always in the same place
    texts = {"\n".join(ci.paragraphs) for ci in data.held_out_cis}
    for context, candidates, answer in questions:
        assert len(candidates) == 4 and len(set(candidates)) == 4
        assert len({len(c) for c in candidates}) == 1  # same length: log-probs comparable
        body = context.split("\n", 1)[1] + candidates[answer]
        assert any(text.startswith(body) for text in texts)  # the true continuation


def test_accuracy_of_an_oracle_and_of_chance(data):
    cis = list(data.held_out_cis)
    truth = {(context, tuple(candidates)): candidates[answer]
             for context, candidates, answer in next_line_questions(cis, count=80)}
    tokenizer = data.tokenizer
    model = DIYForCausalLM(DIYConfig(vocab_size=len(tokenizer), hidden_size=32, num_layers=1,
                                     num_heads=2, dropout=0.0))

    def oracle(model, context_ids, candidate_ids):
        context, line = tokenizer.decode(context_ids), tokenizer.decode(candidate_ids)
        return float(any(key[0] == context and value == line for key, value in truth.items()))

    assert next_line_accuracy(model, tokenizer, cis, count=80, scorer=oracle) == 1.0
    rng = random.Random(0)
    chance = next_line_accuracy(model, tokenizer, cis, count=80,
                                scorer=lambda *_: rng.random())
    assert 0.1 < chance < 0.45


def test_candidate_log_prob_is_the_sum_of_token_log_probs():
    torch.manual_seed(0)
    model = DIYForCausalLM(DIYConfig(vocab_size=40, hidden_size=32, num_layers=1, num_heads=2,
                                     dropout=0.0)).eval()
    context, candidate = [5, 6, 7], [8, 9]
    log_probs = torch.log_softmax(model(torch.tensor([context + candidate])), -1)[0]
    want = float((log_probs[2, 8] + log_probs[3, 9]).detach())
    assert candidate_log_prob(model, context, candidate) == pytest.approx(want, abs=1e-5)


def test_longest_shared_run_matches_brute_force():
    rng = np.random.default_rng(0)
    train = "".join(rng.choice(list("春风明月花落水流"), 3000))
    runs = SharedRuns(train)
    for _ in range(20):
        text = "".join(rng.choice(list("春风明月花落水流人"), 30))
        brute = max((text[i:j] for i in range(len(text)) for j in range(i, len(text) + 1)
                     if text[i:j] in train), key=len)
        assert len(runs.longest(text)) == len(brute)
        assert runs.longest(text) in train and runs.longest(text) in text
    assert runs.longest("人人人") == ""


def test_corpus_vocabulary_and_stream(data, tmp_path):
    tokenizer = data.tokenizer
    assert tokenizer.id_to_token[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert len(tokenizer) == 4 + len(set(data.train_text))
    counts = [data.train_text.count(ch) for ch in tokenizer.id_to_token[4:8]]
    assert counts == sorted(counts, reverse=True)  # most frequent first
    assert len(data.stream) == len(data.train_text) and data.stream.dtype == np.uint16
    assert tokenizer.decode(data.stream[:200].tolist()) == data.train_text[:200]
    unk = tokenizer.unk_token_id
    assert sum(i == unk for i in data.held_out_ids) == sum(
        ch not in tokenizer.token_to_id for ch in data.held_out_text)
    tokenizer.save_pretrained(tmp_path)
    assert CharTokenizer.from_pretrained(tmp_path).id_to_token == tokenizer.id_to_token
    assert len(CharTokenizer.from_pretrained(tmp_path / "none")) == 6400  # the course's
    (tmp_path / "tokenizer.json").write_text("{", encoding="utf-8")
    with pytest.raises(DIYInputError, match="tokenizer.json"):
        CharTokenizer.from_pretrained(tmp_path)
    with pytest.raises(DIYInputError):
        CharTokenizer(tokens=["a", "b"])


def test_held_out_ci_are_never_in_the_training_stream(data):
    """The split is by ci: no held-out ci is in the training text — not even a copy of it under
    another 词牌 or author (the corpus has 28 such copies). One held-out "ci" is only the
    placeholder 「（缺词文）」 five times, which training ci contain as well."""
    train_bodies = {"\n".join(ci.paragraphs) for ci in data.train_cis}
    held_bodies = ["\n".join(ci.paragraphs) for ci in data.held_out_cis]
    assert not train_bodies & set(held_bodies)
    contained = [body for body in held_bodies if body in data.train_text]
    assert contained == ["（缺词文）" * 5]
    assert isinstance(data.held_out_cis[0], Ci)

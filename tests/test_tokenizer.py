"""CharTokenizer: exactly 6400 ids from offline tables, exact round trip, unknowns reported."""

import warnings

import pytest
import torch

from diy import CharTokenizer, DIYInputError, load_passage
from diy.tokenizer import ASCII, SPECIAL_TOKENS, UnknownCharactersWarning, gb2312_hanzi


@pytest.fixture(scope="module")
def tokenizer():
    return CharTokenizer()


def test_vocabulary_is_the_course_size_with_the_special_ids(tokenizer):
    assert tokenizer.vocab_size == len(tokenizer) == 6400
    assert tokenizer.id_to_token[:4] == list(SPECIAL_TOKENS)
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.bos_token_id,
            tokenizer.eos_token_id) == (0, 1, 2, 3)
    assert len(set(tokenizer.id_to_token)) == 6400  # no duplicates


def test_vocabulary_covers_ascii_punctuation_and_all_of_gb2312_level_1(tokenizer):
    level_1 = gb2312_hanzi(1)
    assert len(level_1) == 3755 and level_1[0] == "啊"
    for ch in [*ASCII, *level_1, *"，。！？、；：“”‘’（）《》…—"]:
        assert ch in tokenizer.token_to_id, ch


def test_vocabulary_is_deterministic():
    assert CharTokenizer().id_to_token == CharTokenizer().id_to_token


@pytest.mark.parametrize("text", ["从前有座山，山里有座庙。", "Hello, world! 123\n第二行",
                                  "", "“引号”与（括号）……"])
def test_round_trip(tokenizer, text):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no unknown characters here
        ids = tokenizer.encode(text)
    assert len(ids) == len(text) and all(isinstance(i, int) for i in ids)
    assert tokenizer.decode(ids) == text
    assert tokenizer.decode(torch.tensor(ids, dtype=torch.long)) == text


def test_unknown_characters_become_unk_and_are_reported(tokenizer):
    text = "模型😀会说话😀吗☃"
    with pytest.warns(UnknownCharactersWarning) as caught:
        ids = tokenizer.encode(text)
    assert len(ids) == len(text)  # nothing dropped
    assert ids.count(tokenizer.unk_token_id) == 3
    message = str(caught[0].message)
    assert "3 个字符（2 种）" in message and "'😀'×2" in message and "'☃'×1" in message
    assert tokenizer.unknown_characters(text) == {"😀": 2, "☃": 1}


def test_decode_shows_or_skips_special_tokens(tokenizer):
    ids = [tokenizer.bos_token_id, *tokenizer.encode("灯塔"), tokenizer.eos_token_id]
    assert tokenizer.decode(ids) == "<bos>灯塔<eos>"
    assert tokenizer.decode(ids, skip_special_tokens=True) == "灯塔"


def test_decode_refuses_ids_outside_the_vocabulary(tokenizer):
    with pytest.raises(DIYInputError, match="-100"):
        tokenizer.decode([5, -100])
    with pytest.raises(DIYInputError, match="6400"):
        tokenizer.decode([6400])


def test_the_course_passage(tokenizer):
    text = load_passage()
    assert 300 <= len(text) <= 600
    assert tokenizer.unknown_characters(text) == {}
    assert tokenizer.decode(tokenizer.encode(text)) == text
    prefix = text[:8]
    assert text.count(prefix) == 1  # a greedy continuation from it is unambiguous
    assert sum(ch >= "\u4e00" for ch in text) > 200  # mostly hanzi: real Chinese text


def test_the_passage_ships_with_the_package():
    from importlib import resources

    assert resources.files("diy").joinpath("passage.txt").is_file()

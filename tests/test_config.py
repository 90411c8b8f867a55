import pytest

from diy import DIYConfig, DIYConfigError, DIYModel
from diy.config import llama_intermediate_size


def test_course_defaults():
    c = DIYConfig()
    assert (c.vocab_size, c.hidden_size, c.num_layers, c.num_heads, c.max_seq_len, c.dropout) == \
        (6400, 256, 2, 4, 128, 0.1)
    assert c.head_dim == 64
    assert c.intermediate_size == 704
    assert c.pad_token_id == 0


@pytest.mark.parametrize("hidden, expected", [(256, 704), (64, 192), (512, 1408), (4096, 10944)])
def test_intermediate_size_follows_llama(hidden, expected):
    assert llama_intermediate_size(hidden) == expected


def test_intermediate_size_matches_llama_7b_when_rounded_to_256():
    assert llama_intermediate_size(4096, multiple_of=256) == 11008  # Llama-1/2 7B


@pytest.mark.parametrize("kwargs, words", [
    (dict(hidden_size=250, num_heads=4), "整除"),
    (dict(hidden_size=12, num_heads=4), "偶数"),  # head_dim 3 is odd
    (dict(vocab_size=0), "正整数"),
    (dict(num_layers=-1), "正整数"),
    (dict(max_seq_len=0), "正整数"),
    (dict(hidden_size=256.0), "正整数"),
    (dict(dropout=1.0), "[0, 1)"),
    (dict(dropout=-0.1), "[0, 1)"),
    (dict(rms_norm_eps=0.0), "正数"),
    (dict(pad_token_id=6400), "pad_token_id"),
])
def test_invalid_values_fail_at_construction(kwargs, words):
    with pytest.raises(DIYConfigError, match=words.replace("[", r"\[").replace(")", r"\)")) as err:
        DIYConfig(**kwargs)
    assert "修复方法" in str(err.value) and "English" in str(err.value)


def test_model_constructor_positional_as_in_course():
    m = DIYModel(6400, 2, 256, 4, 128, 0.1)
    assert m.config == DIYConfig()
    m2 = DIYModel(1000, 3, 64, 2, 32)
    c = m2.config
    assert (c.vocab_size, c.num_layers, c.hidden_size, c.num_heads, c.max_seq_len, c.dropout) == \
        (1000, 3, 64, 2, 32, 0.1)
    assert len(m2.layers) == 3


def test_model_from_config_and_keywords():
    c = DIYConfig(vocab_size=100, hidden_size=32, num_heads=2, dropout=0.0)
    assert DIYModel(c).config is c
    assert DIYModel(vocab_size=100, hidden_size=32, num_heads=2).config.vocab_size == 100
    with pytest.raises(TypeError):
        DIYModel(c, 2)


def test_model_constructor_rejects_bad_config():
    with pytest.raises(DIYConfigError):
        DIYModel(6400, 2, 250, 4, 128)

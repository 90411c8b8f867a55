"""Bridge to Hugging Face transformers' Llama, for cross-checks and benchmarks.

transformers is imported inside the functions, so ``import diy`` stays light.
"""

from __future__ import annotations

import warnings

from ..config import DIYConfig
from ..errors import DIYInputError


def _transformers():
    """import transformers, without the warning tqdm prints when a notebook lacks ipywidgets
    (transformers imports tqdm.auto; the warning would be stderr output in every notebook)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import transformers
    return transformers


def llama_config(config: DIYConfig):
    """The ``transformers.LlamaConfig`` that describes the same network as ``config``."""
    return _transformers().LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,  # plain multi-head attention, no GQA
        max_position_embeddings=config.max_seq_len,
        rms_norm_eps=config.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        attention_bias=False,
        mlp_bias=False,
        hidden_act="silu",
        attention_dropout=config.dropout,
        initializer_range=config.initializer_range,
        pad_token_id=config.pad_token_id,
        # DIYConfig names no bos/eos (the tokenizer does); without these, transformers would
        # default to 1 and 2 and its generate() would stop at token 2.
        bos_token_id=None,
        eos_token_id=None,
        tie_word_embeddings=False,
    )


def _shapes(state: dict) -> dict:
    return {name: tuple(t.shape) for name, t in state.items()}


def _load_strict(hf, state: dict) -> None:
    """Llama's weights from ``state``; a backbone with other names or shapes (a learner's,
    DIY_BACKBONE) gets a clear error naming what does not fit, not a wall of keys."""
    expected, found = _shapes(hf.state_dict()), _shapes(state)
    if expected != found:
        wrong = sorted(set(found) - set(expected)) or sorted(set(expected) - set(found)) or \
            [name for name in expected if expected[name] != found[name]]
        raise DIYInputError(
            f"这个模型的参数装不进 transformers 的 Llama（例如 {', '.join(wrong[:3])}）："
            "骨干的模块名、形状要和 Llama 一致才行。",
            "课程的骨干 diy.DIYModel 和第零步按 Llama 命名搭出的骨干可以；其它骨干"
            "（DIY_BACKBONE）就在 diy 里训练和生成，不与 transformers 对照、不导出。",
            f"these weights do not fit transformers' Llama (e.g. {', '.join(wrong[:3])}).")
    hf.load_state_dict(state, strict=True)


def fits_llama(diy_causal_lm) -> bool:
    """Do a DIYForCausalLM's weights load into LlamaForCausalLM (names and shapes)?"""
    hf = _transformers().LlamaForCausalLM(llama_config(diy_causal_lm.config))
    return _shapes(diy_causal_lm.state_dict()) == _shapes(hf.state_dict())


def to_llama_model(diy_model):
    """A ``transformers.LlamaModel`` holding ``diy_model``'s weights (strict load)."""
    hf = _transformers().LlamaModel(llama_config(diy_model.config))
    _load_strict(hf, diy_model.state_dict())
    return hf.train(diy_model.training)


def to_llama_for_causal_lm(diy_causal_lm):
    """A ``transformers.LlamaForCausalLM`` holding a DIYForCausalLM's weights (strict load)."""
    hf = _transformers().LlamaForCausalLM(llama_config(diy_causal_lm.config))
    _load_strict(hf, diy_causal_lm.state_dict())
    return hf.train(diy_causal_lm.training)

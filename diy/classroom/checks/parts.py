"""What the step-0 checks share: transformers' Llama modules to compare with (imported on first
use) and tensor checks that fail with a hint instead of raising."""

from __future__ import annotations

import warnings

import torch

from ...errors import describe_value
from .report import Failed

EPS = 1e-6


def llama_modules():
    """transformers' Llama modules (imported on first use: importing transformers takes ~2 s)."""
    with warnings.catch_warnings():  # tqdm's "IProgress not found" in a notebook: not ours
        warnings.filterwarnings("ignore", message="IProgress not found")
        from transformers.models.llama import modeling_llama

    return modeling_llama


def llama_config_for(hidden_size: int, num_heads: int, max_seq_len: int, theta: float = 10000.0,
                  dropout: float = 0.0, num_layers: int = 1, vocab_size: int = 97):
    from ...config import DIYConfig
    from ...hf import llama_config

    config = DIYConfig(vocab_size=vocab_size, num_layers=num_layers, hidden_size=hidden_size,
                       num_heads=num_heads, max_seq_len=max_seq_len, dropout=dropout,
                       rope_theta=theta)
    return llama_config(config)


def returned_tensor(value, name: str) -> torch.Tensor:
    if value is None:
        raise Failed(f"{name} 返回了 None：forward 最后少了 return。", "在 forward 的最后写 return ...。")
    if isinstance(value, tuple):
        raise Failed(f"{name} 返回了 {len(value)} 个值的 tuple，应返回一个张量。",
                     "只 return 结果张量。")
    if not isinstance(value, torch.Tensor):
        raise Failed(f"{name} 应返回张量，实际返回的是 {describe_value(value)}。", "return 结果张量。")
    return value


def require_shape(value: torch.Tensor, want: tuple, name: str, fix: str) -> None:
    if tuple(value.shape) != tuple(want):
        raise Failed(f"{name} 的形状是 {tuple(value.shape)}，应为 {tuple(want)}。", fix)


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a.detach().float(), b.detach().float(),
                                                 atol=atol, rtol=1e-4)


def require_unchanged(before: torch.Tensor, after: torch.Tensor, name: str) -> None:
    if not torch.equal(before, after):
        raise Failed(f"{name} 原地修改了传进来的输入张量（调用之后它的值变了）。",
                     "不要对输入做 x += ...、x.mul_(...) 之类的原地运算；写成 x = x * ... 生成新张量。")



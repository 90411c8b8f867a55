"""Issue 25 §3: the kinds of leak found when many realistic answers were fed to the self-checks.

Every case is written as a learner would write it (its own code, not the checks' mistake
variants): a wrong answer of each kind (WRONG, grouped by the issue's kinds) gets ❌ with a hint
naming its real cause (the words asserted below, never the generic "按错误信息检查这一行"), a
correct answer the lesson permits (CORRECT) gets ✅, and odd values met on the checks' new paths
(HOSTILE) get ❌ without an exception.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from diy import causal_lm_loss
from diy.classroom.checks import (
    check_attention,
    check_causal_mask,
    check_decoder_layer,
    check_diy_model,
    check_evaluate,
    check_get_batch,
    check_greedy_continue,
    check_greedy_no_cache,
    check_greedy_with_cache,
    check_left_pad,
    check_my_generate,
    check_position_ids,
    check_rms_norm,
    check_rotary,
    check_sample_next_token,
    check_top_p,
    check_train_loop,
    check_training_step,
)
from diy.classroom.checks.attention import ReferenceAttention, reference_causal_mask
from diy.classroom.checks.decoder import ReferenceDecoderLayer, ReferenceMLP
from diy.classroom.checks.norm import ReferenceRMSNorm
from diy.classroom.checks.report import FALLBACK_NOTE
from diy.classroom.checks.rope import ReferenceRotaryEmbedding, reference_apply_rotary
from diy.data import get_batch  # noqa: F401 - read by the train loops below (check swaps it)
from diy.generation import apply_top_p
from diy.training import History, evaluate, train_step  # noqa: F401 - as get_batch
from tests.check_helpers import verdict

GENERIC = "按错误信息检查这一行"  # the fallback hint: it names no cause
pytestmark = pytest.mark.filterwarnings("ignore:The use of `x.T`:UserWarning")  # the k.T answer


# -------------------------------------------------------------------------- 0.1 dtype paths

class _Norm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps


class NormInInputDtype(_Norm):  # no float32 upcast: the mean of squares in bf16 / fp16
    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class NormNotCastBack(_Norm):  # upcast, but the result stays float32
    def forward(self, x):
        x = x.float()
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class NormCastAfterWeight(_Norm):  # correct: one rounding, after the weight (nn.RMSNorm's way)
    def forward(self, x):
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * self.weight).to(x.dtype)


class NormInFloat64(_Norm):  # correct: a wider upcast
    def forward(self, x):
        x64 = x.double()
        normed = x64 / torch.sqrt(x64.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight


class NormMeanWithoutKeepdim(_Norm):
    def forward(self, x):
        x32 = x.float()
        ms = x32.pow(2).mean(dim=-1)
        return (x32 * torch.rsqrt(ms + self.eps)).to(x.dtype) * self.weight


class TorchNorm(nn.RMSNorm):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__(hidden_size, eps=eps)


# ------------------------------------------------------------------- 0.2a buffers vs attributes

class RopeAttributes(nn.Module):  # tables as plain attributes: they stay behind on .to(device)
    def __init__(self, head_dim, max_seq_len, theta=10000.0):
        super().__init__()
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
        angles = torch.outer(torch.arange(max_seq_len).float(), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        self.cos, self.sin = angles.cos(), angles.sin()

    def forward(self, start, length):
        return self.cos[start:start + length], self.sin[start:start + length]


class RopeOnTheFly(nn.Module):  # correct: only inv_freq stored (a buffer), tables computed per call
    def __init__(self, head_dim, max_seq_len, theta=10000.0):
        super().__init__()
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, start, length):
        positions = torch.arange(start, start + length, device=self.inv_freq.device)
        angles = torch.outer(positions.to(self.inv_freq.dtype), self.inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos(), angles.sin()


# ----------------------------------------------------------------------------- 0.3a / 0.3b

def mask_without_unsqueeze(seq_lengths, past_len, length):
    query = torch.arange(past_len, past_len + length)
    key = torch.arange(past_len + length)
    mask = (key[None, :] <= query[:, None])[None, None]
    if seq_lengths is not None:
        mask = mask & (key[None, :] < seq_lengths)[:, None, None, :]  # seq_lengths[:, None]
    return mask


def attention_with(*, k_T=False, mask_only_without_cache=False):
    class DIYAttention(nn.Module):
        def __init__(self, hidden_size, num_heads, dropout=0.0):
            super().__init__()
            self.num_heads, self.head_dim, self.dropout = num_heads, hidden_size // num_heads, \
                dropout
            for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
                setattr(self, name, nn.Linear(hidden_size, hidden_size, bias=False))

        def forward(self, x, cos, sin, mask, past_kv=None):
            B, L, C = x.shape
            H, D = self.num_heads, self.head_dim
            q, k, v = (proj(x).view(B, L, H, D).transpose(1, 2)
                       for proj in (self.q_proj, self.k_proj, self.v_proj))
            q, k = reference_apply_rotary(q, cos, sin), reference_apply_rotary(k, cos, sin)
            if past_kv is not None:
                k, v = torch.cat((past_kv[0], k), dim=2), torch.cat((past_kv[1], v), dim=2)
            scores = (q @ k.T if k_T else q @ k.transpose(-2, -1)) / math.sqrt(D)
            if not (mask_only_without_cache and past_kv is not None):  # "one new token sees all"
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = F.dropout(scores.softmax(dim=-1), p=self.dropout, training=self.training)
            y = (weights @ v).transpose(1, 2).reshape(B, L, C)
            return self.o_proj(y), (k, v)

    return DIYAttention


# ------------------------------------------------------------------------------ 0.4c layer

def layer_with(*, attn_residual_dropout=True, mlp_residual_dropout=True):
    class DIYDecoderLayer(nn.Module):
        def __init__(self, hidden_size, num_heads, intermediate_size, dropout=0.0, eps=1e-6):
            super().__init__()
            self.input_layernorm = ReferenceRMSNorm(hidden_size, eps)
            self.self_attn = ReferenceAttention(hidden_size, num_heads, dropout)
            self.post_attention_layernorm = ReferenceRMSNorm(hidden_size, eps)
            self.mlp = ReferenceMLP(hidden_size, intermediate_size)
            self.drop = nn.Dropout(dropout)

        def forward(self, x, cos, sin, mask, past_kv=None):
            h, present = self.self_attn(self.input_layernorm(x), cos, sin, mask, past_kv)
            x = x + (self.drop(h) if attn_residual_dropout else h)
            m = self.mlp(self.post_attention_layernorm(x))
            x = x + (self.drop(m) if mlp_residual_dropout else m)
            return x, present

    return DIYDecoderLayer


# ---------------------------------------------------------------------------- 0.4d DIYModel

def model_with(*, past_len="shape[2]", pass_past=True, rope_dim="head_dim", mask_offset=True,
               init="linear+embedding", num_layers=None, num_heads=None, dropout=None,
               hidden_size=None):
    """A learner's DIYModel on the course's parts, right unless one choice is changed; the
    hard-coded values are the course's (num_layers 2, num_heads 4, dropout 0.1, hidden 256)."""

    class DIYModel(nn.Module):
        def __init__(self, vocab_size, n_layers, hidden, heads, max_seq_len, p):
            super().__init__()
            n_layers, heads = num_layers or n_layers, num_heads or heads
            hidden = hidden_size or hidden
            p = p if dropout is None else dropout
            intermediate = 64 * math.ceil(int(8 * hidden / 3) / 64)
            self.embed_tokens = nn.Embedding(vocab_size, hidden)
            self.layers = nn.ModuleList(ReferenceDecoderLayer(hidden, heads, intermediate, p)
                                        for _ in range(n_layers))
            self.norm = ReferenceRMSNorm(hidden)
            head_dim = hidden if rope_dim == "hidden_size" else hidden // heads
            self.rotary = ReferenceRotaryEmbedding(head_dim, max_seq_len)
            if init == "every parameter":
                for param in self.parameters():
                    nn.init.normal_(param, mean=0.0, std=0.02)
            else:
                for module in self.modules():
                    if isinstance(module, (nn.Linear, nn.Embedding)):
                        nn.init.normal_(module.weight, mean=0.0, std=0.02)

        def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                    is_training=True):
            B, L = input_ids.shape
            if past_key_values is None:
                P = 0
            elif past_len == "len":
                P = len(past_key_values)
            else:
                P = past_key_values[0][0].shape[int(past_len[-2])]
            x = self.embed_tokens(input_ids)
            cos, sin = self.rotary(P, L)
            mask = reference_causal_mask(seq_lengths, P if mask_offset else 0, L)
            presents = []
            for i, layer in enumerate(self.layers):
                past = past_key_values[i] if past_key_values is not None and pass_past else None
                x, present = layer(x, cos, sin, mask, past)
                presents.append(present)
            hidden_states = self.norm(x)
            return (hidden_states, presents) if use_cache else hidden_states

    return DIYModel


# ------------------------------------------------------------------------------ 2.1 / 2.2

def get_batch_float_starts(tokens, batch_size, seq_len, generator=None):
    starts = torch.rand(batch_size, generator=generator) * (len(tokens) - seq_len + 1)
    return torch.stack([tokens[s:s + seq_len] for s in starts])


def step_with(*, clip="before step"):
    def train_step(model, optimizer, input_ids, max_grad_norm=1.0):
        model.train()
        loss = causal_lm_loss(model(input_ids), input_ids)
        optimizer.zero_grad()
        loss.backward()
        if clip == "before step":
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        if clip == "after step":
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        return loss.item()
    return train_step


def evaluate_on_a_copy(model, input_ids, labels):
    frozen = copy.deepcopy(model).eval()  # the caller's model keeps its mode
    with torch.no_grad():
        return causal_lm_loss(frozen(input_ids), labels).item()


def loop_with(*, evaluation="evaluate()", seeded_global_rng=False):
    def train_loop(model, tokens, eval_ids, eval_labels, config):
        if seeded_global_rng:
            torch.manual_seed(config.seed)  # "reproducible": the batches from the global RNG
        generator = torch.Generator().manual_seed(config.seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
        history = History()
        for step in range(1, config.steps + 1):
            if seeded_global_rng:
                input_ids = get_batch(tokens, config.batch_size, config.seq_len)
            else:
                input_ids = get_batch(tokens, config.batch_size, config.seq_len, generator)
            loss = train_step(model, optimizer, input_ids, config.max_grad_norm)
            history.step.append(step)
            history.train_loss.append(loss)
            if step % config.eval_every == 0 or step == config.steps:
                if evaluation == "evaluate()":
                    value = evaluate(model, eval_ids, eval_labels)
                elif evaluation == "inline, no no_grad":
                    model.eval()
                    value = causal_lm_loss(model(eval_ids), eval_labels).item()
                    model.train()
                elif evaluation == "inline, no eval()":
                    with torch.no_grad():
                        value = causal_lm_loss(model(eval_ids), eval_labels).item()
                else:  # "inline": eval(), no_grad, train() again
                    model.eval()
                    with torch.no_grad():
                        value = causal_lm_loss(model(eval_ids), eval_labels).item()
                    model.train()
                history.eval_step.append(step)
                history.eval_loss.append(value)
        return history
    return train_loop


# ------------------------------------------------------------------------ 2.3 / 3.1 greedy

def greedy_without_keepdim(model, input_ids, max_new_tokens):
    model.eval()
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = model(input_ids[:, -model.config.max_seq_len:])
            next_id = logits[:, -1, :].argmax(dim=-1)
            input_ids = torch.cat([input_ids, next_id], dim=1)
    return input_ids


def cached_with(*, keepdim=True, swapped=False, prefill_all_but_last=False, on_a_copy=False):
    def greedy_with_cache(model, input_ids, max_new_tokens):
        model = copy.deepcopy(model) if on_a_copy else model
        model.eval()
        with torch.no_grad():
            if prefill_all_but_last:  # the last prompt token goes in as the first decode step
                _, past = model(input_ids[:, :-1], use_cache=True, is_training=False)
                logits, past = model(input_ids[:, -1:], past_key_values=past, use_cache=True,
                                     is_training=False)
            elif swapped:
                past, logits = model(input_ids, use_cache=True, is_training=False)
            else:
                logits, past = model(input_ids, use_cache=True, is_training=False)
            for _ in range(max_new_tokens):
                next_id = logits[:, -1, :].argmax(dim=-1, keepdim=keepdim)
                input_ids = torch.cat([input_ids, next_id], dim=1)
                logits, past = model(next_id, past_key_values=past, use_cache=True,
                                     is_training=False)
        return input_ids
    return greedy_with_cache


# ------------------------------------------------------------------------------ 3.2 sampling

def top_p_strict(scores, top_p):  # ">" where top-p needs ">=": differs only at an exact tie
    ordered, order = torch.sort(scores, dim=-1)  # ascending
    cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative < 1 - top_p
    remove[..., -1] = False
    return scores.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


def top_p_zeroed_probabilities(scores, top_p):  # probabilities, the rest set to 0, not renormalised
    probs = scores.softmax(dim=-1)
    ordered, order = torch.sort(probs, descending=True, dim=-1)
    keep = ordered.cumsum(dim=-1) - ordered < top_p
    return probs * keep.scatter(-1, order, keep)


def sample_topk_minus_one(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(dim=-1)
    scores = logits / temperature
    if top_k:
        kth = torch.topk(scores, top_k - 1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        scores = apply_top_p(scores, top_p)
    return torch.multinomial(scores.softmax(dim=-1), 1, generator=generator).squeeze(1)


# --------------------------------------------------------------------------------- 3.3

def left_pad_with(*, width="longest", mask="lengths"):
    def left_pad(prompts, pad_token_id):
        W = len(prompts[0]) if width == "first" else max(len(p) for p in prompts)
        ids = torch.full((len(prompts), W), pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros_like(ids)
        for row, p in enumerate(prompts):
            ids[row, W - len(p):] = p
            attention_mask[row, W - len(p):] = 1
        if mask == "ids != pad":
            attention_mask = (ids != pad_token_id).long()
        return ids, attention_mask
    return left_pad


def positions_from_first_real_token(attention_mask):
    first = attention_mask.argmax(dim=-1, keepdim=True)  # where the prompt starts
    return (torch.arange(attention_mask.shape[1]) - first).clamp(min=0)


def generate_with(*, cache=True, mask_from_ids=False, swapped=False, prefill_all_but_last=False):
    def my_generate(model, input_ids, max_new_tokens, pick, attention_mask=None,
                    eos_token_id=None, pad_token_id=0):
        model.eval()
        ids, mask = input_ids, attention_mask
        if mask is not None and mask_from_ids:
            mask = (input_ids != pad_token_id).long()
        unfinished = torch.ones(ids.shape[0], dtype=torch.bool)
        with torch.no_grad():
            if not cache:
                logits = model(ids, is_training=False, attention_mask=mask)
            elif prefill_all_but_last:
                _, past = model(ids[:, :-1], use_cache=True, is_training=False,
                                attention_mask=None if mask is None else mask[:, :-1])
                logits, past = model(ids[:, -1:], past_key_values=past, use_cache=True,
                                     is_training=False, attention_mask=mask)
            elif swapped:
                past, logits = model(ids, use_cache=True, is_training=False, attention_mask=mask)
            else:
                logits, past = model(ids, use_cache=True, is_training=False, attention_mask=mask)
            for _ in range(max_new_tokens):
                next_id = pick(logits[:, -1, :])
                if eos_token_id is not None:
                    next_id = torch.where(unfinished, next_id,
                                          torch.full_like(next_id, pad_token_id))
                    unfinished &= next_id != eos_token_id
                ids = torch.cat([ids, next_id[:, None]], dim=1)
                if not unfinished.any():
                    break
                if mask is not None:
                    mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                if cache:
                    logits, past = model(next_id[:, None], past_key_values=past, use_cache=True,
                                         is_training=False, attention_mask=mask)
                else:  # the whole text again, every step
                    logits = model(ids, is_training=False, attention_mask=mask)
        return ids
    return my_generate


# ---------------------------------------------------------------------------------- cases

WRONG = {  # kind: {answer: (check, learner, hint words that must all appear)}
    "dtype paths": {
        "0.1 computed in bf16/fp16, no float32 upcast":
            (check_rms_norm, NormInInputDtype, ("float32", "65504")),
        "0.1 upcast but not cast back": (check_rms_norm, NormNotCastBack, ("转回",)),
    },
    "buffers vs attributes": {
        "0.2a cos/sin as plain attributes": (check_rotary, RopeAttributes, ("register_buffer",)),
    },
    "effects masked by another effect": {
        "0.4c no dropout on the attention residual":
            (check_decoder_layer, layer_with(attn_residual_dropout=False), ("注意力", "dropout")),
        "0.4c no dropout on the MLP residual":
            (check_decoder_layer, layer_with(mlp_residual_dropout=False), ("MLP", "dropout")),
        "2.2c inline evaluation without torch.no_grad()":
            (check_train_loop, loop_with(evaluation="inline, no no_grad"), ("torch.no_grad()",)),
        "2.2c inline evaluation without model.eval()":
            (check_train_loop, loop_with(evaluation="inline, no eval()"), ("model.eval()",)),
        "2.2c torch.manual_seed + get_batch without a generator":
            (check_train_loop, loop_with(seeded_global_rng=True), ("generator", "manual_seed")),
    },
    "shapes never reached": {
        "0.3b mask skipped when a cache is given":
            (check_attention, attention_with(mask_only_without_cache=True), ("几个", "mask")),
        "0.4d mask without the past_len offset":
            (check_diy_model, model_with(mask_offset=False), ("causal_mask", "past_len")),
        "0.4d init also overwrites the norms' weights":
            (check_diy_model, model_with(init="every parameter"), ("RMSNorm", "全 1")),
    },
    "ties and lucky data": {
        "3.2a strict > at an exact tie": (check_top_p, top_p_strict, ("恰好", "≥ p")),
        "3.3a attention_mask from input_ids != pad_token_id":
            (check_left_pad, left_pad_with(mask="ids != pad"), ("pad_token_id", "提示词里")),
        "3.3a width of the first prompt": (check_left_pad, left_pad_with(width="first"),
                                           ("第一条", "最长")),
        "3.3c attention_mask recomputed from input_ids != pad_token_id":
            (check_my_generate, generate_with(mask_from_ids=True),
             ("attention_mask", "pad_token_id")),
    },
    "generate loop without a cache": {
        "3.3c the whole text fed every step": (check_my_generate, generate_with(cache=False),
                                              ("prefill", "缓存")),
    },
    "hints naming the wrong cause": {
        "2.2a clipping forgotten": (check_training_step, step_with(clip="none"),
                                    ("没有裁剪",)),
        "2.2a clipping after optimizer.step()": (check_training_step, step_with(clip="after step"),
                                                 ("step() 之后",)),
        "3.2a probabilities with the rest set to 0, not renormalised":
            (check_top_p, top_p_zeroed_probabilities, ("概率", "−inf")),
        "0.4d num_layers hard-coded": (check_diy_model, model_with(num_layers=2),
                                       ("num_layers", "写死")),
        "0.4d num_heads hard-coded": (check_diy_model, model_with(num_heads=4),
                                      ("num_heads", "写死")),
        "0.4d dropout hard-coded": (check_diy_model, model_with(dropout=0.1), ("dropout", "写死")),
        "0.4d hidden_size hard-coded": (check_diy_model, model_with(hidden_size=256),
                                        ("hidden_size", "写死")),
    },
    "specific hints instead of the generic fallback": {
        "0.1 mean without keepdim": (check_rms_norm, NormMeanWithoutKeepdim, ("keepdim=True",)),
        "0.3a seq_lengths without [:, None]": (check_causal_mask, mask_without_unsqueeze,
                                               ("seq_lengths[:, None]",)),
        "0.3b k.T on a 4-D tensor": (check_attention, attention_with(k_T=True),
                                     ("k.T", "transpose(-2, -1)")),
        "0.4d past_len from shape[1]": (check_diy_model, model_with(past_len="shape[1]"),
                                        ("shape[1]", "头数", "shape[2]")),
        "0.4d past_len from shape[3]": (check_diy_model, model_with(past_len="shape[3]"),
                                        ("head_dim", "shape[2]")),
        "0.4d past_len = len(past_key_values)": (check_diy_model, model_with(past_len="len"),
                                                 ("len(past_key_values)", "层数")),
        "0.4d past never handed to the layers": (check_diy_model, model_with(pass_past=False),
                                                 ("past_key_values[i]",)),
        "0.4d RoPE tables built with hidden_size as head dim":
            (check_diy_model, model_with(rope_dim="hidden_size"), ("hidden_size // num_heads",)),
        "2.1 float start positions": (check_get_batch, get_batch_float_starts,
                                      ("浮点数", "torch.randint")),
        "2.3 argmax without keepdim": (check_greedy_continue, greedy_without_keepdim,
                                       ("keepdim=True",)),
        "3.1a argmax without keepdim": (check_greedy_no_cache, greedy_without_keepdim,
                                        ("keepdim=True",)),
        "3.1b argmax without keepdim": (check_greedy_with_cache, cached_with(keepdim=False),
                                        ("keepdim=True",)),
        "3.1b past, logits = model(...)": (check_greedy_with_cache, cached_with(swapped=True),
                                           ("logits, past", "反")),
        "3.3c past, logits = model(...)": (check_my_generate, generate_with(swapped=True),
                                           ("logits, past", "反")),
        "3.2b topk(k - 1)": (check_sample_next_token, sample_topk_minus_one, ("k - 1",)),
        "3.3b argmax on a bool mask": (check_position_ids, positions_from_first_real_token,
                                       ("bool", ".long()")),
    },
}

CORRECT = {  # answers the lessons permit: each must pass
    "0.1 cast back after the weight (nn.RMSNorm's order)": (check_rms_norm, NormCastAfterWeight),
    "0.1 computed in float64": (check_rms_norm, NormInFloat64),
    "0.1 torch.nn.RMSNorm": (check_rms_norm, TorchNorm),
    "0.2a inv_freq buffer, tables computed per call": (check_rotary, RopeOnTheFly),
    "0.4c both residual dropouts": (check_decoder_layer, layer_with()),
    "0.4d the learner's model on the course's parts": (check_diy_model, model_with()),
    "2.2a clipping before optimizer.step()": (check_training_step, step_with()),
    "2.2b evaluate on copy.deepcopy(model).eval()": (check_evaluate, evaluate_on_a_copy),
    "2.2c inline evaluation: eval(), no_grad, train()": (check_train_loop,
                                                         loop_with(evaluation="inline")),
    "3.1b prefill [:, :-1], then the last prompt token": (
        check_greedy_with_cache, cached_with(prefill_all_but_last=True)),
    "3.1b generating on copy.deepcopy(model)": (check_greedy_with_cache,
                                                 cached_with(on_a_copy=True)),
    "3.3a the lesson's left_pad": (check_left_pad, left_pad_with()),
    "3.3c prefill [:, :-1], then the last prompt token": (
        check_my_generate, generate_with(prefill_all_but_last=True)),
    "3.3c prefill once, then one token per step": (check_my_generate, generate_with()),
}

WRONG_CASES = {name: case for kind in WRONG.values() for name, case in kind.items()}


@pytest.mark.parametrize("answer", WRONG_CASES)
def test_a_wrong_answer_is_refused_with_its_cause(capsys, answer):
    check, learner, words = WRONG_CASES[answer]
    returned = check(learner)
    text = verdict(capsys)
    assert returned is not learner, text
    assert text.startswith("❌"), text
    assert GENERIC not in text, text
    assert FALLBACK_NOTE in text
    for word in words:
        assert word in text, (word, text)


@pytest.mark.parametrize("answer", CORRECT)
def test_a_correct_alternative_passes(capsys, answer):
    check, learner = CORRECT[answer]
    returned = check(learner)
    text = verdict(capsys)
    assert text.startswith("✅"), text
    assert returned is learner


NOT_SAID = {  # the hint these answers used to get, naming another cause
    "2.2a clipping forgotten": "step() 之后",
    "3.2a probabilities with the rest set to 0, not renormalised": "最大的那一头",
    "0.4d num_layers hard-coded": "缺少 0 个",
    "2.1 float start positions": "张量列表",
}


@pytest.mark.parametrize("answer", NOT_SAID)
def test_the_hint_no_longer_names_another_cause(capsys, answer):
    check, learner, _ = WRONG_CASES[answer]
    check(learner)
    assert NOT_SAID[answer] not in verdict(capsys)


# ------------------------------------------------- odd values at the new parts of the checks

class NormOddInHalf(_Norm):  # right in float32 and bfloat16, returns None in float16
    def forward(self, x):
        if x.dtype == torch.float16:
            return None
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) \
            * self.weight


class RopeOddAfterTo(RopeAttributes):  # plain attributes, and a string once moved
    def forward(self, start, length):
        return "moved" if torch.get_default_dtype() != torch.float32 or length == 3 and \
            start == 0 else super().forward(start, length)


def layer_odd_in_train_mode():
    base = layer_with()

    class DIYDecoderLayer(base):
        def forward(self, x, cos, sin, mask, past_kv=None):
            return "x" if self.training else super().forward(x, cos, sin, mask, past_kv)

    return DIYDecoderLayer


def model_odd_cache():
    base = model_with()

    class DIYModel(base):
        def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                    is_training=True):
            out = super().forward(input_ids, seq_lengths, past_key_values, use_cache,
                                  is_training)
            return (out[0], [None]) if use_cache else out

    return DIYModel


def loop_feeding_a_list(model, tokens, eval_ids, eval_labels, config):
    model(eval_ids.tolist())
    return History()


def top_p_odd_on_one_row(scores, top_p):
    return [0.0] if scores.shape[0] == 1 else apply_top_p(scores, top_p)


HOSTILE = {
    "0.1 None in float16": (check_rms_norm, NormOddInHalf),
    "0.2a a string after .to()": (check_rotary, RopeOddAfterTo),
    "0.4c a string in train mode": (check_decoder_layer, layer_odd_in_train_mode()),
    "0.4d presents of None": (check_diy_model, model_odd_cache()),
    "2.2c a list fed to the model": (check_train_loop, loop_feeding_a_list),
    "3.2a a list for the tie row": (check_top_p, top_p_odd_on_one_row),
}


@pytest.mark.parametrize("answer", HOSTILE)
def test_odd_values_at_the_new_checks_get_a_verdict_not_an_exception(capsys, answer):
    check, learner = HOSTILE[answer]
    assert check(learner) is not learner
    assert verdict(capsys).startswith("❌")

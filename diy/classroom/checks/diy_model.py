"""Self-check of 0.4d: the learner's whole DIYModel, built with the contract's six arguments,
loaded with the reference weights and compared with the course's model and transformers'
LlamaModel (hidden states, cache, padding, parameter count)."""

from __future__ import annotations

import torch
from torch import nn

from ... import model as reference_model
from ...errors import describe_value
from .parts import (
    close,
    llama_config_for,
    llama_modules,
    require_shape,
    require_unchanged,
    returned_tensor,
)
from .report import Failed, Todo, call_learner, run_check

COURSE_ARGS = (6400, 2, 256, 4, 128, 0.1)
SMALL_ARGS = (97, 1, 32, 2, 16, 0.0)
PARAMETERS = 3_245_312


def reference_weights(args=COURSE_ARGS) -> dict:
    """The course's reference weights: a seeded diy.DIYModel's state_dict."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return reference_model.DIYModel(*args).state_dict()


def check_diy_model(DIYModel):
    """Check exercise 0.4d; return the DIYModel class to use from here on."""

    def body() -> str:
        _check_model_once(DIYModel, SMALL_ARGS, transformers=False)
        _check_model_once(DIYModel, COURSE_ARGS, transformers=True)
        return ("DIYModel(6400, 2, 256, 4, 128, 0.1)：3,245,312 个参数，名字与 transformers 的 LlamaModel 相同；"
                "strict=True 装进课程的参考权重后，eval 下 hidden_states 与 diy.DIYModel、LlamaModel 相同（差 < 1e-5）；"
                "带缓存 ≡ 一次算完；右 padding 不变、无 NaN；dropout 只跟随 train()/eval()；每个参数都有梯度。")

    return run_check("0.4d", body, DIYModel, reference_model.DIYModel)


def _model_call(model, *args, **kwargs):
    def diagnose(exc):
        text = str(exc)
        if isinstance(exc, TypeError) and "argument" in text:
            return (f"forward 的参数不对：{exc}。",
                    "forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False, is_training=True)。")
        return None

    return call_learner(model, *args, name="DIYModel.forward", diagnose=diagnose, **kwargs)


def _hidden(out, what):
    if isinstance(out, tuple | list):
        raise Failed(f"{what} 返回了 {len(out)} 个值：use_cache=False 时应只返回 hidden_states。",
                     "if use_cache: return hidden_states, presents；否则 return hidden_states。")
    return returned_tensor(out, what)


def _check_model_once(DIYModel, args, transformers):
    if DIYModel is None:
        raise Todo("DIYModel 还没有定义。")
    V, n_layers, C, H, T, p = args

    def diagnose(exc):
        if isinstance(exc, TypeError) and "argument" in str(exc):
            return (f"DIYModel{args} 构造失败：{exc}。",
                    "__init__(self, vocab_size, num_layers, hidden_size, num_heads, max_seq_len, dropout)：六个位置参数。")
        return None

    model = call_learner(DIYModel, *args, name=f"DIYModel{args}", diagnose=diagnose)
    if not isinstance(model, nn.Module):
        raise Failed(f"DIYModel(...) 得到的是 {describe_value(model)}，应是 nn.Module。", "class DIYModel(nn.Module): ...")
    layers = getattr(model, "layers", None)
    if isinstance(layers, list | tuple):
        raise Failed("self.layers 是 Python 列表：里面的层没有注册成子模块，model.parameters() 和 state_dict 里都没有它们。",
                     "self.layers = nn.ModuleList(DIYDecoderLayer(...) for _ in range(num_layers))。")
    if isinstance(layers, nn.ModuleList) and len({id(m) for m in layers}) < len(layers):
        raise Failed("self.layers 里是同一个层对象重复了几次（[layer] * n）：所有层共用一份权重。",
                     "每层新建一个：nn.ModuleList(DIYDecoderLayer(...) for _ in range(num_layers))。")
    want = reference_weights(args)
    keys = set(model.state_dict())
    missing, extra = sorted(set(want) - keys), sorted(keys - set(want))
    if missing or extra:
        if "norm.weight" in missing and not extra:
            raise Failed("state_dict 里没有 norm.weight：最后忘了 norm（最终的 RMSNorm）。",
                         "self.norm = RMSNorm(hidden_size)；forward 最后 hidden_states = self.norm(x)。")
        if any(k.split(".")[-1] in ("cos", "sin") for k in extra):
            raise Failed(f"state_dict 里多了 RoPE 的表 {[k for k in extra if k.split('.')[-1] in ('cos', 'sin')]}。",
                         "register_buffer(..., persistent=False)（0.2）。")
        raise Failed(f"名字与课程（和 transformers）的不一致：缺少 {len(missing)} 个（如 {missing[:2]}），"
                     f"多出 {len(extra)} 个（如 {extra[:2]}）。",
                     "self.embed_tokens、self.layers（nn.ModuleList）、self.norm；每层 input_layernorm、self_attn、"
                     "post_attention_layernorm、mlp——strict=True 才装得进。")
    for k, t in model.state_dict().items():
        if t.shape != want[k].shape:
            raise Failed(f"{k} 的形状是 {tuple(t.shape)}，应为 {tuple(want[k].shape)}。",
                         "用构造函数的参数；MLP 宽度 intermediate_size = 8/3 × hidden_size 向上取到 64 的倍数（256 → 704）。")
    count = sum(t.numel() for t in model.parameters())
    expected = sum(t.numel() for t in want.values())
    if count != expected:
        raise Failed(f"参数量是 {count:,}，应为 {expected:,}。", "检查每个子模块是否都注册成了 nn.Module / nn.Parameter。")
    emb = model.embed_tokens.weight.detach()
    if abs(emb.std().item() - 0.02) > 0.005:
        raise Failed(f"embed_tokens.weight 的标准差是 {emb.std().item():.3f}，课程用 N(0, 0.02) 初始化。",
                     "nn.init.normal_(module.weight, mean=0.0, std=0.02)：对每个 nn.Linear、nn.Embedding（self.apply(...)）。")
    model.load_state_dict(want, strict=True)
    reference = reference_model.DIYModel(*args)
    reference.load_state_dict(want, strict=True)
    model.eval()
    reference.eval()
    g = torch.Generator().manual_seed(V)
    ids = torch.randint(0, V, (2, 12), generator=g)
    ids_before = ids.clone()
    with torch.no_grad():
        hidden = _hidden(_model_call(model, ids), "model(input_ids)")
        again = _hidden(_model_call(model, ids), "model(input_ids)")
        want_hidden = reference(ids)
    require_unchanged(ids_before, ids, "DIYModel.forward")
    if not torch.equal(hidden, again):
        raise Failed("eval() 之后同样的输入两次输出不同：dropout 还在起作用。",
                     "dropout 只跟随 model.train() / model.eval()：用 nn.Dropout 或 training=self.training。")
    require_shape(hidden, (2, 12, C), "hidden_states", "embed_tokens → 各层 → norm，形状 (B, L, hidden_size)。")
    if hidden.dtype != torch.float32:
        raise Failed(f"hidden_states 的 dtype 是 {hidden.dtype}，应为 float32。", "不要在模型里转 dtype。")
    if not close(hidden, want_hidden, 1e-5):
        raise Failed("装进同一份权重后，eval 下的 hidden_states 与课程的 diy.DIYModel 不同。",
                     "检查 forward：x = embed_tokens(ids)；cos, sin = self.rotary(past_len, L)；"
                     "mask = causal_mask(seq_lengths, past_len, L)；每层 x, present = layer(x, cos, sin, mask, past)；"
                     "最后 self.norm(x)。")
    if transformers:
        llama = llama_modules().LlamaModel(llama_config_for(C, H, T, num_layers=n_layers, vocab_size=V))
        llama.load_state_dict(want, strict=True)
        with torch.no_grad():
            theirs = llama.eval()(input_ids=ids).last_hidden_state
        if not close(hidden, theirs, 1e-5):
            raise Failed("与 transformers 的 LlamaModel（同一份权重）的 hidden_states 不同。",
                         "检查 RMSNorm 的 eps（1e-6）、RoPE 的前后两半约定、SwiGLU 的 silu 位置。")
    # the cached path: prefill 6, then one token at a time
    with torch.no_grad():
        out = _model_call(model, ids[:, :6], is_training=False, use_cache=True)
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise Failed("is_training=False, use_cache=True 应返回 (hidden_states, presents)。",
                         "if use_cache: return hidden_states, presents。")
        first, presents = out
        if not (isinstance(presents, list | tuple) and len(presents) == n_layers):
            raise Failed(f"presents 应是每层一个 (k, v)，共 {n_layers} 个，实际是 {describe_value(presents)}。",
                         "presents.append(present)：每层一个。")
        steps = [returned_tensor(first, "hidden_states")]
        for t in range(6, 12):
            step, presents = _model_call(model, ids[:, t:t + 1], past_key_values=presents,
                                         is_training=False, use_cache=True)
            steps.append(step)
        k = presents[0][0]
        if tuple(k.shape) != (2, H, 12, C // H):
            raise Failed(f"喂完 12 个 token 后第 0 层缓存的 k 形状是 {tuple(k.shape)}，应为 {(2, H, 12, C // H)}。",
                         "把每层的 present 收进 presents 列表返回，下一次作为 past_key_values 传回。")
    if not close(torch.cat(steps, 1), hidden, 1e-5):
        raise Failed("prefill 6 个再逐个解码，与一次算完不同：新 token 的位置没有接在缓存后面"
                     "（RoPE 和 mask 的偏移），或 past_key_values 没有交给各层。",
                     "past_len = past_key_values[0][0].shape[2]（没有缓存时为 0）；cos, sin = self.rotary(past_len, L)；"
                     "mask = causal_mask(seq_lengths, past_len, L)；第 i 层拿 past_key_values[i]。")
    # right padding
    with torch.no_grad():
        padded = _hidden(_model_call(model, ids, seq_lengths=torch.tensor([12, 7])), "model(input_ids, seq_lengths)")
        alone = _hidden(_model_call(model, ids[1:, :7]), "model(input_ids)")
    if not torch.isfinite(padded).all() or not close(padded[1, :7], alone[0], 1e-5):
        raise Failed("右 padding（seq_lengths）改变了真实位置的输出或产生了 NaN。",
                     "把 seq_lengths 交给 causal_mask(seq_lengths, past_len, L)，再交给每一层。")
    # dropout only in train mode, and a gradient on every parameter
    model.train()
    if p > 0:
        with torch.no_grad():
            if torch.equal(_model_call(model, ids), _model_call(model, ids)):
                raise Failed(f"train() 时 dropout={p} 没有起作用。", "把 dropout 交给每层的注意力和残差分支。")
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():  # the caller's grad mode is not the learner's concern
        out = _hidden(_model_call(model, ids), "model(input_ids)")
        (out * torch.randn(out.shape, generator=g)).sum().backward()
    missing = [n for n, q in model.named_parameters() if q.grad is None or not torch.any(q.grad != 0)]
    model.zero_grad(set_to_none=True)
    if missing:
        raise Failed(f"这些参数没有得到梯度：{missing[:3]}。",
                     "每个参数都要用在前向计算里；不要 .detach()，也不要在 forward 里用 torch.no_grad()。")
    if transformers and count != PARAMETERS:
        raise Failed(f"参数量是 {count:,}，课程的默认超参下应为 {PARAMETERS:,}。", "检查 MLP 的宽度 704。")



"""Self-check of 0.4d: the learner's whole DIYModel, built with the contract's six arguments,
loaded with the reference weights and compared with the course's model and transformers'
LlamaModel (hidden states, cache, padding, parameter count)."""

from __future__ import annotations

import inspect
import re

import torch
from torch import nn

from ... import model as reference_model
from ...errors import describe_value
from .calls import wrap_method
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


ROWS = 3  # the batch: 3 is none of the layer counts, head counts or head dims of the two cases


def _model_call(model, *args, explain=None, **kwargs):
    """``explain()``: a (problem, fix) from what the layers were handed, or None."""
    def diagnose(exc):
        text = str(exc)
        if isinstance(exc, TypeError) and "argument" in text:
            return (f"forward 的参数不对：{exc}。",
                    "forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False, is_training=True)。")
        return explain() if explain is not None else None

    return call_learner(model, *args, name="DIYModel.forward", diagnose=diagnose, **kwargs)


def _hidden(out, what):
    if isinstance(out, tuple | list):
        raise Failed(f"{what} 返回了 {len(out)} 个值：use_cache=False 时应只返回 hidden_states。",
                     "if use_cache: return hidden_states, presents；否则 return hidden_states。")
    return returned_tensor(out, what)


def _cached(out, n_layers):
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise Failed("is_training=False, use_cache=True 应返回 (hidden_states, presents)。",
                     "if use_cache: return hidden_states, presents。")
    hidden, presents = out
    if not (isinstance(presents, list | tuple) and len(presents) == n_layers):
        raise Failed(f"presents 应是每层一个 (k, v)，共 {n_layers} 个，实际是 {describe_value(presents)}。",
                     "presents.append(present)：每层一个。")
    for present in presents:
        if not (isinstance(present, list | tuple) and len(present) == 2
                and all(isinstance(t, torch.Tensor) for t in present)):
            raise Failed(f"presents 里每层应是 (k, v) 两个张量，实际有 {describe_value(present)}。",
                         "x, present = layer(x, cos, sin, mask, past_kv)；presents.append(present)。")
    return returned_tensor(hidden, "hidden_states"), presents


PAST_LEN_FIX = ("past_len = past_key_values[0][0].shape[2]：第 0 层的 k，形状 (B, H, P, D)，第 2 维才是"
                "缓存里已有的 token 数；没有缓存时为 0。cos, sin = self.rotary(past_len, L)；"
                "mask = causal_mask(seq_lengths, past_len, L)。")


class LayerLog:
    """What every decoder layer was handed (cos, mask, past_kv) during one call of the model:
    a mistake in the model's forward is named by it (the past_len it used, the past it did or
    did not hand over, the width of its RoPE tables), not guessed from a size in an error."""

    def __init__(self, model, args):
        V, self.n_layers, self.C, self.H, self.T, _ = args
        self.D = self.C // self.H
        self.model = model
        self.calls: list[tuple] = []  # (layer index, cos, mask, past_kv)
        self.removers = []
        for i, layer in enumerate(model.layers):
            signature = inspect.signature(layer.forward)

            def record(module, *a, i=i, signature=signature, **kw):
                try:
                    bound = signature.bind(*a, **kw)
                except TypeError:
                    return
                bound.apply_defaults()
                values = list(bound.arguments.values()) + [None] * 5
                self.calls.append((i, values[1], values[3], values[4]))

            self.removers.append(wrap_method(layer, "forward", record))
        self.table = reference_model.RotaryEmbedding(self.D, self.T, 10000.0).cos  # (T, D)

    def remove(self):
        for remove in self.removers:
            remove()

    def start(self):
        self.calls.clear()

    def rope_offset(self, cos, L):
        """Where the cos table handed to the layers starts (None: not a slice of the table)."""
        if not (isinstance(cos, torch.Tensor) and tuple(cos.shape) == (L, self.D)):
            return None
        for o in range(self.T - L + 1):
            if close(cos, self.table[o:o + L], 1e-3):
                return o
        return None

    def explain(self, L: int, past_len: int, given_past=None):
        """(problem, fix) for the call just made (L new tokens after past_len cached), or None."""
        heads = {getattr(layer.self_attn, "num_heads", self.H) for layer in self.model.layers
                 if hasattr(layer, "self_attn")}
        heads = {h for h in heads if isinstance(h, int)}
        if heads - {self.H}:
            return (f"注意力的头数是 {sorted(heads - {self.H})[0]}，传给 DIYModel 的 num_heads 是 {self.H}：num_heads 写死了。",
                    "把构造函数的 num_heads 交给每一层：DIYDecoderLayer(hidden_size, num_heads, ...)；"
                    "RoPE 表的宽度 hidden_size // num_heads。")
        for _, cos, _, _ in self.calls:
            if isinstance(cos, torch.Tensor) and cos.dim() >= 1 and cos.shape[-1] == self.C != self.D:
                return (f"RoPE 的 cos/sin 表有 {self.C} 列 = hidden_size：表是按每个头的维度算的，"
                        f"应有 head_dim = {self.D} 列（q、k 旋转时是 (B, H, L, head_dim)）。",
                        "self.rotary = RotaryEmbedding(hidden_size // num_heads, max_seq_len)。")
        if given_past is not None:
            for i, _, _, past in self.calls:
                if past is None:
                    return ("带缓存调用时，past_key_values 没有交给各层：每一层都当作没有缓存在算，"
                            "新 token 看不到前面的 key/value。",
                            "第 i 层拿它自己的那份：layer(x, cos, sin, mask, past_key_values[i])"
                            "（没有缓存时传 None）。")
                if past is given_past:
                    return ("整个 past_key_values（每层一个的列表）交给了每一层：每层只该拿自己的 (k, v)。",
                            "第 i 层：layer(x, cos, sin, mask, past_key_values[i])。")
                if i > 0 and past is given_past[0] and given_past[i] is not given_past[0]:
                    return ("每一层拿到的都是第 0 层的缓存 past_key_values[0]。",
                            "第 i 层：layer(x, cos, sin, mask, past_key_values[i])（for i, layer in "
                            "enumerate(self.layers)）。")
        if not self.calls:
            return None
        _, cos, mask, _ = self.calls[0]
        mask_offset = mask.shape[-1] - L if isinstance(mask, torch.Tensor) and mask.dim() >= 2 \
            else None
        rope_offset = self.rope_offset(cos, L)
        mask_ok = mask_offset in (None, past_len)
        rope_ok = rope_offset in (None, past_len)
        if mask_ok and rope_ok:
            return None
        if rope_ok and mask_offset == 0:
            return (f"causal_mask 没有用 past_len：缓存里已有 {past_len} 个 token，mask 却只有 {L} 列"
                    "（只有一个新 token 时碰巧能用，一次输入几个就对不上）。",
                    "mask = causal_mask(seq_lengths, past_len, L)：列数 past_len + L。")
        if mask_ok and rope_offset == 0:
            return (f"RoPE 的 cos/sin 没有从 past_len 开始：缓存里已有 {past_len} 个 token，新 token 的位置"
                    "却又从 0 数起。", "cos, sin = self.rotary(past_len, L)。")
        used = mask_offset if not mask_ok else rope_offset
        return (self._past_len_problem(used, past_len), PAST_LEN_FIX)

    def _past_len_problem(self, used: int, past_len: int) -> str:
        where = "past_key_values[0][0] 是第 0 层的 k，形状 (B, H, P, D)："
        if used == 0:
            return f"past_len 是 0：缓存里已有 {past_len} 个 token，新 token 的位置却又从 0 数起。"
        if used == self.H:
            return f"past_len 取成了 {used}：{where}shape[1] 是头数 H = {self.H}，不是缓存的长度。"
        if used == self.D:
            return f"past_len 取成了 {used}：{where}shape[3]（shape[-1]）是每个头的维度 head_dim = {self.D}。"
        if used == self.n_layers:
            return (f"past_len = len(past_key_values) = {used}：那是层数（每层一个 (k, v)），"
                    f"不是缓存里的 token 数（{past_len}）。")
        if used == ROWS:
            return f"past_len 取成了 {used}：{where}shape[0] 是 batch 的行数。"
        return f"past_len 算成了 {used}，缓存里实际有 {past_len} 个 token。"


def _check_names(model, want: dict, args) -> None:
    V, n_layers, C, H, T, p = args
    keys = set(model.state_dict())
    missing, extra = sorted(set(want) - keys), sorted(keys - set(want))
    if not (missing or extra):
        return
    if "norm.weight" in missing and not extra:
        raise Failed("state_dict 里没有 norm.weight：最后忘了 norm（最终的 RMSNorm）。",
                     "self.norm = RMSNorm(hidden_size)；forward 最后 hidden_states = self.norm(x)。")
    if any(k.split(".")[-1] in ("cos", "sin") for k in extra):
        raise Failed(f"state_dict 里多了 RoPE 的表 {[k for k in extra if k.split('.')[-1] in ('cos', 'sin')]}。",
                     "register_buffer(..., persistent=False)（0.2）。")

    def per_layer(names):
        return {re.sub(r"^layers\.\d+\.", "layers.*.", k) for k in names}

    layers = {k.split(".")[1] for k in keys if re.match(r"^layers\.\d+\.", k)}
    if per_layer(keys) == per_layer(want) and len(layers) != n_layers:
        raise Failed(f"DIYModel{args} 有 {len(layers)} 层，应有 num_layers = {n_layers} 层：层数写死了。",
                     "self.layers = nn.ModuleList(DIYDecoderLayer(...) for _ in range(num_layers))："
                     "用构造函数的 num_layers。")
    raise Failed(f"名字与课程（和 transformers）的不一致：缺少 {missing[:3]}，多出 {extra[:3]}。",
                 "self.embed_tokens、self.layers（nn.ModuleList）、self.norm；每层 input_layernorm、self_attn、"
                 "post_attention_layernorm、mlp——strict=True 才装得进。")


def _check_shapes(model, want: dict, args) -> None:
    V, n_layers, C, H, T, p = args
    for k, t in model.state_dict().items():
        if t.shape == want[k].shape:
            continue
        got, shape = tuple(t.shape), tuple(want[k].shape)
        if k == "embed_tokens.weight":
            wrong = [name for name, a, b in (("vocab_size", got[0], shape[0]),
                                             ("hidden_size", got[-1], shape[-1])) if a != b]
            raise Failed(f"embed_tokens.weight 的形状是 {got}，DIYModel{args} 应为 {shape}："
                         f"{'、'.join(wrong)} 写死了。",
                         "nn.Embedding(vocab_size, hidden_size)：全部用构造函数的参数。")
        raise Failed(f"{k} 的形状是 {got}，DIYModel{args} 应为 {shape}：尺寸写死了"
                     f"（hidden_size = {C}）。",
                     "全部用构造函数的参数；MLP 宽度 intermediate_size = 8/3 × hidden_size 向上取到 64 的倍数"
                     "（256 → 704）。")


def _check_init(model) -> None:
    state = model.state_dict()
    emb = state["embed_tokens.weight"]
    if abs(emb.std().item() - 0.02) > 0.005:
        raise Failed(f"embed_tokens.weight 的标准差是 {emb.std().item():.3f}，课程用 N(0, 0.02) 初始化。",
                     "nn.init.normal_(module.weight, mean=0.0, std=0.02)：对每个 nn.Linear、nn.Embedding（self.apply(...)）。")
    for k, t in state.items():
        if (k == "norm.weight" or k.endswith("layernorm.weight")) and not torch.all(t == 1):
            raise Failed(f"初始化把 RMSNorm 的 weight 也改了（{k} 不再是全 1）：归一化之后每一维都被乘上"
                         "一个接近 0 的随机数，信号几乎被抹掉。",
                         "只初始化 nn.Linear 和 nn.Embedding：self.apply(fn)，fn 里 if isinstance(module, "
                         "(nn.Linear, nn.Embedding)): nn.init.normal_(module.weight, std=0.02)；"
                         "RMSNorm 的 weight 保持全 1。")
    linear = torch.cat([t.flatten() for k, t in state.items() if k.endswith("_proj.weight")])
    if abs(linear.std().item() - 0.02) > 0.005:
        raise Failed(f"各层 nn.Linear 的 weight 的标准差是 {linear.std().item():.3f}，课程用 N(0, 0.02) 初始化"
                     "（PyTorch 的默认初始化与它不同）。",
                     "self.apply(fn)：对每个 nn.Linear 和 nn.Embedding，nn.init.normal_(module.weight, "
                     "mean=0.0, std=0.02)。")


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
    _check_names(model, want, args)
    _check_shapes(model, want, args)
    count = sum(t.numel() for t in model.parameters())
    expected = sum(t.numel() for t in want.values())
    if count != expected:
        raise Failed(f"参数量是 {count:,}，应为 {expected:,}。", "检查每个子模块是否都注册成了 nn.Module / nn.Parameter。")
    _check_init(model)
    model.load_state_dict(want, strict=True)
    reference = reference_model.DIYModel(*args)
    reference.load_state_dict(want, strict=True)
    model.eval()
    reference.eval()
    log = LayerLog(model, args)
    try:
        _check_forward(model, reference, log, args, want, transformers)
    finally:
        log.remove()
    if transformers and count != PARAMETERS:
        raise Failed(f"参数量是 {count:,}，课程的默认超参下应为 {PARAMETERS:,}。", "检查 MLP 的宽度 704。")


def _check_forward(model, reference, log: LayerLog, args, want, transformers) -> None:
    V, n_layers, C, H, T, p = args
    g = torch.Generator().manual_seed(V)
    ids = torch.randint(0, V, (ROWS, 12), generator=g)
    ids_before = ids.clone()
    log.start()
    with torch.no_grad():
        hidden = _hidden(_model_call(model, ids, explain=lambda: log.explain(12, 0)),
                         "model(input_ids)")
        again = _hidden(_model_call(model, ids), "model(input_ids)")
        want_hidden = reference(ids)
    require_unchanged(ids_before, ids, "DIYModel.forward")
    if not torch.equal(hidden, again):
        raise Failed("eval() 之后同样的输入两次输出不同：dropout 还在起作用。",
                     "dropout 只跟随 model.train() / model.eval()：用 nn.Dropout 或 training=self.training。")
    require_shape(hidden, (ROWS, 12, C), "hidden_states", "embed_tokens → 各层 → norm，形状 (B, L, hidden_size)。")
    if hidden.dtype != torch.float32:
        raise Failed(f"hidden_states 的dtype 是 {hidden.dtype}，应为 float32。", "不要在模型里转 dtype。")
    if not close(hidden, want_hidden, 1e-5):
        explained = log.explain(12, 0)
        if explained is not None:
            raise Failed(*explained)
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
    _check_cached_path(model, log, ids, hidden, n_layers, H, C)
    # right padding
    with torch.no_grad():
        padded = _hidden(_model_call(model, ids, seq_lengths=torch.tensor([12, 7, 10])),
                         "model(input_ids, seq_lengths)")
        alone = _hidden(_model_call(model, ids[1:2, :7]), "model(input_ids)")
    if not torch.isfinite(padded).all() or not close(padded[1, :7], alone[0], 1e-5):
        raise Failed("右 padding（seq_lengths）改变了真实位置的输出或产生了 NaN。",
                     "把 seq_lengths 交给 causal_mask(seq_lengths, past_len, L)，再交给每一层。")
    # dropout only in train mode, as given, and a gradient on every parameter
    model.train()
    with torch.no_grad():
        same = torch.equal(_model_call(model, ids), _model_call(model, ids))
    if p > 0 and same:
        raise Failed(f"train() 时 dropout={p} 没有起作用。", "把 dropout 交给每层的注意力和残差分支。")
    if p == 0 and not same:
        raise Failed("DIYModel(..., dropout=0.0) 在 train() 时两次输出不同：dropout 写死了，没有用构造函数的 "
                     "dropout 参数。", "把构造函数的 dropout 交给每一层：DIYDecoderLayer(..., dropout)。")
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():  # the caller's grad mode is not the learner's concern
        out = _hidden(_model_call(model, ids), "model(input_ids)")
        (out * torch.randn(out.shape, generator=g)).sum().backward()
    missing = [n for n, q in model.named_parameters() if q.grad is None or not torch.any(q.grad != 0)]
    model.zero_grad(set_to_none=True)
    if missing:
        raise Failed(f"这些参数没有得到梯度：{missing[:3]}。",
                     "每个参数都要用在前向计算里；不要 .detach()，也不要在 forward 里用 torch.no_grad()。")


def _check_cached_path(model, log: LayerLog, ids, hidden, n_layers, H, C) -> None:
    """Prefill 6, then a chunk of 3 (a mask without the past_len offset only shows when more
    than one token comes after a cache), then one token at a time; each step against the
    whole-sequence hidden states."""
    presents = None
    with torch.no_grad():
        for start, end in ((0, 6), (6, 9), (9, 10), (10, 11), (11, 12)):
            L, given = end - start, presents
            explain = lambda L=L, start=start, given=given: log.explain(L, start, given)  # noqa: E731
            log.start()
            kwargs = {} if given is None else {"past_key_values": given}
            out = _model_call(model, ids[:, start:end], is_training=False, use_cache=True,
                              explain=explain, **kwargs)
            step, presents = _cached(out, n_layers)
            if not close(step, hidden[:, start:end], 1e-5):
                explained = explain()
                if explained is not None:
                    raise Failed(*explained)
                if given is None:
                    raise Failed("is_training=False, use_cache=True 的 prefill 与 model(input_ids) 不同。",
                                 "推理路径和训练路径算的是同一个前向，只是多返回 presents。")
                raise Failed(f"prefill 6 个、再输入 {L} 个（带缓存），与一次算完不同：新 token 的位置没有接在缓存后面"
                             "（RoPE 和 mask 的偏移），或 past_key_values 没有交给各层。", PAST_LEN_FIX)
        k = presents[0][0]
        if tuple(k.shape) != (ROWS, H, 12, C // H):
            raise Failed(f"喂完 12 个 token 后第 0 层缓存的 k 形状是 {tuple(k.shape)}，应为 {(ROWS, H, 12, C // H)}。",
                         "把每层的 present 收进 presents 列表返回，下一次作为 past_key_values 传回。")

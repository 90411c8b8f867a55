"""Self-check of exercise 3.3d: attention_mask added to the backbone the course runs on (the
learner's own DIYModel.py under DIY_BACKBONE, else diy.DIYModel) as a subclass,
``DIYModelWithMask``; and the cell that appends it to the learner's file, so that the rest of
3.3 (left-padded batches, the comparison with transformers) runs on their own backbone."""

from __future__ import annotations

import inspect
import re
import traceback

import torch
from torch import nn

from ...backbone import active, backbone_class, contract_values
from ...backbone.contract import presents_problem
from ...config import DIYConfig
from ...errors import describe_value
from ...generation import left_pad
from ...generation import position_ids_from_mask as reference_position_ids
from ...model import left_padding_mask
from .contract import guarded
from .export import source_of
from .report import Failed, Todo, call_learner, run_check

CONFIG = DIYConfig(vocab_size=61, hidden_size=32, num_layers=2, num_heads=2, max_seq_len=24,
                   dropout=0.0)
# three prompts: the first the longest (no padding), the others padded by 3 and by 1
PROMPTS = [torch.tensor([5, 9, 14, 20, 33, 41]), torch.tensor([7, 8, 9]),
           torch.tensor([11, 3, 52, 17, 29])]
MORE = torch.tensor([[12, 13], [44, 45], [6, 60]])  # a chunk of 2 new tokens per row, then 1
LAST = torch.tensor([[21], [22], [23]])
ATOL = 1e-4


def reference_with_mask(base: type) -> type:
    """The answer for a backbone class with 0.4's parts (embed_tokens, layers, norm, the RoPE
    tables rotary.cos / rotary.sin, layer(x, cos, sin, mask, past_kv)): the course's and the
    one 0.4 exports."""

    class DIYModelWithMask(base):
        def forward(self, input_ids, seq_lengths=None, past_key_values=None, use_cache=False,
                    is_training=True, attention_mask=None):
            if attention_mask is None:
                return super().forward(input_ids, seq_lengths, past_key_values, use_cache,
                                       is_training)
            B, L = input_ids.shape
            past_len = 0 if past_key_values is None else past_key_values[0][0].shape[2]
            positions = reference_position_ids(attention_mask)[:, past_len:]  # (B, L)
            cos = self.rotary.cos[positions][:, None]  # (B, 1, L, D)
            sin = self.rotary.sin[positions][:, None]
            mask = left_padding_mask(attention_mask.bool(), past_len, L)  # (B, 1, L, P+L)
            x = self.embed_tokens(input_ids)  # (B, L, C)
            presents = []
            for i, layer in enumerate(self.layers):
                past_kv = None if past_key_values is None else past_key_values[i]
                x, present = layer(x, cos, sin, mask, past_kv)
                presents.append(present)
            hidden_states = self.norm(x)
            return (hidden_states, presents) if use_cache else hidden_states

    return DIYModelWithMask


def diagnose(exc: Exception):
    text = str(exc)
    first = text.splitlines()[0] if text else type(exc).__name__
    functions = {frame.name for frame in traceback.extract_tb(exc.__traceback__)}
    if isinstance(exc, TypeError) and "attention_mask" in text:
        return ("forward 不收 attention_mask 参数。",
                "def forward(self, input_ids, seq_lengths=None, past_key_values=None, "
                "use_cache=False, is_training=True, attention_mask=None)。")
    if isinstance(exc, AttributeError) and "object has no attribute" in text:
        name = text.rsplit("attribute", 1)[-1].strip(" '\"")
        return (f"你的骨干没有 self.{name}：上面的步骤按 0.4 的零件名写（embed_tokens、layers、norm、"
                "rotary.cos / rotary.sin）。",
                "换成你自己骨干里对应零件的名字（print(model) 看得到）；做的事不变：每行的位置、"
                "按位置取位置编码、left_padding_mask、逐层、最后的 norm。")
    if "left_padding_mask" in functions:
        return (f"left_padding_mask 出错（{first}）：它的 key_mask 是缓存加新 token 的 (B, P+L)，"
                "第二个参数是缓存里已有的长度 past_len。",
                "mask = left_padding_mask(attention_mask.bool(), past_len, L)，"
                "past_len = past_key_values[0][0].shape[2]（没有缓存时是 0）。")
    if "must match the size of tensor" in text:
        dim = re.search(r"non-singleton dimension (\d+)", text)
        if dim and dim.group(1) == "1":
            return (f"形状对不上（{first}）：按每行位置取出的 cos、sin 是 (B, L, D)，"
                    "而 q、k 是 (B, num_heads, L, D)。",
                    "给 cos、sin 加一个头的维度：self.rotary.cos[positions][:, None] → (B, 1, L, D)，"
                    "它会在各个头上广播。")
        if dim and dim.group(1) == "3":
            return (f"形状对不上（{first}）：mask 有缓存加新 token 那么多列，注意力里的 key 却只有新的："
                    "过去的 k、v 没有交给各层。",
                    "第 i 层拿 past_key_values[i]：layer(x, cos, sin, mask, past_key_values[i])"
                    "（没有缓存时传 None）。")
        return (f"形状对不上（{first}）：带缓存时取出的位置比新 token 多——"
                "position_ids_from_mask(attention_mask) 是缓存加新 token 的 (B, P+L)。",
                "新 token 只要最后 L 列：position_ids_from_mask(attention_mask)[:, past_len:]。")
    if "attn_mask" in text or "boolean mask" in text:
        return (f"mask 的 dtype 不对（{first}）：attention_mask 是 0/1 的整数。",
                "left_padding_mask(attention_mask.bool(), past_len, L)：先 .bool()。")
    if isinstance(exc, (TypeError, IndexError)) and ("tuple" in text or "index" in text):
        return (f"读缓存时出错（{first}）。",
                "past_len = past_key_values[0][0].shape[2]（第 0 层 k 的长度）；"
                "第 i 层拿 past_key_values[i]。")
    return None


def forward(model, *args, **kwargs):
    return call_learner(model, *args, name="DIYModelWithMask.forward", diagnose=diagnose, **kwargs)


def hidden(out, what: str) -> torch.Tensor:
    if isinstance(out, (tuple, list)):
        raise Failed(f"{what}：use_cache=False 时返回了 {describe_value(out)}，应只返回 hidden_states。",
                     "return (hidden_states, presents) if use_cache else hidden_states。")
    if not isinstance(out, torch.Tensor):
        raise Failed(f"{what}：返回了 {describe_value(out)}，应为 hidden_states 张量。",
                     "最后 hidden_states = self.norm(x)，return hidden_states。")
    return out


def cached(out, what: str, batch: int, length: int):
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise Failed(f"{what}：use_cache=True 时返回了 {describe_value(out)}，应为 (hidden_states, presents)。",
                     "每层收好 present，return (hidden_states, presents) if use_cache else hidden_states。")
    problem = presents_problem(out[1], CONFIG, batch, length)
    if problem is not None:
        raise Failed(f"{what}：{problem[0]}。", problem[1])
    return hidden(out[0], what), out[1]


def check_forward_with_mask(DIYModelWithMask):
    """Check exercise 3.3d; return the class to use from here on (yours, or the reference's
    answer on the same backbone)."""
    base = backbone_class()

    @guarded
    def body() -> str:
        cls = DIYModelWithMask
        if cls is None:
            raise Todo("DIYModelWithMask 还没有定义。")
        if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
            raise Failed(f"DIYModelWithMask 应是一个类（骨干的子类），实际是 {describe_value(cls)}。",
                         "class DIYModelWithMask(DIYModel): 再在里面写 def forward(...)。")
        torch.manual_seed(0)
        model = call_learner(cls, *contract_values(CONFIG), name="DIYModelWithMask(...)")
        if "attention_mask" not in inspect.signature(model.forward).parameters:
            raise Failed("forward 没有写出名为 attention_mask 的参数（**kwargs 不算：课程只认写出名字的）。",
                         "def forward(self, input_ids, seq_lengths=None, past_key_values=None, "
                         "use_cache=False, is_training=True, attention_mask=None)。")
        plain = base(*contract_values(CONFIG))
        try:
            plain.load_state_dict(model.state_dict(), strict=True)
        except RuntimeError:
            raise Failed("DIYModelWithMask 的参数和骨干的不一样：子类只该重写 forward。",
                         "不要在子类里加层或改 __init__；只写 forward。") from None
        model.eval(), plain.eval()
        ids, mask = left_pad(PROMPTS, 0)  # (3, 6) each
        with torch.no_grad():
            check_without_mask(model, plain, ids)
            check_left_padding(model, plain, ids, mask)
            check_cache(model, plain, ids, mask)
        return ("左 padding 的 batch（3 行，padding 0、3、1 个）：每行真实 token 的 hidden_states 与这一行"
                "单独运行相同；带缓存再喂 2 个、再喂 1 个新 token 也相同；attention_mask=None 时与原来的 "
                "forward 相同。")

    return run_check("3.3d", body, DIYModelWithMask, reference_with_mask(base))


def check_without_mask(model, plain, ids) -> None:
    what = "attention_mask=None"
    mine = hidden(forward(model, ids, is_training=False), what)
    if not torch.allclose(mine, plain(ids, is_training=False), atol=1e-6):
        raise Failed("attention_mask=None 时结果和原来的 forward 不同。",
                     "没有 attention_mask 时原样交给原来的前向：return super().forward(input_ids, "
                     "seq_lengths, past_key_values, use_cache, is_training)。")
    lengths = torch.tensor([len(p) for p in PROMPTS])  # the same prompts, right-padded
    right = torch.zeros_like(ids)
    for row, prompt in enumerate(PROMPTS):
        right[row, :len(prompt)] = prompt
    mine = hidden(forward(model, right, seq_lengths=lengths, is_training=False), what)
    if not torch.allclose(mine, plain(right, seq_lengths=lengths, is_training=False), atol=1e-6):
        raise Failed("attention_mask=None、给了 seq_lengths（右 padding，第一步的训练）时结果和原来的 forward 不同。",
                     "没有 attention_mask 时把参数一个不落地交给 super().forward(input_ids, seq_lengths, "
                     "past_key_values, use_cache, is_training)。")
    mine, _ = cached(forward(model, ids, use_cache=True, is_training=False), what, *ids.shape)
    if not torch.allclose(mine, plain(ids, use_cache=True, is_training=False)[0], atol=1e-6):
        raise Failed("attention_mask=None、use_cache=True 时结果和原来的 forward 不同。",
                     "没有 attention_mask 时原样交给 super().forward(...)，参数一个不落。")


def alone(plain, tokens: torch.Tensor) -> torch.Tensor:
    """hidden_states of one row run by itself, no padding: (L, C)."""
    return plain(tokens[None], is_training=False)[0]


def check_left_padding(model, plain, ids, mask) -> None:
    what = "左 padding 的 batch"
    out = hidden(forward(model, ids, is_training=False, attention_mask=mask.clone()), what)
    if tuple(out.shape) != (*ids.shape, CONFIG.hidden_size) or out.dtype != torch.float32:
        raise Failed(f"{what}：hidden_states 是 {describe_value(out)}，应为 "
                     f"{(*ids.shape, CONFIG.hidden_size)} 的 float32 张量。",
                     "hidden_states = self.norm(x)：embed → 各层 → norm，和原来的前向一样。")
    width = ids.shape[1]
    real = [torch.isfinite(out[row, width - len(p):]).all() for row, p in enumerate(PROMPTS)]
    if not all(real):
        raise Failed("左 padding 的行输出了 NaN：padding 位置的 query 一个 key 都看不到时 softmax 得 NaN，"
                     "下一层真实 token 再看它的 k、v 就都成了 NaN。",
                     "mask = left_padding_mask(attention_mask.bool(), past_len, L)：它让每个位置至少看得见"
                     "自己，真实 token 看不见 padding。")
    for row, prompt in enumerate(PROMPTS):
        if torch.allclose(out[row, width - len(prompt):], alone(plain, prompt), atol=ATOL):
            continue
        if torch.allclose(out, plain(ids, is_training=False), atol=ATOL):
            raise Failed("attention_mask 没有起作用：结果和不传它时一样，真实 token 看到了 padding。",
                         "用它构造 mask：left_padding_mask(attention_mask.bool(), past_len, L)，"
                         "交给每一层。")
        raise Failed(f"左 padding 的第 {row} 行（前面 {width - len(prompt)} 个 padding）与这一行单独运行时不同。",
                     "padding 的 key 要遮住：mask = left_padding_mask(attention_mask.bool(), past_len, L)；"
                     "位置从这一行自己的第一个真实 token 数起：position_ids_from_mask(attention_mask)"
                     "[:, past_len:]，再按它从 self.rotary.cos / sin 里取行。")


def check_cache(model, plain, ids, mask) -> None:
    B, width = ids.shape
    what = "带缓存的左 padding"
    steps, masks = [ids, MORE, LAST], [mask]
    for piece in steps[1:]:
        masks.append(torch.cat([masks[-1], torch.ones_like(piece)], dim=1))  # (B, P+L)
    past, seen, pieces = None, 0, []
    for piece, piece_mask in zip(steps, masks, strict=True):
        h, past = cached(forward(model, piece, past_key_values=past, use_cache=True,
                                 is_training=False, attention_mask=piece_mask.clone()),
                         what, B, seen + piece.shape[1])
        if tuple(h.shape) != (B, piece.shape[1], CONFIG.hidden_size):
            raise Failed(f"{what}：喂 {piece.shape[1]} 个新 token 得到 {describe_value(h)}，应为 "
                         f"{(B, piece.shape[1], CONFIG.hidden_size)}。",
                         "每次只算新 token：x = self.embed_tokens(input_ids)，不要把缓存的部分再算一遍。")
        seen += piece.shape[1]
        pieces.append(h)
    got = torch.cat(pieces, dim=1)  # (B, 9, C)
    for row, prompt in enumerate(PROMPTS):
        tokens = torch.cat([prompt, MORE[row], LAST[row]])
        want = alone(plain, tokens)  # (len, C)
        if not torch.allclose(got[row, width - len(prompt):], want, atol=ATOL):
            raise Failed(f"{what}：先整批 prefill、再一次喂 2 个、再喂 1 个新 token，第 {row} 行与"
                         "这一行单独、一次算完时不同（没有缓存时是对的）。",
                         "带缓存时新 token 只要每行位置的最后 L 列：position_ids_from_mask(attention_mask)"
                         "[:, past_len:]；mask 从 past_len 起算：left_padding_mask(attention_mask.bool(), "
                         "past_len, L)；past_len = past_key_values[0][0].shape[2]；第 i 层拿 "
                         "past_key_values[i]。")


# ---------------------------------------------------------------------------------------------
# The cell after the check: append the class (and 3.3b's position_ids_from_mask) to the
# learner's DIYModel.py, so that DIY_BACKBONE's class has attention_mask from now on.
# ---------------------------------------------------------------------------------------------

MARK = "# ---- 3.3d：attention_mask（左 padding）"


def add_attention_mask(position_ids_from_mask, DIYModelWithMask) -> bool:
    """Append the learner's two parts to the DIY_BACKBONE file (replacing a previous export)
    and make the file's class the one with attention_mask; say what happened, never raise."""
    spec = active()
    if spec is None:
        print("用的是课程的骨干 diy.DIYModel：它本来就有 attention_mask，这一格不写文件"
              "（设了 DIY_BACKBONE 时，它把上面的两段追加进你的 DIYModel.py）。")
        return False
    borrowed = [name for name, part in (("position_ids_from_mask", position_ids_from_mask),
                                        ("DIYModelWithMask", DIYModelWithMask))
                if getattr(part, "__module__", None) != "__main__"]
    if borrowed:
        print(f"⏳ 还不能写进 {spec.path.name}：{'、'.join(borrowed)} 还是课程的参考答案"
              "（自检没通过或还没写）。3.3b、3.3d 的自检都 ✅ 之后再运行这一格。")
        return False
    try:
        text = spec.path.read_text(encoding="utf-8")
        if re.search(rf"super\(\s*{re.escape(spec.class_name)}\s*,", text):
            print(f"❌ {spec.path.name} 里有 super({spec.class_name}, self)：追加的类会接替 "
                  f"{spec.class_name} 这个名字，那一行就会调用错了类。改成 super() 再运行这一格。")
            return False
        own = text.split("\n" + MARK)[0].rstrip() + "\n"  # a previous export is replaced
        cls_source = source_of(DIYModelWithMask).splitlines()
        header = next(i for i, line in enumerate(cls_source) if line.lstrip().startswith("class "))
        cls_source[header] = f"class DIYModelWithMask({spec.class_name}):"
        block = (f"\n\n{MARK}。由 step3_3 的写入单元格追加；再运行那一格会替换这一段。 ----\n"
                 "import torch  # noqa: E402\n"
                 "from diy.model import left_padding_mask  # noqa: E402 - 因果、不看 padding、"
                 "每个位置至少看自己\n\n\n"
                 f"{source_of(position_ids_from_mask).rstrip()}\n\n\n"
                 + "\n".join(cls_source).rstrip() + "\n\n\n"
                 f"{spec.class_name} = DIYModelWithMask  # {spec.class_name} 从此是加上 attention_mask 的"
                 "这个类\n")
        spec.path.write_text(own + block, encoding="utf-8")
    except Exception as exc:  # noqa: BLE001 - a notebook cell must not raise
        print(f"❌ 写入 {spec.path.name} 失败：{type(exc).__name__}: {exc}")
        return False
    try:
        spec.load()  # the file still imports and still names the class
    except Exception as exc:  # noqa: BLE001 - put the learner's file back as it was
        spec.path.write_text(text, encoding="utf-8")
        print(f"❌ 写入之后 {spec.path.name} 导入失败（{getattr(exc, 'problem', exc)}），已经恢复原样。")
        return False
    print(f"✅ 把 attention_mask 写进了你的 {spec.path.name}（追加在文件末尾）：position_ids_from_mask、"
          f"DIYModelWithMask，并让 {spec.class_name} 指向它。")
    return True

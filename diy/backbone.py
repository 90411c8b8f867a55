"""A learner's own backbone file: ``DIY_BACKBONE=path/to/DIYModel.py[:ClassName]``.

The course's study plan assumes the learner already wrote ``DIYModel.py``. This module loads
such a file by path (no package, no sys.path edits), checks that it can be used at all and
builds it with the seed's six positional arguments. Every way a file can be unusable (missing,
syntax error, an exception while importing, no such class, a constructor that refuses the six
arguments or names them in another order) becomes one DIYBackboneError naming the file and the
fix — before any work is done. The first build of a file (per content and config) also runs the
contract's required items on the new model (``check_contract``, the items themselves below),
so a backbone that breaks the contract is refused there, naming the item and the doctor's full
report, instead of failing later inside the course's code.

    spec = BackboneSpec.parse("my/DIYModel.py:MyModel")     # or from_env()
    Model = spec.load()                                     # the class
    backbone = spec.build(DIYConfig())                      # Model(6400, 2, 256, 4, 128, 0.1), checked
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
import traceback
from dataclasses import astuple, dataclass
from pathlib import Path

import torch
from torch import nn

from .config import DIYConfig
from .errors import DIYError, describe_value

ENV = "DIY_BACKBONE"
DEFAULT_CLASS = "DIYModel"
CONTRACT_ARGS = ("vocab_size", "num_layers", "hidden_size", "num_heads", "max_seq_len", "dropout")
DOCTOR = "python -m diy.classroom.doctor --backbone"  # the full report, item by item


class DIYBackboneError(DIYError):
    """A backbone file that cannot be used as it is."""


@dataclass(frozen=True)
class BackboneSpec:
    path: Path  # absolute
    class_name: str = DEFAULT_CLASS

    @classmethod
    def parse(cls, text: str) -> BackboneSpec:
        """"path/to/file.py" or "path/to/file.py:ClassName" (a Windows drive letter is no class;
        a bad class name after a real file is kept, so that load() names it)."""
        text = text.strip()
        path, _, name = text.rpartition(":")
        names_a_file = path.endswith(".py") or Path(path).expanduser().is_file()
        if not path or not (name.isidentifier() or names_a_file):  # "C:\\...", no class given
            path, name = text, DEFAULT_CLASS
        return cls(Path(path).expanduser().resolve(), name)

    @classmethod
    def from_env(cls) -> BackboneSpec | None:
        text = os.environ.get(ENV, "").strip()
        return cls.parse(text) if text else None

    def __str__(self) -> str:
        return f"{self.path}:{self.class_name}"

    @property
    def name(self) -> str:
        """"DIYModel.py:DIYModel": how messages name the learner's backbone."""
        return f"{self.path.name}:{self.class_name}"

    def digest(self) -> str:
        """The file's content hash: caches of models trained on this backbone are keyed on it."""
        self._check_exists()
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]

    def _check_exists(self) -> None:
        if not self.path.is_file():
            _fail(f"找不到骨干文件 {self.path}。",
                  f"检查路径（相对路径从当前文件夹 {Path.cwd()} 算起），或写成绝对路径："
                  f"{ENV}=/完整/路径/DIYModel.py。",
                  f"backbone file {self.path} does not exist.")

    def load(self) -> type:
        """The backbone class, or a DIYBackboneError that names the file and the fix."""
        module_name = f"diy_backbone_{self.digest()}"  # digest() refuses a missing file
        module = sys.modules.get(module_name)
        if module is None:
            module = _import_file(self.path, module_name)
        found = getattr(module, self.class_name, None)
        if not (inspect.isclass(found) and issubclass(found, nn.Module)):
            classes = [name for name, value in vars(module).items()
                       if inspect.isclass(value) and issubclass(value, nn.Module)
                       and value.__module__ == module_name]
            listed = "、".join(classes) or "没有"
            _fail(f"{self.path.name} 里没有名为 {self.class_name} 的 nn.Module 类"
                  f"（文件里的 nn.Module 类：{listed}）。",
                  f"在路径后面写上类名：{ENV}={self.path.name}:类名（默认是 {DEFAULT_CLASS}）。",
                  f"{self.path.name} defines no nn.Module class named {self.class_name}.")
        _check_forward_signature(found, self)
        _check_constructor_names(found, self)
        return found

    def build(self, config: DIYConfig | None = None, check: bool = True) -> nn.Module:
        """The backbone, built as the seed plan builds DIYModel: six positional arguments.
        ``check``: run the contract's required items the first time this file (content),
        class and config are built (check_contract; the doctor builds with check=False and
        runs every item itself)."""
        config = config or DIYConfig()
        args = contract_values(config)
        model_class = self.load()
        try:
            model = model_class(*args)
        except Exception as exc:  # noqa: BLE001 - whatever the learner's constructor raises
            where = where_in_file(exc, self.path)
            said = str(exc) or "（没有说明）"
            passed = named_values(model_class, args)
            if isinstance(exc, AssertionError) and where:
                fix = (f"课程按位置传 {passed}：这一行的断言对这些值不成立。改这个断言，"
                       "或让构造函数接受课程的尺寸（见上面的值）。")
            else:
                fix = ("构造函数要按课程约定的顺序接受六个位置参数：(vocab_size, num_layers, "
                       f"hidden_size, num_heads, max_seq_len, dropout)；课程传的是 {passed}。")
            _fail(f"{self.path.name} 的 {self.class_name}{args} 构造失败"
                  f"{f'（{where}）' if where else ''}：{type(exc).__name__}: {said}", fix,
                  f"{self.class_name}(vocab_size, num_layers, hidden_size, num_heads, "
                  f"max_seq_len, dropout) failed: {type(exc).__name__}: {said}")
        if check:
            check_contract(model, config, self)
        return model


# passed by name (input_ids comes first, by position)
CONTRACT_KEYWORDS = ("seq_lengths", "past_key_values", "use_cache", "is_training")


def _check_forward_signature(model_class: type, spec: BackboneSpec) -> None:
    """forward must take the contract's keyword arguments by name (the course passes them so)."""
    if model_class.forward is nn.Module.forward:
        _fail(f"{spec.path.name} 的 {spec.class_name} 没有定义 forward。",
              "按课程的约定写：def forward(self, input_ids, seq_lengths=None, "
              "past_key_values=None, use_cache=False, is_training=True)。",
              f"{spec.class_name} defines no forward.")
    parameters = inspect.signature(model_class.forward).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    missing = [name for name in CONTRACT_KEYWORDS if name not in parameters]
    if missing:
        _fail(f"{spec.path.name} 的 {spec.class_name}.forward 没有参数 {'、'.join(missing)}。",
              "按课程的约定写：def forward(self, input_ids, seq_lengths=None, "
              "past_key_values=None, use_cache=False, is_training=True)。",
              f"{spec.class_name}.forward lacks {', '.join(missing)}.")


def contract_values(config: DIYConfig) -> tuple:
    """The six values the course passes, by position: (6400, 2, 256, 4, 128, 0.1)."""
    return tuple(getattr(config, name) for name in CONTRACT_ARGS)


def _constructor_names(model_class: type) -> list[str] | None:
    """The names the constructor gives its first six positional arguments (None: *args)."""
    parameters = list(inspect.signature(model_class.__init__).parameters.values())[1:]  # self
    names = []
    for p in parameters:
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
    return names[:len(CONTRACT_ARGS)]


def named_values(model_class: type, values: tuple) -> str:
    """"vocab_size=6400, num_layers=2, ...": which of the constructor's parameters gets which
    of the course's positional values, by the learner's own parameter names."""
    names = _constructor_names(model_class)
    if names is None:
        return ", ".join(f"{n}={v!r}" for n, v in zip(CONTRACT_ARGS, values, strict=True))
    pairs = [f"{n}={v!r}" for n, v in zip(names, values, strict=False)]
    return ", ".join(pairs + [f"(多出来的) {v!r}" for v in values[len(names):]])


def _check_constructor_names(model_class: type, spec: BackboneSpec) -> None:
    """The course builds every backbone by position, Model(6400, 2, 256, 4, 128, 0.1): a
    constructor that names the contract's parameters in another order would quietly build a
    model of other sizes (and fail much later, far from the cause)."""
    names = _constructor_names(model_class)
    if names is None:
        return
    moved = [name for i, name in enumerate(names)
             if name in CONTRACT_ARGS and CONTRACT_ARGS.index(name) != i]
    if not moved:
        return
    values = contract_values(DIYConfig())
    mine = ", ".join(names)
    got = ", ".join(f"{name}={values[i]!r}" for i, name in enumerate(names) if name in moved)
    _fail(f"{spec.path.name} 的 {spec.class_name}.__init__ 参数顺序和约定不同：你的是 ({mine})，"
          f"约定是 ({', '.join(CONTRACT_ARGS)})。课程按位置传 {spec.class_name}"
          f"{values}，按你的顺序就成了 {got}。",
          f"把 __init__ 的参数改成约定的顺序：def __init__(self, {', '.join(CONTRACT_ARGS)})。",
          f"{spec.class_name}.__init__ takes ({mine}); the course passes "
          f"({', '.join(CONTRACT_ARGS)}) by position.")


def where_in_file(exc: BaseException, path: Path) -> str:
    """"DIYModel.py 第 42 行：x = x.view(B, L, H, D)": the last line of the learner's file (or a
    file next to it) that the exception passed through, with its source; "" if none."""
    folder = str(path.parent)
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename == str(path) or (os.path.dirname(f.filename) == folder
                                             and f.filename.endswith(".py"))]
    if not frames:
        return ""
    frame = frames[-1]
    line = (frame.line or "").strip()
    return f"{Path(frame.filename).name} 第 {frame.lineno} 行" + (f"：{line}" if line else "")


def _import_file(path: Path, module_name: str):
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    sys.path.insert(0, str(path.parent))  # "from layers import ..." next to the file works
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        _fail(f"{path.name} 第 {exc.lineno} 行有语法错误：{exc.msg}。",
              "在编辑器里打开这一行改正，再运行一次。",
              f"syntax error in {path.name}, line {exc.lineno}: {exc.msg}")
    except ModuleNotFoundError as exc:
        del sys.modules[module_name]
        _fail(f"导入 {path.name} 时找不到模块 {exc.name}。",
              f"{exc.name} 是你自己的文件？把它放在 {path.name} 旁边（同一个文件夹）；"
              "是别人的包？在课程的 venv 里 pip install。注意：缓存只认 "
              f"{path.name} 本身的内容，改了旁边的文件请同时改一下它（例如加一行注释）。",
              f"importing {path.name}: no module named {exc.name}.")
    except Exception as exc:  # noqa: BLE001 - any exception while the learner's file runs
        del sys.modules[module_name]
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        where = f"第 {frames[-1].lineno} 行" if frames else "导入时"
        _fail(f"导入 {path.name} 时出错（{where}）：{type(exc).__name__}: {exc}",
              "文件在被导入时就运行了出错的代码：把测试代码放进 if __name__ == \"__main__\": 下面，"
              "或改正这一行。",
              f"importing {path.name} raised {type(exc).__name__}: {exc}")
    finally:
        sys.path.remove(str(path.parent))
    return module


def _fail(problem: str, fix: str, gloss: str):
    raise DIYBackboneError(problem, fix, gloss)


def active() -> BackboneSpec | None:
    """The learner's backbone named by DIY_BACKBONE, or None for the course's reference."""
    return BackboneSpec.from_env()


def backbone_class() -> type:
    """The class the lessons build as ``DIYModel(...)``: the learner's (DIY_BACKBONE) or the
    course's diy.DIYModel. Both take the seed's six positional arguments. The learner's is
    checked against the contract first (once per file content; see checked_class)."""
    spec = active()
    if spec is None:
        from .model import DIYModel

        return DIYModel
    return checked_class(spec)


def checked_class(spec: BackboneSpec, config: DIYConfig | None = None) -> type:
    """``spec``'s class, once a model of it built at ``config`` (the course's) has passed the
    contract's required items: the notebooks build the class themselves (1.1: DIYModel(...)),
    so their first cell is where a broken backbone is refused. The verdict is remembered per
    file content; the global random state is left as it was."""
    model_class = spec.load()
    config = config or DIYConfig()
    refusal = _VERDICTS.get((spec.digest(), spec.class_name, astuple(config)), ())
    if refusal == ():  # not built yet
        with torch.random.fork_rng(devices=[]):
            spec.build(config)  # check_contract runs and remembers the verdict
    elif refusal is not None:
        raise DIYBackboneError(*refusal)
    return model_class


def build_backbone(config: DIYConfig, spec: BackboneSpec | None = None) -> nn.Module:
    """The backbone the course runs on: ``spec``'s class (the learner's), else diy.DIYModel."""
    if spec is None:
        from .model import DIYModel

        return DIYModel(config)
    return spec.build(config)


def build_active_backbone(config: DIYConfig) -> nn.Module:
    """The backbone the course runs on now: DIY_BACKBONE's class, else diy.DIYModel."""
    return build_backbone(config, active())


def accepts_attention_mask(backbone: nn.Module) -> bool:
    """Does the backbone's forward name ``attention_mask`` (left-padded batches, lesson 3.3)?
    Only a named parameter counts: ``**kwargs`` may swallow it unread. Whether it is used
    right is what ``python -m diy.classroom.doctor --backbone`` checks."""
    return "attention_mask" in inspect.signature(backbone.forward).parameters


def is_reference(model: nn.Module) -> bool:
    """Is ``model`` (a DIYForCausalLM, the learner's own 1.3 class included) built on the
    course's diy.DIYModel, whose internals (cache, rotary) the course may use directly?"""
    from .model import DIYModel

    return type(getattr(model, "model", None)) is DIYModel


def record(spec: BackboneSpec | None) -> dict | None:
    """What checkpoints and caches remember of the backbone: None for the course's reference,
    else the file's name, the class and the content hash (a changed file is another model)."""
    if spec is None:
        return None
    return {"file": spec.path.name, "class": spec.class_name, "sha256": spec.digest()}


def use(text: str, config: DIYConfig | None = None) -> BackboneSpec:
    """``--backbone FILE[:Class]`` of the command-line tools: check that the file builds
    (a DIYBackboneError before any work), then make it the active backbone of this process
    (and of any process it starts) through DIY_BACKBONE."""
    spec = BackboneSpec.parse(text)
    spec.build(config)
    os.environ[ENV] = str(spec)
    return spec


# What some lesson cells need beyond the contract: (what it is, how the model shows it has it).
FEATURES = {
    "attention_mask": ("左 padding 的批量：forward 的 attention_mask 参数",
                       lambda model: accepts_attention_mask(model.model)),
    "0.4_parts": ("0.4 的零件（embed_tokens、layers、norm、RoPE 表 rotary.cos / rotary.sin、"
                  "layer(x, cos, sin, mask, past)）", lambda model: has_parts_of_0_4(model.model)),
    "transformers": ("与 transformers 的 LlamaForCausalLM 同名同形状的参数（diy.hf、diy.export）",
                     lambda model: is_reference(model) or _fits_llama(model)),
}


def has_parts_of_0_4(backbone: nn.Module) -> bool:
    """Is ``backbone`` built from 0.4's parts, so that a lesson may run its layers itself (3.3's
    forward with given positions)? The course's diy.DIYModel and the file 0.4 exports are."""
    rotary = getattr(backbone, "rotary", None)
    layers = getattr(backbone, "layers", None)
    if not (isinstance(getattr(backbone, "embed_tokens", None), nn.Module)
            and isinstance(getattr(backbone, "norm", None), nn.Module)
            and isinstance(layers, nn.ModuleList) and len(layers) > 0
            and all(isinstance(getattr(rotary, name, None), torch.Tensor) for name in ("cos", "sin"))):
        return False
    try:
        parameters = inspect.signature(layers[0].forward).parameters
    except (TypeError, ValueError):
        return False
    return len(parameters) >= 5  # layer(x, cos, sin, mask, past_kv)


def _fits_llama(model) -> bool:
    from .hf import fits_llama

    return fits_llama(model)


def supports(model: nn.Module, feature: str) -> bool:
    """Does ``model`` (a DIYForCausalLM) have ``feature``? When it does not (a learner's backbone
    without it), say in one line what the cell skips and why, so that the notebook runs on."""
    what, has = FEATURES[feature]
    if has(model):
        return True
    spec = getattr(model, "backbone_spec", None)
    name = spec.name if spec else type(model.model).__name__
    print(f"⏭️ 跳过：这一段要用{what}，你的骨干 {name} 没有。"
          f"（python -m diy.classroom.doctor --backbone 你的文件 列出它支持哪些；去掉 {ENV} 就用课程的骨干。）")
    return False


def describe() -> str:
    """One line for every notebook: which backbone this run uses."""
    spec = active()
    if spec is None:
        return "骨干网络：课程的参考实现 diy.DIYModel"
    checked_class(spec)  # a file that cannot be used says so here, in the notebook's first cell
    return f"骨干网络：你的 {spec.name}（来自 {ENV}）"


# ---------------------------------------------------------------------------------------------
# The contract's required items. The first build of a learner's file runs them on the new model
# (check_contract); python -m diy.classroom.doctor --backbone runs them with the optional ones
# (diy/classroom/conformance.py). Each raises ContractBroken (what happened, how to fix it).
# The course calls a backbone with is_training equal to model.training (except the cached
# inference path: is_training=False): so do the items, and a backbone whose dropout follows
# is_training (the study plan's F.dropout(x, p, training=is_training)) passes as one whose
# dropout follows train() / eval().
# ---------------------------------------------------------------------------------------------

ATOL = 1e-4  # float32 on any BLAS; a real mistake moves outputs by far more


class ContractBroken(Exception):
    """A contract item found broken: what happened and the hint."""

    def __init__(self, what: str, hint: str):
        super().__init__(what)
        self.what, self.hint = what, hint


def course_ids(config: DIYConfig, rows: int, length: int) -> torch.Tensor:
    """(rows, length) token ids from the course passage, each row a different window."""
    ids = _passage_ids().clamp(max=config.vocab_size - 1)
    ids = ids.repeat(1 + rows * length // len(ids) + 1)
    return torch.stack([ids[i * 37: i * 37 + length] for i in range(rows)])  # (rows, length)


def _passage_ids() -> torch.Tensor:
    global _PASSAGE_IDS
    if _PASSAGE_IDS is None:
        from .data import load_passage
        from .tokenizer import CharTokenizer

        _PASSAGE_IDS = torch.tensor(CharTokenizer().encode(load_passage()), dtype=torch.long)
    return _PASSAGE_IDS


_PASSAGE_IDS = None


def hidden_of(output, what: str) -> torch.Tensor:
    """The hidden_states tensor a non-cached call returned, or ContractBroken saying what came."""
    if isinstance(output, (tuple, list)):
        raise ContractBroken(f"{what} 返回了 {type(output).__name__}（{len(output)} 项），应只返回一个张量",
                             "use_cache=False 时 forward 只返回 hidden_states（只有 use_cache=True 时才返回 "
                             "(hidden_states, presents)）。")
    if not isinstance(output, torch.Tensor):
        raise ContractBroken(f"{what} 返回了 {describe_value(output)}，应为张量 hidden_states",
                             "forward 最后 return 最终 norm 之后的 hidden_states。")
    return output


def eval_hidden(model, ids, **kwargs) -> torch.Tensor:
    """hidden_states in eval mode, called as the course calls it there: is_training=False."""
    return hidden_of(model.eval()(ids, is_training=False, **kwargs),
                     "eval() 下 model(input_ids, is_training=False)")


def with_cache(model, ids, **kwargs):
    output = model(ids, is_training=False, use_cache=True, **kwargs)
    if not (isinstance(output, (tuple, list)) and len(output) == 2):
        raise ContractBroken(f"is_training=False, use_cache=True 返回了 {describe_value(output)}，"
                             "应为 (hidden_states, presents) 两项",
                             "use_cache=True 时 return hidden_states, presents（每层一个 (k, v)）。")
    return output


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=ATOL, rtol=ATOL)


def presents_problem(presents, config: DIYConfig, batch: int, length: int):
    """None when ``presents`` has the contract's layout — one (k, v) per layer, each
    (B, num_heads, length, head_dim), the course's and transformers' legacy cache — else
    (what was found, and the one-line change that gives the layout)."""
    H, C = config.num_heads, config.hidden_size
    D = C // H
    want = (batch, H, length, D)
    layout = (f"约定：presents 是每层一个 (k, v) 的列表（{config.num_layers} 层），k、v 的形状都是 "
              f"(B, num_heads, 长度, head_dim) = {want}（课程和 transformers 的旧格式）：1.3 和第三步"
              "从第 3 维读缓存的长度，再把它原样作为 past_key_values 传回来。")
    if not isinstance(presents, (list, tuple)):
        return (f"presents 是 {describe_value(presents)}，不是每层一项的列表",
                layout + " 例如 presents = []，每层 presents.append((k, v))。")
    if len(presents) != config.num_layers:
        return (f"presents 有 {len(presents)} 项，应为 num_layers = {config.num_layers} 项（每层一项）",
                layout)
    for i, layer in enumerate(presents):
        if isinstance(layer, torch.Tensor):
            shape = tuple(layer.shape)
            if shape == (2, *want):
                return (f"presents[{i}] 是叠成一个的张量 {shape} = (2, B, num_heads, 长度, head_dim)，"
                        f"约定是两个张量 (k, v)，各 {want}",
                        "一行改好：return hidden_states, [tuple(kv) for kv in presents]"
                        "（tuple(kv) 沿第 0 维拆成 (k, v)；读缓存的 k, v = past_key_values[i] 不用改）。")
            if shape == (batch, length, C):
                return (f"presents[{i}] 是一个张量 {shape} = (B, 长度, hidden_size)（像 nn.MultiheadAttention "
                        f"那样缓存了这一层的输入？），约定是 (k, v)，各 {want}",
                        "nn.MultiheadAttention 不交出 k、v：最好自己用 q_proj / k_proj / v_proj 算（0.3）；"
                        f"只想换个形状也行，一行存：h = x.view(B, T, {H}, {D}).transpose(1, 2); "
                        f"present = (h, h)，读回时 x_past = past[0].transpose(1, 2).reshape(B, P, {C})。")
            return (f"presents[{i}] 是一个张量 {shape}，约定是 (k, v) 两个张量，各 {want}", layout)
        if not (isinstance(layer, (list, tuple)) and len(layer) == 2
                and all(isinstance(t, torch.Tensor) for t in layer)):
            return (f"presents[{i}] 是 {describe_value(layer)}，约定是 (k, v) 两个张量，各 {want}", layout)
        shapes = [tuple(t.shape) for t in layer]
        if all(shape == want for shape in shapes):
            continue
        shape = next(s for s in shapes if s != want)
        if shape == (batch, length, H, D):
            return (f"presents[{i}] 的 k、v 是 {shape} = (B, 长度, num_heads, head_dim)，约定是 {want} = "
                    "(B, num_heads, 长度, head_dim)",
                    "一行改好：present = (k.transpose(1, 2), v.transpose(1, 2))"
                    "（读回来的 past 也是这个形状：拼接沿 dim=2）。")
        if shape == (batch, length, C):
            return (f"presents[{i}] 的 k、v 是 {shape} = (B, 长度, hidden_size)：还没分头；约定是 {want}",
                    f"一行改好：present = (k.view(B, T, {H}, {D}).transpose(1, 2), "
                    f"v.view(B, T, {H}, {D}).transpose(1, 2))。")
        if shape == (batch * H, length, D):
            return (f"presents[{i}] 的 k、v 是 {shape} = (B·num_heads, 长度, head_dim)"
                    f"（nn.MultiheadAttention 内部的布局），约定是 {want}",
                    f"一行改好：present = (k.view(B, {H}, T, {D}), v.view(B, {H}, T, {D}))。")
        return (f"presents[{i}] 的 k、v 是 {shapes[0]} 和 {shapes[1]}，约定是各 {want}", layout)
    return None


def _length(config: DIYConfig, wanted: int = 16) -> int:
    """The items' sequence length: 16, or less for a model whose max_seq_len is shorter (the
    self-checks build small ones)."""
    return min(wanted, config.max_seq_len)


def check_training_path(model, config):
    L = _length(config)
    ids = course_ids(config, 2, L)
    hidden = hidden_of(model.train()(ids, is_training=True), "model(input_ids, is_training=True)")
    want = (2, L, config.hidden_size)
    if tuple(hidden.shape) != want:
        raise ContractBroken(f"返回 {tuple(hidden.shape)}，应为 {want}",
                             "返回 embedding → 各层 → 最终 norm 之后的 hidden_states，不要接 lm_head。")
    if hidden.dtype != torch.float32:
        raise ContractBroken(f"hidden_states 的 dtype 是 {hidden.dtype}，课程的 lm_head 和 loss 用 float32",
                             "不要在骨干里 .double() / .half()；参数和计算都保持 PyTorch 默认的 float32。")
    return f"train() 下 model(input_ids, is_training=True) → {want} 的 float32 张量"


def check_cache_path(model, config):
    L = _length(config, 9) - 1  # L tokens, then one more
    ids = course_ids(config, 2, L + 1)
    with torch.no_grad():
        hidden, presents = with_cache(model.eval(), ids[:, :L])
        if not isinstance(hidden, torch.Tensor) or tuple(hidden.shape) != (2, L, config.hidden_size):
            raise ContractBroken(f"hidden_states 是 {describe_value(hidden)}",
                                 f"应为 (B, L, {config.hidden_size}) = {(2, L, config.hidden_size)} 的张量。")
        problem = presents_problem(presents, config, batch=2, length=L)
        if problem:
            raise ContractBroken(*problem)
        step_hidden, step_presents = with_cache(model, ids[:, -1:], past_key_values=presents)
    if not isinstance(step_hidden, torch.Tensor) or \
            tuple(step_hidden.shape) != (2, 1, config.hidden_size):
        raise ContractBroken(f"把 presents 作为 past_key_values 传回、再输入 1 个 token，得到 "
                             f"{describe_value(step_hidden)}", f"应为 (B, 1, {config.hidden_size})。")
    problem = presents_problem(step_presents, config, batch=2, length=L + 1)
    if problem:
        raise ContractBroken(f"传回缓存、再输入 1 个 token 之后：{problem[0]}", problem[1])
    return "use_cache=True 返回 (hidden_states, presents)，presents 能作为 past_key_values 传回"


def check_eval_is_deterministic(model, config):
    ids = course_ids(config, 2, _length(config))
    with torch.no_grad():
        first, second = eval_hidden(model, ids), eval_hidden(model, ids)
        if not torch.equal(first, second):
            raise ContractBroken("eval() 之后、is_training=False 时同样的输入两次输出不同：dropout 还在起作用",
                                 "dropout 在 eval() 时要关掉：用 nn.Dropout，或 F.dropout(x, p, "
                                 "training=self.training)（也可以 training=is_training：课程在 eval() "
                                 "时总是传 is_training=False）。")
        if config.dropout == 0:
            return "eval() 后（is_training=False）输出确定"
        try:  # which reading of is_training: only said, never required
            flagged = [model(ids, is_training=True) for _ in range(2)]
            follows_flag = all(isinstance(t, torch.Tensor) for t in flagged) and \
                not torch.equal(*flagged)
        except Exception:  # noqa: BLE001 - eval() with is_training=True is never the course's call
            follows_flag = False
    if follows_flag:
        return ("eval() 后（is_training=False）输出确定；你的 dropout 跟随 is_training"
                "（课程调用骨干时 is_training 总是和 train() / eval() 一致，所以也行）")
    return "eval() 后（is_training=False）输出确定；dropout 跟随 train() / eval()"


def check_causal(model, config):
    L = _length(config)
    t = L * 5 // 8  # 10 of 16
    ids = course_ids(config, 2, L)
    changed = ids.clone()
    changed[:, t] = (changed[:, t] + 1) % config.vocab_size
    with torch.no_grad():
        before, after = eval_hidden(model, ids), eval_hidden(model, changed)
    if not close(before[:, :t], after[:, :t]):
        raise ContractBroken(f"只改第 {t} 个 token，它前面（0～{t - 1}）的输出也变了：后面的 token 泄露给了前面",
                             "注意力要加因果 mask：位置 i 只能看位置 ≤ i（scores 在 j > i 处填 -inf，"
                             "或 F.scaled_dot_product_attention(..., is_causal=True)）。")
    return "改第 t 个 token 不改变 t 之前的输出"


def check_padding(model, config):
    L = _length(config)
    n = L * 9 // 16  # 9 of 16 real tokens in row 1
    ids = course_ids(config, 2, L)
    lengths = torch.tensor([L, n])
    other = ids.clone()
    other[1, n:] = (other[1, n:] + 7) % config.vocab_size  # different padding content
    with torch.no_grad():
        padded = eval_hidden(model, ids, seq_lengths=lengths)
        repadded = eval_hidden(model, other, seq_lengths=lengths)
        alone = eval_hidden(model, ids[1:2, :n])
    if not torch.isfinite(padded).all():
        raise ContractBroken("右 padding 的 batch 输出里有 NaN / inf",
                             "padding 的 query 一个 key 都看不到时 softmax 得 NaN：让每个位置至少能看到自己。")
    if not (close(padded[1, :n], alone[0]) and close(padded[1, :n], repadded[1, :n])):
        raise ContractBroken("seq_lengths 之后的 padding 改变了真实位置的输出",
                             "用 seq_lengths 构造 key mask：第 b 行位置 ≥ seq_lengths[b] 的 key 不能被看到。")
    return "seq_lengths 右 padding 不改变真实位置的输出，没有 NaN"


def check_cache_equivalence(model, config):
    L = _length(config)
    p = L * 5 // 8  # prefill 10 of 16, then one token at a time
    ids = course_ids(config, 2, L)
    with torch.no_grad():
        full = eval_hidden(model, ids)
        hidden, presents = with_cache(model, ids[:, :p])
        steps = [hidden]
        for t in range(p, L):
            hidden, presents = with_cache(model, ids[:, t:t + 1], past_key_values=presents)
            steps.append(hidden)
    cached = torch.cat(steps, dim=1)  # (B, L, C)
    if not close(full, cached):
        first = int((~torch.isclose(full, cached, atol=ATOL, rtol=ATOL)).any(-1).any(0)
                    .nonzero()[0])
        raise ContractBroken(f"先 prefill {p} 个 token 再逐个解码，从位置 {first} 起与一次算完不同",
                             "新 token 的位置要从缓存长度接着数（RoPE / 位置编码加上 past_len 的偏移），"
                             "并且把过去的 k、v 与新的拼在一起再做注意力。")
    return "prefill + 逐个 token 解码 ≡ 一次算完整条序列（eval）"


def check_gradients(model, config):
    ids = course_ids(config, 2, _length(config))
    model.train().zero_grad(set_to_none=True)
    with torch.enable_grad():
        hidden_of(model(ids, is_training=True), "model(input_ids, is_training=True)") \
            .float().pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    bad = [n for n, p in model.named_parameters() if p.grad is not None
           and not torch.isfinite(p.grad).all()]
    model.zero_grad(set_to_none=True)
    if missing or bad:
        names = "、".join((missing or bad)[:3])
        raise ContractBroken(f"{'没有梯度' if missing else '梯度有 NaN / inf'} 的参数：{names}",
                             "每个参数都要出现在前向计算里：没用到的层删掉；"
                             "不要在前向里 .detach() 或用 torch.no_grad()。")
    return f"全部 {sum(1 for _ in model.parameters())} 个参数张量都得到有限的梯度"


def check_max_length(model, config):
    n = config.max_seq_len
    ids = course_ids(config, 1, n)
    with torch.no_grad():
        hidden = eval_hidden(model, ids)
        start = max(1, n - 4)  # prefill, then the last tokens one at a time
        _, presents = with_cache(model, ids[:, :start])
        for t in range(start, n):
            _, presents = with_cache(model, ids[:, t:t + 1], past_key_values=presents)
    if tuple(hidden.shape) != (1, n, config.hidden_size):
        raise ContractBroken(f"长度 {n} 的输入得到 {tuple(hidden.shape)}", "检查位置编码表的长度。")
    return f"长度 {n}（= max_seq_len）：一次算完和带缓存逐个解码都能运行"


# (name, lessons that need it, check, what it depends on: an item whose dependency failed is
# not run, it is reported as skipped because of that one). All required; the doctor adds the
# optional ones (diy/classroom/conformance.py).
REQUIRED = [
    ("训练路径", "1.1～1.3、2.2", check_training_path, ()),
    ("缓存路径", "3.1～3.3", check_cache_path, ()),
    ("eval 时确定", "2.3、第三步", check_eval_is_deterministic, ()),
    ("因果", "1.2、2.2、3.1", check_causal, ("eval 时确定",)),
    ("右 padding", "1.2", check_padding, ("eval 时确定",)),
    ("缓存 ≡ 无缓存", "3.1、3.3", check_cache_equivalence, ("缓存路径", "eval 时确定")),
    ("梯度", "1.2、2.2", check_gradients, ("训练路径",)),
    ("最长序列", "2.1～2.3", check_max_length, ("缓存路径", "eval 时确定")),
]
# How each item calls the backbone: said next to a runtime error, so the learner can reproduce it.
CALLS = {
    "训练路径": "train() 下 model(input_ids, is_training=True)，input_ids 是 (2, 16)",
    "缓存路径": "eval() 下 model(ids, is_training=False, use_cache=True)，再把 presents 作为 "
               "past_key_values 传回、输入 1 个 token",
    "eval 时确定": "eval() 下 model(input_ids, is_training=False) 两次",
    "因果": "eval() 下 model(input_ids, is_training=False)，只改第 10 个 token 再算一次",
    "右 padding": "eval() 下 model(input_ids, seq_lengths=torch.tensor([16, 9]), is_training=False)",
    "缓存 ≡ 无缓存": "eval() 下先 prefill 10 个 token（use_cache=True），再带着 past_key_values 逐个输入",
    "梯度": "train() 下 model(input_ids, is_training=True)，再 backward",
    "最长序列": "eval() 下长度 max_seq_len 的 model(input_ids, is_training=False)，再带缓存解码到这个长度",
}
ENGLISH = {"训练路径": "training path", "缓存路径": "cache path", "eval 时确定": "deterministic in eval",
           "因果": "causal", "右 padding": "right padding", "缓存 ≡ 无缓存": "cache = no cache",
           "梯度": "gradients", "最长序列": "max_seq_len"}
# run at the first build (the gradient item needs a backward pass: the doctor's report has it)
ON_BUILD = ("训练路径", "缓存路径", "eval 时确定", "因果", "右 padding", "缓存 ≡ 无缓存", "最长序列")


def broken_item(name: str, exc: BaseException, path: Path) -> tuple[str, str]:
    """(what, hint) of an item that raised: its ContractBroken, or the learner's exception with
    the line of the learner's file it came from."""
    if isinstance(exc, ContractBroken):
        return exc.what, exc.hint
    where = where_in_file(exc, path)
    text = str(exc).strip()
    said = text.splitlines()[0][:160] if text else "（没有说明）"
    call = CALLS.get(name)
    return (f"运行出错{f'（{where}）' if where else ''}：{type(exc).__name__}: {said}",
            f"按错误信息改{'这一行' if where else ' forward'}"
            + (f"；这一项是这样调用的：{call}" if call else ""))


def doctor_command(spec: BackboneSpec) -> str:
    import shlex

    return f"{DOCTOR} {shlex.quote(str(spec.path))}" + \
        (f":{spec.class_name}" if spec.class_name != DEFAULT_CLASS else "")


_VERDICTS: dict[tuple, tuple[str, str, str] | None] = {}  # (digest, class, config) -> refusal


def check_contract(model: nn.Module, config: DIYConfig, spec: BackboneSpec) -> None:
    """Run the required items (ON_BUILD) on a newly built learner's backbone, once per file
    content, class and config (the verdict is remembered); a DIYBackboneError naming the file,
    the item and the doctor's full report when one is broken. The model's mode is restored and
    the global random state is left as it was."""
    key = (spec.digest(), spec.class_name, astuple(config))
    if key not in _VERDICTS:
        _VERDICTS[key] = _first_broken(model, config, spec)
    refusal = _VERDICTS[key]
    if refusal is not None:
        raise DIYBackboneError(*refusal)


def _first_broken(model, config, spec) -> tuple[str, str, str] | None:
    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            for name, _, check, _ in REQUIRED:
                if name not in ON_BUILD:
                    continue
                try:
                    check(model, config)
                except Exception as exc:  # noqa: BLE001 - the learner's forward raised
                    what, hint = broken_item(name, exc, spec.path)
                    return (f"你的骨干 {spec.name} 不符合约定的「{name}」：{what}。",
                            f"{hint.rstrip('。')}。整个约定的逐项检查：{doctor_command(spec)}",
                            f"backbone {spec.name} breaks the contract ({ENGLISH[name]}); "
                            f"see {doctor_command(spec)}")
    finally:
        model.train(was_training)
    return None

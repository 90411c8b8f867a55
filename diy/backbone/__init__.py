"""A learner's own backbone file: ``DIY_BACKBONE=path/to/DIYModel.py[:ClassName]``.

The course's study plan assumes the learner already wrote ``DIYModel.py``. This module loads
such a file by path (no package, no sys.path edits), checks that it can be used at all and
builds it with the seed's six positional arguments. Every way a file can be unusable (missing,
syntax error, an exception while importing, no such class, a constructor that refuses the six
arguments or names them in another order) becomes one DIYBackboneError naming the file and the
fix — before any work is done. The first build of a file (per content and config) also runs the
contract's required items on the new model (``check_contract``; the items are in diy/backbone/contract.py),
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
import shlex
import sys
import traceback
from dataclasses import astuple, dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import DIYConfig
from ..errors import DIYError
from . import contract
from .contract import where_in_file

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
        from ..model import DIYModel

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
        from ..model import DIYModel

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
    from ..model import DIYModel

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
    "transformers": ("与 transformers 的 LlamaForCausalLM 同名同形状的参数（diy.hf、diy.hf.export）",
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
    from ..hf import fits_llama

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
# The contract (diy/backbone/contract.py), checked where a learner's backbone is first built
# ---------------------------------------------------------------------------------------------

def doctor_command(spec: BackboneSpec) -> str:
    """The command that prints the whole contract, item by item, for the learner's file (the
    path quoted when it has spaces)."""
    return f"{DOCTOR} {shlex.quote(str(spec.path))}" + \
        (f":{spec.class_name}" if spec.class_name != DEFAULT_CLASS else "")


_VERDICTS: dict[tuple, tuple[str, str, str] | None] = {}  # (digest, class, config) -> refusal


def check_contract(model: nn.Module, config: DIYConfig, spec: BackboneSpec) -> None:
    """Run the contract's required items (diy.backbone.contract.ON_BUILD) on a newly built learner's
    backbone, once per file content, class and config (the verdict is remembered); a
    DIYBackboneError naming the file, the item and the doctor's full report when one is broken.
    The model's mode is restored and the global random state is left as it was."""
    key = (spec.digest(), spec.class_name, astuple(config))
    if key not in _VERDICTS:
        broken = contract.first_broken(model, config, spec.path)
        if broken is None:
            _VERDICTS[key] = None
        else:
            name, what, hint = broken
            _VERDICTS[key] = (f"你的骨干 {spec.name} 不符合约定的「{name}」：{what}。",
                              f"{hint.rstrip('。')}。整个约定的逐项检查：{doctor_command(spec)}",
                              f"backbone {spec.name} breaks the contract "
                              f"({contract.ENGLISH[name]}); see {doctor_command(spec)}")
    refusal = _VERDICTS[key]
    if refusal is not None:
        raise DIYBackboneError(*refusal)

"""Checkpoints: a folder with config.json and model.safetensors, as Hugging Face writes them.

    model.save_pretrained("checkpoints/course")          # DIYForCausalLM
    model = DIYForCausalLM.from_pretrained("checkpoints/course")

Each file is written to a temporary file in the same folder and renamed into place, so an
interrupted save leaves the previous checkpoint (or none), never half a file. The weights file
also records the config it was saved with; loading compares the two, so a folder whose files
come from two different saves is refused instead of loaded wrongly.

The same file holds diy's other writes to disk: ``write_atomically`` (every file diy saves,
tokenizers and token streams included) and the cache folder (``cache_folder``: ``$DIY_CACHE``,
else ``$XDG_CACHE_HOME/diy-llm``, else ``~/.cache/diy-llm``) where what is computed once is kept
— the course model, the course runs, step 4's packed token streams — each entry named by a
fingerprint of what it was made from, and ``exclusive``, the lock that makes one process compute
an entry while the others wait.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

from . import backbone
from .config import DIYConfig
from .errors import DIYConfigError, DIYInputError

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
BACKBONE_KEY = "diy_backbone"  # in config.json, only for a learner's backbone (DIY_BACKBONE)


def cache_folder() -> Path:
    if os.environ.get("DIY_CACHE"):
        return Path(os.environ["DIY_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "diy-llm"


@contextmanager
def exclusive(lock_path: Path):
    """Hold an exclusive lock on ``lock_path`` (where the platform has fcntl): notebooks that
    start together wait for the first one's training instead of each training the same model."""
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a")  # closed by the with below
    except OSError:  # a read-only cache (the grader's sandbox): reading needs no lock
        yield
        return
    with handle:
        try:
            import fcntl
        except ImportError:  # Windows: no lock; concurrent runs just train twice
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomically(path: Path, write) -> None:
    """Call write(temporary_path), then rename the temporary file to ``path``."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; give it a file's usual mode
        os.replace(temporary, path)  # atomic on the same file system
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save(model, folder) -> Path:
    """Write ``model`` (a DIYForCausalLM) to ``folder``: config.json + model.safetensors."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config_json = json.dumps(model.config.to_dict(), indent=2, sort_keys=True)
    file_json = config_json
    made_by = backbone.record(getattr(model, "backbone_spec", None))
    if made_by is not None:  # a learner's backbone (DIY_BACKBONE): remembered, checked on load
        file_json = json.dumps({**model.config.to_dict(), BACKBONE_KEY: made_by}, indent=2,
                               sort_keys=True)
    # contiguous copies: safetensors refuses views that share memory
    tensors = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    write_atomically(folder / WEIGHTS_NAME,
                     lambda tmp: save_file(tensors, tmp, metadata={"diy_config": config_json}))
    write_atomically(folder / CONFIG_NAME,
                     lambda tmp: Path(tmp).write_text(file_json + "\n", encoding="utf-8"))
    return folder


def _refuse(problem: str, fix: str, gloss: str):
    raise DIYInputError(problem, fix, gloss)


def read_config(folder: Path) -> DIYConfig:
    path = folder / CONFIG_NAME
    if not path.is_file():
        _refuse(f"检查点文件夹 {folder} 里没有 {CONFIG_NAME}。",
                "确认路径是 save_pretrained 写出的文件夹"
                "（或先运行 python -m diy.train 生成一个）。",
                f"no {CONFIG_NAME} in {folder}.")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(DIYConfig)}
        return DIYConfig(**{k: v for k, v in values.items() if k in known})
    except (ValueError, TypeError, DIYConfigError) as exc:
        _refuse(f"{path} 损坏或不是课程的配置文件（{type(exc).__name__}: {str(exc)[:100]}）。",
                "重新保存这个检查点（save_pretrained 或 python -m diy.train）。",
                f"{path} is corrupt or not a DIYConfig.")


def _backbone_label(made_by: dict | None, reference: str = "课程的参考实现 diy.DIYModel") -> str:
    return reference if made_by is None else f"{made_by['file']}:{made_by['class']}"


def _backbone_change(folder: Path) -> tuple[dict | None, str | None]:
    """(the backbone the checkpoint was saved with, None for the course's reference; and what
    differs from the one running now, in one Chinese phrase, or None when it is the same model:
    the same file content and class, wherever the file now lives)."""
    saved = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8")).get(BACKBONE_KEY)
    now = backbone.record(backbone.active())
    if saved is None and now is None:
        return saved, None
    if saved is not None and now is not None and saved.get("class") == now["class"] \
            and saved.get("sha256") == now["sha256"]:
        return saved, None  # the same content (perhaps moved or renamed): the same model
    if saved is not None and now is not None and \
            (saved.get("file"), saved.get("class")) == (now["file"], now["class"]):
        return saved, (f"骨干文件 {now['file']} 在保存这个检查点之后改过"
                       f"（内容哈希 {str(saved.get('sha256'))[:8]} → {now['sha256'][:8]}）")
    def label(made_by):
        return _backbone_label(made_by) + \
            (f"（内容哈希 {str(made_by.get('sha256'))[:8]}）" if made_by else "")
    return saved, f"保存时的骨干是 {label(saved)}，现在运行的是 {label(now)}"


def _how_to_match(saved: dict | None) -> str:
    if saved is None:
        return f"去掉 {backbone.ENV}（用课程的参考骨干）再加载"
    return (f"设置 {backbone.ENV}=你的/{saved['file']}:{saved['class']}（命令行：--backbone "
            f"你的/{saved['file']}:{saved['class']}）再加载")


def load(cls, folder, config: DIYConfig | None = None):
    """A ``cls`` (DIYForCausalLM) with the weights in ``folder``, in eval mode.

    ``config``, when given, must equal the saved one (a clear error lists the differences).
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    folder = Path(folder)
    if not folder.is_dir():
        _refuse(f"找不到检查点文件夹 {folder}。",
                "先训练并保存一个：python -m diy.train（默认写到 checkpoints/），或检查路径。",
                f"checkpoint folder {folder} does not exist.")
    saved = read_config(folder)
    if config is not None and config != saved:
        names = [f.name for f in fields(DIYConfig)
                 if getattr(saved, f.name) != getattr(config, f.name)]
        differ = [f"{n}: 保存的 {getattr(saved, n)!r} ≠ 给出的 {getattr(config, n)!r}"
                  for n in names]
        _refuse("检查点的配置与给出的 config 不一致：" + "；".join(differ) + "。",
                "不传 config（用检查点自己的配置），或者加载与这个 config 一起保存的检查点。",
                "the checkpoint's config differs from the given one: " + ", ".join(names) + ".")
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        _refuse(f"检查点文件夹 {folder} 里没有 {WEIGHTS_NAME}。",
                "重新保存这个检查点（save_pretrained 或 python -m diy.train）。",
                f"no {WEIGHTS_NAME} in {folder}.")
    try:
        state = load_file(weights)
        with safe_open(weights, framework="pt") as f:
            recorded = (f.metadata() or {}).get("diy_config")
    except (SafetensorError, OSError, ValueError) as exc:
        _refuse(f"{weights} 损坏，无法读取（{type(exc).__name__}: {str(exc)[:100]}）。",
                "重新保存这个检查点（save_pretrained 或 python -m diy.train）。",
                f"{weights} is corrupt.")
    if recorded is not None and json.loads(recorded) != saved.to_dict():
        _refuse(f"{weights} 和 {CONFIG_NAME} 来自两次不同的保存（配置对不上）。",
                "重新保存这个检查点；不要从不同的检查点里混拷文件。",
                f"{WEIGHTS_NAME} and {CONFIG_NAME} come from different saves.")
    made_by, change = _backbone_change(folder)
    model = cls(saved)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in state.items()}
    if expected != found:
        wrong = sorted(set(expected) ^ set(found)) or \
            [n for n in expected if expected[n] != found[n]]
        if change is not None:
            changed_file = change.startswith("骨干文件")
            _refuse(f"检查点 {folder}：{change}，两者的参数对不上（例如 {', '.join(wrong[:3])}）。",
                    ("用现在的骨干重新训练、保存；或者把骨干文件改回保存时的样子。" if changed_file
                     else f"{_how_to_match(made_by)}；或者用现在的骨干重新训练一个。"),
                    "the checkpoint was saved with backbone "
                    f"{_backbone_label(made_by, 'diy.DIYModel')}; its weights do not fit the "
                    f"running one (e.g. {', '.join(wrong[:3])}).")
        _refuse(f"{weights} 里的参数与配置描述的模型不符（例如 {', '.join(wrong[:3])}）。",
                "这不是 DIYForCausalLM 的检查点，或文件被改过；重新保存。",
                f"the weights do not fit the config (e.g. {', '.join(wrong[:3])}).")
    model.load_state_dict(state, strict=True)
    if change is not None:  # the same names and shapes, perhaps other maths: say so, load
        print(f"⚠️ 检查点 {folder}：{change}。参数的名字和形状都对得上，照样装上了；"
              "但两者的计算不一定相同，输出可能和保存时不一样（不想要这个提示：用现在的骨干重新训练、保存）。"
              "(English: saved with another backbone; its parameters fit and were loaded.)",
              file=sys.stderr)
    return model.eval()

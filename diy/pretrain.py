"""Pretrain on the 宋词 corpus from the command line: python -m diy.pretrain [options]

    python -m diy.pretrain                        # the default recipe (README: about 10 minutes)
    python -m diy.pretrain --minutes 3            # as many steps as fit in 3 minutes here
    python -m diy.pretrain --resume checkpoints/pretrain    # go on from the last checkpoint

Writes into --out (default checkpoints/pretrain/, which git ignores), every --save-every steps
and at the end, each file atomically:

    config.json + model.safetensors + tokenizer.json   the model (DIYForCausalLM.from_pretrained)
    pretrain_state.pt        step, optimizer, recipe, corpus and weights' hash: what --resume needs
    history.json, curve.csv  every step's loss and learning rate, every held-out evaluation
    curve.png                held-out bits per character against the unigram / bigram baselines

Ctrl-C (or SIGTERM) finishes the current step, saves, and says how to continue (a second Ctrl-C
stops at once, keeping the previous checkpoint). Exit status: 0 done, 1 training failed (the
loss became NaN), 2 bad arguments (nothing written), 130 interrupted (checkpoint saved).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import signal
import sys
import time
from dataclasses import fields
from pathlib import Path

from . import backbone
from .checkpoint import write_atomically
from .errors import DIYError
from .pretraining import PretrainConfig

STATE_NAME = "pretrain_state.pt"
DEFAULT_OUT = Path("checkpoints/pretrain")
RECIPE_FLAGS = {f.name: "--" + f.name.replace("_", "-") for f in fields(PretrainConfig)}


def parse_args(argv):
    defaults = PretrainConfig()
    parser = argparse.ArgumentParser(prog="python -m diy.pretrain",
                                     description="在宋词上预训练 / pretrain on the 宋词 corpus")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="输出文件夹（默认 checkpoints/pretrain/）")
    parser.add_argument("--resume", type=Path, metavar="DIR",
                        help="从 DIR 的检查点接着训练（配方、步数都用检查点里的）")
    parser.add_argument("--minutes", type=float,
                        help="训练时间预算：先量几步的速度，再定总步数（代替 --steps）")
    for f in fields(PretrainConfig):  # every recipe setting, default from PretrainConfig
        default = getattr(defaults, f.name)
        parser.add_argument(RECIPE_FLAGS[f.name], type=int if default is None else type(default),
                            default=None,
                            help=f"默认 {default if default is not None else 'batch_size ÷ 进程数'}")
    parser.add_argument("--save-every", type=int, default=None,
                        help="每多少步保存一次检查点（默认与 --eval-every 相同）")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                        help="auto（默认）：有 CUDA GPU 用它，其次 Apple 的 MPS，否则 CPU")
    parser.add_argument("--compile", action="store_true",
                        help="用 torch.compile 编译模型（README 里有这台 CPU 上是否划算的实测）")
    parser.add_argument("--no-progress", action="store_true", help="不显示进度条")
    parser.add_argument("--backbone", metavar="FILE[:CLASS]",
                        help="用你自己的 DIYModel.py 当骨干（同 DIY_BACKBONE；类名默认 DIYModel）")
    return parser.parse_args(argv)


def fail(problem: str, fix: str, gloss: str):
    raise DIYError(problem, fix, gloss)


def recipe_from_args(args, world_size: int = 1) -> PretrainConfig:
    given = {name: getattr(args, name) for name in RECIPE_FLAGS if getattr(args, name) is not None}
    if args.minutes is not None:
        if "steps" in given:
            fail("--minutes 和 --steps 只能给一个。", "用 --steps 定步数，或用 --minutes 定时间。",
                 "give --minutes or --steps, not both.")
        if not math.isfinite(args.minutes) or args.minutes <= 0:
            fail(f"--minutes {args.minutes:g} 不合法：训练时间必须是正数。",
                 "例如 --minutes 10（默认配方约 10 分钟）。", "--minutes must be positive.")
    config = PretrainConfig(**given)
    config.validate(world_size)
    return config


def weights_digest(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def save(folder: Path, model, tokenizer, optimizer, config, step, history, corpus) -> None:
    """The model files first, the state last: the state names the weights' hash, so a save cut
    short in between is recognised on --resume instead of resuming from mixed files."""
    import torch

    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    state = {"step": step, "recipe": config.to_dict(), "corpus_sha256": corpus,
             "weights_sha256": weights_digest(folder), "optimizer": optimizer.state_dict(),
             "history": history.to_dict(), "torch_rng": torch.get_rng_state()}
    write_atomically(folder / STATE_NAME, lambda tmp: torch.save(state, tmp))


def load_state(folder: Path, corpus: str) -> dict:
    import torch

    path = folder / STATE_NAME
    if not path.is_file():
        fail(f"{folder} 里没有 {STATE_NAME}，不是 python -m diy.pretrain 写的检查点。",
             "--resume 给 python -m diy.pretrain 的 --out 文件夹。",
             f"{folder} has no {STATE_NAME}: not a diy.pretrain checkpoint.")
    try:
        state = torch.load(path, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file: one clear message
        fail(f"{path} 读不出来（{type(exc).__name__}），检查点损坏了。",
             "从头训练（换一个 --out），或用备份的检查点。", f"{path} is unreadable.")
    if state["corpus_sha256"] != corpus:
        fail(f"{folder} 的检查点是在另一份语料上训练的（sha256 {state['corpus_sha256'][:12]}…）。",
             "用同一份语料接着训练，或者从头训练。", "the checkpoint was trained on another corpus.")
    if state["weights_sha256"] != weights_digest(folder):
        fail(f"{folder} 的 model.safetensors 和 {STATE_NAME} 不是同一次保存的"
             "（保存到一半被打断，或文件被换过）。",
             "从头训练（换一个 --out），或把这两个文件换回同一次保存的。",
             "model.safetensors and the state come from different saves.")
    return state


def refuse_changed_recipe(args, saved: PretrainConfig) -> None:
    changed = [f"{flag} {getattr(args, name)}（检查点里是 {getattr(saved, name)}）"
               for name, flag in RECIPE_FLAGS.items()
               if getattr(args, name) is not None and getattr(args, name) != getattr(saved, name)]
    if changed or args.minutes is not None:
        what = "；".join(changed) or f"--minutes {args.minutes:g}（步数已经定了）"
        fail(f"--resume 接着训练用检查点里的配方，不能改：{what}。",
             "去掉这些参数；想换配方就换一个 --out 从头训练。",
             "--resume continues the saved recipe; drop the recipe flags.")


class StopRequest:
    """First Ctrl-C / SIGTERM: finish this step, save, stop. Second Ctrl-C: stop at once."""

    def __init__(self, speak: bool = True):
        self.requested, self.speak = False, speak

    def __call__(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        if self.speak:
            print("\n收到停止信号：做完这一步、保存检查点就停（再按一次 Ctrl-C 立刻停，不保存）。",
                  file=sys.stderr)

    def install(self):
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)


def calibrate_steps(model, stream, config, minutes: float, place) -> PretrainConfig:
    """How many steps fit in ``minutes`` on this machine: time a few steps (inside the warmup,
    whose learning rate does not depend on the total), on a throw-away copy of the model. With
    several processes each times its own share and they agree on the main process's count."""
    import copy

    from .pretraining import make_optimizer, training_step
    from .pretraining.distributed import mean_over_processes

    probe = copy.deepcopy(model)
    optimizer = make_optimizer(probe, config)
    training_step(probe, optimizer, stream, 0, config, place)  # the first step allocates
    start = time.perf_counter()
    for step in range(1, 6):
        training_step(probe, optimizer, stream, step, config, place)
    per_step = mean_over_processes((time.perf_counter() - start) / 5, place)
    steps = max(1, int(minutes * 60 / per_step))
    if place.is_main:
        print(f"--minutes {minutes:g}：这台机器每步约 {per_step:.3f} 秒，共 {steps} 步",
              file=sys.stderr)
    return PretrainConfig(**{**config.to_dict(), "steps": steps})


def write_curves(out: Path, history, baselines: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import plot_bpc_curve

    record = {**history.to_dict(), "baselines_bpc": baselines}
    write_atomically(out / "history.json", lambda tmp: Path(tmp).write_text(
        json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"))
    evals = dict(zip(history.eval_steps, history.eval_bpc, strict=True))
    rows = ["step,loss,lr,held_out_bpc"] + [
        f"{s},{loss:.6f},{lr:.6g},{evals[s]:.6f}" if s in evals else f"{s},{loss:.6f},{lr:.6g},"
        for s, loss, lr in zip(history.steps, history.losses, history.lrs, strict=True)]
    write_atomically(out / "curve.csv", lambda tmp: Path(tmp).write_text(
        "\n".join(rows) + "\n", encoding="utf-8"))
    figure = plot_bpc_curve(history, baselines)
    write_atomically(out / "curve.png", lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)


def main(argv=None) -> int:
    """The command; under torchrun every process runs it (the main one alone prints and saves)."""
    import torch

    from .pretraining import DIYPretrainError, pretrain
    from .pretraining.baselines import bigram_bpc, unigram_bpc
    from .pretraining.corpus import SONGCI_SHA256
    from .pretraining.distributed import setup, teardown, wrap
    from .pretraining.songci import songci_data

    args = parse_args(argv)
    place = None
    try:
        place = setup(args.device)  # under torchrun: joins the process group (with a timeout)
        run = prepare(args, place, songci_data)
    except DIYError as exc:
        if place is None or place.is_main:
            print(f"python -m diy.pretrain: {exc}", file=sys.stderr)
        if place is not None:
            teardown(place)
        return 2
    model, optimizer, config, history, data, out = (run[k] for k in (
        "model", "optimizer", "config", "history", "data", "out"))
    start_step = len(history.steps)
    say = (lambda text: print(text, file=sys.stderr)) if place.is_main else (lambda text: None)
    baselines = {"unigram": unigram_bpc(data.stream, data.held_out_ids, len(data.tokenizer)),
                 "bigram": bigram_bpc(data.stream, data.held_out_ids, len(data.tokenizer))}
    save_every = args.save_every or config.eval_every
    tokens_per_step = config.batch_size * config.seq_len
    n_train = len(data.stream)
    say(f"宋词：训练 {len(data.train_cis):,} 首（{n_train:,} 字），留出 {len(data.held_out_cis):,} 首；"
        f"词表 {len(data.tokenizer):,}；模型 {sum(p.numel() for p in model.parameters()):,} 个参数；"
        f"{config.steps:,} 步 × {tokens_per_step:,} token（{config.steps * tokens_per_step / n_train:.1f} 遍）；"
        f"{place.world_size} 个进程，{place.device.type}；"
        f"基线 unigram {baselines['unigram']:.2f} / bigram {baselines['bigram']:.2f} bpc")

    core = model  # what is saved: the model itself, not DDP or torch.compile around it
    trained = wrap(torch.compile(model) if args.compile else model, place)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) \
        if place.device.type == "cuda" else None
    bar = None
    if place.is_main and not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, initial=start_step, unit="步", dynamic_ncols=True)
    latest = {"bpc": history.eval_bpc[-1] if history.eval_bpc else None,
              "time": time.perf_counter(), "step": start_step}

    def on_step(step, loss):
        if bar is not None:
            now = time.perf_counter()
            rate = (step - latest["step"]) * tokens_per_step / max(now - latest["time"], 1e-9)
            latest.update(time=now, step=step)
            bpc = f"{latest['bpc']:.3f}" if latest["bpc"] is not None else "—"
            bar.set_postfix_str(f"loss {loss:.3f} · 留出 {bpc} bpc · {rate:,.0f} token/s")
            bar.update(1)
        if place.is_main and step % save_every == 0 and step < config.steps:
            save(out, core, data.tokenizer, optimizer, config, step, history, SONGCI_SHA256)

    def on_eval(step, bpc):
        latest["bpc"] = bpc

    stop = StopRequest(place.is_main)
    stop.install()
    failed = False
    try:
        history = pretrain(trained, data.stream, data.held_out_ids, config, optimizer=optimizer,
                           start_step=start_step, history=history, on_step=on_step,
                           on_eval=on_eval, should_stop=lambda: stop.requested, place=place,
                           autocast=autocast)
    except KeyboardInterrupt:  # a second Ctrl-C: the last saved checkpoint stays as it was
        failed = True  # the other processes may be anywhere: do not wait for them
        say(f"\n已立刻停止，没有保存。{out}/ 里是上一次保存的检查点。"
            f"继续：python -m diy.pretrain --resume {out}")
        return 130
    except DIYPretrainError as exc:
        say(f"python -m diy.pretrain: {exc}")
        return 1
    except RuntimeError as exc:  # a collective failed: another process died or stopped answering
        if not place.distributed:
            raise
        failed = True
        if bar is not None:
            bar.close()
        reason = str(exc).splitlines()[0].rsplit("] ", 1)[-1][:100]  # without gloo's source path
        print(f"python -m diy.pretrain（进程 {place.rank}）：另一个进程出错或退出了，本进程也停下"
              f"（{reason}）。看那个进程自己的报错；"
              f"{out}/ 里是上一次保存的检查点，修好后用 --resume {out} 继续。"
              "(another process failed; stopping)", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        teardown(place, clean=not failed)
    step = history.steps[-1] if history.steps else start_step
    if not place.is_main:
        return 0 if step == config.steps else 130
    save(out, core, data.tokenizer, optimizer, config, step, history, SONGCI_SHA256)
    write_curves(out, history, baselines)
    if step < config.steps:
        say(f"已停止：第 {step} 步的检查点保存在 {out}/。继续：python -m diy.pretrain --resume {out} "
            "(stopped; checkpoint saved)")
        return 130
    print(f"留出集 {history.final_bpc:.3f} bits/字（bigram 基线 {baselines['bigram']:.2f}，unigram "
          f"{baselines['unigram']:.2f}）。已写入 {out}/：config.json、model.safetensors、"
          "tokenizer.json、pretrain_state.pt、history.json、curve.csv、curve.png")
    same = f" --backbone {args.backbone}" if args.backbone else ""
    print(f"写一首词：python -m diy.generate --checkpoint {out}{same} --prompt 浣溪沙 "
          "--temperature 0.8 --top-k 50")
    return 0


def prepare(args, place, songci_data) -> dict:
    """Everything the run needs, checked before any training: the corpus, the recipe (new, or
    the checkpoint's for --resume), the model and optimizer on the device. Raises DIYError."""
    import torch

    from .causal_lm import DIYForCausalLM
    from .pretraining import PretrainHistory, make_optimizer, pretrain_model
    from .pretraining.corpus import SONGCI_SHA256
    from .tokenizer import CharTokenizer

    if args.backbone:
        backbone.use(args.backbone)
    if args.save_every is not None and args.save_every < 1:
        fail(f"--save-every {args.save_every} 不合法：必须是正整数。", "例如 --save-every 250。",
             "--save-every must be a positive integer.")
    data = songci_data()  # checks the corpus file's hash before anything else
    if args.resume is not None:
        state = load_state(args.resume, SONGCI_SHA256)
        config = PretrainConfig(**state["recipe"])
        refuse_changed_recipe(args, config)
        config.validate(place.world_size)
        model = DIYForCausalLM.from_pretrained(args.resume)
        if CharTokenizer.from_pretrained(args.resume).id_to_token != data.tokenizer.id_to_token:
            fail(f"{args.resume} 的词表和现在的语料建出的词表不同。", "从头训练。",
                 "the checkpoint's vocabulary differs from the corpus'.")
        if state["step"] >= config.steps:
            fail(f"{args.resume} 的检查点已经训练完了全部 {config.steps} 步。",
                 "想训练更久，就换一个 --out 用更大的 --steps 从头训练。",
                 "that checkpoint already finished its steps.")
        out = args.resume if args.out == DEFAULT_OUT else args.out
        history = PretrainHistory(**state["history"])
        model.to(place.device)
        optimizer = make_optimizer(model, config)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
    else:
        config = recipe_from_args(args, place.world_size)
        model = pretrain_model(config, len(data.tokenizer)).to(place.device)
        if args.minutes is not None:
            config = calibrate_steps(model, data.stream, config, args.minutes, place)
        out, history, optimizer = args.out, PretrainHistory(), make_optimizer(model, config)
    if place.is_main:
        out.mkdir(parents=True, exist_ok=True)
    return {"model": model, "optimizer": optimizer, "config": config, "history": history,
            "data": data, "out": out}


if __name__ == "__main__":
    sys.exit(main())

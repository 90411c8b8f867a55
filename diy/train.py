"""Train the course model from the command line: python -m diy.train [options]

With no options it trains DIYForCausalLM (course defaults) on the course passage until the
eval loss is below 0.05, and writes into --out (default checkpoints/, which git ignores):

    config.json + model.safetensors   the checkpoint (DIYForCausalLM.from_pretrained(out))
    loss_curve.png                    the training curve
    history.json                      every step's loss, the eval losses, the settings

The checkpoint is saved after every evaluation whose loss is finite, each file atomically:
Ctrl-C stops cleanly and keeps the last good checkpoint.
Exit status: 0 trained, 1 training failed (the loss became NaN), 2 bad arguments,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

from . import backbone
from .checkpoint import write_atomically
from .errors import DIYError
from .training import DIYTrainingError, TrainConfig, train_on_text

TARGET = 0.05  # the eval loss that proves the model learned the text


def parse_args(argv):
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m diy.train",
                                     description="训练课程模型 / train the course model")
    parser.add_argument("--text", type=Path, help="UTF-8 文本文件（默认：课程短文）")
    parser.add_argument("--steps", type=int, default=defaults.steps,
                        help=f"优化步数（默认 {defaults.steps}）")
    parser.add_argument("--lr", type=float, default=defaults.lr,
                        help=f"AdamW 学习率（默认 {defaults.lr:g}）")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help=f"每步的窗口数（默认 {defaults.batch_size}）")
    parser.add_argument("--seq-len", type=int, default=defaults.seq_len,
                        help=f"每个窗口的 token 数，≤ max_seq_len（默认 {defaults.seq_len}）")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help=f"随机种子（默认 {defaults.seed}）")
    parser.add_argument("--out", type=Path, default=Path("checkpoints"),
                        help="输出文件夹（默认 checkpoints/）")
    parser.add_argument("--no-progress", action="store_true", help="不显示进度条")
    parser.add_argument("--backbone", metavar="FILE[:CLASS]",
                        help="用你自己的 DIYModel.py 当骨干（同 DIY_BACKBONE；类名默认 DIYModel）")
    return parser.parse_args(argv)


def read_text(path: Path | None) -> str | None:
    """The training text of --text (None: the course passage); problems raise DIYError."""
    if path is None:
        return None
    if not path.is_file():
        raise DIYError(f"找不到文本文件 {path}。", "检查 --text 的路径；不给 --text 就用课程短文。",
                       f"text file {path} not found.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DIYError(f"{path} 不是 UTF-8 编码的文本。",
                       "用编辑器把它另存为 UTF-8（或 iconv -f GBK -t UTF-8）。",
                       f"{path} is not UTF-8 text.") from None
    if not text.strip():
        raise DIYError(f"{path} 是空的。", "给一个有内容的文本文件。", f"{path} is empty.")
    return text.strip()


def write_outputs(out: Path, history, config: TrainConfig) -> None:
    """history.json and loss_curve.png, each written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import plot_loss_curve

    out.mkdir(parents=True, exist_ok=True)
    record = {"config": asdict(config), **history.to_dict(),
              "final_train_loss": history.train_loss[-1] if history.train_loss else None,
              "final_eval_loss": history.eval_loss[-1] if history.eval_loss else None}
    write_atomically(out / "history.json", lambda tmp: Path(tmp).write_text(
        json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"))
    figure = plot_loss_curve(history)
    write_atomically(out / "loss_curve.png", lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)


def main(argv=None) -> int:
    from .tokenizer import CharTokenizer, UnknownCharactersWarning
    from .training import History

    args = parse_args(argv)
    config = TrainConfig(steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                         seq_len=args.seq_len, seed=args.seed)
    saved = {}  # the last good checkpoint

    def save_checkpoint(step: int, eval_loss: float, model) -> None:
        if math.isfinite(eval_loss):
            model.save_pretrained(args.out)
            saved.update(step=step, eval_loss=eval_loss)

    history = History()
    try:
        if args.backbone:
            backbone.use(args.backbone)
        text = read_text(args.text)
        report = CharTokenizer().unknown_report(text) if text is not None else None
        if report is not None:
            print(f"注意：{report}；训练照常进行。", file=sys.stderr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnknownCharactersWarning)  # reported just above
            if backbone.active() is not None:  # say it when it is not the course's own
                print(backbone.describe(), file=sys.stderr)
            _, history = train_on_text(text, config, progress=not args.no_progress,
                                       on_eval=save_checkpoint)
    except KeyboardInterrupt:
        where = (f"第 {saved['step']} 步的检查点（eval loss {saved['eval_loss']:.4f}）"
                 f"在 {args.out}/" if saved else "还没有保存过检查点")
        print(f"\n已停止（Ctrl-C）。{where}。 (interrupted; the last good checkpoint is kept)")
        return 130
    except DIYTrainingError as exc:
        print(f"python -m diy.train: {exc}", file=sys.stderr)
        if saved:
            print(f"最后一个完好的检查点：第 {saved['step']} 步，在 {args.out}/", file=sys.stderr)
        return 1
    except DIYError as exc:
        print(f"python -m diy.train: {exc}", file=sys.stderr)
        return 2
    write_outputs(args.out, history, config)
    final_eval = history.eval_loss[-1]
    verdict = (f"低于 {TARGET}，模型记住了这段文字" if final_eval < TARGET
               else f"还没低于 {TARGET}：试试更多步数 --steps {config.steps * 2}")
    print(f"最后一步的训练 loss {history.train_loss[-1]:.4f}，"
          f"评估 loss {final_eval:.4f}（{verdict}）")
    print(f"已写入 {args.out}/：config.json、model.safetensors、loss_curve.png、history.json")
    same = f" --backbone {args.backbone}" if args.backbone else ""
    print(f"生成文字：python -m diy.generate --checkpoint {args.out}{same} "
          "--prompt 海边的小镇上有一")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Generate text from a checkpoint, printed as it is produced: python -m diy.generate [options]

    python -m diy.generate --prompt 海边的小镇上有一                  # greedy, KV cache
    python -m diy.generate --prompt 老人 --temperature 0.8 --top-k 50 --top-p 0.9 --seed 1

    python -m diy.generate --checkpoint checkpoints/pretrain --prompt 浣溪沙 --temperature 0.8

The checkpoint defaults to checkpoints/, the folder `python -m diy.train` writes. Greedy when
--temperature is 0 (the default), sampling otherwise. Generation stops at <eos> or after
--max-new-tokens (default: as many as fit in max_seq_len).
A checkpoint of `python -m diy.pretrain` (step 4) carries its own vocabulary (tokenizer.json) and
writes 宋词: its prompt is a 词牌 (a newline is added after it), and the printed text stops at
the blank line that ends a ci.
Exit status: 0 done, 2 bad arguments (nothing generated).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import backbone
from .errors import DIYError


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m diy.generate",
                                     description="用训练好的模型生成文字 / generate text")
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints"),
                        help="检查点文件夹（默认 checkpoints/，即 python -m diy.train 的输出）")
    parser.add_argument("--prompt", required=True, help="提示词（开头的文字）")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="最多生成多少个 token（默认：max_seq_len 里剩下的全部）")
    parser.add_argument("--temperature", type=float, default=0.0,
                        help="0 = 贪心（默认）；> 0 = 采样，越大越随机")
    parser.add_argument("--top-k", type=int, default=None, help="采样时只在概率最大的 k 个里选")
    parser.add_argument("--top-p", type=float, default=None, help="采样时只在累计概率 p 以内选")
    parser.add_argument("--seed", type=int, default=0, help="采样的随机种子（默认 0）")
    parser.add_argument("--no-cache", action="store_true", help="不用 KV cache（结果相同，更慢）")
    parser.add_argument("--backbone", metavar="FILE[:CLASS]",
                        help="检查点是用你自己的 DIYModel.py 训练的：同一个文件（同 DIY_BACKBONE）")
    return parser.parse_args(argv)


class PrintStreamer:
    """Prints the prompt, then each new character as soon as it is generated (not <eos>);
    with ``stop_at`` (step 4's blank line), nothing after its first occurrence."""

    def __init__(self, tokenizer, stop_at: str | None = None):
        self.tokenizer, self.stop_at = tokenizer, stop_at
        self.text, self.printed = "", 0

    def put(self, ids: torch.Tensor) -> None:  # the prompt (1, L), then each new token (1,)
        self.text += self.tokenizer.decode(ids.flatten().tolist(), skip_special_tokens=True)
        end = len(self.text)
        if self.stop_at is not None and self.stop_at in self.text:
            end = self.text.index(self.stop_at)
        print(self.text[self.printed:end], end="", flush=True)
        self.printed = max(self.printed, end)

    def end(self) -> None:
        print(flush=True)


def main(argv=None) -> int:
    from .causal_lm import DIYForCausalLM
    from .tokenizer import TOKENIZER_NAME, CharTokenizer

    args = parse_args(argv)
    try:
        if args.backbone:
            backbone.use(args.backbone)
        if not args.checkpoint.is_dir():
            raise DIYError(f"找不到检查点文件夹 {args.checkpoint}/。",
                           f"先训练一个：python -m diy.train --out {args.checkpoint}"
                           "（2 核 CPU 上约 12 秒），或用 --checkpoint 指定文件夹。",
                           f"checkpoint folder {args.checkpoint} not found; "
                           "run python -m diy.train first.")
        model = DIYForCausalLM.from_pretrained(args.checkpoint)
        corpus_model = (args.checkpoint / TOKENIZER_NAME).is_file()  # python -m diy.pretrain's
        tokenizer = CharTokenizer.from_pretrained(args.checkpoint) if corpus_model \
            else CharTokenizer(model.config.vocab_size)
        prompt = args.prompt if not corpus_model or args.prompt.endswith("\n") \
            else args.prompt + "\n"  # a 词牌 is the first line of a ci
        unknown = tokenizer.unknown_characters(prompt)
        if unknown:
            raise DIYError(f"提示词里有词表外的字：{'、'.join(repr(c) for c in unknown)}。",
                           "换成常用汉字、中文标点或 ASCII 字符。",
                           "the prompt has characters outside the vocabulary.")
        if args.temperature == 0 and (args.top_k is not None or args.top_p is not None):
            raise DIYError("--top-k / --top-p 只在采样时起作用，但 --temperature 是 0（贪心）。",
                           "加上 --temperature 0.8（或别的正数）来采样。",
                           "--top-k/--top-p need sampling: give --temperature > 0.")
        input_ids = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long)  # (1, L)
        room = model.config.max_seq_len - input_ids.shape[1]
        max_new_tokens = room if args.max_new_tokens is None else args.max_new_tokens
        torch.manual_seed(args.seed)

        model.generate(input_ids, max_new_tokens=max_new_tokens,
                       do_sample=args.temperature > 0, temperature=args.temperature or 1.0,
                       top_k=args.top_k, top_p=args.top_p, eos_token_id=tokenizer.eos_token_id,
                       use_cache=not args.no_cache,
                       streamer=PrintStreamer(tokenizer, "\n\n" if corpus_model else None))
    except DIYError as exc:
        print(f"python -m diy.generate: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the output was piped into a program that stopped reading (head)
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Export a checkpoint to a Hugging Face folder: python -m diy.export --checkpoint DIR --out HF_DIR

The folder loads with `transformers.AutoModelForCausalLM.from_pretrained(HF_DIR)` (a
LlamaForCausalLM with the same weights) and `AutoTokenizer.from_pretrained(HF_DIR)` (the course's
character tokenizer, expressed with the `tokenizers` library), so

    transformers.pipeline("text-generation", model=HF_DIR)("海边的小镇上有一", do_sample=False)

continues the text exactly as `python -m diy.generate` does. In eval mode the two models are
the same function; in train mode they differ, because the course backbone's residual dropout
has no Llama counterpart (Llama only has attention dropout).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import DIYError


def hf_tokenizer(tokenizer):
    """The CharTokenizer as a transformers PreTrainedTokenizerFast (same ids, same text)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(tokenizer.id_to_token)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # every character is its own piece (newlines included), and decoding joins them as they are
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>",
                                   bos_token="<bos>", eos_token="<eos>",
                                   clean_up_tokenization_spaces=False)


def export(checkpoint: Path, out: Path) -> Path:
    """Write the Hugging Face model and tokenizer of ``checkpoint`` into ``out``."""
    from .causal_lm import DIYForCausalLM
    from .hf import to_llama_for_causal_lm
    from .tokenizer import CharTokenizer

    model = DIYForCausalLM.from_pretrained(checkpoint)  # checks the checkpoint first
    tokenizer = CharTokenizer(model.config.vocab_size)
    hf = to_llama_for_causal_lm(model).eval()
    for config in (hf.config, hf.generation_config):
        config.bos_token_id = tokenizer.bos_token_id
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(out)
    hf_tokenizer(tokenizer).save_pretrained(out)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diy.export",
                                     description="导出为 Hugging Face 格式 / export")
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints"),
                        help="检查点文件夹（默认 checkpoints/）")
    parser.add_argument("--out", type=Path, required=True, help="输出的 Hugging Face 文件夹")
    args = parser.parse_args(argv)
    try:
        if not args.checkpoint.is_dir():
            raise DIYError(f"找不到检查点文件夹 {args.checkpoint}/。",
                           f"先训练一个：python -m diy.train --out {args.checkpoint}。",
                           f"checkpoint folder {args.checkpoint} not found.")
        export(args.checkpoint, args.out)
    except DIYError as exc:
        print(f"python -m diy.export: {exc}", file=sys.stderr)
        return 2
    print(f"已导出到 {args.out}/：transformers.AutoModelForCausalLM / AutoTokenizer 可直接读取。")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Export a checkpoint to a Hugging Face folder:

    python -m diy.hf.export --checkpoint DIR --out HF_DIR

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

from .. import backbone
from ..errors import DIYError


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
    from ..causal_lm import DIYForCausalLM
    from ..tokenizer import CharTokenizer
    from . import to_llama_for_causal_lm

    model = DIYForCausalLM.from_pretrained(checkpoint)  # checks the checkpoint first
    tokenizer = CharTokenizer(model.config.vocab_size)
    hf = to_llama_for_causal_lm(model).eval()  # refuses weights whose names do not fit Llama
    if not model.is_reference:  # a learner's backbone: Llama's names, but also Llama's maths?
        _check_same_logits(model, hf)
    for config in (hf.config, hf.generation_config):
        config.bos_token_id = tokenizer.bos_token_id
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(out)
    hf_tokenizer(tokenizer).save_pretrained(out)
    return out


def _check_same_logits(model, hf) -> None:
    """Refuse to export a model that transformers would compute differently."""
    import torch

    ids = torch.arange(1, 17)[None] % model.config.vocab_size  # (1, 16)
    with torch.no_grad():
        ours, theirs = model.eval()(ids), hf(input_ids=ids).logits
    gap = float((ours - theirs).abs().max())
    if gap > 1e-4:
        raise DIYError(f"权重装进了 transformers 的 Llama，但 logits 相差 {gap:.3g}："
                       "你的骨干名字和 Llama 一样，计算却不一样，导出的模型会给出不同的结果。",
                       "python -m diy.classroom.doctor --backbone 你的文件 的"
                       "「与 transformers 一致」"
                       "一项会指出差别（RMSNorm 的 eps、RoPE 的约定和 theta、SwiGLU）。",
                       f"the Llama model computes other logits (max difference {gap:.3g}).")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diy.hf.export",
                                     description="导出为 Hugging Face 格式 / export")
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints"),
                        help="检查点文件夹（默认 checkpoints/）")
    parser.add_argument("--out", type=Path, required=True, help="输出的 Hugging Face 文件夹")
    parser.add_argument("--backbone", metavar="FILE[:CLASS]",
                        help="检查点是用你自己的 DIYModel.py 训练的：同一个文件（同 DIY_BACKBONE）")
    args = parser.parse_args(argv)
    try:
        if args.backbone:
            backbone.use(args.backbone)
        if not args.checkpoint.is_dir():
            raise DIYError(f"找不到检查点文件夹 {args.checkpoint}/。",
                           f"先训练一个：python -m diy.train --out {args.checkpoint}。",
                           f"checkpoint folder {args.checkpoint} not found.")
        export(args.checkpoint, args.out)
    except DIYError as exc:
        print(f"python -m diy.hf.export: {exc}", file=sys.stderr)
        return 2
    print(f"已导出到 {args.out}/：transformers.AutoModelForCausalLM / AutoTokenizer 可直接读取。")
    return 0


if __name__ == "__main__":
    sys.exit(main())

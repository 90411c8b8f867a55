"""diy-llm: build a small causal language model from scratch.

    from diy import DIYConfig, DIYModel, DIYForCausalLM, CharTokenizer

Reading order, as the data flows (each module says what it is for at its top):

    config.py        DIYConfig: the hyper-parameters
    model.py         DIYModel: embedding, RMSNorm, RoPE, causal attention, SwiGLU (step 0)
    causal_lm.py     DIYForCausalLM: backbone + lm_head, generate, save/load (step 1)
    loss.py          next-token cross-entropy
    tokenizer.py     CharTokenizer; data.py: the course passage and its batches (step 2)
    training.py      the training loop (step 2); generation.py: generate (step 3)
    train.py, generate.py, pretrain.py   the commands: python -m diy.train / generate / pretrain

Subpackages: backbone/ (your own DIYModel.py and the contract it must honour), hf/ (to and from
Hugging Face transformers; python -m diy.hf.export), pretraining/ (step 4: the 宋词 corpus, BPE,
the packed stream, the recipe, processes and devices, what the model learned). The course itself
— lessons' registry, self-checks, grader, doctor — is in classroom/, which this library never
imports.
"""

from .causal_lm import DIYForCausalLM
from .config import DIYConfig
from .data import get_batch, load_passage, training_stream
from .errors import DIYConfigError, DIYInputError
from .loss import IGNORE_INDEX, causal_lm_loss, labels_from_input_ids, shift_for_next_token
from .model import DIYModel
from .tokenizer import CharTokenizer
from .training import TrainConfig

__all__ = [
    "DIYConfig", "DIYModel", "DIYForCausalLM", "DIYConfigError", "DIYInputError",
    "IGNORE_INDEX", "causal_lm_loss", "labels_from_input_ids", "shift_for_next_token",
    "CharTokenizer", "load_passage", "get_batch", "training_stream", "TrainConfig",
]
__version__ = "0.1.0"

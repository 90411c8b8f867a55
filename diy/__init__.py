"""diy-llm: build a small causal language model from scratch.

    from diy import DIYConfig, DIYModel
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

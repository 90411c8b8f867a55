"""Self-checks for the course's exercises (the registry diy.classroom.course lists which checks
which). Each prints ✅ / ⏳ / ❌ with a hint in Chinese and returns the code the following cells
should use (yours when it passed, the reference otherwise).

    from diy.classroom.checks import check_lm_head
    build_lm_head, forward_to_logits = check_lm_head(build_lm_head, forward_to_logits)

One module per lesson or idea: norm (0.1), rope (0.2), attention (0.3), decoder and diy_model
(0.4; export writes the learner's DIYModel.py), lm_head (1.1), loss (1.2), causal_lm (1.3),
batches (2.1), training (2.2), greedy (2.3), cached_greedy (3.1), sampling (3.2), batched (3.3;
backbone_mask: 3.3d, attention_mask added to the learner's own backbone), bpe and stream (4.1),
recipe (4.2), learned (4.3).
"""

from ..course import EXERCISES
from . import ipython_hints
from .attention import check_attention, check_causal_mask
from .backbone_mask import check_forward_with_mask
from .batched import check_left_pad, check_my_generate, check_position_ids
from .batches import check_get_batch
from .bpe import check_bpe_codec, check_bpe_merge
from .cached_greedy import check_greedy_no_cache, check_greedy_with_cache
from .causal_lm import check_causal_lm
from .decoder import check_backbone_parts, check_decoder_layer, check_mlp
from .diy_model import check_diy_model
from .greedy import check_greedy_continue
from .learned import check_line_log_prob, check_meter
from .lm_head import check_lm_head
from .loss import check_backward, check_next_token_loss, check_train_step
from .norm import check_rms_norm
from .recipe import check_accumulation, check_lr_schedule
from .report import FAIL, PASS, TODO, CheckResult
from .rope import check_apply_rotary, check_rotary
from .sampling import check_sample_next_token, check_top_p
from .stream import check_stream_batch
from .training import check_evaluate, check_train_loop, check_training_step

__all__ = ["check_rms_norm", "check_rotary", "check_apply_rotary", "check_causal_mask",
           "check_attention", "check_backbone_parts", "check_mlp", "check_decoder_layer",
           "check_diy_model",
           "check_lm_head", "check_next_token_loss", "check_backward", "check_train_step",
           "check_causal_lm", "check_get_batch", "check_training_step", "check_evaluate",
           "check_train_loop",
           "check_greedy_continue", "check_greedy_no_cache", "check_greedy_with_cache",
           "check_top_p", "check_sample_next_token", "check_left_pad", "check_position_ids",
           "check_my_generate", "check_forward_with_mask", "check_bpe_merge", "check_bpe_codec",
           "check_stream_batch", "check_lr_schedule", "check_accumulation", "check_line_log_prob",
           "check_meter", "CheckResult", "PASS", "TODO", "FAIL", "check_function"]


def check_function(exercise_id: str):
    """The self-check function of an exercise, looked up through the course registry."""
    return globals()[EXERCISES[exercise_id].check]


ipython_hints.install()  # in a notebook: a hint, not a NameError traceback, for a skipped cell

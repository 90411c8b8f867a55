"""Self-checks for the course's exercises (the registry diy.course lists which checks which).
Each prints ✅ / ⏳ / ❌ with a hint in Chinese and returns the code the following cells should use (yours when it passed, the reference otherwise).

    from diy.checks import check_lm_head
    build_lm_head, forward_to_logits = check_lm_head(build_lm_head, forward_to_logits)
"""

from ..course import EXERCISES
from . import ipython_hints
from .batches import check_get_batch
from .causal_lm import check_causal_lm
from .generation import (
    check_greedy_no_cache,
    check_greedy_with_cache,
    check_left_pad,
    check_my_generate,
    check_position_ids,
    check_sample_next_token,
    check_top_p,
)
from .greedy import check_greedy_continue
from .lm_head import check_lm_head
from .loss import check_backward, check_next_token_loss, check_train_step
from .report import FAIL, PASS, TODO, CheckResult
from .training import check_evaluate, check_train_loop, check_training_step

__all__ = ["check_lm_head", "check_next_token_loss", "check_backward", "check_train_step",
           "check_causal_lm", "check_get_batch", "check_training_step", "check_evaluate",
           "check_train_loop",
           "check_greedy_continue", "check_greedy_no_cache", "check_greedy_with_cache",
           "check_top_p", "check_sample_next_token", "check_left_pad", "check_position_ids",
           "check_my_generate", "CheckResult", "PASS", "TODO", "FAIL", "check_function"]

# Step 0's checks (the backbone: RMSNorm, RoPE, attention, DIYModel), listed in step0.__all__.
from . import step0  # noqa: E402
from .step0 import *  # noqa: E402,F403

__all__ += step0.__all__


def check_function(exercise_id: str):
    """The self-check function of an exercise, looked up through the course registry."""
    return globals()[EXERCISES[exercise_id].check]


ipython_hints.install()  # in a notebook: a hint, not a NameError traceback, for a skipped cell

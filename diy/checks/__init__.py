"""Self-checks for the exercises of step 1. Each prints ✅ / ⏳ / ❌ with a hint in Chinese and
returns the code the following cells should use (yours when it passed, the reference otherwise).

    from diy.checks import check_lm_head
    build_lm_head, forward_to_logits = check_lm_head(build_lm_head, forward_to_logits)
"""

from . import ipython_hints
from .causal_lm import check_causal_lm
from .lm_head import check_lm_head
from .loss import check_backward, check_next_token_loss, check_train_step
from .report import FAIL, PASS, TODO, CheckResult

__all__ = ["check_lm_head", "check_next_token_loss", "check_backward", "check_train_step",
           "check_causal_lm", "CheckResult", "PASS", "TODO", "FAIL"]

# Exercise ids of each lesson, in the order the notebook meets them.
EXERCISES = {
    "step1_1_lm_head": ["1.1"],
    "step1_2_loss_backward": ["1.2a", "1.2b", "1.2c"],
    "step1_3_causal_lm": ["1.3"],
}
# The self-check function each exercise's check cell calls (how the grader finds those cells).
CHECK_FUNCTIONS = {
    "1.1": "check_lm_head",
    "1.2a": "check_next_token_loss",
    "1.2b": "check_backward",
    "1.2c": "check_train_step",
    "1.3": "check_causal_lm",
}

ipython_hints.install()  # in a notebook: a hint, not a NameError traceback, for a skipped cell

"""Where diy keeps what it computes once and reads back: the course model, the course runs, the
packed token streams of step 4. ``$DIY_CACHE``, else ``$XDG_CACHE_HOME/diy-llm``, else
``~/.cache/diy-llm``; every entry's name carries a fingerprint of what it was made from."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


def cache_folder() -> Path:
    if os.environ.get("DIY_CACHE"):
        return Path(os.environ["DIY_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "diy-llm"


@contextmanager
def exclusive(lock_path: Path):
    """Hold an exclusive lock on ``lock_path`` (where the platform has fcntl): notebooks that
    start together wait for the first one's training instead of each training the same model."""
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a")  # closed by the with below
    except OSError:  # a read-only cache (the grader's sandbox): reading needs no lock
        yield
        return
    with handle:
        try:
            import fcntl
        except ImportError:  # Windows: no lock; concurrent runs just train twice
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

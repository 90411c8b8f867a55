"""Run a graded notebook's kernel as untrusted code: clean environment, resource limits and,
where bubblewrap is installed, an OS-level sandbox.

    python -m diy.sandbox --memory-gb 6 --cpu-seconds 300 --file-mb 200 --processes 256 \\
        [--bwrap FOLDER] -- python -m ipykernel_launcher -f CONNECTION_FILE

The grader starts every kernel through this launcher. It sets the limits (they are inherited by
everything the kernel starts), then execs the kernel, inside `bwrap` when --bwrap is given:
a read-only view of the whole system (and so of the venv), the submission's temporary FOLDER as
the only writable place, no network, its own process namespace. What it does not protect
against: a kernel exploit (bubblewrap shares the host kernel) or anything allowed on purpose
(reading files that are readable to everyone).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Limits:
    memory_gb: float = 6.0  # address space; torch alone reserves ~2 GB of it
    cpu_seconds: int = 300  # CPU time of the kernel (the wall-clock --timeout is separate)
    file_mb: int = 200  # the largest file the kernel may write
    processes: int = 256  # processes of the user (not enforced for root on Linux)

    def argv(self) -> list[str]:
        return ["--memory-gb", str(self.memory_gb), "--cpu-seconds", str(self.cpu_seconds),
                "--file-mb", str(self.file_mb), "--processes", str(self.processes)]


# What a kernel needs from the environment; everything else (tokens, secrets) stays out.
KEPT_VARIABLES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "VIRTUAL_ENV", "SYSTEMROOT")


def clean_environment(folder: Path, extra: dict | None = None) -> dict:
    """The kernel's whole environment: PATH, locale, venv, one torch thread, and HOME / TMPDIR
    inside the submission's own temporary folder."""
    home, tmp = folder / "home", folder / "tmp"
    home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    env = {key: os.environ[key] for key in KEPT_VARIABLES if key in os.environ}
    env.update(HOME=str(home), TMPDIR=str(tmp), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONDONTWRITEBYTECODE="1")
    env.update(extra or {})
    return env


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def bwrap_argv(folder: Path) -> list[str]:
    """bubblewrap: the whole system read-only (caches the grader prepared included), ``folder``
    writable, no network, its own PID namespace."""
    return ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--bind", str(folder), str(folder), "--chdir", str(folder),
            "--unshare-all", "--die-with-parent", "--new-session", "--"]


def kernel_argv(limits: Limits, folder: Path, sandbox: bool) -> list[str]:
    """The command line that starts one graded kernel."""
    launcher = [sys.executable, "-m", "diy.sandbox", *limits.argv()]
    if sandbox:
        launcher += ["--bwrap", str(folder)]
    return launcher + ["--", sys.executable, "-m", "ipykernel_launcher", "-f",
                       "{connection_file}"]


def apply_limits(limits: Limits) -> None:
    gb = int(limits.memory_gb * 1024 ** 3)
    resource.setrlimit(resource.RLIMIT_AS, (gb, gb))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    size = limits.file_mb * 1024 ** 2
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    if hasattr(resource, "RLIMIT_NPROC"):
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
    # Past the file-size limit a write then fails with "File too large" (an error the
    # notebook shows) instead of a signal that kills the kernel without a word.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diy.sandbox")
    parser.add_argument("--memory-gb", type=float, required=True)
    parser.add_argument("--cpu-seconds", type=int, required=True)
    parser.add_argument("--file-mb", type=int, required=True)
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--bwrap", type=Path, help="the only writable folder, inside bubblewrap")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    apply_limits(Limits(args.memory_gb, args.cpu_seconds, args.file_mb, args.processes))
    if args.bwrap is not None:
        command = bwrap_argv(args.bwrap) + command
        # In its own PID namespace the kernel's parent is bwrap's init (PID 1), which ipykernel's
        # parent poller takes for "the parent has exited". bwrap --die-with-parent does that job.
        os.environ.pop("JPY_PARENT_PID", None)
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())

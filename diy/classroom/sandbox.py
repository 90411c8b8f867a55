"""Run a graded notebook's kernel as untrusted code: clean environment, resource limits and,
where bubblewrap is installed, an OS-level sandbox that shows the kernel only what it needs.

    python -I diy/classroom/sandbox.py --memory-gb 6 --cpu-seconds 300 --file-mb 200 \\
        --processes 256 \\
        [--bwrap FOLDER [--hide HOME] [--read-only CACHE ...]] -- python -m ipykernel_launcher ...

The grader starts every kernel through this launcher, by its file path (`-m diy.classroom.sandbox`
would import the diy package, and with it torch, once more for every kernel: ~1.5 s of CPU each). It
sets the limits (inherited by everything the kernel starts), then execs the kernel, inside
`bwrap` when --bwrap is given: the view that `sandbox_view` lists and nothing else — the Python
installation, the system's libraries, the caches the grader prepared, all read-only; FOLDER (the
submission's copy) the only writable place; no network; its own process namespace.

Threat model. Hidden from the kernel: every other submission and the class folder, the original
submission files, the grader's home folder (~/.ssh, tokens in ~/.config, other courses), the
rest of the repository (only the diy package folder is shown), everything under /tmp, /home,
/root, /srv, /opt, /var, /mnt ... except the installation and caches listed. Visible, read-only:
what any program on the machine can read in /usr and /lib, the Python installation and venv,
the diy package, the trained course model. Not protected against: a kernel exploit (bubblewrap
shares the host's kernel); a determined hog (the limits are per process: a kernel may start
processes, and memory it maps shared — mmap(-1) with MAP_SHARED, files in /dev/shm — is not
counted). Without bubblewrap (macOS, Windows) none of this view exists: a kernel can read
whatever the grader's user can read; only the clean environment, its own folder and the limits
remain, and `--sandbox on` refuses to run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

try:
    import resource
except ImportError:  # Windows: no resource limits
    resource = None


@dataclass(frozen=True)
class Limits:
    memory_gb: float = 6.0  # memory the kernel can write (RLIMIT_DATA), not its address space
    cpu_seconds: int = 300  # CPU time of the kernel (the wall-clock --timeout is separate)
    file_mb: int = 200  # the largest file the kernel may write
    processes: int = 256  # processes of the user (not enforced for root on Linux)

    def argv(self) -> list[str]:
        return ["--memory-gb", str(self.memory_gb), "--cpu-seconds", str(self.cpu_seconds),
                "--file-mb", str(self.file_mb), "--processes", str(self.processes)]


# What a kernel needs from the environment; everything else (tokens, secrets) stays out.
KEPT_VARIABLES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "VIRTUAL_ENV", "SYSTEMROOT")


def clean_environment(folder: Path, extra: dict | None = None,
                      font_cache: Path | None = None) -> dict:
    """The kernel's whole environment: PATH, locale, venv, one torch thread, and HOME / TMPDIR
    inside the submission's own temporary folder. ``font_cache``: the grader's matplotlib cache
    folder; its font list is copied into the folder, because matplotlib ignores a configuration
    folder it cannot write to (and would build the font list again, a second or more per kernel)."""
    home, tmp = folder / "home", folder / "tmp"
    home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    env = {key: os.environ[key] for key in KEPT_VARIABLES if key in os.environ}
    env.update(HOME=str(home), TMPDIR=str(tmp), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONDONTWRITEBYTECODE="1")
    if font_cache is not None:
        mpl = folder / "matplotlib"
        mpl.mkdir(exist_ok=True)
        for font_list in Path(font_cache).glob("fontlist-*.json"):
            shutil.copyfile(font_list, mpl / font_list.name)
        env["MPLCONFIGDIR"] = str(mpl)
    env.update(extra or {})
    return env


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


# --------------------------------------------------------------------------- the sandbox's view

@dataclass(frozen=True)
class Mount:
    kind: str  # "ro-bind" (read-only, same path), "symlink" (to source), "tmpfs" (empty), "data"
    path: str  # where it appears inside the sandbox
    source: str = ""  # symlink: its target; data: the file's content


def sandbox_view(folder: Path, home: str | None = None, caches=()) -> list[Mount]:
    """Everything a graded kernel sees besides /dev, /proc and its own writable ``folder``:
    nothing that is not listed here exists inside the sandbox. Worked out from what graded
    kernels of every lesson open (strace -f -e trace=file) and checked by the grader's tests.
    ``home``: the grader's home folder (hidden); ``caches``: folders the grader prepared."""
    view = []
    # Programs and system libraries: libc, libstdc++, libssl, libgomp ..., /bin/sh, the uname
    # that platform.processor() runs, fontconfig's fc-list. Where /bin, /lib ... are symlinks
    # into /usr (merged /usr), the same symlinks.
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            view.append(Mount("symlink", top, os.readlink(top)))
        elif os.path.isdir(top):
            view.append(Mount("ro-bind", top))
    # The few other files a kernel reads (found with strace -f -e trace=file on graded kernels):
    for path in (
        "/etc/ld.so.cache",  # the dynamic loader's index of the system libraries
        "/etc/nsswitch.conf",  # where the C library looks users up (the passwd file below)
        "/etc/localtime",  # the time zone (time.localtime, datetime, logging)
        "/etc/fonts",  # fontconfig's configuration: fc-list, run by matplotlib's font search
        "/var/cache/fontconfig",  # fontconfig's cache of the system's fonts (fc-list is quick)
        "/etc/locale.alias",  # the C library's locale names (/usr/share/locale links to it)
        "/etc/ssl/openssl.cnf",  # read when hashlib / ssl load libcrypto
        "/etc/ssl/certs",  # CA certificates for ssl's default context (there is no network)
        "/sys/devices/system/cpu",  # the CPU topology: torch's thread pool and cpuinfo
    ):
        if os.path.exists(path):
            view.append(Mount("ro-bind", path))
    # Users: the kernel's own entry only (getpass.getuser, torch's cache folder names), with the
    # submission's home folder; not the machine's account list.
    user, uid, gid = user_entry()
    view.append(Mount("data", "/etc/passwd", f"{user}:x:{uid}:{gid}::{folder / 'home'}:/bin/sh\n"))
    view.append(Mount("data", "/etc/group", f"{user}:x:{gid}:\n"))
    # Empty and read-only: /tmp (every other submission's folder, the class folder when it was
    # unpacked there), /home and /root (everyone's files), and the grader's HOME wherever it is.
    # The Python installation and caches below are mounted over them where they live inside.
    hidden = ["/tmp", "/home", "/root"]
    for path in both_spellings(home) if home else ():
        if not any(is_within(path, top) for top in hidden) and \
                not any(is_within(top, path) for top in ("/usr", "/etc", "/lib", "/bin")):
            hidden.append(path)  # e.g. /var/lib/grader; never / or /usr
    view += [Mount("tmpfs", path) for path in hidden]
    # The Python installation and the venv, read-only, wherever they live (pyenv, uv and conda
    # keep the interpreter under HOME: that folder alone is shown, not the rest of HOME).
    view += [Mount("ro-bind", path) for path in python_paths()]
    # The diy package: its folder only, never the checkout around it (notebooks, submissions an
    # instructor keeps in the repository, tests). It reads nothing outside its folder.
    view += [Mount("ro-bind", path) for path in both_spellings(diy_package_folder())]
    # The caches the grader prepared (the trained course model), read-only.
    view += [Mount("ro-bind", path) for cache in caches if os.path.isdir(cache)
             for path in both_spellings(cache)]
    return view


def user_entry() -> tuple[str, int, int]:
    uid, gid = os.getuid(), os.getgid()
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name, uid, gid
    except (ImportError, KeyError):
        return "learner", uid, gid


def is_within(path, folder) -> bool:
    """path is folder or inside it."""
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def both_spellings(path) -> set[str]:
    """A path as the kernel will name it and its real location (venvs are full of symlinks)."""
    return {os.path.abspath(path), os.path.realpath(path)}


def diy_package_folder() -> Path:
    """The diy package the kernel will import (this launcher runs with -I, like a kernel's
    import without its working directory): an editable install's checkout/diy."""
    from importlib.util import find_spec

    spec = find_spec("diy")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(__file__).resolve().parents[1]  # diy/, this file being diy/classroom/sandbox.py


def python_paths() -> list[str]:
    """The interpreter, its standard library and every import path: sys.prefix (the venv),
    sys.base_prefix (the installation it was made from), the interpreter's real path, and each
    folder on sys.path (site-packages, folders .pth files add) — except the checkout that holds
    the diy package (legacy editable installs put it on sys.path; diy alone is mounted)."""
    checkout = os.path.realpath(diy_package_folder().parent)
    paths = set()
    for path in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                 sys.executable, *sys.path):
        if not path or not os.path.exists(path) or os.path.realpath(path) in (checkout, "/"):
            continue
        if os.path.realpath(path) in (os.getcwd(), str(Path(__file__).resolve().parent)):
            continue  # a launcher started with -m: its working directory is not an import path
        paths |= both_spellings(path)
    return sorted(paths)


def bwrap_argv(folder: Path, view: list[Mount], pass_fds: list[int]) -> list[str]:
    """bubblewrap's command line for ``view``: parents before what is mounted inside them,
    ``folder`` writable, then everything else read-only; no network, its own PID namespace.
    The data files go through pipes whose read ends are appended to ``pass_fds``."""
    folder = str(folder)
    mounts, done = [], set()
    for mount in sorted(view, key=lambda m: (m.path.count("/"), m.kind != "tmpfs", m.path)):
        if mount.path in done:
            continue
        done.add(mount.path)
        if mount.kind == "ro-bind":
            around = [m for m in view if m.kind in ("ro-bind", "tmpfs") and m.path != mount.path
                      and is_within(mount.path, m.path)]
            if around and max(around, key=lambda m: len(m.path)).kind == "ro-bind":
                continue  # already visible through the folder around it
            mounts += ["--ro-bind", mount.path, mount.path]
        elif mount.kind == "symlink":
            mounts += ["--symlink", mount.source, mount.path]
        elif mount.kind == "tmpfs":
            mounts += ["--tmpfs", mount.path]
        elif mount.kind == "data":
            read, write = os.pipe()
            os.write(write, mount.source.encode())  # a few bytes: the pipe holds them
            os.close(write)
            os.set_inheritable(read, True)
            pass_fds.append(read)
            mounts += ["--ro-bind-data", str(read), mount.path]
    read_only = [p for m in view if m.kind == "tmpfs" for p in ("--remount-ro", m.path)]
    return ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", *mounts,
            "--dev", "/dev", "--proc", "/proc", "--bind", folder, folder,
            *read_only, "--remount-ro", "/", "--chdir", folder, "--"]


def kernel_argv(limits: Limits, folder: Path, sandbox: bool, home: str | None = None,
                caches=()) -> list[str]:
    """The command line that starts one graded kernel."""
    launcher = [sys.executable, "-I", str(Path(__file__).resolve()), *limits.argv()]
    if sandbox:
        launcher += ["--bwrap", str(folder)]
        launcher += ["--hide", home] if home else []
        launcher += [arg for cache in caches for arg in ("--read-only", str(cache))]
    return launcher + ["--", sys.executable, "-m", "ipykernel_launcher", "-f",
                       "{connection_file}"]


# --------------------------------------------------------------------------- limits

def apply_limits(limits: Limits) -> None:
    if resource is None:
        return
    # Memory: RLIMIT_DATA counts the memory a process can write (heap, tensors, thread stacks)
    # and not, as RLIMIT_AS does, its address space: read-only mappings of libraries and
    # PROT_NONE reservations, which a CUDA build of torch has by the gigabyte (libtorch_cuda,
    # cuDNN, cuBLAS) without using the memory. So --memory-gb means the same with every torch
    # build, and a tensor larger than what is left fails at once, in its own allocation, with
    # "can't allocate memory" / MemoryError (a deterministic reason, never a kill later on).
    memory = int(limits.memory_gb * 1024 ** 3)
    resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    size = limits.file_mb * 1024 ** 2
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    if hasattr(resource, "RLIMIT_NPROC"):
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
    # Past the file-size limit a write then fails with "File too large" (an error the
    # notebook shows) instead of a signal that kills the kernel without a word.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -I diy/classroom/sandbox.py")
    parser.add_argument("--memory-gb", type=float, required=True)
    parser.add_argument("--cpu-seconds", type=int, required=True)
    parser.add_argument("--file-mb", type=int, required=True)
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--bwrap", type=Path, help="the only writable folder, inside bubblewrap")
    parser.add_argument("--hide", help="the grader's home folder, hidden inside bubblewrap")
    parser.add_argument("--read-only", action="append", default=[],
                        help="a cache folder the kernel may read, inside bubblewrap")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    apply_limits(Limits(args.memory_gb, args.cpu_seconds, args.file_mb, args.processes))
    if args.bwrap is not None:
        view = sandbox_view(args.bwrap, args.hide, args.read_only)
        command = bwrap_argv(args.bwrap, view, []) + command
        # In its own PID namespace the kernel's parent is bwrap's init (PID 1), which ipykernel's
        # parent poller takes for "the parent has exited". bwrap --die-with-parent does that job.
        os.environ.pop("JPY_PARENT_PID", None)
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())

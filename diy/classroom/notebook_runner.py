"""Execute a notebook in a fresh kernel of *this* interpreter (not whatever "python3" means
elsewhere on the machine), with no timing metadata written into the cells."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager


class CurrentEnvKernelManager(AsyncKernelManager):
    """Starts the kernel with sys.executable, whatever kernelspecs are installed (or with
    ``kernel_argv``, e.g. the grader's sandbox launcher)."""

    kernel_argv: list[str] | None = None

    @property
    def kernel_spec(self) -> KernelSpec:
        if self._kernel_spec is None:
            self._kernel_spec = KernelSpec(
                argv=self.kernel_argv or [sys.executable, "-m", "ipykernel_launcher", "-f",
                                          "{connection_file}"],
                display_name="Python 3 (current environment)", language="python",
                name="python3")
        return self._kernel_spec


def run_notebook(nb, folder: Path, timeout: float = 300, allow_errors: bool = False,
                 env: dict | None = None, km: CurrentEnvKernelManager | None = None,
                 exact_env: dict | None = None):
    """Execute ``nb`` in place, with ``folder`` as the kernel's working directory.

    ``timeout`` bounds the whole notebook (each cell gets what is left of it); past it nbclient
    raises CellTimeoutError and shuts the kernel down. ``env`` adds environment variables for
    the kernel. The kernel's torch uses one thread unless OMP_NUM_THREADS says otherwise: the
    grader runs several kernels side by side, and the committed outputs are made the way the
    tests (one thread per process, see conftest.py) re-make them. The grader passes its own
    kernel manager ``km`` (sandbox launcher, IPC transport) and the kernel's whole environment
    ``exact_env`` instead.
    """
    from nbclient import NotebookClient

    deadline = time.monotonic() + timeout
    client = NotebookClient(nb, km=km, kernel_manager_class=CurrentEnvKernelManager,
                            kernel_name="python3", allow_errors=allow_errors, record_timing=False,
                            timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
                            resources={"metadata": {"path": str(folder)}})
    # The kernel's own stdout/stderr (start-up chatter) is dropped; cell output comes over ZMQ.
    kernel_env = exact_env if exact_env is not None else \
        {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **os.environ, **(env or {})}
    client.execute(env=kernel_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return nb

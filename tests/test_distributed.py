"""Pretraining across processes with PyTorch's own engine (torchrun + DDP, gloo on the CPU):
two processes compute what one does on the same global batch, a world size that does not divide
the batch and a process that dies end every process with a clear message and no hang, and
--device auto falls back to the CPU here."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from diy.errors import DIYError
from diy.pretraining.distributed import pick_device

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--hidden-size", "32", "--num-layers", "1", "--num-heads", "2", "--seq-len", "16",
         "--warmup-steps", "2", "--eval-tokens", "300", "--no-progress"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(n: int, *args, **popen):
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}",
               f"--master_port={free_port()}", "-m", "diy.pretrain", *SMALL, *args]
    return command


def test_two_gloo_processes_train_exactly_as_one(tmp_path):
    """Same global batch (8 windows a step: 2 processes x 2 micro-batches x 2, or 1 x 4 x 2):
    after 6 steps the weights agree to float32 round-off. The two runs add the same gradients
    in another order (each process sums its share, then gloo sums the two), so they may differ
    in the last bits; measured: at most 2e-7. Tolerance 1e-5."""
    recipe = ["--batch-size", "8", "--micro-batch-size", "2", "--steps", "6", "--eval-every", "3"]
    one = subprocess.run([sys.executable, "-m", "diy.pretrain", *SMALL, *recipe,
                          "--out", str(tmp_path / "one")], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert one.returncode == 0, one.stderr
    two = subprocess.run(torchrun(2, *recipe, "--out", str(tmp_path / "two")), cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr
    assert "2 个进程" in two.stderr and two.stdout.count("留出集") == 1  # rank 0 alone reports
    a = load_file(tmp_path / "one" / "model.safetensors")
    b = load_file(tmp_path / "two" / "model.safetensors")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    first = json.loads((tmp_path / "one" / "history.json").read_text(encoding="utf-8"))
    second = json.loads((tmp_path / "two" / "history.json").read_text(encoding="utf-8"))
    assert first["losses"] == pytest.approx(second["losses"], abs=1e-5)
    assert max(float((a[k] - load_file(tmp_path / "one" / "model.safetensors")[k]).abs().max())
               for k in a) == 0  # reading back is exact: the tolerance is the runs', not ours


def test_a_world_size_that_does_not_divide_the_batch_is_refused_at_once(tmp_path):
    start = time.monotonic()
    run = subprocess.run(torchrun(2, "--batch-size", "6", "--micro-batch-size", "2",
                                  "--steps", "5", "--out", str(tmp_path / "out")),
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode != 0
    assert run.stderr.count("不能被 micro_batch_size × 进程数") == 1  # said once, by rank 0
    assert not (tmp_path / "out").exists()
    assert time.monotonic() - start < 120  # no process waits for the others


def test_a_process_that_dies_ends_the_run_without_a_hang(tmp_path):
    process = subprocess.Popen(torchrun(2, "--batch-size", "8", "--micro-batch-size", "2",
                                        "--steps", "1000000", "--eval-every", "1000000",
                                        "--out", str(tmp_path / "out")),
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # its workers too can be ended at once
    try:
        deadline = time.monotonic() + 300
        while "宋词：" not in process.stderr.readline() and time.monotonic() < deadline:
            pass  # the main process has said what it trains: the processes are training
        time.sleep(3)
        workers = [int(pid) for pid in subprocess.run(
            ["pgrep", "-f", "--", f"-m diy.pretrain .*{tmp_path}"], capture_output=True,
            text=True).stdout.split() if int(pid) != process.pid]
        os.kill(max(workers), signal.SIGKILL)  # one worker dies (as if the kernel's OOM killer)
        killed = time.monotonic()
        _, stderr = process.communicate(timeout=240)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # torchrun and every worker still running
        except ProcessLookupError:
            pass
        process.wait()
    assert process.returncode != 0
    assert time.monotonic() - killed < 200  # the process group's timeout is 120 s
    assert "另一个进程出错或退出了" in stderr


def test_device_auto_is_the_cpu_here_and_a_missing_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert pick_device("auto").type in ("cpu", "mps")
    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(DIYError, match="CUDA"):
        pick_device("cuda")

"""Where the training runs: the device, and several processes with PyTorch's own engine.

    python -m diy.pretrain                                      # one process
    torchrun --nproc_per_node=2 -m diy.pretrain                 # two processes on this machine

`torchrun` starts the processes and tells each one its place through environment variables
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Each process builds the same model,
wraps it in DistributedDataParallel (DDP) and trains on its own share of every step's global
batch; DDP averages the gradients over the processes during backward, so every copy of the model
takes the same optimizer step. Backend: gloo on CPU, NCCL on CUDA GPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch

from ..errors import DIYError

TIMEOUT_SECONDS = 120  # a collective that waits longer (a process died or hangs) fails instead


@dataclass(frozen=True)
class Place:
    rank: int = 0  # this process among all of them (0 writes checkpoints and prints)
    world_size: int = 1
    local_rank: int = 0  # this process among those on its machine (picks its GPU)
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: a CUDA GPU, else Apple's MPS, else the CPU; or exactly the device named."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise DIYError(f"--device {name} 不认识。", "用 auto、cpu、cuda 或 mps。",
                       f"unknown device {name}; use auto, cpu, cuda or mps.")
    if name == "cuda" and not torch.cuda.is_available():
        raise DIYError("--device cuda，但这台机器上的 torch 没有可用的 CUDA GPU。",
                       "用 --device auto（没有 GPU 时用 CPU），或装 CUDA 版的 torch"
                       "（README「安装的大小与 torch 的来源」）。",
                       "CUDA is not available to this torch.")
    if name == "mps" and not mps_available():
        raise DIYError("--device mps，但这台机器上没有可用的 Apple GPU（MPS）。",
                       "用 --device auto。", "MPS is not available.")
    return torch.device(name, local_rank) if name == "cuda" else torch.device(name)


def setup(device_name: str = "auto") -> Place:
    """This process's place: one process, or (under torchrun) its rank in the process group,
    which is initialised here with a timeout, so a dead partner ends the run instead of
    hanging it."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if world_size == 1:
        return Place(device=device)
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT_SECONDS))
    return Place(rank, world_size, local_rank, device)


def mean_over_processes(value: float, place: Place) -> float:
    """The mean of ``value`` over every process (itself when there is one)."""
    if not place.distributed:
        return value
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64, device=place.device)
    dist.all_reduce(tensor)
    return float(tensor) / place.world_size


def any_over_processes(flag: bool, place: Place) -> bool:
    """True when ``flag`` is true in any process: all of them then take the same branch (stop
    together, not one step apart, which would leave the others waiting for it)."""
    if not place.distributed:
        return flag
    import torch.distributed as dist

    tensor = torch.tensor([1.0 if flag else 0.0], device=place.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def wrap(model: torch.nn.Module, place: Place) -> torch.nn.Module:
    """DDP around the model when there are several processes (the model itself otherwise)."""
    if not place.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [place.device.index] if place.device.type == "cuda" else None
    # No buffer sync at each forward: the only buffers are RoPE's tables, the same everywhere;
    # with the default, every forward would be a collective, and the main process evaluating
    # alone would wait for the others forever. (torch 2.13 renamed the option.)
    import inspect

    options = inspect.signature(DistributedDataParallel.__init__).parameters
    quiet = {"forward_sync_buffers": False} if "forward_sync_buffers" in options \
        else {"broadcast_buffers": False}
    return DistributedDataParallel(model, device_ids=ids, **quiet)


def teardown(place: Place, clean: bool = True) -> None:
    """Leave the process group. After a normal run every process first waits for the others
    (a barrier): a process that leaves while another still holds its connections would make
    gloo in that other process abort on the closed socket. After a failure there is no one left
    to wait for."""
    if place.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            if clean:
                dist.barrier()
            dist.destroy_process_group()

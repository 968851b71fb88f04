"""Scale-out through torchrun: the process group, this process's device, DDP / FSDP2 wrapping, rank 0.

Launched by torchrun (`torchrun --nproc-per-node N -m vjepa_edge teacher pretrain ...` or `... distill ...`),
every process reads RANK / WORLD_SIZE / LOCAL_RANK from the environment. CUDA processes use NCCL and one GPU
each; CPU processes use gloo and share the cores.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True, slots=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup() -> DistInfo:
    """Join the torchrun process group when there is one; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if world > 1 and not cuda:  # CPU processes on one machine share its cores
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=device)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def mean_across(info: DistInfo, values: list[float]) -> list[float]:
    """The mean of each value over all processes (for logging)."""
    if not info.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return (t / info.world_size).tolist()


def any_across(info: DistInfo, flag: bool) -> bool:
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def shard_fsdp2(module: nn.Module, blocks: list[nn.ModuleList]) -> nn.Module:
    """FSDP2: shard every transformer block, then the rest of the module (parameters become DTensors)."""
    from torch.distributed.fsdp import fully_shard

    for group in blocks:
        for blk in group:
            fully_shard(blk)
    # reshard the root too: a module run only forward (the EMA target) would otherwise keep its root
    # parameters gathered as plain tensors between steps
    fully_shard(module, reshard_after_forward=True)
    return module


def wrap_ddp(module: nn.Module, info: DistInfo) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, broadcast_buffers=False)

"""Several processes (GPUs) training one stage-1 run with DistributedDataParallel.

Usage::

    torchrun --nproc_per_node=4 -m comgan_lib.train params/cub.yaml

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; ``comgan_lib.train`` then joins the
process group (nccl on CUDA, one GPU per process; gloo on the CPU). Conventions:

- ``train.batch_size`` is the *global* batch: each rank draws ``batch_size / world_size`` images
  (it must divide evenly), so the learning rate and step count of a parameter file mean the same
  on any number of GPUs. Gradients are averaged over ranks (DDP's all-reduce); with
  ``train.sync_batchnorm`` (CUDA only) batch norm also uses the global batch, otherwise each rank
  normalises over its own share and DDP broadcasts rank 0's running statistics.
- Each rank samples its own batches and latents (seeds offset by the rank; rank 0 uses exactly
  the single-process seeds), so ranks never see the same batch sequence.
- Only rank 0 writes the checkpoint and the log; the checkpoint also holds every rank's random
  state, so a resumed run continues every rank's sequence. All ranks load the rank-0 checkpoint
  when they resume; resuming on another number of processes reseeds the other ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from comgan_lib.errors import UserError


@dataclass
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` (1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_finite(self, *values: torch.Tensor) -> bool:
        """True when every value is finite on every rank (all ranks stop together)."""
        ok = all(bool(torch.isfinite(v).all()) for v in values)
        if not self.enabled:
            return ok
        flag = torch.tensor([1 if ok else 0], device=values[0].device, dtype=torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def gather_objects(self, obj) -> list:
        """``obj`` from every rank, in rank order (a list of one without torchrun)."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


SINGLE = DistContext()


def from_environment() -> DistContext:
    """The context torchrun describes in the environment (single process when it does not)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    return DistContext(
        rank=int(os.environ["RANK"]),
        world_size=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def init(ctx: DistContext, device_preference: str = "auto") -> torch.device:
    """Join the process group (once) and return this rank's device."""
    from comgan_lib.runtime import pick_device

    device = pick_device(device_preference)
    if device.type == "cuda":
        if torch.cuda.device_count() <= ctx.local_rank:
            raise UserError(
                f"rank {ctx.rank} needs GPU {ctx.local_rank} but only "
                f"{torch.cuda.device_count()} are visible; lower --nproc_per_node"
            )
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if ctx.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_batch(batch_size: int, ctx: DistContext) -> int:
    if batch_size % ctx.world_size:
        raise UserError(
            f"train.batch_size {batch_size} is the global batch and must divide evenly over "
            f"{ctx.world_size} processes; choose a multiple of {ctx.world_size}"
        )
    return batch_size // ctx.world_size


def rank_seed(seed: int, ctx: DistContext) -> int:
    """Rank 0 keeps ``seed`` (the single-process run); other ranks get their own streams."""
    return seed + 7_919 * ctx.rank


def convert_sync_batchnorm(module: torch.nn.Module, device: torch.device, ctx: DistContext):
    """Batch norm over the global batch (``train.sync_batchnorm``); CUDA only."""
    if not ctx.enabled:
        return module
    if device.type != "cuda":
        raise UserError(
            "train.sync_batchnorm needs CUDA (PyTorch's SyncBatchNorm does not run on the CPU); "
            "set it to false"
        )
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)


def wrap(module: torch.nn.Module, device: torch.device, find_unused: bool = False):
    """DistributedDataParallel around ``module`` (its gradients are averaged over ranks)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(module, device_ids=ids, find_unused_parameters=find_unused)

"""Data-parallel training under ``torch.distributed``: one process per GPU (NCCL) or per CPU socket (gloo).

``torchrun`` (one or many machines) or ``engine.nproc_per_node`` (one machine, from ``kedro run``) start the
processes; each rank trains on its own slice of every step's global batch (``StreamSampler``), so ``W`` ranks
× batch ``B`` see the images one process × batch ``W·B`` sees. Gradients are averaged across ranks after the
method's step and before the optimisers step, for every model that has gradients.

Why not ``DistributedDataParallel``: an adaptation step runs several backward passes through models that are
used with and without gradients (the segmenter through a frozen discriminator, then the discriminators on
detached maps), and methods reach into the segmenter's attributes (heads, feature levels); a wrapper breaks both.
One coalesced all-reduce per iteration keeps every method unchanged; it does not overlap communication with the
backward pass, which DDP's buckets would.

Rank 0 alone writes checkpoints, shows progress and reports metrics (averaged over ranks); every rank reads
``last.pt`` to resume. BatchNorm statistics, where they update, are per rank (no SyncBatchNorm on CPU).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger(__name__)

LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (``rank 0 of 1`` without ``torch.distributed``)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def launched() -> bool:
    """True inside a process started by ``torchrun`` or the elastic launcher (the variables it sets)."""
    return all(name in os.environ for name in LAUNCH_ENV) and int(os.environ["WORLD_SIZE"]) > 1


def join(device: torch.device) -> World:
    """The process group of a launched process (initialised once: NCCL on CUDA, gloo on CPU), else rank 0 of 1.

    On CUDA each process takes the GPU of its local rank, so ``device: cuda`` means this rank's GPU.
    """
    if not launched():
        return World()
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        timeout = timedelta(minutes=30)
        # The launcher's store outlives a restart of the workers, and with it the last attempt's rendezvous keys:
        # restarted workers then wait forever in the process group's set-up. Each attempt gets its own keys.
        base = dist.TCPStore(
            os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), size,
            is_master=rank == 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True", timeout=timeout,
        )
        store = dist.PrefixStore(f"adaptseg/attempt-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", base)
        dist.init_process_group(backend, store=store, rank=rank, world_size=size, timeout=timeout)
        logger.info("joined %s process group: rank %d of %d", backend, dist.get_rank(), dist.get_world_size())
    return World(dist.get_rank(), dist.get_world_size(), local_rank)


def broadcast_models(models: Mapping[str, nn.Module], world: World) -> None:
    """Every rank starts from rank 0's weights and buffers (built alike, but a seed slip must not fork them)."""
    if not world.active:
        return
    for model in models.values():
        for tensor in (*model.parameters(), *model.buffers()):
            dist.broadcast(tensor.data, src=0)


def average_gradients(models: Iterable[nn.Module], world: World) -> None:
    """Replace every gradient by its mean over ranks: one all-reduce of all gradients flattened together."""
    if not world.active:
        return
    grads = [p.grad for model in models for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for grad in grads:
        by_dtype.setdefault(grad.dtype, []).append(grad)
    for group in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in group])
        dist.all_reduce(flat)
        flat /= world.size
        offset = 0
        for grad in group:
            grad.copy_(flat[offset: offset + grad.numel()].view_as(grad))
            offset += grad.numel()


def average_metrics(metrics: Mapping[str, float], world: World) -> dict[str, float]:
    """Logged means over every rank's images (every rank logs the same names at the same steps)."""
    if not world.active or not metrics:
        return dict(metrics)
    names = sorted(metrics)
    values = torch.tensor([float(metrics[name]) for name in names], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        values = values.cuda()
    dist.all_reduce(values)
    return {name: float(value) / world.size for name, value in zip(names, values.tolist(), strict=True)}


def agree(value: Any, world: World) -> Any:
    """Rank 0's ``value`` on every rank (a decision that must not differ between ranks)."""
    if not world.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()

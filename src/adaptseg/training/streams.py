"""The engine's deterministic sample streams: which source and target images each iteration sees.

Sample ``p`` of a domain's stream is ``epoch_permutation(size, seed, domain, p // size)[p % size]``, so the
position follows from the step alone: a resumed run continues exactly where it stopped, and batches run
across epoch boundaries like the reference's tiled image list.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def stream_seed(seed: int, domain: str, epoch: int) -> int:
    digest = hashlib.blake2b(f"{seed}/{domain}/{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def epoch_permutation(size: int, seed: int, domain: str, epoch: int) -> torch.Tensor:
    """The sample order of one epoch of a domain: a permutation drawn from (seed, domain, epoch)."""
    generator = torch.Generator().manual_seed(stream_seed(seed, domain, epoch))
    return torch.randperm(size, generator=generator)


class StreamSampler(Sampler[int]):
    """Indices of an endless shuffled stream, this rank's share of iterations ``start_step .. stop_step``.

    Step ``s`` of ``W`` ranks at batch ``B`` covers stream positions ``s·W·B .. (s+1)·W·B``; rank ``r`` takes
    positions ``s·W·B + r·B`` onwards, ``B`` of them. One rank (``W = 1``) takes them all.
    """

    def __init__(self, size: int, batch_size: int, seed: int, domain: str, start_step: int, stop_step: int,
                 rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size} processes.")
        self.size, self.batch_size, self.seed, self.domain = size, batch_size, seed, domain
        self.start_step, self.stop_step, self.rank, self.world_size = start_step, stop_step, rank, world_size

    def __len__(self) -> int:
        return max(0, self.stop_step - self.start_step) * self.batch_size

    def __iter__(self) -> Iterator[int]:
        epoch, order = None, None
        global_batch = self.batch_size * self.world_size
        for step in range(self.start_step, self.stop_step):
            first = step * global_batch + self.rank * self.batch_size
            for position in range(first, first + self.batch_size):
                this_epoch, index = divmod(position, self.size)
                if this_epoch != epoch:
                    epoch = this_epoch
                    order = epoch_permutation(self.size, self.seed, self.domain, epoch).tolist()
                yield order[index]


def _seed_worker(worker_id: int) -> None:
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def batch_stream(
    dataset: Dataset,
    domain: str,
    *,
    batch_size: int,
    seed: int,
    num_workers: int,
    start_step: int,
    stop_step: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[dict]:
    """Collated batches of ``dataset`` for iterations ``start_step .. stop_step`` of a run (this rank's share)."""
    try:
        size = len(dataset)
    except TypeError as error:
        raise TypeError(f"The {domain} dataset must be a map-style Dataset with __len__.") from error
    if size < 1:
        raise ValueError(f"The {domain} dataset is empty; the engine needs at least one sample.")
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=StreamSampler(size, batch_size, seed, domain, start_step, stop_step, rank, world_size),
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=_seed_worker if num_workers else None,
        # Own generator: worker base seeds never consume (and never depend on) the global torch RNG.
        generator=torch.Generator().manual_seed(stream_seed(seed, f"{domain}-workers" + (f"-{rank}" if rank else ""), start_step)),
    )
    return iter(loader)


def to_device(batch: Mapping, device: torch.device, channels_last: bool, keep_label: bool) -> dict:
    """Move one collated batch to the device; target batches lose their labels here."""
    moved = {}
    for key, value in batch.items():
        if key == "label" and not keep_label:
            continue
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if key == "image":
                value = value if value.is_floating_point() else value.float()
                if channels_last and value.dim() == 4:
                    value = value.contiguous(memory_format=torch.channels_last)
            elif key == "label":
                value = value.long()
        moved[key] = value
    if "image" not in moved:
        raise KeyError(f"A batch has no 'image' key (keys: {sorted(batch)}).")
    return moved

"""The engine's deterministic sample streams: which source and target images each iteration sees.

Sample ``p`` of a domain's stream is ``epoch_permutation(size, seed, domain, p // size)[p % size]``, so the
position follows from the step alone: a resumed run continues exactly where it stopped, and batches run
across epoch boundaries like the reference's tiled image list. With rare-class sampling, each block of
``size`` positions is instead drawn class first (``RareClassSampling``), from the same (seed, domain, block).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from adaptseg.config import from_mapping
from adaptseg.data.labels import PROTOCOLS, protocol_class_names


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


@dataclass(frozen=True)
class RareClassSampling:
    """DAFormer's rare-class sampling (Hoyer et al., CVPR 2022): draw a class, then an image that shows it.

    Class ``c`` is drawn with probability ``softmax((1 − f_c) / temperature)``, ``f_c`` its share of all
    labelled source pixels, so classes that cover little of the source are drawn far more often than their
    pixels' share (at 0.01, a class under 1% of the pixels is drawn tens of times more often than one at 5%,
    and the large classes almost never); then, uniformly, one of the
    images where ``c`` covers at least ``min_share`` of the labelled pixels. DAFormer's 3000 pixels of a
    1914×1052 GTA5 frame are a share of 0.0015; DAFormer also re-crops until the crop shows the class, which
    whole-image training here does not need.
    """

    temperature: float = 0.01
    min_share: float = 0.0015

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"rare_class_sampling.temperature={self.temperature} must be > 0.")
        if not 0 <= self.min_share < 1:
            raise ValueError(f"rare_class_sampling.min_share={self.min_share} must lie in [0, 1).")

    @classmethod
    def from_dict(cls, values: Mapping | None) -> RareClassSampling:
        return from_mapping(cls, values, "rare_class_sampling key")

    def to_dict(self) -> dict:
        return asdict(self)


class ClassDraw:
    """Rare-class sampling's draw over one dataset, from its per-image class pixel counts (N×K)."""

    def __init__(self, counts: np.ndarray, config: RareClassSampling) -> None:
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim != 2 or counts.sum() <= 0:
            raise ValueError(
                f"Rare-class sampling needs per-image class pixel counts (N×K, some > 0), got shape {counts.shape}."
            )
        self.num_classes = counts.shape[1]
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        frequency = counts.sum(axis=0) / counts.sum()
        shown = (counts > 0) & (shares >= config.min_share)
        images = [np.flatnonzero(shown[:, c]) for c in range(counts.shape[1])]
        self.classes = [c for c, found in enumerate(images) if len(found)]
        self.images = [torch.as_tensor(images[c]) for c in self.classes]
        logits = torch.as_tensor((1 - frequency[self.classes]) / config.temperature)
        self.probabilities = torch.softmax(logits, dim=0)

    def order(self, size: int, seed: int, domain: str, epoch: int) -> list[int]:
        """``size`` image indices for one block of the stream, drawn from (seed, domain, block)."""
        generator = torch.Generator().manual_seed(stream_seed(seed, f"{domain}-rare-classes", epoch))
        drawn = torch.multinomial(self.probabilities, size, replacement=True, generator=generator)
        picks = torch.rand(size, generator=generator, dtype=torch.float64)
        return [int(self.images[k][int(u * len(self.images[k]))]) for k, u in zip(drawn.tolist(), picks.tolist(), strict=True)]

    def describe(self) -> str:
        """``class probability`` pairs, most often drawn first (for the log): names where the number of
        classes is a known protocol (19, 16, 13), train ids otherwise."""
        names = protocol_class_names(self.num_classes) if self.num_classes in PROTOCOLS else None
        ranked = sorted(zip(self.classes, self.probabilities.tolist(), strict=True), key=lambda item: -item[1])
        return ", ".join(f"{names[c] if names else c} {p:.3f}" for c, p in ranked)


def class_pixel_counts(dataset: Dataset, progress: bool = False) -> np.ndarray:
    """Per-image class pixel counts (N×K) of a labelled dataset that offers them (``class_pixel_counts()``)."""
    counts = getattr(dataset, "class_pixel_counts", None)
    if counts is None:
        raise TypeError(
            f"Rare-class sampling needs the source dataset's class pixel counts; {type(dataset).__name__} has no "
            "class_pixel_counts() (SegmentationDataset with labels has)."
        )
    return counts(progress=progress)


class StreamSampler(Sampler[int]):
    """Indices of an endless shuffled stream, this rank's share of iterations ``start_step .. stop_step``.

    Step ``s`` of ``W`` ranks at batch ``B`` covers stream positions ``s·W·B .. (s+1)·W·B``; rank ``r`` takes
    positions ``s·W·B + r·B`` onwards, ``B`` of them. One rank (``W = 1``) takes them all.
    """

    def __init__(self, size: int, batch_size: int, seed: int, domain: str, start_step: int, stop_step: int,
                 rank: int = 0, world_size: int = 1, draw: ClassDraw | None = None):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size} processes.")
        self.size, self.batch_size, self.seed, self.domain = size, batch_size, seed, domain
        self.start_step, self.stop_step, self.rank, self.world_size = start_step, stop_step, rank, world_size
        self.draw = draw

    def block(self, epoch: int) -> list[int]:
        """The image indices of stream positions ``epoch·size .. (epoch + 1)·size``."""
        if self.draw is not None:
            return self.draw.order(self.size, self.seed, self.domain, epoch)
        return epoch_permutation(self.size, self.seed, self.domain, epoch).tolist()

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
                    order = self.block(epoch)
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
    draw: ClassDraw | None = None,
) -> Iterator[dict]:
    """Collated batches of ``dataset`` for iterations ``start_step .. stop_step`` of a run (this rank's share);
    ``draw``: rare-class sampling's order instead of shuffled epochs."""
    try:
        size = len(dataset)
    except TypeError as error:
        raise TypeError(f"The {domain} dataset must be a map-style Dataset with __len__.") from error
    if size < 1:
        raise ValueError(f"The {domain} dataset is empty; the engine needs at least one sample.")
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=StreamSampler(size, batch_size, seed, domain, start_step, stop_step, rank, world_size, draw),
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

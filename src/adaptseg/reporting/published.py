"""Published numbers to show beside ours: the one home of every number this project did not measure.

They come from papers, on **real** data with the paper's network (DeepLab-v2 ResNet-101, ImageNet+COCO
init, 1024×512 Cityscapes inputs). Our rows come from whatever data and network the run used (by default a
small network on the embedded synthetic benchmark), so the published rows are a reference point, not a
target to match.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adaptseg.data.labels import protocol_class_names


@dataclass(frozen=True)
class PublishedRow:
    """One published result: its label, the namespace of ours it corresponds to, mIoU and per-class IoU."""

    label: str
    compares_to: str
    miou: float
    iou: dict[str, float] = field(default_factory=dict)  # empty when only the mIoU was published


@dataclass(frozen=True)
class PublishedBenchmark:
    """The rows of one benchmark (source → target, network) with the protocol they were measured in."""

    name: str
    protocol: int
    source: str
    rows: tuple[PublishedRow, ...]


def _per_class(values: str, protocol: int = 19) -> dict[str, float]:
    numbers = [float(v) for v in values.split()]
    names = protocol_class_names(protocol)
    if len(numbers) != len(names):
        raise ValueError(f"expected {len(names)} per-class values for the {protocol}-class protocol, got {len(numbers)}")
    return dict(zip(names, numbers, strict=True))


#: AdaptSegNet paper (Tsai et al., "Learning to Adapt Structured Output Space for Semantic Segmentation",
#: CVPR 2018, arXiv:1802.10349): GTA5 → Cityscapes val, DeepLab-v2 ResNet-101, 19 classes.
#: The oracle (trained on Cityscapes train) is published as mIoU only (also quoted as FDA's upper bound).
GTA5_CITYSCAPES = PublishedBenchmark(
    name="gta5_cityscapes",
    protocol=19,
    source=(
        "Tsai et al., CVPR 2018 (AdaptSegNet, arXiv:1802.10349): GTA5 → Cityscapes val, DeepLab-v2 ResNet-101, "
        "real data"
    ),
    rows=(
        PublishedRow(
            "paper: without adaptation",
            "source_only",
            36.6,
            _per_class("75.8 16.8 77.2 12.5 21.0 25.5 30.1 20.1 81.3 24.6 70.3 53.8 26.4 49.9 17.2 25.9 6.5 25.3 36.0"),
        ),
        PublishedRow(
            "paper: AdaptSegNet single-level",
            "adaptsegnet_single",
            41.4,
            _per_class("86.5 25.9 79.8 22.1 20.0 23.6 33.1 21.8 81.8 25.9 75.9 57.3 26.2 76.3 29.8 32.1 7.2 29.5 32.5"),
        ),
        PublishedRow(
            "paper: AdaptSegNet multi-level",
            "adaptsegnet_multi",
            42.4,
            _per_class("86.5 36.0 79.9 23.4 23.3 23.9 35.2 14.8 83.4 33.3 75.6 58.5 27.6 73.7 32.5 35.4 3.9 30.1 28.1"),
        ),
        PublishedRow("paper: oracle (trained on Cityscapes)", "oracle", 65.1),
    ),
)

#: SYNTHIA-RAND-CITYSCAPES → Cityscapes val, 13 classes (the AdaptSegNet paper reports only these for
#: ResNet-101); AdvEnt+MinEnt from ADVENT (Vu et al., CVPR 2019); the oracle from FDA's Table 3.
SYNTHIA_CITYSCAPES = PublishedBenchmark(
    name="synthia_cityscapes",
    protocol=13,
    source=(
        "Tsai et al., CVPR 2018 (AdaptSegNet) and Vu et al., CVPR 2019 (ADVENT): SYNTHIA → Cityscapes val, "
        "13 classes, DeepLab-v2 ResNet-101, real data; oracle as quoted by Yang & Soatto, CVPR 2020 (FDA)"
    ),
    rows=(
        PublishedRow(
            "paper: AdaptSegNet multi-level",
            "adaptsegnet_multi",
            46.7,
            _per_class("84.3 42.7 77.5 4.7 7.0 77.9 82.5 54.3 21.0 72.3 32.2 18.9 32.3", protocol=13),
        ),
        PublishedRow("ADVENT: AdvEnt+MinEnt", "advent_minent", 48.0),
        PublishedRow("paper: oracle (trained on Cityscapes)", "oracle", 71.7),
    ),
)

#: Benchmarks by the name ``parameters_reporting.yml`` uses (``reporting.published``).
BENCHMARKS: dict[str, PublishedBenchmark] = {b.name: b for b in (GTA5_CITYSCAPES, SYNTHIA_CITYSCAPES)}


def published_benchmark(name: str | None) -> PublishedBenchmark | None:
    """The benchmark called ``name``; ``None`` (no published rows) when ``name`` is empty."""
    if not name:
        return None
    if name not in BENCHMARKS:
        raise ValueError(
            f"reporting.published = {name!r} is not a known benchmark; choose one of {sorted(BENCHMARKS)} or null."
        )
    return BENCHMARKS[name]

"""How hard is the target? Score one source-pretrained model on target `dev` generated at several scales of
every appearance strength (the calibration behind `synthesis.generator.appearance`).

    python studies/calibrate_appearance.py data/08_reporting/study/runs/source_pretraining_s1/last.pt \
        --scales 0.25 0.5 0.75 1.0

The checkpoint is an engine run folder's ``last.pt`` (the study writes one per seed). Only the labelled
`dev` split is generated and scored, never `val`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from adaptseg.io import FolderDataset, RawDomainDataset
from adaptseg.models.packaging import build_from_spec, pack_model
from adaptseg.pipelines.evaluation.nodes import evaluate_on_target
from adaptseg.pipelines.ingestion.nodes import ingest_target
from adaptseg.pipelines.label_remapping.nodes import remap_labels
from adaptseg.synth import AppearanceStrengths, SynthesisConfig, generate_target
from adaptseg.training import load_checkpoint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="an engine checkpoint (last.pt) of a source-pretrained segmenter")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--width", type=int, default=16, help="the pretrained network's width")
    parser.add_argument("--images", type=int, default=100)
    args = parser.parse_args(argv)
    spec = {"arch": "deeplabv2_small", "num_classes": 19, "options": {"depth": 18, "width": args.width}}
    segmenter = build_from_spec(spec)
    segmenter.load_state_dict(load_checkpoint(args.checkpoint)["models"]["segmenter"])
    model = pack_model(segmenter, spec, method="source_pretrained")
    full = AppearanceStrengths().to_dict()
    with tempfile.TemporaryDirectory() as work:
        for scale in args.scales:
            counts = {"source": 0, "train": 0, "val": 0, "dev": args.images}
            config = SynthesisConfig.from_dict({"counts": counts, "appearance": {k: v * scale for k, v in full.items()}})
            raw = RawDomainDataset(kind="cityscapes", root=str(Path(work) / f"target_{scale}"))
            raw.save({k.rsplit(".", 1)[0]: v for k, v in generate_target(config, progress=False).items()})
            manifest = ingest_target(raw.load(), {"required_splits": ["dev"], "layout": {"splits": [], "dev": {"split_folder": "dev"}}})
            labels = FolderDataset(str(Path(work) / f"ids_{scale}"), format="npy", progress=False)
            labels.save(remap_labels(manifest, {"num_classes": 19}))
            metrics = evaluate_on_target(model, manifest, labels.load(), {"split": "dev", "input_size": [256, 128], "protocols": [19]})
            print(f"appearance scale {scale:g}: source-pretrained model, target dev mIoU {metrics['protocols']['19']['miou']:.1f}")


if __name__ == "__main__":
    main()

"""Segment a folder of your own images with a trained model, without a Kedro project:

    python -m adaptseg.predict INPUT OUTPUT --model MODEL [--batch-size N] [--policy resize|sliding]
                               [--precision auto|fp32|bf16|fp16] [--device auto|cpu|cuda]

MODEL is a training namespace (the latest version of ``data/06_models/<namespace>/model.pt``, found under
``--models-root``) or the path of a ``.pt`` checkpoint. OUTPUT gets ``label_ids/`` (Cityscapes label ids),
``overlays/`` (both mirroring INPUT's relative paths) and ``contact_sheet.png``; the summary is logged.

A thin shell over ``adaptseg.inference`` (the ``predict`` pipeline's node calls the same functions). The
outputs are written by ``adaptseg.io.FolderDataset``, the class the pipeline's catalog uses, as a plain
object: the folder appears whole or not at all, and a folder that ``predict`` did not write is never
replaced. No Kedro project, configuration or session is involved.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from adaptseg.inference import (
    DEFAULT_MODELS_ROOT,
    OUTPUT_MARKER,
    POLICIES,
    PredictConfig,
    folder_problems,
    resolve_model,
    scan_image_folder,
    segment_folder,
)
from adaptseg.training.checkpoint import CheckpointError
from adaptseg.training.precision import DEVICES, PRECISIONS

logger = logging.getLogger("adaptseg.predict")


def _size(text: str) -> tuple[int, int]:
    """``WxH`` → (W, H)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1024x512, got {text!r}") from error
    return width, height


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = PredictConfig()
    parser = argparse.ArgumentParser(
        prog="python -m adaptseg.predict",
        description="Segment a folder of JPEG / PNG images (recursively) with a trained adaptseg model.",
    )
    parser.add_argument("input", type=Path, help="folder of images, searched recursively")
    parser.add_argument("output", type=Path, help="folder for label_ids/, overlays/ and contact_sheet.png")
    parser.add_argument("--model", required=True, help="a training namespace or a .pt file")
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size,
        help="images (resize) or windows (sliding) per forward pass; default %(default)s",
    )
    parser.add_argument("--policy", choices=POLICIES, default=defaults.policy, help="default %(default)s")
    parser.add_argument(
        "--precision", choices=PRECISIONS, default=defaults.precision,
        help="auto: bf16 / fp16 autocast on a GPU, fp32 on a CPU",
    )
    parser.add_argument("--device", default=defaults.device, help=f"one of {', '.join(DEVICES)}, or cuda:N")
    parser.add_argument(
        "--overlap", type=float, default=defaults.overlap,
        help="sliding: share of a window its neighbour covers too; default %(default)s",
    )
    parser.add_argument(
        "--contact-sheet", type=int, default=defaults.contact_sheet,
        help="images on the contact sheet, spread over the folder; default %(default)s",
    )
    width, height = defaults.input_size
    parser.add_argument(
        "--input-size", type=_size, default=defaults.input_size, metavar="WxH",
        help=f"input size for checkpoints that carry none (older ones); default {width}x{height}",
    )
    parser.add_argument(
        "--models-root", type=Path, default=DEFAULT_MODELS_ROOT,
        help="where training namespaces keep their models; default %(default)s (run from the project folder)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def check_output(output: Path) -> None:
    """Refuse early (before minutes of inference) an existing output folder that ``predict`` did not write."""
    if output.is_file():
        raise ValueError(f"Output {output} is a file; pass a folder (it is created).")
    if output.is_dir() and any(output.iterdir()) and not (output / OUTPUT_MARKER).exists():
        raise ValueError(
            f"Output folder {output} exists and predict did not write it (no {OUTPUT_MARKER} file), so it is "
            "not replaced. Pass a new folder, or an earlier output of predict."
        )


def run(args: argparse.Namespace) -> dict:
    """Scan, resolve the model, segment, write; the summary."""
    from adaptseg.io.folder import FolderDataset

    config = PredictConfig(
        input=str(args.input), output=str(args.output), model=args.model, batch_size=args.batch_size,
        policy=args.policy, overlap=args.overlap, precision=args.precision, device=args.device,
        input_size=tuple(args.input_size), contact_sheet=args.contact_sheet,
    )
    problems = folder_problems(args.input, args.output)
    if problems:
        raise ValueError("; ".join(problems) + ". Pass another output folder.")
    check_output(args.output)
    folder = scan_image_folder(args.input)
    model = resolve_model(args.model, args.models_root)
    result = segment_folder(model, folder, config, progress=not args.quiet)
    if args.output.is_dir() and not any(args.output.iterdir()):
        args.output.rmdir()  # an empty folder the user made beforehand: nothing of theirs to protect
    FolderDataset(str(args.output), format="png", protect_marker=OUTPUT_MARKER, progress=not args.quiet).save(
        result.outputs
    )
    logger.info("Wrote %s", args.output)
    return result.summary


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0 when at least one image was segmented (the summary as JSON on stdout); 2 with one error
    line on stderr otherwise."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        summary = run(args)
    except (ValueError, OSError, NotImplementedError, CheckpointError) as error:
        # a missing or odd folder, a model that cannot be found or read, an output that cannot be written:
        # one line that says what to do, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

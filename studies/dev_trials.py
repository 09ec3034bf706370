"""Quick one-seed trials scored on the labelled target ``dev`` split only: how the investigation of the
adversarial gain (docs/study/investigation.md) chose the generator's camera, learning rates, λ and budgets.

    python studies/dev_trials.py --out data/08_reporting/trials/lr --pretrain-steps 1500 \\
        --variants '[["source_only", "source_only", null, {}],
                     ["adabn", "adabn", null, {}],
                     ["multi_l0.3", "adaptsegnet_multi", 0.3, {"engine.lr_discriminator": 0.001}]]'

One data regime and one pretrained model per ``--out`` (reused on the next call); each variant is
``[name, method, λ_adv main or null, {dotted.key: value} changes to the method's adaptation block}]``;
``adabn`` re-estimates the statistics of the last ``source_only`` variant before it. ``--set`` changes
project parameters (also the generator's) as in ``adaptation_study.py``. Never reads target ``val``.
Prints one line per variant (dev mIoU, D accuracy at the start, middle and end) and writes ``trials.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from adaptation_study import (
    Study,
    _with,
    adaptation_block,
    load_parameters,
    prepare_domain_data,
    target_miou,
    with_overrides,
)
from adaptseg.pipelines.adaptation.nodes import adapt_to_target
from adaptseg.pipelines.source_pretraining.nodes import train_supervised
from adaptseg.training import load_checkpoint, save_checkpoint


def _phases(history: dict, key: str) -> list[float]:
    """Mean of ``key`` over the first, middle and last five logged steps."""
    values = [point["value"] for point in history.get(key, [])]
    if len(values) < 5:
        return []
    return [round(sum(values[i : i + 5]) / 5, 3) for i in (0, len(values) // 2 - 2, len(values) - 5)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pretrain-steps", type=int)
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--variants", required=True, help="JSON list of [name, method, lambda, changes]")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    params = with_overrides(load_parameters(None), args.overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shift = params["synthesis"]["generator"]["layout_shift"]
    data = prepare_domain_data(out / "data", params, shift, params["study"]["data_seed"], with_source=True)
    source, target = data["source"], data["target"]
    study = Study(params, argparse.Namespace(quiet=True, resume=False), out)

    def score(model: dict) -> float:
        return round(target_miou(params, model, target, "dev"), 2)

    cache = out / "pretrained.pt"
    if cache.exists():
        start = load_checkpoint(cache)
    else:
        block = study.engine(params["source_pretraining"]["training"], args.seed, args.pretrain_steps, "pretrained")
        start = train_supervised(*source, params["model"], block)[0]
        save_checkpoint(cache, start)
    results = {"pretrained": {"dev_miou": score(start)}}
    print(f"pretrained: dev {results['pretrained']['dev_miou']}", flush=True)

    source_only = None
    for name, method, lam, changes in json.loads(args.variants):
        began = time.perf_counter()
        history: dict = {}
        if method == "adabn":
            if source_only is None:
                parser.error(f"variant {name!r}: adabn needs a source_only variant before it")
            block = _with(adaptation_block(params, "source_only", None), method="adabn", name=name, **changes)
            model = adapt_to_target(source_only, *source, target[0], block)[0]
        else:
            block = study.engine(_with(adaptation_block(params, method, lam), **changes), args.seed, None, name)
            model, history = adapt_to_target(start, *source, target[0], block)
            if method == "source_only":
                source_only = model
        row = {"method": method, "lambda_adv_main": lam, "changes": changes, "dev_miou": score(model)}
        row |= {key: _phases(history, key) for key in ("d_acc_main", "d_acc_aux") if key in history}
        results[name] = row
        print(f"{name}: dev {row['dev_miou']}  D accuracy {row.get('d_acc_main', '-')}  "
              f"({time.perf_counter() - began:.0f} s)", flush=True)
    (out / "trials.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

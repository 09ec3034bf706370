"""What the training nodes of every pipeline share: the engine writing into the catalog's run folder, and
the trained models packed with what produced them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from adaptseg.io.run_folder import RunFolder
from adaptseg.models.packaging import inference_metadata, pack_model
from adaptseg.tracking import record_trained_model, training_run_id
from adaptseg.training import EngineConfig, TrainResult

logger = logging.getLogger(__name__)


def require_start(start: Mapping[str, Any] | None, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The starting model, or an error saying that the namespace it starts from must be trained first."""
    if start is None:
        raise ValueError(
            f"{params.get('name')}: its starting model has not been trained yet. Train the namespace it starts "
            "from first (adaptation/pipeline.py NAMESPACES names it), e.g. kedro run --namespaces source_only."
        )
    return start


def engine_config(params: Mapping[str, Any], run: RunFolder) -> EngineConfig:
    """The namespace's engine settings, writing into the run folder the catalog gives (``{namespace}.run``)."""
    engine = dict(params.get("engine") or {})
    if "checkpoint_dir" in engine:
        raise ValueError(
            f"{params.get('name')}: engine.checkpoint_dir is set by the catalog entry '<namespace>.run' "
            f"({run.path}); remove it from the parameters."
        )
    return EngineConfig.from_dict({**engine, "checkpoint_dir": str(run.path)})


def packed_result(
    result: TrainResult, spec: Mapping[str, Any], params: Mapping[str, Any], engine: EngineConfig, **extra: Any
) -> dict[str, Any]:
    """The trained segmenter (and the method's other models) with what produced them.

    In MLflow (``adaptseg.tracking``): the model's child run gets ``train/seconds`` and ``train/steps``, the
    precision and device actually used, and the model itself as a registered MLflow model; the packed model
    records that child run (``mlflow_run_id``) so that its evaluation in a later run can point back to it.
    """
    logger.info(
        "%s: steps %d to %d in %.0f s on %s (%s)", params["name"], result.start_step, result.last_step,
        result.seconds, result.device, result.precision,
    )
    models = dict(result.models)
    segmenter = models.pop("segmenter")
    # frozen copies (an EMA teacher, a pseudo-labeller) stay in the run folder's last.pt, not in the model
    trained = {name: m for name, m in models.items() if any(p.requires_grad for p in m.parameters())}
    sizes = params.get("input_size")
    input_size = sizes.get("target") if isinstance(sizes, Mapping) else sizes  # adapted models see target images
    packed = pack_model(
        segmenter,
        spec,
        **inference_metadata(int(spec["num_classes"]), input_size),
        extra_models=trained,
        method=params["name"],
        method_module=params.get("method", "source_only"),
        method_config=params.get("method_config") or {},
        step=result.last_step,
        run_id=result.run_id,
        engine=engine.to_dict(),
        bn_mode=params["bn_mode"],
        precision=result.precision,
        device=result.device,
        mlflow_run_id=training_run_id(params["name"], params),
        **extra,
    )
    timed = {f"precision_probe_{name}_s": value for name, value in result.precision_seconds.items()}
    record_trained_model(packed, {"seconds": result.seconds, "steps": result.last_step - result.start_step, **timed})
    return packed

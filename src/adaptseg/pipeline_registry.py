"""Project pipelines: one folder per pipeline under ``pipelines/``.

``__default__`` runs them all but ``predict`` (which needs the user's images), and trains only the adaptation
namespaces of ``DEFAULT_NAMESPACES`` (and evaluates those); the others run by name, e.g. ``kedro run --pipelines adaptation,evaluation --namespaces
dacs``. Reporting compares every model that was evaluated, in this run or an earlier one.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from adaptseg.pipelines.adaptation.pipeline import DEFAULT_NAMESPACES, NAMESPACES
from adaptseg.pipelines.evaluation.pipeline import ENSEMBLES

#: Pipelines that run by name only: predict needs the user's folder (--params "predict.input=...").
ON_DEMAND = ("predict",)


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline found under ``adaptseg.pipelines`` plus ``__default__``."""
    pipelines = _find_pipelines()
    everything = sum((p for name, p in pipelines.items() if name not in ON_DEMAND), Pipeline([]))
    optional = {namespace for namespace in NAMESPACES if namespace not in DEFAULT_NAMESPACES}
    optional |= {name for name, members in ENSEMBLES.items() if optional & set(members)}
    pipelines["__default__"] = Pipeline(
        [node for node in everything.nodes if (node.namespace or "").split(".")[0] not in optional]
    )
    return pipelines


def known_pipelines() -> list[str]:
    """The pipeline folders of the package (what ``--pipelines`` may name, besides ``__default__``)."""
    folder = Path(__file__).parent / "pipelines"
    return sorted(p.name for p in folder.iterdir() if (p / "pipeline.py").is_file())


def _find_pipelines() -> dict[str, Pipeline]:
    """``find_pipelines``, but a mistyped ``--pipelines`` name is said to be one, with the known names.

    Kedro imports only the requested pipelines' modules, so an unknown name surfaces as an ``ImportError`` of
    a module that does not exist, which reads like a broken install.
    """
    try:
        return find_pipelines(raise_errors=True)
    except ImportError as error:
        known = known_pipelines()
        asked = str(error).split("'adaptseg.pipelines.", 1)[-1].split("'", 1)[0]
        if asked and asked not in known:
            close = difflib.get_close_matches(asked, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"There is no pipeline {asked!r}.{hint} Pipelines: {', '.join(known)} (and __default__)."
            ) from None
        raise

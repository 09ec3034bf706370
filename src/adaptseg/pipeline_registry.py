"""Project pipelines: one folder per pipeline under ``pipelines/``.

``__default__`` runs them all, but trains only the adaptation namespaces of ``DEFAULT_NAMESPACES`` (and
evaluates those); the others run by name, e.g. ``kedro run --pipelines adaptation,evaluation --namespaces
dacs``. Reporting compares every model that was evaluated, in this run or an earlier one.
"""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from adaptseg.pipelines.adaptation.pipeline import DEFAULT_NAMESPACES, NAMESPACES
from adaptseg.pipelines.evaluation.pipeline import ENSEMBLES


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline found under ``adaptseg.pipelines`` plus ``__default__``."""
    pipelines = find_pipelines(raise_errors=True)
    everything = sum(pipelines.values(), Pipeline([]))
    optional = {namespace for namespace in NAMESPACES if namespace not in DEFAULT_NAMESPACES}
    optional |= {name for name, members in ENSEMBLES.items() if optional & set(members)}
    pipelines["__default__"] = Pipeline(
        [node for node in everything.nodes if (node.namespace or "").split(".")[0] not in optional]
    )
    return pipelines

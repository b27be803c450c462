"""A figure spec built in the warm model worker (job kind ``"view"``): views that evaluate states.

Most views read recordings the page records first and draw in the page from the store.
The intervention views (deactivation matrix, steering curve) and patching evaluate or run
intervened states, which the Streamlit process never does: the page submits the spec, the
worker builds it (`recipes.build.build`: recording, resolving and evaluating what the store
lacks, every step stored) and returns the figure and table as JSON; the page draws them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from workbench.config import stable_hash
from workbench.paths import cache_root
from workbench.recipes.build import build
from workbench.recipes.spec import normalize_spec

__all__ = ["view_from_result", "view_job", "view_key"]


def view_key(spec: Mapping[str, Any]) -> str:
    """What a view job computes (its canonical spec and the cache root)."""
    return stable_hash({"kind": "view", "spec": normalize_spec(spec), "root": str(cache_root())}, n=20)


def view_job(args: Mapping[str, Any], job: Any) -> dict[str, Any]:
    """The worker's ``"view"`` kind: build `args["spec"]` (computing what is missing); figure and table as JSON."""
    job.phase(f"building the {args['spec'].get('analysis')} view", unit="steps")
    built = build(dict(args["spec"]), status=job.status, progress=job.progress)
    return {"figure": built.figure.to_json(), "table": built.table.to_json(orient="split", date_format="iso"),
            "info": json.loads(json.dumps(built.info, default=str))}


def view_from_result(result: Mapping[str, Any]) -> tuple[go.Figure, pd.DataFrame, dict[str, Any]]:
    """(figure, table, provenance) of a finished view job's result."""
    fig = pio.from_json(str(result["figure"]))
    table = pd.read_json(io.StringIO(str(result["table"])), orient="split")
    return go.Figure(fig), table, dict(result.get("info") or {})

"""The outcomes view (`eval_scores`): N model states evaluated on the same held-out data.

Every suite comes from the store when it is there (`workbench.evaluation.evaluate` computes
it once otherwise), so a page that ran the evaluation as a background job rebuilds this
view instantly, and an export's manifest regenerates it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from workbench.config import ModelSpec
from workbench.evaluation import evaluate
from workbench.evaluation.run import both_directions
from workbench.evaluation.tables import combine, compare_scores
from workbench.examples import DataSpec
from workbench.recipes.context import Ctx
from workbench.viz.eval_figures import eval_scores_figure


def eval_states(spec: dict) -> dict[str, ModelSpec]:
    """Label → ModelSpec of an `eval_scores` spec (its model first, then `others`)."""
    p = spec["params"]
    specs = [ModelSpec.from_dict(spec["model"]), *(ModelSpec.from_dict(dict(o)) for o in p["others"])]
    labels = list(p["labels"]) or [Path(s.artifact).parent.name if s.artifact else Path(s.source).name for s in specs]
    return dict(zip(labels, specs, strict=True))


def _scores(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    states = eval_states(c.spec)
    data = DataSpec.from_dict(dict(p["data"])) if p["data"] else DataSpec(source=c.spec["corpus"])
    result = combine([evaluate(s, list(p["suites"]), data, directions=both_directions(list(p["directions"])),
                               limit=p["limit"], label=label, progress=c.progress) for label, s in states.items()])
    reference = p["reference"] or next(iter(states))
    c.extra["generations"] = result.generations
    c.extra["scores"] = compare_scores(result.eval, reference=reference).reset_index()
    c.facts["flags"] = list(dict.fromkeys(result.flags))
    return eval_scores_figure(result.eval, reference=reference, title=c.spec["title"]), result.eval


EVAL_BUILDERS = {"eval_scores": _scores}

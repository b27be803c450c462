"""The outcomes view (`eval_scores`): N model states evaluated on the same held-out data, with intervals.

Every suite comes from the store when it is there (`workbench.evaluation.evaluate` computes
it once otherwise; the build context hands it over), so a page that ran the evaluation as
a background job rebuilds this view instantly, and an export's manifest regenerates it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from workbench.config import ModelSpec, spec_field
from workbench.errors import ExportError, ParamError
from workbench.recipes.analysis import Analysis, Need
from workbench.recipes.context import Ctx
from workbench.recipes.params import Params
from workbench.viz.eval_figures import eval_scores_figure

__all__ = ["ANALYSES", "EvalScoresParams", "eval_states"]


@dataclass(frozen=True)
class EvalScoresParams(Params):
    """Outcomes of N model states (the spec's model is the first): scores with intervals."""

    others: tuple[dict[str, Any], ...] = spec_field("the other states as ModelSpec dicts", ())
    labels: tuple[str, ...] = spec_field("a name per state (the spec's model first)", ())
    suites: tuple[str, ...] = spec_field("translation, loss, lm-eval:TASK", ("translation", "loss"))
    data: dict[str, Any] | None = spec_field("the DataSpec whose held-out part is scored (a fine-tune's own)", None)
    directions: tuple[str, ...] = spec_field("src:tgt directions scored", ("en:sw", "sw:en"))
    limit: int | None = spec_field("score the first N held-out units only", None)
    reference: str | None = spec_field("the state differences are taken against (default: the first)", None)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.labels and len(self.labels) != len(self.others) + 1:
            raise ParamError(f"labels must name every state ({len(self.others) + 1}), got {len(self.labels)}")


def eval_states(spec: Mapping[str, Any]) -> dict[str, ModelSpec]:
    """Label → ModelSpec of an `eval_scores` spec (its model first, then `others`)."""
    p = spec["params"]
    specs = [ModelSpec.from_dict(spec["model"]), *(ModelSpec.from_dict(dict(o)) for o in p["others"])]
    labels = list(p["labels"]) or [Path(s.artifact).parent.name if s.artifact else Path(s.source).name for s in specs]
    return dict(zip(labels, specs, strict=True))


def _no_recordings(canon: Mapping[str, Any]) -> list[Need]:
    return []  # reads evaluations from the store, no recordings


def _scores(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    if c.evaluate is None:
        raise ExportError("this build has no evaluator (the outcomes view needs `workbench.evaluation`)")
    states = eval_states(c.spec)
    data = dict(p["data"]) if p["data"] else {"source": c.spec["corpus"]}  # a DataSpec dict
    reference = p["reference"] or next(iter(states))
    result, c.extra["scores"] = c.evaluate(states, list(p["suites"]), data, pairs=list(p["directions"]),
                                           limit=p["limit"], reference=reference, progress=c.progress)
    c.extra["generations"] = result.generations
    c.facts["flags"] = list(dict.fromkeys(result.flags))
    return eval_scores_figure(result.eval, reference=reference, title=c.spec["title"]), result.eval


ANALYSES = (
    Analysis("eval_scores", "outcomes of N model states with 95% intervals (translation, loss, lm-eval)",
             EvalScoresParams, _scores, needs=_no_recordings, extras=("generations", "scores")),
)

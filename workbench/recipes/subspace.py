"""LENS language subspaces (LENS §3.2): the two projections at one layer, and their separation per layer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from workbench.config import spec_field
from workbench.recipes import tables
from workbench.recipes.analysis import Analysis, Compare, Report
from workbench.recipes.compare import side_by_side
from workbench.recipes.context import Ctx
from workbench.recipes.params import CompareParams, Layer, Pooled
from workbench.viz import compare_figures as cfig
from workbench.viz import figures

__all__ = ["ANALYSES", "SeparationParams", "SubspaceParams", "separation_compare"]


@dataclass(frozen=True)
class SubspaceParams(Pooled):
    """LENS language-agnostic and language-specific subspaces at one layer (LENS §3.2)."""

    layer: Layer = spec_field("block index, 'emb', or 'best'", "best")
    rank: int | None = spec_field("rank r of the specific subspace; None = languages − 1", None)
    central: str = spec_field("central language of the direction norms", "en")


@dataclass(frozen=True)
class SeparationParams(Pooled):
    """Per-layer between/within-language variance in each projection."""

    rank: int | None = spec_field("rank r of the specific subspace; None = languages − 1", None)
    central: str = spec_field("central language", "en")
    holdout: bool = spec_field("fit on half the sentences, measure on the other half", True)


@dataclass(frozen=True)
class CompareSeparationParams(SeparationParams, CompareParams):
    """Subspace separation by layer for two states."""

    measures: tuple[str, ...] = spec_field("measures to draw (empty: all)", ("agnostic_ratio", "specific_ratio"))


def _subspace(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    rec = c.record()
    layer = c.layer(rec)
    points, c.extra["norms"], strips = tables.subspace_view(rec, c.corpus(rec), p["pooling"], layer, rank=p["rank"],
                                                            central=c.central(rec, "central"))
    fig = figures.subspace_figure(points[["x_agnostic", "y_agnostic"]].to_numpy(),
                                  points[["x_specific", "y_specific"]].to_numpy(), list(points["lang"]),
                                  list(points["text"]), strips=strips,
                                  title=c.spec["title"] or f"Language subspaces at layer {layer}")
    return fig, points


def _subspace_report(built: Any, rebuild: Callable[..., Any]) -> Report:
    """The norms at the layer and the per-layer separation (from the same recording, in the store)."""
    p = built.info["params"]
    sep = rebuild({**built.info["spec"], "analysis": "separation", "title": None,
                   "params": {k: p[k] for k in ("pooling", "rank", "central")}}).table
    lines = [f"LENS subspaces at layer {p['layer']} (central {p['central']}); direction norms:",
             built.extra["norms"].to_string(index=False), "",
             "per-layer between/within variance ratio (held-out sentences):",
             sep[["layer", "agnostic_ratio", "specific_ratio"]].to_string(index=False, float_format="%.3f")]
    return Report(lines, {"": sep, "points": built.table, "norms": built.extra["norms"]})


def _separation(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    rec = c.record()
    sep = tables.separation_table(rec, p["pooling"], rank=p["rank"], central=c.central(rec, "central"),
                                  holdout=p["holdout"])
    return figures.separation_figure(sep, title=c.spec["title"]), sep


def separation_compare(rec_a: Any, rec_b: Any, pooling: str, *, rank: int | None, central: str,
                       holdout: bool) -> pd.DataFrame:
    """Subspace separation by layer (`tables.separation_table`): layer, measure, a, b, diff.

    Measures: ``agnostic_ratio``, ``specific_ratio`` and ``direction_norm_<lang>``.
    """
    ta = tables.separation_table(rec_a, pooling, rank=rank, central=central, holdout=holdout)
    tb = tables.separation_table(rec_b, pooling, rank=rank, central=central, holdout=holdout)
    values = [c for c in ta.columns if c != "layer"]
    out = side_by_side(ta, tb, ["layer"], values)
    out.attrs.update(central=ta.attrs.get("central", central), rank=rank, holdout=holdout)
    return out


def _compare(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    table = separation_compare(c.record("a"), c.record("b"), p["pooling"], rank=p["rank"], central=p["central"],
                               holdout=p["holdout"])
    measures = list(p["measures"]) or list(pd.unique(table["measure"]))
    shown = table[table["measure"].isin(measures)]
    title = c.spec["title"] or f"Subspace separation by layer (central {p['central']})"
    fig = cfig.compare_by_layer_figure(shown, line="measure", labels=c.labels(), y_title="value", title=title)
    return fig, table


ANALYSES = (
    Analysis("subspace", "LENS language subspaces at one layer", SubspaceParams, _subspace, report=_subspace_report,
             extras=("norms",)),
    Analysis("separation", "LENS subspace separation by layer (between/within-language variance)", SeparationParams,
             _separation, compare=Compare(CompareSeparationParams, _compare)),
)

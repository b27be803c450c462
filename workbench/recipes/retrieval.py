"""Translation retrieval (Mid-align §2, SiLP §5.3): accuracy per layer, and the language × language heatmap.

Two analyses and their two-state forms: `retrieval` (`compare_retrieval`) and
`retrieval_heatmap` (`compare_retrieval_heatmap`: B − A at one layer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.analysis.retrieval import mexa_summary, mid_align_score
from workbench.config import spec_field
from workbench.recipes import tables
from workbench.recipes.analysis import Analysis, Compare, Report, sparkline
from workbench.recipes.compare import side_by_side
from workbench.recipes.context import Ctx
from workbench.recipes.params import AtLayer, CompareParams, PivotRetrieval, choice
from workbench.viz import compare_figures as cfig
from workbench.viz import figures

__all__ = ["ANALYSES", "HeatmapParams", "RetrievalParams", "retrieval_compare", "retrieval_matrix_compare"]


AGGREGATES = ("all", "mid_align_score", "mean_max")

_LAYERS_HELP = ("layers the curve and its numbers run over: all (every recorded layer) or hf_hidden_states "
                "(HF's emb, blocks 0…L−2 and the post-norm top 'final', as MEXA's code reads them)")


@dataclass(frozen=True)
class RetrievalParams(PivotRetrieval):
    """Per-layer translation-retrieval accuracy (Mid-align §2, SiLP §5.3)."""

    per_language: bool = spec_field("draw one line per language against the pivot", True)
    layers: str = spec_field(_LAYERS_HELP, "all", choices=tables.LAYER_SETS)
    aggregate: str = spec_field("the model's numbers in the summary: all (the Mid-align score, and MEXA's mean/max "
                                "when method = mexa), mid_align_score, or mean_max (MEXA's)", "all",
                                choices=AGGREGATES)

    def __post_init__(self) -> None:
        super().__post_init__()
        choice("layers", self.layers, tables.LAYER_SETS)
        choice("aggregate", self.aggregate, AGGREGATES)


@dataclass(frozen=True)
class HeatmapParams(AtLayer):
    """Language × language retrieval accuracy at one layer."""


@dataclass(frozen=True)
class CompareRetrievalParams(PivotRetrieval, CompareParams):
    """Translation retrieval by layer for two states."""

    series: tuple[str, ...] = spec_field("lines to draw: all_pairs, pivot, or languages", ("all_pairs",))
    layers: str = spec_field(_LAYERS_HELP, "all", choices=tables.LAYER_SETS)

    def __post_init__(self) -> None:
        super().__post_init__()
        choice("layers", self.layers, tables.LAYER_SETS)


@dataclass(frozen=True)
class CompareHeatmapParams(AtLayer, CompareParams):
    """Language × language retrieval at one layer: B − A."""


def _retrieval(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    rec = c.record()
    p = c.p
    c.extra["pairs"], summary = tables.retrieval_tables(rec, p["pooling"], method=p["method"], k=p["k"],
                                                        pivot=c.central(rec, "pivot"), center=p["center"],
                                                        layers=tables.layer_set(rec, p["layers"]))
    return figures.retrieval_by_layer_figure(summary, per_language=p["per_language"], title=c.spec["title"]), summary


def _report(built: Any, rebuild: Callable[..., Any]) -> Report:
    p, langs, summary = built.info["params"], built.info["languages"], built.table
    allp = summary[summary.series == "all_pairs"].set_index("layer")["accuracy"]
    best = tables.best_layer(summary)
    at_best = summary[(summary.layer == best) & ~summary.series.isin(["all_pairs", "pivot"])]
    over = "" if p["layers"] == "all" else f" over the {len(allp)} HF hidden_states layers"
    lines = [f"retrieval ({p['method']}{', centred' if p['center'] else ''}, {p['pooling']} pooling), "
             f"{len(langs)} languages{over}",
             "all pairs by layer: " + sparkline(allp, list(allp.index)),
             "\n".join(f"  layer {layer!s:>3}: {acc:.3f}" for layer, acc in allp.items()),
             f"best layer: {best} (all-pairs accuracy {allp[best]:.3f})",
             f"per language vs {p['pivot']} at layer {best}: "
             + ", ".join(f"{r.series} {r.accuracy:.2f}" for r in at_best.itertuples())]
    if p["aggregate"] in ("all", "mid_align_score") and p["layers"] == "all":  # its numbering counts blocks
        lines.append(f"Mid-align score (mean over its even layers m = 2, 4, …, our blocks 1, 3, …): "
                     f"{mid_align_score(summary):.3f}")
    if p["aggregate"] == "mean_max" or (p["aggregate"] == "all" and p["method"] == "mexa"):
        lines.append(_mexa_line(mexa_summary(summary, p["pivot"])))
    return Report(lines, {"": summary, "pairs": built.extra["pairs"]})


def _mexa_line(m: dict[str, Any]) -> str:
    """MEXA's numbers, each "max" named (`analysis.retrieval.mexa_summary`)."""
    layers = m["layers"]
    return (f"MEXA (vs {m['pivot']}, {len(layers)} layers {layers[0]}…{layers[-1]}): mean over layers "
            f"{m['mean']:.4f}; max = mean of each language's best layer {m['language_max']:.4f} (MEXA's max, "
            f"per language); peak of the language-averaged curve {m['max']:.4f} (layer {m['argmax']})")


def _heatmap(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    rec = c.record()
    layer = c.layer(rec)
    m = tables.retrieval_matrix_at(rec, c.p["pooling"], layer, method=c.p["method"], k=c.p["k"])
    title = c.spec["title"] or f"Translation retrieval at layer {layer} ({c.p['method']})"
    return figures.retrieval_heatmap(m, title=title), _matrix_table(m)


def _matrix_table(m: pd.DataFrame) -> pd.DataFrame:
    data = m.rename_axis(index="source").reset_index()
    data.columns = [str(x) for x in data.columns]
    return data


# --------------------------------------------------------------------------- two states


def retrieval_compare(rec_a: Any, rec_b: Any, pooling: str, *, method: str = "margin", k: int = 4,
                      pivot: str = "en", center: bool = False, layers: list[Any] | None = None) -> pd.DataFrame:
    """Retrieval accuracy by layer (`tables.retrieval_tables` summary): layer, series, measure, a, b, diff."""
    _, sa = tables.retrieval_tables(rec_a, pooling, method=method, k=k, pivot=pivot, center=center, layers=layers)
    _, sb = tables.retrieval_tables(rec_b, pooling, method=method, k=k, pivot=pivot, center=center, layers=layers)
    keys = ["center", "layer", "series"] if "center" in sa.columns else ["layer", "series"]
    out = side_by_side(sa, sb, keys, ["accuracy"])
    out.attrs.update(method=method, pivot=pivot, k=k, pooling=pooling)
    return out


def retrieval_matrix_compare(rec_a: Any, rec_b: Any, pooling: str, layer: Any, *, method: str = "margin",
                             k: int = 4) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Language × language retrieval at one layer (`tables.retrieval_matrix_at`): (A, B, B − A)."""
    ma = tables.retrieval_matrix_at(rec_a, pooling, layer, method=method, k=k)
    mb = tables.retrieval_matrix_at(rec_b, pooling, layer, method=method, k=k)
    return ma, mb, mb.astype(np.float64) - ma.astype(np.float64)


def _compare_retrieval(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    ra, rb = c.record("a"), c.record("b")
    table = retrieval_compare(ra, rb, p["pooling"], method=p["method"], k=p["k"], pivot=p["pivot"], center=p["center"],
                              layers=tables.layer_set(ra, p["layers"]))
    shown = table[table["series"].isin(p["series"] or ["all_pairs"])]
    title = c.spec["title"] or f"Translation retrieval by layer ({p['method']}, pivot {p['pivot']})"
    fig = cfig.compare_by_layer_figure(shown, line="series", labels=c.labels(), y_title="retrieval accuracy",
                                       title=title)
    return fig, table


def _compare_heatmap(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    ra, rb = c.record("a"), c.record("b")
    layer = c.layer(ra)
    _, _, diff = retrieval_matrix_compare(ra, rb, p["pooling"], layer, method=p["method"], k=p["k"])
    title = c.spec["title"] or f"Retrieval accuracy at layer {layer}, B − A ({p['method']})"
    return cfig.difference_heatmap(diff, title=title), _matrix_table(diff)


ANALYSES = (
    Analysis("retrieval", "per-layer translation-retrieval accuracy", RetrievalParams, _retrieval, report=_report,
             extras=("pairs",), compare=Compare(CompareRetrievalParams, _compare_retrieval)),
    Analysis("retrieval_heatmap", "language × language retrieval accuracy at one layer", HeatmapParams, _heatmap,
             compare=Compare(CompareHeatmapParams, _compare_heatmap,
                             "language × language retrieval at one layer for two states: B − A")),
)

"""FFN neurons: activated-neuron overlap with a pivot (SiLP §5.4) and language-specific (LAPE) neurons."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from workbench.config import CorpusSpec, spec_field
from workbench.recipes import tables
from workbench.recipes.analysis import Analysis, Compare, Need, Report, main_recording, sparkline
from workbench.recipes.compare import side_by_side
from workbench.recipes.context import Ctx
from workbench.recipes.params import CompareParams, Params, PivotOverlap
from workbench.viz import compare_figures as cfig
from workbench.viz import figures

__all__ = ["ANALYSES", "OverlapParams", "SpecificParams", "overlap_compare"]


@dataclass(frozen=True)
class OverlapParams(PivotOverlap):
    """Activated-neuron overlap with the pivot per layer (SiLP §5.4)."""


@dataclass(frozen=True)
class SpecificParams(Params):
    """Language-specific (LAPE) neurons per layer and language."""

    entropy_quantile: float = spec_field("keep neurons in the lowest entropy quantile", 0.01)
    prob_quantile: float = spec_field("whose top activation probability is above this quantile", 0.95)


@dataclass(frozen=True)
class CompareOverlapParams(PivotOverlap, CompareParams):
    """Activated-neuron overlap with the pivot for two states."""

    shown: tuple[str, ...] = spec_field("languages to draw (empty: all)", ())


def _pivot_first(canon: Mapping[str, Any]) -> list[Need]:
    main = main_recording(canon)[0]
    pivot = canon["params"]["pivot"]
    langs = (pivot, *[x for x in main.corpus.langs if x != pivot])
    return [dataclasses.replace(main, corpus=CorpusSpec(main.corpus.source, langs, main.corpus.limit))]


def _overlap(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    rec = c.record()
    units = list(rec.entries)
    table = tables.overlap_table(rec, units[0], units[1:], top_frac=p["top_frac"])
    return figures.overlap_figure(table, p["measure"], title=c.spec["title"]), table


def _overlap_report(built: Any, rebuild: Callable[..., Any]) -> Report:
    table = built.table
    lines = [f"neuron overlap (Jaccard of top-{built.info['params']['top_frac']:.0%} activated sets) with "
             f"{built.info['languages'][0]} by layer:"]
    lines += [f"  {lang:>6}: {sparkline(g['jaccard'], list(g['layer']))}"
              for lang, g in table.groupby("lang", sort=False)]
    return Report(lines, {"": table})


def overlap_compare(rec_a: Any, rec_b: Any, pivot: str, langs: Sequence[str], *, top_frac: float) -> pd.DataFrame:
    """Neuron overlap with the pivot (`tables.overlap_table`): layer, lang, measure, a, b, diff."""
    ta = tables.overlap_table(rec_a, pivot, langs, top_frac=top_frac)
    tb = tables.overlap_table(rec_b, pivot, langs, top_frac=top_frac)
    out = side_by_side(ta, tb, ["layer", "lang"], ["jaccard", "pivot_frac"])
    out.attrs.update(pivot=pivot, top_frac=top_frac)
    return out


def _compare_overlap(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    ra, rb = c.record("a"), c.record("b")
    langs = list(ra.entries)
    table = overlap_compare(ra, rb, p["pivot"], langs, top_frac=p["top_frac"])
    others = [x for x in langs if x != p["pivot"]]
    part = table[(table["measure"] == p["measure"]) & table["lang"].isin(list(p["shown"]) or others)]
    fig = cfig.compare_by_layer_figure(part, line="lang", labels=c.labels(), y_title="overlap",
                                       title=c.spec["title"] or f"Activated-neuron overlap with {p['pivot']}")
    return fig, table


def _specific(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    rec = c.record()
    counts = tables.specific_counts(rec, list(rec.entries), entropy_quantile=c.p["entropy_quantile"],
                                   prob_quantile=c.p["prob_quantile"])
    data = counts.reset_index()
    data.columns = [str(x) for x in data.columns]
    return figures.specific_neurons_figure(counts, title=c.spec["title"]), data


ANALYSES = (
    Analysis("overlap", "activated-neuron overlap with the pivot", OverlapParams, _overlap, needs=_pivot_first,
             report=_overlap_report, compare=Compare(CompareOverlapParams, _compare_overlap)),
    Analysis("specific_neurons", "language-specific (LAPE) neurons per layer and language", SpecificParams,
             _specific),
)

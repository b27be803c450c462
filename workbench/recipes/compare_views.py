"""Builders of the two-state views (the Compare page's): A = the spec's model, B = `state_b`.

Each table is long (the view's keys, ``a``, ``b``, ``diff = b − a``) from `recipes.compare`;
each figure draws both states and their difference. Registered in `build.BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go

from workbench.recipes import compare
from workbench.recipes.context import Ctx
from workbench.viz import compare_figures as cfig


def _labels(c: Ctx) -> tuple[str, str]:
    a, b = c.p["labels"]
    return str(a), str(b)


def _curves(c: Ctx, shown: pd.DataFrame, title: str, *, line: str = "measure", y_title: str = "value") -> go.Figure:
    """Both states' curves by layer and B − A (the spec's title wins over `title`)."""
    return cfig.compare_by_layer_figure(shown, line=line, labels=_labels(c), y_title=y_title,
                                        title=c.spec["title"] or title)


def _retrieval(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    ra, rb = c.record("a"), c.record("b")
    table = compare.retrieval_compare(ra, rb, p["pooling"], method=p["method"], k=p["k"], pivot=p["pivot"],
                                      center=p["center"])
    shown = table[table["series"].isin(p["series"] or ["all_pairs"])]
    title = f"Translation retrieval by layer ({p['method']}, pivot {p['pivot']})"
    return _curves(c, shown, title, line="series", y_title="retrieval accuracy"), table


def _sensitivity(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    table = compare.sensitivity_compare(c.record("a"), c.record("b"), f"{p['src']}>{p['tgt']}", p["variant"])
    title = f"Projection sensitivity, {p['src']} → {p['tgt']} ({p['variant']})"
    return _curves(c, table, title, y_title="projection sensitivity"), table


def _overlap(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    ra, rb = c.record("a"), c.record("b")
    langs = list(ra.entries)
    table = compare.overlap_compare(ra, rb, p["pivot"], langs, top_frac=p["top_frac"])
    others = [x for x in langs if x != p["pivot"]]
    part = table[(table["measure"] == p["measure"]) & table["lang"].isin(list(p["shown"]) or others)]
    return _curves(c, part, f"Activated-neuron overlap with {p['pivot']}", line="lang", y_title="overlap"), table


def _separation(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    table = compare.separation_compare(c.record("a"), c.record("b"), p["pooling"], rank=p["rank"],
                                       central=p["central"], holdout=p["holdout"])
    measures = list(p["measures"]) or list(pd.unique(table["measure"]))
    shown = table[table["measure"].isin(measures)]
    return _curves(c, shown, f"Subspace separation by layer (central {p['central']})"), table


def _map(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    ra, rb = c.record("a"), c.record("b")
    layer = c.layer(ra)
    pts = compare.map_compare(ra, rb, c.corpus(ra), p["pooling"], layer, method=p["method"], random_state=p["seed"])
    fig = cfig.compare_maps_figure(pts, labels=_labels(c), title=c.spec["title"] or f"{p['method'].upper()} of "
                                                                                     f"layer {layer}")
    return fig, pts


def _matrix(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    ra, rb = c.record("a"), c.record("b")
    layer = c.layer(ra)
    _, _, diff = compare.retrieval_matrix_compare(ra, rb, p["pooling"], layer, method=p["method"], k=p["k"])
    fig = cfig.difference_heatmap(diff, title=c.spec["title"] or f"Retrieval accuracy at layer {layer}, B − A "
                                                                  f"({p['method']})")
    data = diff.rename_axis(index="source").reset_index()
    data.columns = [str(x) for x in data.columns]
    return fig, data


COMPARE_BUILDERS: dict[str, Callable[[Ctx], tuple[go.Figure, pd.DataFrame]]] = {
    "compare_retrieval": _retrieval,
    "compare_sensitivity": _sensitivity,
    "compare_overlap": _overlap,
    "compare_separation": _separation,
    "compare_map": _map,
    "compare_retrieval_matrix": _matrix,
}

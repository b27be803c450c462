"""2-D maps of one layer: PCA, t-SNE or UMAP of the sentence vectors (SiLP Fig. 1, LENS Fig. 6)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from workbench.config import spec_field
from workbench.recipes import tables
from workbench.recipes.analysis import Analysis, Compare, Report
from workbench.recipes.context import Ctx
from workbench.recipes.params import EMBED_METHODS, CompareParams, Layer, Pooled, choice
from workbench.viz import compare_figures as cfig
from workbench.viz import figures

__all__ = ["ANALYSES", "MapParams", "map_compare"]

METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


@dataclass(frozen=True)
class MapParams(Pooled):
    """PCA / t-SNE / UMAP of one layer (SiLP Fig. 1, LENS Fig. 6)."""

    layer: Layer = spec_field("block index, 'emb', or 'best'", "best")
    method: str = spec_field("pca, tsne or umap", "pca", choices=EMBED_METHODS)
    seed: int = spec_field("random state (t-SNE, UMAP)", 0)
    links: bool = spec_field("draw lines between translations", False)

    def __post_init__(self) -> None:
        super().__post_init__()
        choice("method", self.method, EMBED_METHODS)


@dataclass(frozen=True)
class CompareMapParams(Pooled, CompareParams):
    """2-D maps of one layer for two states, side by side."""

    layer: Layer = spec_field("block index, 'emb', or 'best'", "best")
    method: str = spec_field("pca, tsne or umap", "pca", choices=EMBED_METHODS)
    seed: int = spec_field("random state", 0)


def _map(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    rec = c.record()
    layer = c.layer(rec)
    pts = tables.map_points(rec, c.corpus(rec), p["pooling"], layer, method=p["method"], random_state=p["seed"])
    fig = figures.map_figure(pts[["x", "y"]].to_numpy(), list(pts["lang"]), list(pts["text"]),
                             pair_ids=list(pts["unit"]), show_links=p["links"], method=p["method"],
                             explained_variance=pts.attrs.get("explained_variance"),
                             title=c.spec["title"] or f"{METHOD_NAMES.get(p['method'], p['method'])} of layer {layer}")
    return fig, pts


def _report(built: Any, rebuild: Callable[..., Any]) -> Report:
    p, pts = built.info["params"], built.table
    return Report([f"{p['method']} map of layer {p['layer']}: {len(pts)} points, {pts['lang'].nunique()} languages, "
                   f"seed {p['seed']}"], {"": pts})


def map_compare(rec_a: Any, rec_b: Any, corpus: Any, pooling: str, layer: Any, *, method: str = "pca",
                random_state: int = 0) -> pd.DataFrame:
    """2-D maps of one layer for both states (`tables.map_points`), stacked with a ``state`` column ('a', 'b').

    Each state's map is its own projection (axes are not comparable point by point; a
    difference of maps is not defined), so only the layouts are compared.
    """
    pa = tables.map_points(rec_a, corpus, pooling, layer, method=method, random_state=random_state)
    pb = tables.map_points(rec_b, corpus, pooling, layer, method=method, random_state=random_state)
    return pd.concat([pa.assign(state="a"), pb.assign(state="b")], ignore_index=True)


def _compare(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    ra, rb = c.record("a"), c.record("b")
    layer = c.layer(ra)
    pts = map_compare(ra, rb, c.corpus(ra), p["pooling"], layer, method=p["method"], random_state=p["seed"])
    title = c.spec["title"] or f"{METHOD_NAMES.get(p['method'], p['method'])} of layer {layer}"
    return cfig.compare_maps_figure(pts, labels=c.labels(), title=title), pts


ANALYSES = (
    Analysis("map", "PCA / t-SNE / UMAP of one layer", MapParams, _map, report=_report,
             compare=Compare(CompareMapParams, _compare, "2-D maps of one layer for two states, side by side")),
)

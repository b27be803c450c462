"""2-D maps of sentences: one layer's map and the LENS subspaces (figures returned, never rendered).

Points are coloured and shaped by language (:func:`~workbench.viz.theme.language_color`,
:func:`~workbench.viz.theme.language_symbol`); hover shows the sentence.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.viz.theme import NEUTRAL_COLOR, TEMPLATE, language_color, language_symbol

__all__ = ["map_axis_title", "map_figure", "subspace_figure"]


def hover_text(texts: Sequence[str], width: int = 60) -> list[str]:
    """Escape HTML and wrap long sentences for hover labels."""
    return ["<br>".join(textwrap.wrap(html.escape(str(t)), width)) or " " for t in texts]


def _link_trace(coords: np.ndarray, pair_ids: Sequence[object]) -> go.Scatter:
    """Grey segments from the first point of each pair id to the others (None-separated)."""
    first: dict[object, int] = {}
    xs: list[float | None] = []
    ys: list[float | None] = []
    for i, pid in enumerate(pair_ids):
        j = first.setdefault(pid, i)
        if j != i:
            xs += [coords[j, 0], coords[i, 0], None]
            ys += [coords[j, 1], coords[i, 1], None]
    return go.Scatter(
        x=xs,
        y=ys,
        mode="lines",
        name="translations",
        line={"color": NEUTRAL_COLOR, "width": 0.7},
        hoverinfo="skip",
    )


def language_scatter(
    coords: np.ndarray,
    langs: np.ndarray,
    hover: list[str],
    *,
    showlegend: bool = True,
) -> list[go.Scatter]:
    """One marker trace per language (first-appearance order)."""
    traces = []
    for lang in pd.unique(langs):
        idx = np.flatnonzero(langs == lang)
        traces.append(
            go.Scatter(
                x=coords[idx, 0],
                y=coords[idx, 1],
                mode="markers",
                name=str(lang),
                legendgroup=str(lang),
                showlegend=showlegend,
                marker={"color": language_color(str(lang)), "symbol": language_symbol(str(lang)), "size": 6,
                        "opacity": 0.85},
                hovertext=[hover[i] for i in idx],
                hovertemplate=f"<b>{html.escape(str(lang))}</b><br>%{{hovertext}}<extra></extra>",
            )
        )
    return traces


def _check_points(coords: np.ndarray, *columns: Sequence[object]) -> np.ndarray:
    xy = np.asarray(coords, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"coords must be (n, 2), got shape {xy.shape}")
    for col in columns:
        if len(col) != xy.shape[0]:
            raise ValueError(f"got {len(col)} labels for {xy.shape[0]} points")
    return xy


_MAP_AXES = {"pca": "PC", "tsne": "t-SNE ", "umap": "UMAP "}


def map_axis_title(method: str | None, i: int, explained_variance: Sequence[float] | None = None) -> str:
    """Title of a map's axis `i` (0 or 1): ``"PC1 (23.4%)"``, ``"t-SNE 2"``, or ``"dimension 1"``."""
    prefix = _MAP_AXES.get(str(method).lower()) if method else None
    if prefix is None:
        return f"dimension {i + 1}"
    text = f"{prefix}{i + 1}"
    if explained_variance is not None and len(explained_variance) > i and np.isfinite(explained_variance[i]):
        text += f" ({100 * float(explained_variance[i]):.1f}%)"
    return text


def map_figure(
    coords: np.ndarray,
    langs: Sequence[str],
    texts: Sequence[str],
    *,
    pair_ids: Sequence[object] | None = None,
    show_links: bool = False,
    title: str | None = None,
    method: str | None = None,
    explained_variance: Sequence[float] | None = None,
) -> go.Figure:
    """2-D map of sentences coloured by language; hover shows the sentence.

    Args:
        coords: ``(n, 2)`` coordinates (e.g. from :func:`workbench.analysis.embed2d.embed_2d`).
        langs: ``n`` language codes.
        texts: ``n`` sentences.
        pair_ids: ``n`` ids; points sharing an id are translations of each other.
        show_links: draw grey lines between translations (needs ``pair_ids``).
        title: figure title.
        method: ``"pca"``, ``"tsne"`` or ``"umap"``: names the axes (``PC1``, ``t-SNE 1``, …).
        explained_variance: PCA's explained variance ratio of the two axes (e.g. the
            ``explained_variance`` attr of ``recipes.tables.map_points``): ``PC1 (23.4%)``.

    Returns:
        Figure with one marker trace per language, plus one line trace first when links
        are drawn.

    Raises:
        ValueError: for mismatched lengths or ``show_links`` without ``pair_ids``.
    """
    xy = _check_points(coords, langs, texts, *([pair_ids] if pair_ids is not None else []))
    if show_links and pair_ids is None:
        raise ValueError("show_links=True needs pair_ids")
    fig = go.Figure()
    if show_links and pair_ids is not None:
        fig.add_trace(_link_trace(xy, pair_ids))
    fig.add_traces(language_scatter(xy, np.asarray(langs, dtype=object), hover_text(texts)))
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title or "Sentence map"},
        xaxis={"title": {"text": map_axis_title(method, 0, explained_variance)}},
        yaxis={"title": {"text": map_axis_title(method, 1, explained_variance)}},
        legend={"title": {"text": "language"}},
        showlegend=True,
    )
    return fig


def subspace_figure(
    coords_agnostic: np.ndarray,
    coords_specific: np.ndarray,
    langs: Sequence[str],
    texts: Sequence[str],
    *,
    title: str | None = None,
    strips: Mapping[str, bool] | None = None,
) -> go.Figure:
    """LENS Fig. 6 style: 2-D maps of the agnostic and the specific projections.

    A panel named in ``strips`` (``{"agnostic": True}``) is one-dimensional: its points are
    drawn as one horizontal strip per language (y = language row), as `views.subspace_view`
    lays them out.

    Args:
        coords_agnostic: ``(n, 2)`` map of ``P_a x`` (e.g. PCA).
        coords_specific: ``(n, 2)`` map of ``P_s x``.
        langs: ``n`` language codes.
        texts: ``n`` sentences.
        title: figure title.
        strips: which panels are one-dimensional strips.

    Returns:
        Two-panel figure with one marker trace per language in each panel (legend shared).
    """
    xy_a = _check_points(coords_agnostic, langs, texts)
    xy_s = _check_points(coords_specific, langs, texts)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("language-agnostic subspace", "language-specific subspace"),
        horizontal_spacing=0.1,
    )
    lang_arr = np.asarray(langs, dtype=object)
    hover = hover_text(texts)
    for col, xy in ((1, xy_a), (2, xy_s)):
        for trace in language_scatter(xy, lang_arr, hover, showlegend=col == 1):
            fig.add_trace(trace, row=1, col=col)
        fig.update_xaxes(title_text="component 1", row=1, col=col)
        fig.update_yaxes(title_text="component 2", row=1, col=col)
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title or "Language subspaces"},
        legend={"title": {"text": "language"}},
        showlegend=True,
    )
    row_langs = list(dict.fromkeys(langs))
    for col, name in ((1, "agnostic"), (2, "specific")):
        if (strips or {}).get(name):
            fig.update_xaxes(title_text=f"coordinate along the {name} direction", row=1, col=col)
            fig.update_yaxes(title_text="language", tickvals=list(range(len(row_langs))), ticktext=row_langs,
                             autorange="reversed", showgrid=False, row=1, col=col)
    return fig

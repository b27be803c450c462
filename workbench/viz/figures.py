"""Plotly figure builders for every analysis view (they return figures, never render).

Each builder takes the output of a :mod:`workbench.analysis` function, uses the
``"workbench"`` template and :func:`~workbench.viz.theme.language_color`, and gives every
axis a title and every figure a legend (or a colour bar for heatmaps).
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.viz.theme import (
    D2N_COLOR,
    N2D_COLOR,
    NEUTRAL_COLOR,
    SERIES_COLOR,
    TEMPLATE,
    language_color,
)

__all__ = [
    "map_figure",
    "overlap_figure",
    "retrieval_by_layer_figure",
    "retrieval_heatmap",
    "separation_figure",
    "sensitivity_figure",
    "specific_neurons_figure",
    "subspace_figure",
]

# Summary series: black / grey (no language has these colours), thick, with square or
# diamond markers, so they cannot be read as a language's line (languages: thin, circles).
_SERIES_STYLE = {
    "all_pairs": ("all pairs", SERIES_COLOR, "solid", 3.5, "square"),
    "pivot": ("with pivot", "#777777", "dash", 3.0, "diamond"),
}
SENSITIVITY_AXIS = "sensitivity S<sub>l</sub>"
"""Axis title of projection sensitivity (plotly's HTML subset renders the subscript)."""


def layer_axis(labels: Sequence[object]) -> dict:
    """Categorical x axis keeping the given layer order (``"emb"``, 0, 1, …)."""
    return {
        "title": {"text": "layer"},
        "type": "category",
        "categoryorder": "array",
        "categoryarray": [str(lab) for lab in labels],
    }


def hover_text(texts: Sequence[str], width: int = 60) -> list[str]:
    """Escape HTML and wrap long sentences for hover labels."""
    return ["<br>".join(textwrap.wrap(html.escape(str(t)), width)) or " " for t in texts]


def retrieval_by_layer_figure(
    summary_df: pd.DataFrame, *, per_language: bool = True, title: str | None = None
) -> go.Figure:
    """Retrieval accuracy per layer (Mid-align Fig. 1 style).

    Args:
        summary_df: output of :func:`workbench.analysis.retrieval.summarize_by_layer`
            (columns ``layer, series, accuracy`` and optionally ``center``).
        per_language: add one thin line per language (accuracy vs the pivot).
        title: figure title; default names the method and pivot from ``attrs``.

    Returns:
        Figure with one line for ``all_pairs``, one for ``pivot`` and, if
        ``per_language``, one per language; centred variants get their own lines.
    """
    df = summary_df
    variants = list(pd.unique(df["center"])) if "center" in df.columns else [None]
    fig = go.Figure()
    for variant in variants:
        part = df if variant is None else df[df["center"] == variant]
        suffix = " (centred)" if variant and len(variants) > 1 else ""
        for series, rows in part.groupby("series", sort=False):
            if series not in _SERIES_STYLE and not per_language:
                continue
            name, color, dash, width, symbol = _SERIES_STYLE.get(
                str(series), (str(series), language_color(str(series)), "solid", 1.5, "circle")
            )
            summary = str(series) in _SERIES_STYLE
            fig.add_trace(
                go.Scatter(
                    x=[str(lab) for lab in rows["layer"]],
                    y=rows["accuracy"],
                    mode="lines+markers",
                    name=name + suffix,
                    line={"color": color, "dash": "dot" if suffix else dash, "width": width},
                    marker={"size": 7 if summary else 4, "symbol": symbol},
                    legendgroup="summary" if summary else "languages",
                )
            )
    attrs = df.attrs
    default = f"Translation retrieval by layer ({attrs.get('method', 'margin')}"
    default += f", pivot {attrs['pivot']})" if attrs.get("pivot") else ")"
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title or default},
        xaxis=layer_axis(pd.unique(df["layer"])),
        yaxis={"title": {"text": "retrieval accuracy"}, "range": [0, 1.02]},
        legend={"title": {"text": "pairs"}},
        showlegend=True,
    )
    return fig


def retrieval_heatmap(matrix_df: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Heatmap of pairwise retrieval accuracy (one layer).

    Args:
        matrix_df: ``(n_lang, n_lang)`` output of
            :func:`workbench.analysis.retrieval.retrieval_matrix` (index src, columns tgt).
        title: figure title.

    Returns:
        Figure with one heatmap trace; its colour bar is the legend.
    """
    z = matrix_df.to_numpy(dtype=float)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(c) for c in matrix_df.columns],
            y=[str(i) for i in matrix_df.index],
            zmin=0,
            zmax=1,
            colorscale="Viridis",
            colorbar={"title": {"text": "accuracy"}},
            texttemplate="%{z:.2f}",
            hovertemplate="%{y} → %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title or "Translation retrieval accuracy"},
        xaxis={"title": {"text": "target language"}, "side": "bottom"},
        yaxis={"title": {"text": "source language"}, "autorange": "reversed"},
    )
    return fig


def sensitivity_figure(
    scores: Sequence[float] | np.ndarray,
    n2d: Sequence[int],
    d2n: Sequence[int],
    *,
    split: int | None = None,
    title: str | None = None,
) -> go.Figure:
    """SiLP projection-sensitivity bars with the allocated layers highlighted.

    Args:
        scores: ``(n_layers,)`` scores (entry 0 NaN, not drawn).
        n2d: N2D layer indices.
        d2n: D2N layer indices.
        split: split layer; drawn as a dashed vertical line after it when given.
        title: figure title.

    Returns:
        Figure with three bar traces: other layers (grey), N2D, D2N.
    """
    s = np.asarray(scores, dtype=float)
    layers = np.arange(s.size)
    drawn = np.isfinite(s)
    groups = (
        ("other layers", NEUTRAL_COLOR, ~np.isin(layers, [*n2d, *d2n])),
        ("N2D layers", N2D_COLOR, np.isin(layers, n2d)),
        ("D2N layers", D2N_COLOR, np.isin(layers, d2n)),
    )
    fig = go.Figure()
    for name, color, mask in groups:
        keep = mask & drawn
        fig.add_trace(go.Bar(x=layers[keep], y=s[keep], name=name, marker_color=color))
    if split is not None:
        fig.add_vline(x=split + 0.5, line={"dash": "dash", "color": "#444444", "width": 1})
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title or "Projection sensitivity per layer"},
        xaxis={"title": {"text": "layer"}, "dtick": 1 if s.size <= 40 else None},
        yaxis={"title": {"text": SENSITIVITY_AXIS}},
        legend={"title": {"text": "allocation"}},
        barmode="overlay",
        showlegend=True,
    )
    return fig


def overlap_figure(
    overlap_df: pd.DataFrame, measure: str = "jaccard", *, title: str | None = None
) -> go.Figure:
    """Neuron overlap with the pivot per layer, one line per language.

    Args:
        overlap_df: output of :func:`workbench.analysis.overlap.overlap_by_layer`.
        measure: ``"jaccard"`` or ``"pivot_frac"`` (a column of ``overlap_df``).
        title: figure title.

    Returns:
        Figure with one line per language.

    Raises:
        ValueError: if ``measure`` is not a column of ``overlap_df``.
    """
    if measure not in ("jaccard", "pivot_frac") or measure not in overlap_df.columns:
        raise ValueError(f"measure must be 'jaccard' or 'pivot_frac', got {measure!r}")
    fig = go.Figure()
    for lang, rows in overlap_df.groupby("lang", sort=False):
        fig.add_trace(
            go.Scatter(
                x=[str(lab) for lab in rows["layer"]],
                y=rows[measure],
                mode="lines+markers",
                name=str(lang),
                line={"color": language_color(str(lang))},
                marker={"size": 4},
            )
        )
    pivot = overlap_df.attrs.get("pivot")
    label = "Jaccard overlap" if measure == "jaccard" else "|∩| / |pivot set|"
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title or f"Activated-neuron overlap with {pivot or 'the pivot'}"},
        xaxis=layer_axis(pd.unique(overlap_df["layer"])),
        yaxis={"title": {"text": label}, "range": [0, 1.02]},
        legend={"title": {"text": "language"}},
        showlegend=True,
    )
    return fig


def specific_neurons_figure(counts_df: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Stacked bars of language-specific neuron counts per layer.

    Args:
        counts_df: output of :func:`workbench.analysis.overlap.count_specific`
            (index layer, one column per language).
        title: figure title.

    Returns:
        Figure with one bar trace per language.
    """
    fig = go.Figure()
    x = [str(lab) for lab in counts_df.index]
    for lang in counts_df.columns:
        fig.add_trace(
            go.Bar(
                x=x,
                y=counts_df[lang].to_numpy(),
                name=str(lang),
                marker_color=language_color(str(lang)),
            )
        )
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title or "Language-specific neurons (LAPE) per layer"},
        xaxis=layer_axis(counts_df.index),
        yaxis={"title": {"text": "number of neurons"}},
        legend={"title": {"text": "language"}},
        barmode="stack",
        showlegend=True,
    )
    return fig


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
                marker={"color": language_color(str(lang)), "size": 6, "opacity": 0.85},
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


def map_figure(
    coords: np.ndarray,
    langs: Sequence[str],
    texts: Sequence[str],
    *,
    pair_ids: Sequence[object] | None = None,
    show_links: bool = False,
    title: str | None = None,
) -> go.Figure:
    """2-D map of sentences coloured by language; hover shows the sentence.

    Args:
        coords: ``(n, 2)`` coordinates (e.g. from :func:`workbench.analysis.embed2d.embed_2d`).
        langs: ``n`` language codes.
        texts: ``n`` sentences.
        pair_ids: ``n`` ids; points sharing an id are translations of each other.
        show_links: draw grey lines between translations (needs ``pair_ids``).
        title: figure title.

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
        xaxis={"title": {"text": "dimension 1"}},
        yaxis={"title": {"text": "dimension 2"}},
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


def separation_figure(sep_df: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Per-layer subspace separation: variance ratios and language-direction norms.

    Args:
        sep_df: output of :func:`workbench.analysis.subspace.separation_by_layer`.
        title: figure title.

    Returns:
        Two-panel figure: left, ``agnostic_ratio`` and ``specific_ratio``;
        right, one ``‖δ‖`` line per non-central language.
    """
    x = [str(lab) for lab in sep_df["layer"]]
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("between / within language variance", "language direction norm"),
        horizontal_spacing=0.12,
    )
    for column, name, color in (
        ("agnostic_ratio", "agnostic projection", "#009E73"),
        ("specific_ratio", "specific projection", "#CC79A7"),
    ):
        fig.add_trace(
            go.Scatter(x=x, y=sep_df[column], mode="lines+markers", name=name,
                       line={"color": color}, legendgroup="ratio", legendgrouptitle_text="ratio"),
            row=1,
            col=1,
        )  # fmt: skip
    prefix = "direction_norm_"
    for column in (c for c in sep_df.columns if str(c).startswith(prefix)):
        lang = str(column)[len(prefix) :]
        fig.add_trace(
            go.Scatter(x=x, y=sep_df[column], mode="lines+markers", name=lang,
                       line={"color": language_color(lang)}, legendgroup="norm",
                       legendgrouptitle_text="‖δ‖ per language"),
            row=1,
            col=2,
        )  # fmt: skip
    axis = layer_axis(sep_df["layer"])
    for col in (1, 2):
        fig.update_xaxes(axis, row=1, col=col)
    # Linear scale: the in-sample agnostic ratio is ~0 by construction (see
    # separation_by_layer), which a log axis would either drop or stretch to 1e-30.
    fig.update_yaxes(title_text="variance ratio", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="‖P_s(m_lang − m_central)‖", row=1, col=2)
    central = sep_df.attrs.get("central")
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title or f"Subspace separation by layer (central: {central or '?'})"},
        legend={"groupclick": "toggleitem"},
        showlegend=True,
    )
    return fig

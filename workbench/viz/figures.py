"""Plotly figure builders for every analysis view (they return figures, never render).

Each builder takes the output of a :mod:`workbench.analysis` function, uses the
``"workbench"`` template and :func:`~workbench.viz.theme.language_color`, and gives every
axis a title and every figure a legend (or a colour bar for heatmaps).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.viz.maps import map_axis_title, map_figure, subspace_figure
from workbench.viz.theme import (
    D2N_COLOR,
    N2D_COLOR,
    NEUTRAL_COLOR,
    PIVOT_COLOR,
    SERIES_COLOR,
    TEMPLATE,
    language_color,
    language_symbol,
)

__all__ = [
    "map_axis_title",
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
# diamond markers, so they cannot be read as a language's line (languages: thin, coloured).
_SERIES_STYLE = {
    "all_pairs": ("all pairs", SERIES_COLOR, "solid", 3.5, "square"),
    "pivot": ("with pivot", PIVOT_COLOR, "dash", 3.0, "diamond"),
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
                str(series), (str(series), language_color(str(series)), "solid", 1.5, language_symbol(str(series)))
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
                marker={"size": 4, "symbol": language_symbol(str(lang))},
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
    # measures, not languages: black and grey (a language's colour would read as that language)
    for column, name, color, dash, symbol in (
        ("agnostic_ratio", "agnostic projection", SERIES_COLOR, "solid", "square"),
        ("specific_ratio", "specific projection", PIVOT_COLOR, "dash", "diamond"),
    ):
        fig.add_trace(
            go.Scatter(x=x, y=sep_df[column], mode="lines+markers", name=name, marker={"symbol": symbol},
                       line={"color": color, "dash": dash}, legendgroup="ratio", legendgrouptitle_text="ratio"),
            row=1,
            col=1,
        )  # fmt: skip
    prefix = "direction_norm_"
    for column in (c for c in sep_df.columns if str(c).startswith(prefix)):
        lang = str(column)[len(prefix) :]
        fig.add_trace(
            go.Scatter(x=x, y=sep_df[column], mode="lines+markers", name=lang, marker={"symbol": language_symbol(lang)},
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

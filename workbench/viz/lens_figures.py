"""Figures of the lens views: latent-language curves (Wendler et al. 2024, Fig. 2 style).

Builders return a ``plotly.graph_objects.Figure`` and never render. Languages keep their
colours of `theme.language_color`; entropy, a summary of the whole distribution rather than a
language, is drawn in the summary colour (black) on its own panel below the curves.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.errors import ParamError
from workbench.viz.figures import layer_axis
from workbench.viz.theme import SERIES_COLOR, TEMPLATE, language_color

__all__ = ["latent_curves_figure"]

_BAND_ALPHA = 0.2


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _line_with_band(
    fig: go.Figure, curves: pd.DataFrame, col: str, *, name: str, color: str, dash: str, row: int
) -> None:
    """The mean line of ``col`` and its ``col_lo``/``col_hi`` band as one legend entry."""
    x = [str(v) for v in curves["layer"]]
    lo, hi = curves[f"{col}_lo"].to_list(), curves[f"{col}_hi"].to_list()
    fig.add_trace(go.Scatter(
        x=x + x[::-1], y=hi + lo[::-1], fill="toself", fillcolor=_rgba(color, _BAND_ALPHA),
        line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=name, name=f"{name} band",
    ), row=row, col=1)
    fig.add_trace(go.Scatter(
        x=x, y=curves[col], mode="lines+markers", name=name, legendgroup=name,
        line={"color": color, "dash": dash, "width": 2.2}, marker={"size": 5},
        customdata=list(zip(lo, hi)),
        hovertemplate=f"{name}<br>layer %{{x}}: %{{y:.3f}} [%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}}]"
                      "<extra></extra>",
    ), row=row, col=1)


def latent_curves_figure(
    curves: pd.DataFrame,
    *,
    source: str,
    target: str,
    english: str = "en",
    entropy_unit: str = "nats",
    title: str | None = None,
) -> go.Figure:
    """Latent-language curves: P(target), P(English), P(source) per layer with bands; entropy below.

    Args:
        curves: output of :func:`workbench.analysis.latent_curves.latent_curves`.
        source: source language code (its line is dashed; left out when it is English, whose
            line it would repeat).
        target: target language code.
        english: the latent language.
        entropy_unit: unit of the entropy column, for its axis title (``"nats"`` or ``"bits"``).
        title: figure title; default names the pair and the number of items.

    Returns:
        Two panels sharing the layer axis: probabilities (0–1) on top, entropy (if ``curves``
        has it) below.
    """
    need = {"layer", "n", "p_target", "p_en", "p_source"}
    if need - set(curves.columns):
        raise ParamError(f"curves lacks columns {sorted(need - set(curves.columns))}; pass latent_curves' output")
    has_entropy = "entropy" in curves.columns
    fig = make_subplots(rows=2 if has_entropy else 1, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        row_heights=[0.72, 0.28] if has_entropy else [1.0])
    lines = [("p_target", target, "solid"), ("p_en", english, "solid")]
    if source != english:
        lines.append(("p_source", source, "dash"))
    for col, lang, dash in lines:
        _line_with_band(fig, curves, col, name=f"P({lang})", color=language_color(lang), dash=dash, row=1)
    if has_entropy:
        _line_with_band(fig, curves, "entropy", name="entropy", color=SERIES_COLOR, dash="solid", row=2)
        fig.update_yaxes(title={"text": f"entropy ({entropy_unit})"}, rangemode="tozero", row=2, col=1)
    n = int(curves["n"].iloc[0]) if len(curves) else 0
    fig.update_yaxes(title={"text": "probability"}, range=[0, 1.02], row=1, col=1)
    axis = layer_axis(pd.unique(curves["layer"]))
    fig.update_xaxes(**{k: v for k, v in axis.items() if k != "title"})
    fig.update_xaxes(title={"text": "layer"}, row=2 if has_entropy else 1, col=1)
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title or f"Latent language {source}→{target} (n = {n})"},
        legend={"title": {"text": "next token starts the answer in"}},
        showlegend=True,
    )
    return fig

"""Figures specific to CC-Tuning (they return figures, never render).

Each builder takes the output of a :mod:`workbench.analysis.cctuning` function (or its
records, as stored under ``manifest["metrics"]["cctuning"]`` of a CC-Tuning artifact):

- :func:`layer_selection_figure`: CC-Tuning Fig. 8, the layers the Decision Maker selects (one
  panel per inference mode: the seeded Gumbel sample and the argmax);
- :func:`transform_fit_figure`: Fig. 5, the Transform Matrix's fit error against the number of pairs;
- :func:`parallel_gap_figure`: Table 2's |Δ|, held-out loss and accuracy with the real
  English input vs with the Transform Matrix (and without the connection);
- :func:`cctuning_figures`: all three from an artifact's report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.viz.theme import NEUTRAL_COLOR, PIVOT_COLOR, SERIES_COLOR, TEMPLATE

__all__ = ["cctuning_figures", "layer_selection_figure", "parallel_gap_figure", "transform_fit_figure"]

# Ways of getting F^en, not languages: black and greys (a language's colour would read as that language).
_SOURCE_COLORS = {"English input": SERIES_COLOR, "Transform Matrix": PIVOT_COLOR}
_VARIANTS = (("vanilla", "no connection", "none", NEUTRAL_COLOR),
             ("english", "English input", "English", SERIES_COLOR),
             ("transform", "Transform Matrix", "W_T", PIVOT_COLOR))


def _frame(x: pd.DataFrame | list[dict[str, Any]]) -> pd.DataFrame:
    return x if isinstance(x, pd.DataFrame) else pd.DataFrame(list(x))


_MODE_TITLES = {"gumbel": "Gumbel sample (the authors' inference; a state's default, seed 0)",
                "argmax": "argmax H (deterministic variant)"}


def layer_selection_figure(dist: pd.DataFrame | list[dict[str, Any]], *, title: str | None = None) -> go.Figure:
    """Fig. 8: fraction of held-out examples for which the Decision Maker selects each layer.

    Args:
        dist: output of :func:`~workbench.analysis.cctuning.layer_distribution` (columns
            source, layer, count, fraction), or its records; with a `mode` column (the
            report of `finetune.cctuning.report`: 'gumbel', 'argmax') one panel per mode.
        title: figure title.

    Returns:
        Grouped bars, one trace per source (English input, Transform Matrix), in one panel
        per inference mode (stacked, shared layer axis).
    """
    df = _frame(dist)
    modes = list(pd.unique(df["mode"])) if "mode" in df.columns else [None]
    fig = make_subplots(rows=len(modes), cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=[_MODE_TITLES.get(str(m), str(m)) for m in modes] if modes[0] else None)
    for row, mode in enumerate(modes, start=1):
        part = df if mode is None else df[df["mode"] == mode]
        for i, (source, rows) in enumerate(part.groupby("source", sort=False)):
            fig.add_trace(go.Bar(x=rows["layer"], y=rows["fraction"], name=str(source), customdata=rows["count"],
                                 marker_color=_SOURCE_COLORS.get(str(source), ["#444444", NEUTRAL_COLOR][i % 2]),
                                 legendgroup=str(source), showlegend=row == 1,
                                 hovertemplate="layer %{x}: %{y:.1%} (%{customdata} examples)<extra></extra>"),
                          row=row, col=1)
        fig.update_yaxes(title_text="fraction of examples", tickformat=".0%", row=row, col=1)
    n_layers = int(df["layer"].max()) + 1 if len(df) else 0
    fig.update_xaxes(dtick=1 if n_layers <= 40 else None)
    fig.update_xaxes(title_text="layer (block whose English FFN output is connected)", row=len(modes), col=1)
    fig.update_layout(template=TEMPLATE, title={"text": title or "Layers selected by the Decision Maker"},
                      legend={"title": {"text": "F^en from"}}, barmode="group", showlegend=True)
    return fig


def transform_fit_figure(curve: pd.DataFrame | list[dict[str, Any]], *, d_model: int | None = None,
                         title: str | None = None) -> go.Figure:
    """Fig. 5: MSE of `f W_T` against `f^en` as the number of fitting pairs grows (log–log).

    Args:
        curve: output of :func:`~workbench.analysis.cctuning.transform_fit_curve`, or its records.
        d_model: `d`; when given, a dotted line marks `n·L = d` (below it the fit interpolates).
        title: figure title.

    Returns:
        Lines: MSE on the fitting pairs (what the paper plots), on held-out pairs, and the
        held-out MSE without a transform (`W_T = I`) as a dashed reference.
    """
    df = _frame(curve)
    fig = go.Figure()
    series = (("fit_mse", "fitting pairs", SERIES_COLOR, "solid"),
              ("heldout_mse", "held-out pairs", PIVOT_COLOR, "solid"),
              ("identity_mse", "held-out, no transform (W_T = I)", NEUTRAL_COLOR, "dash"))
    for col, name, color, dash in series:
        if col in df and df[col].notna().any():
            fig.add_trace(go.Scatter(x=df["n_pairs"], y=df[col], name=name, mode="lines+markers",
                                     line={"color": color, "dash": dash}, marker={"size": 5}))
    if d_model and len(df) and df["n_pairs"].iloc[-1] > 0:
        per_pair = df["n_rows"].iloc[-1] / df["n_pairs"].iloc[-1]
        x = d_model / per_pair
        fig.add_vline(x=x, line={"dash": "dot", "color": "#444444", "width": 1})
        # on a log axis a shape takes the data value but an annotation takes its log10
        fig.add_annotation(x=float(np.log10(x)), y=1.0, yref="paper", text="n·L = d", showarrow=False,
                           yanchor="bottom")
    fig.update_layout(template=TEMPLATE, title={"text": title or "Transform Matrix fit error vs parallel pairs"},
                      xaxis={"title": {"text": "parallel pairs used to fit W_T"}, "type": "log"},
                      yaxis={"title": {"text": "MSE (per dimension)"}, "type": "log", "exponentformat": "e"},
                      legend={"title": {"text": "measured on"}}, showlegend=True)
    return fig


def parallel_gap_figure(gap: Mapping[str, float], *, title: str | None = None) -> go.Figure:
    """Table 2's |Δ|: held-out loss and token accuracy per way of getting `F^en`.

    Args:
        gap: output of :func:`~workbench.analysis.cctuning.parallel_gap` with the variants
            'vanilla' (optional), 'english' and 'transform'.
        title: figure title (default: states |Δ| of both metrics).

    Returns:
        Two panels of bars (loss per response token, top-1 token accuracy).
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("held-out loss (NLL / token)", "token accuracy"))
    for key, name, short, color in _VARIANTS:
        if f"loss_{key}" not in gap:
            continue
        for col, metric in ((1, "loss"), (2, "acc")):
            fig.add_trace(go.Bar(x=[short], y=[gap[f"{metric}_{key}"]], name=name, marker_color=color,
                                 showlegend=col == 1, legendgroup=key,
                                 hovertemplate=f"{name}: %{{y:.4f}}<extra></extra>"), row=1, col=col)
    text = title or (f"English input vs Transform Matrix: |Δ| loss = {gap['delta_loss']:.4f}, "
                     f"|Δ| accuracy = {gap['delta_acc']:.4f}")
    fig.update_layout(template=TEMPLATE, title={"text": text}, legend={"title": {"text": "F^en from"}},
                      showlegend=True)
    fig.update_yaxes(title_text="NLL per token", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", tickformat=".0%", row=1, col=2)
    fig.update_xaxes(title_text="F^en from", row=1, col=1)
    fig.update_xaxes(title_text="F^en from", row=1, col=2)
    return fig


def cctuning_figures(report: Mapping[str, Any], *, d_model: int | None = None) -> dict[str, go.Figure]:
    """The three CC-Tuning views from an artifact's report (`manifest["metrics"]["cctuning"]`).

    Returns:
        `{"layer_selection": …, "transform_fit": …, "parallel_gap": …}`.
    """
    return {"layer_selection": layer_selection_figure(report["layer_distribution"]),
            "transform_fit": transform_fit_figure(report["fit_curve"], d_model=d_model or report.get("d_model")),
            "parallel_gap": parallel_gap_figure(report["gap"])}

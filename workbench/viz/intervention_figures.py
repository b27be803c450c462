"""Intervention figures: the deactivation matrix (ΔPPL with intervals) and the steering curve (never rendered)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.viz.theme import TEMPLATE

__all__ = ["deactivation_figure", "steering_figure"]


def deactivation_figure(matrix: pd.DataFrame, shift: pd.DataFrame | None = None, *, title: str = "") -> go.Figure:
    """Heatmap of ΔPPL[row, evaluated language] (rows: whose neurons are off, the random control last).

    Each cell's text is `Δ [low, high]` (the 95% bootstrap interval) and its hover names the
    base and intervened perplexities, n and the neuron count; with `shift`, the hover adds
    the share of continuations still in the evaluated language.
    """
    rows = list(dict.fromkeys(matrix["row"]))
    langs = list(dict.fromkeys(matrix["lang"]))
    cell = matrix.set_index(["row", "lang"])
    kept = shift.set_index(["row", "lang"])["kept"] if shift is not None and len(shift) else None
    z = np.array([[cell.loc[(r, j), "delta"] for j in langs] for r in rows], dtype=float)
    text = [[f"{cell.loc[(r, j), 'delta']:+.2f}<br>[{cell.loc[(r, j), 'ci_low']:+.2f}, "
             f"{cell.loc[(r, j), 'ci_high']:+.2f}]" for j in langs] for r in rows]
    hover = [[f"neurons of {r} off, text in {j}<br>PPL {cell.loc[(r, j), 'base_ppl']:.2f} → "
              f"{cell.loc[(r, j), 'ppl']:.2f}<br>n = {int(cell.loc[(r, j), 'n'])} sentences, "
              f"{int(cell.loc[(r, j), 'neurons'])} neurons"
              + (f"<br>continuations in {j}: {kept.loc[(r, j)]:.0%}" if kept is not None and (r, j) in kept.index
                 else "") for j in langs] for r in rows]
    bound = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    fig = go.Figure(go.Heatmap(z=z, x=langs, y=rows, text=text, texttemplate="%{text}", hovertext=hover,
                               hoverinfo="text", colorscale="RdBu_r", zmid=0, zmin=-bound, zmax=bound,
                               colorbar={"title": "ΔPPL"}))
    fig.update_layout(template=TEMPLATE, title=title or "Perplexity change when a language's neurons are off",
                      xaxis_title="evaluated language", yaxis_title="neurons off", yaxis_autorange="reversed")
    return fig


def steering_figure(curve: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Fidelity (top) and chrF++ (bottom) against the steering strength α, with 95% interval bands."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, subplot_titles=("output-language fidelity", "chrF++"))
    for i, metric in enumerate(("fidelity", "chrf++"), start=1):
        part = curve[curve["metric"] == metric].sort_values("alpha")
        x = part["alpha"].tolist()
        fig.add_trace(go.Scatter(x=x + x[::-1], y=part["ci_high"].tolist() + part["ci_low"].tolist()[::-1],
                                 fill="toself", line={"width": 0}, opacity=0.2, showlegend=False,
                                 hoverinfo="skip", name=f"{metric} 95%"), row=i, col=1)
        fig.add_trace(go.Scatter(x=x, y=part["value"], mode="lines+markers", name=metric,
                                 customdata=part[["ci_low", "ci_high", "n"]].to_numpy(),
                                 hovertemplate="α = %{x}<br>%{y:.3f} [%{customdata[0]:.3f}, %{customdata[1]:.3f}]"
                                               "<br>n = %{customdata[2]}<extra></extra>"), row=i, col=1)
    fig.update_layout(template=TEMPLATE, title=title or "Steering with a language vector", showlegend=False)
    fig.update_xaxes(title_text="strength α", row=2, col=1)
    return fig

"""Outcome figures: scores of N model states with 95% intervals, and differences to a reference."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.viz.theme import NEUTRAL_COLOR, PALETTE, TEMPLATE

_HIGHER_IS_BETTER = {"chrf++": True, "bleu": True, "fidelity": True, "acc": True, "acc_norm": True,
                     "loss": False, "ppl": False, "off_target": False, "langid_accuracy": True}


def _state_color(i: int) -> str:
    return NEUTRAL_COLOR if i == 0 else PALETTE[(i + 4) % len(PALETTE)]


def eval_scores_figure(eval_df: pd.DataFrame, *, reference: str | None = None, title: str | None = None) -> go.Figure:
    """One panel per metric: a bar per (direction, state) with its 95% interval; the reference in grey.

    Args:
        eval_df: `EvalResult.eval` rows of one or more states (state, suite, direction, metric,
            value, ci_low, ci_high).
        reference: the state drawn first (grey); default the first state.
        title: figure title.
    """
    states = list(dict.fromkeys(eval_df["state"]))
    if reference in states:
        states = [reference, *[s for s in states if s != reference]]
    metrics = [m for m in dict.fromkeys(eval_df["metric"]) if m != "langid_accuracy"]
    cols = min(3, max(1, len(metrics)))
    rows = -(-len(metrics) // cols)
    names = [f"{m} ({'higher' if _HIGHER_IS_BETTER.get(m, True) else 'lower'} is better)" for m in metrics]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.08,
                        vertical_spacing=0.18 if rows > 1 else 0.1)
    for k, metric in enumerate(metrics):
        r, c = k // cols + 1, k % cols + 1
        part = eval_df[eval_df["metric"] == metric]
        for i, state in enumerate(states):
            rows_s = part[part["state"] == state]
            err = {"type": "data", "symmetric": False, "array": (rows_s["ci_high"] - rows_s["value"]).tolist(),
                   "arrayminus": (rows_s["value"] - rows_s["ci_low"]).tolist(), "thickness": 1}
            fig.add_trace(go.Bar(x=rows_s["direction"], y=rows_s["value"], name=state, legendgroup=state,
                                 showlegend=k == 0, marker={"color": _state_color(i)}, error_y=err,
                                 hovertemplate="%{x}: %{y:.4g}<extra>" + state + "</extra>"), row=r, col=c)
    fig.update_layout(template=TEMPLATE, barmode="group", showlegend=True,
                      title={"text": title or "Outcomes by state (bars: value; whiskers: 95% bootstrap interval)"})
    return fig

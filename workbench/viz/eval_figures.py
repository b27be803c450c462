"""Outcome figures: scores of N model states with 95% intervals, and differences to a reference.

An interval is drawn only where it says something: a row scored on fewer than
:data:`~workbench.analysis.intervals.MIN_N_INTERVAL` sentences gets no whisker, and its hover
(and the figure's title) says why; every hover names n. States are greys and bar patterns
(`theme.state_style`): colours are the languages'.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.analysis.intervals import MIN_N_INTERVAL, interval_note
from workbench.viz.theme import TEMPLATE, state_marker

__all__ = ["HIGHER_IS_BETTER", "eval_scores_figure"]

HIGHER_IS_BETTER = {"chrf++": True, "bleu": True, "fidelity": True, "acc": True, "acc_norm": True,
                    "loss": False, "ppl": False, "off_target": False, "langid_accuracy": True}
"""Direction of each metric (an unknown one counts as higher is better)."""
_HIDDEN = ("langid_accuracy",)  # a property of the identifier on the references, not of a state


def _n_of(rows: pd.DataFrame) -> np.ndarray:
    """The `n` of each row (NaN where the table has none)."""
    return rows["n"].to_numpy(dtype=float) if "n" in rows.columns else np.full(len(rows), np.nan)


def _whiskers(rows: pd.DataFrame, n: np.ndarray) -> dict:
    """Asymmetric error bars; none (NaN) where n < MIN_N_INTERVAL or the interval is missing."""
    keep = ~(n < MIN_N_INTERVAL)  # NaN n (not recorded) keeps the stored interval
    hi = np.where(keep, rows["ci_high"].to_numpy(dtype=float) - rows["value"].to_numpy(dtype=float), np.nan)
    lo = np.where(keep, rows["value"].to_numpy(dtype=float) - rows["ci_low"].to_numpy(dtype=float), np.nan)
    return {"type": "data", "symmetric": False, "array": hi.tolist(), "arrayminus": lo.tolist(), "thickness": 1}


def _hover(rows: pd.DataFrame, n: np.ndarray) -> list[str]:
    out = []
    for (_, r), k in zip(rows.iterrows(), n):
        note = interval_note(k, r["ci_low"], r["ci_high"])
        ci = note or f"95% interval [{r['ci_low']:.4g}, {r['ci_high']:.4g}]"
        out.append(f"n = {int(k)}" + (f"<br>{ci}" if ci else "") if math.isfinite(k) else f"n unknown<br>{ci}")
    return out


def eval_scores_figure(eval_df: pd.DataFrame, *, reference: str | None = None, title: str | None = None) -> go.Figure:
    """One panel per metric: a bar per (direction, state) with its 95% interval; the reference in light grey.

    Args:
        eval_df: `EvalResult.eval` rows of one or more states (state, suite, direction, metric,
            value, ci_low, ci_high, n).
        reference: the state drawn first (light grey); default the first state.
        title: figure title.

    Returns:
        Grouped bars; whiskers only where n ≥ MIN_N_INTERVAL; hover shows the value, n and
        the interval or why there is none. Panel titles: the metric with ↑ (higher is
        better) or ↓.
    """
    states = list(dict.fromkeys(eval_df["state"]))
    if reference in states:
        states = [reference, *[s for s in states if s != reference]]
    metrics = [m for m in dict.fromkeys(eval_df["metric"]) if m not in _HIDDEN]
    cols = min(3, max(1, len(metrics)))
    rows = -(-len(metrics) // cols)
    names = [f"{m} {'↑' if HIGHER_IS_BETTER.get(m, True) else '↓'}" for m in metrics]
    fig = make_subplots(rows=max(1, rows), cols=cols, subplot_titles=names, horizontal_spacing=0.08,
                        vertical_spacing=0.18 if rows > 1 else 0.1)
    few = False
    for k, metric in enumerate(metrics):
        r, c = k // cols + 1, k % cols + 1
        part = eval_df[eval_df["metric"] == metric]
        for i, state in enumerate(states):
            rows_s = part[part["state"] == state]
            n = _n_of(rows_s)
            few |= bool((n < MIN_N_INTERVAL).any())
            fig.add_trace(go.Bar(x=rows_s["direction"], y=rows_s["value"], name=state, legendgroup=state,
                                 showlegend=k == 0, marker=state_marker(i), error_y=_whiskers(rows_s, n),
                                 customdata=_hover(rows_s, n),
                                 hovertemplate="%{x}: %{y:.4g}<br>%{customdata}<extra>" + state + "</extra>"),
                          row=r, col=c)
    default = "Outcomes by state (bars: value; whiskers: 95% bootstrap interval"
    default += f"; none where n < {MIN_N_INTERVAL})" if few else ")"
    fig.update_layout(template=TEMPLATE, barmode="group", showlegend=True, title={"text": title or default})
    return fig

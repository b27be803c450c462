"""Before/after figures for two model states, and a fine-tune's training loss (returned, never rendered).

The by-layer builders take the long tables of :mod:`workbench.compare` (key columns,
``measure, a, b, diff``): the top panel draws A (dashed) and B (solid) in one colour per
line, the bottom panel ``B − A`` with a zero line, so gains and forgetting read at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

# Helpers of the sibling modules, reused so compare figures look like the single-state ones.
from workbench.viz.figures import layer_axis
from workbench.viz.maps import hover_text, language_scatter
from workbench.viz.theme import (
    NEUTRAL_COLOR,
    PIVOT_COLOR,
    SERIES_COLOR,
    TEMPLATE,
    language_color,
    language_symbol,
    state_marker,
)

__all__ = [
    "compare_by_layer_figure",
    "compare_maps_figure",
    "difference_heatmap",
    "eval_compare_figure",
    "line_color",
    "line_symbol",
    "training_loss_figure",
]

# Summary series and measures are not languages: black and grey, never a language's colour.
_FIXED_COLORS = {
    "all_pairs": SERIES_COLOR,
    "pivot": PIVOT_COLOR,
    "agnostic_ratio": SERIES_COLOR,
    "specific_ratio": PIVOT_COLOR,
    "sensitivity": SERIES_COLOR,
}
_FIXED_SYMBOLS = {"all_pairs": "square", "pivot": "diamond", "agnostic_ratio": "square", "specific_ratio": "diamond",
                  "sensitivity": "circle"}
_NAMES = {"all_pairs": "all pairs", "pivot": "with pivot", "agnostic_ratio": "agnostic projection",
          "specific_ratio": "specific projection"}


def line_color(name: str) -> str:
    """Colour of a line: fixed for summary series and measures, the language's colour otherwise."""
    if name in _FIXED_COLORS:
        return _FIXED_COLORS[name]
    if name.startswith("direction_norm_"):
        return language_color(name[len("direction_norm_"):])
    return language_color(name)


def line_symbol(name: str) -> str:
    """Marker of a line: fixed for summary series and measures, the language's symbol otherwise."""
    if name in _FIXED_SYMBOLS:
        return _FIXED_SYMBOLS[name]
    return language_symbol(name[len("direction_norm_"):] if name.startswith("direction_norm_") else name)


def _line_name(name: str) -> str:
    if name.startswith("direction_norm_"):
        return f"‖δ‖ {name[len('direction_norm_'):]}"
    return _NAMES.get(name, name)


def _diff_range(table: pd.DataFrame) -> list[float]:
    """Symmetric range around 0 for the difference panel, at least 1e-6 of the values' scale.

    Without the floor, rounding noise (1e-18 between two means of equal accuracies) would be
    stretched to fill the panel and read as a change.
    """
    diff = np.abs(table["diff"].to_numpy(dtype=float))
    values = np.abs(table[["a", "b"]].to_numpy(dtype=float))
    top = float(np.nanmax(diff)) if np.isfinite(diff).any() else 0.0
    scale = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
    half = 1.1 * max(top, 1e-6 * max(scale, 1e-12))
    return [-half, half]


def compare_by_layer_figure(
    table: pd.DataFrame,
    *,
    line: str = "measure",
    labels: tuple[str, str] = ("A", "B"),
    title: str | None = None,
    y_title: str = "value",
    color: Callable[[str], str] = line_color,
) -> go.Figure:
    """Two states by layer: both curves (top) and their difference B − A (bottom).

    Args:
        table: a long before/after table with columns ``layer``, `line`, ``a``, ``b``,
            ``diff`` (e.g. :func:`workbench.compare.retrieval_compare` filtered to one measure).
        line: the column naming each line (``series``, ``lang`` or ``measure``).
        labels: legend names of state A and state B.
        title: figure title.
        y_title: top panel's axis title.
        color: line name -> colour.

    Returns:
        Figure with, per line, traces ``"<line> · <A>"`` (dashed) and ``"<line> · <B>"``
        (solid) in row 1 and ``"<line> · B − A"`` in row 2.
    """
    for col in ("layer", line, "a", "b", "diff"):
        if col not in table.columns:
            raise ValueError(f"table needs a {col!r} column, has {list(table.columns)}")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.62, 0.38], vertical_spacing=0.08,
                        subplot_titles=(f"{labels[0]} (dashed) and {labels[1]} (solid)", "difference B − A"))
    for name, rows in table.groupby(line, sort=False):
        key, shown = str(name), _line_name(str(name))
        x = [str(lab) for lab in rows["layer"]]
        c, marker = color(key), {"size": 4, "symbol": line_symbol(key)}
        for col, label, dash in (("a", labels[0], "dash"), ("b", labels[1], "solid")):
            fig.add_trace(go.Scatter(x=x, y=rows[col], mode="lines+markers", name=f"{shown} · {label}",
                                     legendgroup=key, line={"color": c, "dash": dash, "width": 2},
                                     marker=marker), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=rows["diff"], mode="lines+markers", name=f"{shown} · B − A",
                                 legendgroup=key, showlegend=False, line={"color": c, "width": 2},
                                 marker=marker), row=2, col=1)
    fig.add_hline(y=0, line={"color": NEUTRAL_COLOR, "width": 1}, row=2, col=1)  # type: ignore[arg-type]  # plotly stubs
    axis = layer_axis(pd.unique(table["layer"]))
    fig.update_xaxes(axis, row=2, col=1)
    fig.update_xaxes({k: v for k, v in axis.items() if k != "title"}, row=1, col=1)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    fig.update_yaxes(title_text="B − A", zeroline=False, range=_diff_range(table), row=2, col=1)
    fig.update_layout(template=TEMPLATE, title={"text": title or "Before and after, by layer"},
                      legend={"groupclick": "togglegroup"}, showlegend=True)
    return fig


def compare_maps_figure(points: pd.DataFrame, *, labels: tuple[str, str] = ("A", "B"),
                        title: str | None = None) -> go.Figure:
    """Side-by-side 2-D maps of one layer for two states, coloured by language.

    Args:
        points: :func:`workbench.compare.map_compare`'s table (``x, y, lang, text, state``).
        labels: panel titles of state A and state B.
        title: figure title.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=labels, horizontal_spacing=0.08)
    for col, state in ((1, "a"), (2, "b")):
        part = points[points["state"] == state]
        xy = part[["x", "y"]].to_numpy(dtype=float)
        langs = np.asarray(part["lang"].tolist(), dtype=object)
        for trace in language_scatter(xy, langs, hover_text(part["text"].tolist()), showlegend=col == 1):
            fig.add_trace(trace, row=1, col=col)
        fig.update_xaxes(title_text="dimension 1", row=1, col=col)
        fig.update_yaxes(title_text="dimension 2", row=1, col=col)
    fig.update_layout(template=TEMPLATE, title={"text": title or "Sentence maps"},
                      legend={"title": {"text": "language"}}, showlegend=True)
    return fig


def difference_heatmap(diff: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Language × language difference (B − A) on a diverging scale centred on 0.

    Args:
        diff: square table, rows = source, columns = target (NaN diagonal allowed).
        title: figure title.
    """
    z = diff.to_numpy(dtype=float)
    finite = np.abs(z[np.isfinite(z)])
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    fig = go.Figure(go.Heatmap(z=z, x=[str(c) for c in diff.columns], y=[str(i) for i in diff.index],
                               colorscale="RdBu", zmid=0, zmin=-top, zmax=top,
                               colorbar={"title": {"text": "B − A"}},
                               hovertemplate="%{y} → %{x}: %{z:+.3f}<extra></extra>"))
    fig.update_layout(template=TEMPLATE, title={"text": title or "Difference B − A"},
                      xaxis={"title": {"text": "target"}, "type": "category"},
                      yaxis={"title": {"text": "source"}, "type": "category", "autorange": "reversed"})
    return fig


def eval_compare_figure(table: pd.DataFrame, *, labels: tuple[str, str] = ("A", "B"),
                        title: str | None = None) -> go.Figure:
    """Held-out translation loss per direction and pivot perplexity, A and B as grouped bars.

    Args:
        table: :func:`workbench.compare.eval_compare`'s table (``kind, what, a, b``).
        labels: legend names of state A and state B.
        title: figure title.
    """
    kinds = [k for k in ("translation loss", "perplexity") if (table["kind"] == k).any()]
    fig = make_subplots(rows=1, cols=max(1, len(kinds)), subplot_titles=kinds, horizontal_spacing=0.12,
                        column_widths=[0.7, 0.3][: len(kinds)] if len(kinds) == 2 else None)
    for col, kind in enumerate(kinds, 1):
        part = table[table["kind"] == kind]
        for i, (key, label) in enumerate((("a", labels[0]), ("b", labels[1]))):
            fig.add_trace(go.Bar(x=part["what"], y=part[key], name=label, marker=state_marker(i),
                                 legendgroup=key, showlegend=col == 1,
                                 hovertemplate="%{x}: %{y:.4f}<extra>" + label + "</extra>"), row=1, col=col)
        fig.update_yaxes(title_text="nats per target token" if kind == "translation loss" else "perplexity",
                         row=1, col=col)
    fig.update_layout(template=TEMPLATE, barmode="group", showlegend=True,
                      title={"text": title or "Held-out translation loss and pivot perplexity (lower is better)"})
    return fig


# Training stages are not languages: black and grey, told apart by dash.
_STAGE_STYLES = ((SERIES_COLOR, "solid"), (PIVOT_COLOR, "dash"), (SERIES_COLOR, "dot"), (PIVOT_COLOR, "dashdot"))


def training_loss_figure(history: Sequence[dict], *, title: str | None = None) -> go.Figure:
    """Training loss per optimiser step, one line per stage (SiLP's n2d, d2n, …).

    Args:
        history: a job's ``history``: dicts with ``step``, ``loss`` and optionally ``stage``.
        title: figure title.
    """
    df = pd.DataFrame([h for h in history if h.get("loss") is not None])
    fig = go.Figure()
    if len(df):
        stages = df["stage"].fillna("train") if "stage" in df.columns else pd.Series("train", index=df.index)
        for i, (stage, rows) in enumerate(df.groupby(stages, sort=False)):
            color, dash = _STAGE_STYLES[i % len(_STAGE_STYLES)]
            fig.add_trace(go.Scatter(x=rows["step"], y=rows["loss"], mode="lines+markers", name=str(stage),
                                     line={"color": color, "dash": dash}, marker={"size": 4}))
    fig.update_layout(template=TEMPLATE, title={"text": title or "Training loss"},
                      xaxis={"title": {"text": "step"}}, yaxis={"title": {"text": "loss"}},
                      legend={"title": {"text": "stage"}}, showlegend=True)
    return fig


def comparison_figure(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Before/after retrieval per layer (left) and the difference (right).

    Args:
        table: columns ``layer, series, before, after, difference`` (one row per layer and
            series, as :func:`build_figure` makes for ``retrieval_compare``).
        title: figure title.

    Returns:
        Two-panel figure: all-pairs and with-pivot accuracy of both states; bars of
        ``after − before`` for all pairs.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy by layer", "after − before (all pairs)"),
                        horizontal_spacing=0.14)
    layers = [str(x) for x in pd.unique(table["layer"])]
    for series, dash in (("all_pairs", "solid"), ("pivot", "dash")):
        rows = table[table["series"] == series]
        for state, color in (("before", PIVOT_COLOR), ("after", SERIES_COLOR)):
            fig.add_trace(go.Scatter(x=[str(x) for x in rows["layer"]], y=rows[state], mode="lines+markers",
                                     name=f"{state}, {series.replace('_', ' ')}", marker={"size": 4},
                                     line={"color": color, "dash": dash}), row=1, col=1)
    allp = table[table["series"] == "all_pairs"]
    fig.add_trace(go.Bar(x=[str(x) for x in allp["layer"]], y=allp["difference"], name="difference",
                         marker_color="#444444"), row=1, col=2)
    axis = {"title": {"text": "layer"}, "type": "category", "categoryorder": "array", "categoryarray": layers}
    for col in (1, 2):
        fig.update_xaxes(axis, row=1, col=col)
    fig.update_yaxes(title_text="retrieval accuracy", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="Δ accuracy", zeroline=True, zerolinecolor="#444444", row=1, col=2)
    fig.update_layout(template=TEMPLATE, title={"text": title or "Retrieval before/after fine-tuning"},
                      showlegend=True)
    return fig

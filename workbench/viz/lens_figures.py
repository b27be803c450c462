"""Figures of the lens views: latent-language curves (Wendler et al. 2024, Fig. 2 style) and the token view.

Builders return a ``plotly.graph_objects.Figure`` and never render. Languages keep their
colours of `theme.language_color`; entropy, a summary of the whole distribution rather than a
language, is drawn in the summary colour (black) on its own panel below the curves. Several
model states in one figure are told apart by dash and marker, never by colour (a colour
means a language).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.errors import ParamError
from workbench.viz.figures import layer_axis
from workbench.viz.theme import SERIES_COLOR, TEMPLATE, language_color

__all__ = ["latent_compare_figure", "latent_curves_figure", "token_text", "token_view_figure"]

_BAND_ALPHA = 0.2
_STATE_DASHES = ("solid", "dot", "dash", "longdash", "dashdot", "longdashdot")
_STATE_MARKERS = ("circle", "square", "diamond", "triangle-up", "x", "star")


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _line_with_band(
    fig: go.Figure, curves: pd.DataFrame, col: str, *, name: str, color: str, dash: str, row: int,
    symbol: str = "circle",
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
        line={"color": color, "dash": dash, "width": 2.2}, marker={"size": 5, "symbol": symbol},
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


def latent_compare_figure(
    curves: dict[str, pd.DataFrame],
    *,
    source: str,
    target: str,
    english: str = "en",
    entropy_unit: str = "nats",
    title: str | None = None,
) -> go.Figure:
    """Latent-language curves of several model states in one figure: P(target) and P(English) with bands.

    Args:
        curves: state label -> :func:`~workbench.analysis.latent_curves.latent_curves` output.
        source: source language code (its P is in the table, not drawn here: the figure
            would hold three lines per state).
        target: target language code.
        english: the latent language.
        entropy_unit: unit of the entropy column.
        title: figure title.

    Returns:
        Probabilities on top (a language's colour, a state's dash and marker), entropy below.
    """
    if not curves:
        raise ParamError("latent_compare_figure needs at least one state")
    has_entropy = all("entropy" in t.columns for t in curves.values())
    fig = make_subplots(rows=2 if has_entropy else 1, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        row_heights=[0.72, 0.28] if has_entropy else [1.0])
    for i, (label, table) in enumerate(curves.items()):
        dash, symbol = _STATE_DASHES[i % len(_STATE_DASHES)], _STATE_MARKERS[i % len(_STATE_MARKERS)]
        for col, lang in (("p_target", target), ("p_en", english)):
            _line_with_band(fig, table, col, name=f"P({lang}) · {label}", color=language_color(lang), dash=dash,
                            row=1, symbol=symbol)
        if has_entropy:
            _line_with_band(fig, table, "entropy", name=f"entropy · {label}", color=SERIES_COLOR, dash=dash, row=2,
                            symbol=symbol)
    if has_entropy:
        fig.update_yaxes(title={"text": f"entropy ({entropy_unit})"}, rangemode="tozero", row=2, col=1)
    fig.update_yaxes(title={"text": "probability"}, range=[0, 1.02], row=1, col=1)
    first = next(iter(curves.values()))
    axis = layer_axis(pd.unique(first["layer"]))
    fig.update_xaxes(**{k: v for k, v in axis.items() if k != "title"})
    fig.update_xaxes(title={"text": "layer"}, row=2 if has_entropy else 1, col=1)
    fig.update_layout(template=TEMPLATE, title={"text": title or f"Latent language {source}→{target}"},
                      legend={"title": {"text": "next token starts the answer in · state"}}, showlegend=True)
    return fig


def token_text(text: str) -> str:
    """A decoded token as a cell shows it: a leading space as ␣, newlines as ⏎, tabs as ⇥ (never empty)."""
    shown = text.replace("\n", "⏎").replace("\t", "⇥")
    if shown.startswith(" "):
        shown = "␣" + shown[1:]
    return shown or "∅"


_OTHER = "other"
# Light scales: the cells' black token text stays readable on the darkest cell.
_PROB_SCALE = [[0.0, "#F7FBFF"], [1.0, "#5FA2D6"]]
_ENTROPY_SCALE = [[0.0, "#FFFFFF"], [1.0, "#A0A0A0"]]


def _strip_colors(langs: list[str]) -> list[list[object]]:
    """A discrete colourscale: language i gets its colour on [i/n, (i+1)/n); 'other' is light grey."""
    n = len(langs)
    scale: list[list[object]] = []
    for i, lang in enumerate(langs):
        color = "#DDDDDD" if lang == _OTHER else language_color(lang)
        scale += [[i / n, color], [(i + 1) / n, color]]
    return scale


def token_view_figure(grid: pd.DataFrame, strip: pd.DataFrame, *, color: str = "probability",
                      title: str | None = None) -> go.Figure:
    """The token view: a layer × position grid of top-1 decoded tokens and the decoded-language strip.

    Args:
        grid: one row per (layer, position): ``layer``, ``position``, ``input_token``,
            ``top1`` (shown text), ``top1_prob``, ``entropy`` and ``top_k`` (hover text:
            the top tokens with probabilities, one per line).
        strip: one row per layer: ``layer``, ``lang`` (the language whose token set holds the
            top-1 token at the last position, or ``"other"``), ``top1``, ``top1_prob``.
        color: ``"probability"`` (of the top-1 token, 0–1) or ``"entropy"`` (nats).
        title: figure title.

    Returns:
        The grid (layers bottom to top, positions left to right, each cell its top-1 token)
        beside a one-column strip coloured by language.
    """
    if color not in ("probability", "entropy"):
        raise ParamError(f"color must be probability or entropy; got {color!r}")
    layers = list(pd.unique(grid["layer"]))
    positions = sorted(pd.unique(grid["position"]))
    heads = grid.drop_duplicates("position").set_index("position")["input_token"]
    xs = [f"{pos}: {heads[pos]}" for pos in positions]
    ys = [str(x) for x in layers]
    cell = grid.set_index(["layer", "position"])
    value = "top1_prob" if color == "probability" else "entropy"
    z = [[float(cell.loc[(lay, pos), value]) for pos in positions] for lay in layers]
    text = [[str(cell.loc[(lay, pos), "top1"]) for pos in positions] for lay in layers]
    hover = [[str(cell.loc[(lay, pos), "top_k"]).replace("\n", "<br>") for pos in positions] for lay in layers]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, column_widths=[0.9, 0.1], horizontal_spacing=0.015)
    fig.add_trace(go.Heatmap(
        x=xs, y=ys, z=z, text=text, texttemplate="%{text}", textfont={"size": 10, "color": "#000000"},
        customdata=hover,
        colorscale=_PROB_SCALE if color == "probability" else _ENTROPY_SCALE, zmin=0,
        zmax=1 if color == "probability" else None,
        colorbar={"title": {"text": "P(top-1)" if color == "probability" else "entropy (nats)"}, "x": 1.02},
        hovertemplate="layer %{y}, position %{x}<br>%{customdata}<extra></extra>", name="top-1 token",
        meta={"cell_text": "given"},  # the paper layout keeps the tokens (not the values) in the cells
    ), row=1, col=1)
    langs = list(dict.fromkeys([*[x for x in strip["lang"] if x != _OTHER], _OTHER]))
    idx = {lang: i for i, lang in enumerate(langs)}
    s = strip.set_index("layer")
    fig.add_trace(go.Heatmap(
        x=["decoded language"], y=ys, z=[[idx[s.loc[lay, "lang"]] + 0.5] for lay in layers],
        text=[[str(s.loc[lay, "lang"])] for lay in layers], texttemplate="%{text}", textfont={"size": 10},
        customdata=[[f"{s.loc[lay, 'top1']} ({float(s.loc[lay, 'top1_prob']):.2f})"] for lay in layers],
        colorscale=_strip_colors(langs), zmin=0, zmax=len(langs), showscale=False,
        hovertemplate="layer %{y}: %{text}<br>top-1 %{customdata}<extra></extra>", name="decoded language",
        meta={"cell_text": "given"},
    ), row=1, col=2)
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=ys, title={"text": "layer"}, row=1, col=1)
    fig.update_xaxes(type="category", tickangle=-45, title={"text": "position: input token"}, row=1, col=1)
    fig.update_xaxes(tickangle=-45, row=1, col=2)
    fig.update_layout(template=TEMPLATE, title={"text": title or "What each layer predicts"}, showlegend=False)
    return fig

"""The cross-lingual patching figure (Dumas et al. 2024, their Fig. 2/3 style): three curves with bands.

Returns a ``plotly.graph_objects.Figure`` and never renders. A colour means a language
(`theme.language_color`): both L2 curves share L2's colour, told apart by dash (C1 moved into
L2 solid, the target's own answer C2 dashed), C1 in L1 has L1's colour (dotted). The
unpatched target run's values are drawn as flat thin lines of the same colours and dashes
(their legend entries say so), so a reader sees where patching starts to change the answer.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.errors import ParamError
from workbench.latent.patching import UNPATCHED
from workbench.viz.figures import layer_axis
from workbench.viz.lens_figures import _line_with_band
from workbench.viz.theme import SERIES_COLOR, TEMPLATE, language_color

__all__ = ["patching_figure"]

_NEED = {"layer", "n", "p_c1_in_target", "p_c2_in_target", "p_c1_in_source"}


def patching_figure(curves: pd.DataFrame, *, source: str, target: str, entropy_unit: str = "nats",
                    title: str | None = None) -> go.Figure:
    """P(C1 in L2), P(C2 in L2), P(C1 in L1) per patched layer with bands; entropy below.

    Args:
        curves: output of :func:`workbench.analysis.patching.patching_curves`; a row with
            layer `latent.patching.UNPATCHED` (the target's own run) is drawn as flat reference lines.
        source: L1 (the source prompts' answer language).
        target: L2 (the target prompt's answer language).
        entropy_unit: unit of the entropy column.
        title: figure title; default names the pair and the number of pairs.

    Returns:
        Two panels sharing the patched-layer axis: probabilities (0–1), entropy (if present).
    """
    if _NEED - set(curves.columns):
        raise ParamError(f"curves lacks columns {sorted(_NEED - set(curves.columns))}; pass patching_curves' output")
    is_base = curves["layer"].astype(str) == UNPATCHED
    patched, base = curves[~is_base], curves[is_base]
    has_entropy = "entropy" in curves.columns
    fig = make_subplots(rows=2 if has_entropy else 1, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        row_heights=[0.72, 0.28] if has_entropy else [1.0])
    lines = [("p_c1_in_target", f"P(C1 in {target})", target, "solid"),
             ("p_c2_in_target", f"P(C2 in {target})", target, "dash"),
             ("p_c1_in_source", f"P(C1 in {source})", source, "dot")]
    x = [str(v) for v in patched["layer"]]
    for col, name, lang, dash in lines:
        _line_with_band(fig, patched, col, name=name, color=language_color(lang), dash=dash, row=1)
        if len(base) and x:
            fig.add_trace(go.Scatter(x=[x[0], x[-1]], y=[float(base[col].iloc[0])] * 2, mode="lines",
                                     name=f"{name}, unpatched", legendgroup=f"{name} unpatched",
                                     line={"color": language_color(lang), "dash": dash, "width": 1},
                                     opacity=0.6, hovertemplate=f"{name} unpatched: %{{y:.3f}}<extra></extra>"),
                          row=1, col=1)
    if has_entropy:
        _line_with_band(fig, patched, "entropy", name="entropy", color=SERIES_COLOR, dash="solid", row=2)
        fig.update_yaxes(title={"text": f"entropy ({entropy_unit})"}, rangemode="tozero", row=2, col=1)
    n = int(curves["n"].iloc[0]) if len(curves) else 0
    fig.update_yaxes(title={"text": "probability"}, range=[0, 1.02], row=1, col=1)
    axis = layer_axis(pd.unique(patched["layer"]))
    fig.update_xaxes(**{k: v for k, v in axis.items() if k != "title"})
    fig.update_xaxes(title={"text": "patched layer"}, row=2 if has_entropy else 1, col=1)
    fig.update_layout(template=TEMPLATE, showlegend=True,
                      title={"text": title or f"Patching C1 ({source}) into C2 ({target}) (n = {n})"},
                      legend={"title": {"text": "target's next token starts"}})
    return fig

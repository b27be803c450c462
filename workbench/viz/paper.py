"""Layout of a figure at a known paper size: the legend's place, thinned ticks, readable labels.

:func:`workbench.export.render.paper_figure` sizes a figure for a column, then calls
:func:`fit_layout`, which modifies the figure's layout only (traces keep their data):

- **Legend**: outside the plot, never on it. To the right, one entry per row, when every
  entry fits the figure's height and the legend takes at most :data:`RIGHT_LEGEND_SHARE` of
  its width; otherwise in columns below the x axis, the figure growing taller so that the
  plot keeps :data:`MIN_PLOT_SHARE` of the height (unless the caller fixed the height). Every
  entry is drawn (plotly clips a legend taller than the figure: how "ja" went missing).
- **Ticks**: horizontal. A category axis (layers ``emb, 0 … 17``) shows every k-th label,
  a linear one a coarser ``dtick`` and a log one decades only, when the labels would
  otherwise collide.
- **Panels**: subplot columns and rows are re-spaced so that a panel's tick labels and axis
  title clear its neighbour; long titles and subplot titles wrap.
- **Heatmap cell labels**: :data:`CELL_FONT_PX` (7.5 pt in a PDF) or none: ``0.75`` when it
  fits the cell, ``.75`` when only that fits, else the colour bar alone. A heatmap whose
  cells carry their own labels (``meta={"cell_text": "given"}``: the token view's decoded
  tokens) keeps them, each cut to its cell with an ellipsis.

Sizes are in CSS pixels (96 per inch; 1 px = 0.75 pt). Text widths are estimated from the
character count (:func:`text_width`, deliberately generous), since nothing is rendered here.
"""

from __future__ import annotations

import base64
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import plotly.graph_objects as go

__all__ = ["CELL_FONT_PX", "MIN_PLOT_SHARE", "RIGHT_LEGEND_SHARE", "Frame", "fit_layout", "legend_entries",
           "subplot_titles", "text_width"]

MIN_PLOT_SHARE = 0.6
"""Share of the figure's height the plot area keeps (the figure grows unless its height is fixed; tests ask ≥ 0.55)."""
RIGHT_LEGEND_SHARE = 0.36
"""Widest a legend on the right may be, as a share of the figure's width."""
CELL_FONT_PX = 10
"""Heatmap cell labels: 10 px = 7.5 pt in the PDF."""
ITEM_PX = 19
"""Height of one legend row (plotly: max(16, line height) + 3 for fonts up to 12 px)."""
SYMBOL_PX = 45
"""Legend entry width besides its text (line sample of ``itemwidth`` 30 and the gaps around it)."""
MIN_PANEL_PX = 100
"""Narrowest panel of a subplot grid before it is reflowed into fewer columns."""
COLORBAR_PX = 64
"""Width plotly's margin gives a heatmap's colour bar (bar, tick labels, title) in the paper theme."""
_GLYPH_EM = 0.6  # a character outside _ADVANCE (Greek, symbols): wider than most Latin ones
# Helvetica advance widths in em (Adobe's AFM, /1000), the characters figure texts use
_ADVANCE = {
    **dict.fromkeys("0123456789abdeghnopqu_", 0.556), **dict.fromkeys("ckssvxyzJ", 0.5),
    **dict.fromkeys("fijlt", 0.222), "f": 0.278, "t": 0.278, "r": 0.333, "m": 0.833, "w": 0.722,
    **dict.fromkeys("ABEKPSVXY", 0.667), **dict.fromkeys("CDHNRU", 0.722), **dict.fromkeys("FTZ", 0.611),
    **dict.fromkeys("GOQ", 0.778), "I": 0.278, "L": 0.556, "M": 0.833, "W": 0.944,
    **dict.fromkeys(" .,:;/!|'", 0.278), **dict.fromkeys("-()[]", 0.333), **dict.fromkeys("+=<>~", 0.584),
    "%": 0.889, "&": 0.667, "*": 0.389, '"': 0.355, "·": 0.278, "−": 0.584, "→": 1.0, "↑": 0.5, "↓": 0.5,
    "‖": 0.4, "δ": 0.55, "Δ": 0.67, "^": 0.469,
}
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Frame:
    """A figure's size and margins in CSS px (``top`` includes the title band)."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int

    @property
    def plot_width(self) -> int:
        """Width between the margins."""
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        """Height between the margins."""
        return self.height - self.top - self.bottom


def text_width(text: object, font_px: float) -> float:
    """Estimated width in px of `text` (HTML tags dropped; the widest ``<br>`` line).

    Helvetica's advance widths (Liberation Sans and Arial share them), 5% added; characters
    outside the table count as :data:`_GLYPH_EM` em.
    """
    lines = [_TAG.sub("", line) for line in re.split(r"<br\s*/?>", str(text))]
    return max(sum(_ADVANCE.get(ch, _GLYPH_EM) for ch in line) for line in lines) * 1.05 * font_px


def wrap(text: str, max_px: float, font_px: float) -> str:
    """`text` with ``<br>`` between words so that each line fits `max_px`."""
    if text_width(text, font_px) <= max_px:
        return text
    lines: list[str] = []
    for word in text.split(" "):
        if lines and text_width(f"{lines[-1]} {word}", font_px) <= max_px:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return "<br>".join(lines)


def legend_entries(fig: go.Figure) -> list[str]:
    """Names plotly draws in the legend, in trace order (heatmaps have a colour bar instead)."""
    if fig.layout.showlegend is False:
        return []
    out = []
    for t in fig.data:
        shown = t.showlegend if t.showlegend is not None else t.type not in ("heatmap", "contour", "histogram2d")
        if shown and t.name and t.visible is not False:
            out.append(str(t.name))
    return out


def _group_titles(fig: go.Figure) -> int:
    titles = {t.legendgroup for t in fig.data if t.legendgrouptitle is not None and t.legendgrouptitle.text}
    return len(titles)


def _place_legend(fig: go.Figure, frame: Frame, font_px: int, *, grow: bool) -> Frame:
    """Put the legend to the right or in columns below the x axis; the frame with room for it.

    Right when it fits the plot's height (plotly clips a taller vertical legend) and
    :data:`RIGHT_LEGEND_SHARE` of the width; if the height may grow, right also when that
    needs a shorter figure than the legend below would.
    """
    entries = legend_entries(fig)
    if not entries:
        return frame
    widest = max(text_width(name, font_px) for name in entries)
    titles = _group_titles(fig)
    right_w = SYMBOL_PX + widest + 6
    right_h = ITEM_PX * (len(entries) + titles) + 4 * titles
    entry = math.ceil(widest) + 2  # columns as wide as the widest entry: plotly's grid once a row is full
    below_h = math.ceil(len(entries) / max(1, int(frame.plot_width // (entry + SYMBOL_PX)))) * ITEM_PX + 6
    below = replace(frame, bottom=frame.bottom + below_h)
    right = replace(frame, right=max(frame.right, math.ceil(right_w) + 6))
    if grow:
        right = replace(right, height=max(frame.height, frame.top + frame.bottom + right_h))
        below = _grown(below)
    if right_w <= RIGHT_LEGEND_SHARE * frame.width and right_h <= right.plot_height and right.height <= below.height:
        fig.update_layout(legend={"orientation": "v", "x": 1.0, "xref": "paper", "xanchor": "left",
                                  "y": 1.0, "yref": "paper", "yanchor": "top", "traceorder": "grouped"
                                  if titles else "normal", "entrywidth": None})
        return right
    for t in fig.data:  # group titles would stack the groups in columns instead of wrapping the rows
        if t.legendgrouptitle is not None and t.legendgrouptitle.text:
            t.legendgrouptitle.text = None
    fig.update_layout(legend={"orientation": "h", "x": 0, "xref": "container", "xanchor": "left", "y": 0,
                              "yref": "container", "yanchor": "bottom", "traceorder": "normal",
                              "entrywidth": entry, "entrywidthmode": "pixels"})
    return below


def _grown(frame: Frame) -> Frame:
    """`frame`, taller if needed for the plot to keep :data:`MIN_PLOT_SHARE` of the height."""
    if frame.plot_height >= MIN_PLOT_SHARE * frame.height:
        return frame
    return replace(frame, height=math.ceil((frame.top + frame.bottom) / (1 - MIN_PLOT_SHARE)))


# --------------------------------------------------------------------------- panels


def _axis_names(fig: go.Figure, letter: str) -> list[str]:
    return [k for k in fig.layout.to_plotly_json() if re.fullmatch(f"{letter}axis\\d*", k)] or [f"{letter}axis"]


def _spans(fig: go.Figure, letter: str) -> list[tuple[float, float]]:
    """The distinct domains of the `letter` axes (panel columns for x, rows for y), in order."""
    out = set()
    for name in _axis_names(fig, letter):
        dom = fig.layout[name].domain
        out.add((float(dom[0]), float(dom[1])) if dom is not None else (0.0, 1.0))
    return sorted(out)


def _respace(fig: go.Figure, letter: str, gap_px: float, length_px: float) -> None:
    """Spread the panels along one direction so that neighbouring panels are `gap_px` apart."""
    spans = _spans(fig, letter)
    if len(spans) < 2 or any(b[0] < a[1] for a, b in zip(spans, spans[1:])) or length_px <= 0:
        return
    gap = min(gap_px / length_px, 0.4 / (len(spans) - 1))
    total = sum(b - a for a, b in spans)
    scale = (1 - gap * (len(spans) - 1)) / total
    new, start = {}, 0.0
    for a, b in spans:
        new[(a, b)] = [max(0.0, round(start, 6)), min(1.0, round(start + (b - a) * scale, 6))]
        start += (b - a) * scale + gap
    for name in _axis_names(fig, letter):
        dom = fig.layout[name].domain
        key = (float(dom[0]), float(dom[1])) if dom is not None else (0.0, 1.0)
        fig.layout[name].domain = new[key]
    _move_subplot_titles(fig, letter, new)


def _move_subplot_titles(fig: go.Figure, letter: str, new: dict[tuple[float, float], list[float]]) -> None:
    """Subplot titles (paper-referenced annotations) follow their panel."""
    for ann in fig.layout.annotations or ():
        pos = ann.x if letter == "x" else ann.y
        if ann.xref != "paper" or ann.yref != "paper" or pos is None:
            continue
        for (a, b), (na, nb) in new.items():
            if letter == "x" and abs(pos - (a + b) / 2) < 1e-6:
                ann.x = (na + nb) / 2
            elif letter == "y" and abs(pos - b) < 1e-6:
                ann.y = nb


def _has_title(axis: Any) -> bool:
    return axis.title is not None and bool(axis.title.text)


def _fit_panels(fig: go.Figure, frame: Frame, font_px: int) -> None:
    """Gaps between subplot columns (tick labels + y title) and rows (tick labels + x title + subplot title)."""
    y_titled = any(_has_title(fig.layout[n]) for n in _axis_names(fig, "y"))
    _respace(fig, "x", 34 + (font_px + 8 if y_titled else 0), frame.plot_width)
    x_labels = any(fig.layout[n].showticklabels is not False and fig.layout[n].matches is None
                   for n in _axis_names(fig, "x")[1:])
    titled = any(_has_title(fig.layout[n]) for n in _axis_names(fig, "x")[1:])
    lines = max([1 + str(a.text).count("<br>") for a in subplot_titles(fig)], default=1)
    _respace(fig, "y", 6 + (font_px + 4) * lines + (font_px + 6 if x_labels else 0) + (font_px + 6 if titled else 0),
             frame.plot_height)


def subplot_titles(fig: go.Figure) -> list[Any]:
    """make_subplots' titles: paper-referenced annotations sitting on top of a panel."""
    return [a for a in fig.layout.annotations or () if a.xref == "paper" and a.yref == "paper" and a.text
            and a.yanchor == "bottom" and a.showarrow is False]


def _wrap_subplot_titles(fig: go.Figure, frame: Frame, font_px: int) -> int:
    """Wrap each subplot title to the narrowest panel's width; returns the extra lines of the top row."""
    spans = _spans(fig, "x")
    width = min(b - a for a, b in spans) * frame.plot_width if spans else frame.plot_width
    extra = 0
    for ann in subplot_titles(fig):
        ann.text = wrap(str(ann.text), width, font_px)
        if (ann.y or 0) >= 0.99:
            extra = max(extra, str(ann.text).count("<br>"))
    return extra


def _panels(fig: go.Figure) -> list[tuple[str, str]]:
    """(x axis, y axis) layout names of each panel, in reading order (top row first)."""
    out = []
    for name in _axis_names(fig, "x"):
        anchor = fig.layout[name].anchor
        y = f"yaxis{anchor[1:]}" if isinstance(anchor, str) and anchor.startswith("y") else "yaxis"
        out.append((name, y))
    def key(p: tuple[str, str]) -> tuple[float, float]:
        return (-float((fig.layout[p[1]].domain or (0, 1))[1]), float((fig.layout[p[0]].domain or (0, 1))[0]))
    return sorted(out, key=key)


def _reflow(fig: go.Figure, frame: Frame, *, grow: bool) -> Frame:
    """Fewer columns of panels when a grid's panels would be narrower than :data:`MIN_PANEL_PX`.

    Panels keep their reading order; subplot titles follow them. Only regular grids
    (make_subplots without shared or spanning cells) with at least 3 columns are reflowed.
    """
    panels = _panels(fig)
    cols = len(_spans(fig, "x"))
    if cols < 3 or frame.plot_width / cols >= MIN_PANEL_PX or len({y for _, y in panels}) != len(panels):
        return frame
    new_cols = max(1, frame.plot_width // MIN_PANEL_PX)
    rows = math.ceil(len(panels) / new_cols)
    titles = {(round(float(a.x), 4), round(float(a.y), 4)): a for a in subplot_titles(fig)}
    for k, (xn, yn) in enumerate(panels):
        xd, yd = fig.layout[xn].domain or (0, 1), fig.layout[yn].domain or (0, 1)
        r, c = divmod(k, new_cols)
        nx, ny = [c / new_cols, (c + 1) / new_cols], [1 - (r + 1) / rows, 1 - r / rows]
        title = titles.get((round((float(xd[0]) + float(xd[1])) / 2, 4), round(float(yd[1]), 4)))
        fig.layout[xn].domain, fig.layout[yn].domain = nx, ny
        if title is not None:
            title.x, title.y = (nx[0] + nx[1]) / 2, ny[1]
    if not grow:
        return frame
    need = frame.top + frame.bottom + rows * MIN_PANEL_PX * 0.7 + (rows - 1) * 3 * (CELL_FONT_PX + 6)
    return replace(frame, height=max(frame.height, math.ceil(need)))


# --------------------------------------------------------------------------- ticks


def values(data: Any) -> Any:
    """A trace's array as values, plotly's typed-array form decoded.

    A figure read back from JSON holds numeric arrays as ``{"dtype", "bdata", "shape"}``;
    that becomes a numpy array, anything else is returned as it is.
    """
    if isinstance(data, Mapping) and "bdata" in data and "dtype" in data:
        arr = np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"]))
        shape = data.get("shape")
        return arr.reshape([int(n) for n in str(shape).split(",")]) if shape else arr
    return data


def _xs(fig: go.Figure) -> list[Any]:
    """Every x value of every trace."""
    return [v for t in fig.data if t.x is not None for v in values(t.x)]


def _numeric(label: object) -> bool:
    return bool(re.fullmatch(r"-?\d+", str(label)))


def _thin_categories(labels: Sequence[object], slot_px: float, font_px: int) -> list[str] | None:
    """Labels to show on a category axis (every k-th layer, non-numeric ones kept), or None for all."""
    text = [str(x) for x in labels]
    widths = [text_width(x, font_px) + 6 for x in text]
    if max(widths) <= slot_px:
        return None
    # the step suits the numbers; a word label ("emb", "final") is kept and its neighbour dropped
    numbers = [w for w, x in zip(widths, text) if _numeric(x)] or widths
    step = next(s for s in (2, 5, 10, 20, 50, 100, 10**9) if max(numbers) <= s * slot_px)
    keep: list[int] = []
    for i, lab in enumerate(text):
        if _numeric(lab) and int(lab) % step:
            continue
        if keep and (i - keep[-1]) * slot_px < (widths[i] + widths[keep[-1]]) / 2:
            continue
        keep.append(i)
    return [text[i] for i in keep]


def _categories(fig: go.Figure, name: str) -> list[Any]:
    axis = fig.layout[name]
    if axis.categoryarray is not None:
        return list(axis.categoryarray)
    ref = "x" + name[len("xaxis"):]
    seen: dict[str, None] = {}
    for t in fig.data:
        if getattr(t, "xaxis", None) in (ref, None if ref == "x" else ref) and t.x is not None:
            seen.update(dict.fromkeys(str(v) for v in values(t.x) if v is not None))
    return list(seen)


def _is_category(fig: go.Figure, name: str) -> bool:
    axis = fig.layout[name]
    if axis.type in ("category", "multicategory"):
        return True
    if axis.type not in (None, "-"):
        return False
    xs = _xs(fig)
    return bool(xs) and all(isinstance(v, str) for v in xs)


def _linear_dtick(fig: go.Figure, name: str, span_px: float, font_px: int) -> float | None:
    """A coarser ``dtick`` for a linear axis with an explicit one whose labels would collide."""
    axis = fig.layout[name]
    if axis.dtick is None or isinstance(axis.dtick, str):
        return None
    xs = np.array([float(v) for v in _xs(fig) if isinstance(v, numbers.Real)])
    if xs.size == 0 or span_px <= 0:
        return None
    lo, hi = float(np.nanmin(xs)), float(np.nanmax(xs))
    n = max(1.0, (hi - lo) / float(axis.dtick) + 1)
    label = max(text_width(f"{v:g}", font_px) for v in (lo, hi)) + 6
    if label * n <= span_px:
        return None
    return next(float(axis.dtick) * s for s in (2, 5, 10, 20, 50, 100, 10**9) if label * n / s <= span_px)


def _fit_ticks(fig: go.Figure, frame: Frame, font_px: int) -> None:
    """Horizontal tick labels on every x axis, thinned where they would collide."""
    for name in _axis_names(fig, "x"):
        axis = fig.layout[name]
        dom = axis.domain if axis.domain is not None else (0.0, 1.0)
        span_px = (float(dom[1]) - float(dom[0])) * frame.plot_width
        axis.tickangle = 0
        if _is_category(fig, name):
            cats = _categories(fig, name)
            shown = _thin_categories(cats, span_px / max(1, len(cats)), font_px) if cats else None
            if shown is not None:
                axis.tickmode, axis.tickvals, axis.ticktext = "array", shown, shown
        elif axis.type == "log":
            axis.dtick = 1  # decades only: "2 5 2 5" minor labels are unreadable at column size
        elif (dtick := _linear_dtick(fig, name, span_px, font_px)) is not None:
            axis.dtick = dtick
    for name in _axis_names(fig, "y"):
        if fig.layout[name].type == "log":
            fig.layout[name].dtick = 1


def _wrap_x_titles(fig: go.Figure, frame: Frame, font_px: int) -> int:
    """Wrap each x axis title to its panel's width; returns the most extra lines of any."""
    extra = 0
    for name in _axis_names(fig, "x"):
        axis = fig.layout[name]
        if _has_title(axis):
            dom = axis.domain if axis.domain is not None else (0.0, 1.0)
            axis.title.text = wrap(str(axis.title.text), (float(dom[1]) - float(dom[0])) * frame.plot_width,
                                   font_px + 1)
            extra = max(extra, str(axis.title.text).count("<br>"))
    return extra


# --------------------------------------------------------------------------- heatmaps


def _cell_text(z: np.ndarray, short: bool) -> list[list[str]]:
    """``0.75`` or ``.75`` (and ``1``) per cell; empty for NaN."""
    def fmt(v: float) -> str:
        if not np.isfinite(v):
            return ""
        s = f"{v:.2f}"
        if short:
            s = "1" if s == "1.00" else s.replace("0.", ".", 1) if s.startswith(("0.", "-0.")) else s
        return s
    return [[fmt(float(v)) for v in row] for row in z]


def _cut(text: str, max_px: float) -> str:
    """`text` cut to `max_px` at :data:`CELL_FONT_PX`, an ellipsis marking the cut ('' if nothing fits)."""
    if text_width(text, CELL_FONT_PX) <= max_px:
        return text
    for n in range(len(text) - 1, 0, -1):
        if text_width(text[:n] + "…", CELL_FONT_PX) <= max_px:
            return text[:n] + "…"
    return ""


def _x_share(fig: go.Figure, trace: Any) -> float:
    """The share of the plot width a trace's x axis spans (its subplot column; 1 for a single plot)."""
    axis = "xaxis" + str(trace.xaxis or "x")[1:]
    domain = fig.layout[axis].domain if axis in fig.layout else None
    return float(domain[1] - domain[0]) if domain else 1.0


def _fit_heatmap_labels(fig: go.Figure, frame: Frame) -> None:
    """Cell labels at :data:`CELL_FONT_PX` when they fit their cells, else none."""
    for t in fig.data:
        if t.type != "heatmap" or not t.texttemplate or t.z is None:
            continue
        z = np.asarray(values(t.z), dtype=float)
        cell_w = (frame.plot_width - COLORBAR_PX) * _x_share(fig, t) / max(1, z.shape[1])
        cell_h = frame.plot_height / max(1, z.shape[0])
        if cell_h < CELL_FONT_PX + 2:
            t.update(texttemplate="", text=None)
            continue
        if (t.meta or {}).get("cell_text") == "given" and t.text is not None:  # labels of their own (tokens)
            t.update(text=[[_cut(str(v), cell_w - 2) for v in row] for row in t.text], texttemplate="%{text}",
                     textfont={"size": CELL_FONT_PX})
            continue
        for short in (False, True):
            text = _cell_text(z, short)
            widest = max((text_width(s, CELL_FONT_PX) for row in text for s in row), default=0.0)
            if widest + 2 <= cell_w:
                t.update(text=text, texttemplate="%{text}", textfont={"size": CELL_FONT_PX})
                break
        else:
            t.update(texttemplate="", text=None)


# --------------------------------------------------------------------------- entry point


def fit_layout(fig: go.Figure, frame: Frame, *, font_px: int, title_font_px: int, grow: bool) -> Frame:
    """Lay `fig` out for `frame` (see the module docstring); returns the frame it now has.

    Args:
        fig: a figure already in the paper theme (modified in place).
        frame: its size and base margins, ``top`` without the title.
        font_px: tick, legend and subplot-title size.
        title_font_px: the title's size.
        grow: the height may grow to keep the plot area (the caller did not fix it).
    """
    title = fig.layout.title.text
    if title:
        text = wrap(str(title), frame.width - 10, title_font_px)
        lines = 1 + text.count("<br>")
        fig.layout.title.text = text  # a wrapped title is pushed down by 0.8 em (see paper_figure)
        frame = replace(frame, top=frame.top + 4 + round(1.3 * title_font_px) * lines
                        + (round(0.8 * title_font_px) if lines > 1 else 0))
    frame = _reflow(fig, frame, grow=grow)
    extra = _wrap_subplot_titles(fig, frame, font_px)
    if any((a.y or 0) >= 0.99 for a in subplot_titles(fig)):
        frame = replace(frame, top=frame.top + (font_px + 6) * (1 + extra))
    elif any(a.yref == "paper" and (a.y or 0) >= 0.99 for a in fig.layout.annotations or ()):
        frame = replace(frame, top=frame.top + font_px + 6)  # a label above the plot (e.g. "n·L = d")
    frame = replace(frame, bottom=frame.bottom + round(1.3 * (font_px + 1)) * _wrap_x_titles(fig, frame, font_px))
    frame = _place_legend(fig, frame, font_px, grow=grow)
    if grow:
        frame = _grown(frame)
    _fit_panels(fig, frame, font_px)
    _fit_ticks(fig, frame, font_px)
    _fit_heatmap_labels(fig, frame)
    return frame

"""Every exported figure kind, rendered to SVG at single and double column width, is paper-ready.

Measured on the SVG that kaleido/Chromium renders (plotly's SVG: each panel's plot area is a
``plotclip`` clip rectangle placed by its ``<g transform="translate(x,y)">``; the legend is
``g.legend`` with one ``g.traces`` per entry inside a clipped scroll box):

- the plot area (the union of the panels) is at least 55% of the figure's height;
- every plotted series has a legend entry that is drawn inside the legend's visible box
  (the report: "ja" was clipped off the retrieval legend at single width), and the legend
  lies inside the figure and off every panel;
- x tick labels are horizontal and do not overlap (widths estimated from the font size);
- heatmap cell labels are at least 7 pt (9.33 px) and fit their cells.

Needs Chromium (the `chromium` fixture fails with the install instruction without one).
Each figure × width is rendered once (module fixture).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import plotly.graph_objects as go
import plotly.io as pio
import pytest
from figure_kinds import KINDS

from workbench.export import COLUMN_WIDTHS, paper_figure, render_image

WIDTHS = tuple(COLUMN_WIDTHS)
MIN_PLOT_SHARE = 0.55
MIN_CELL_PX = 7 / 0.75  # 7 pt in CSS px
GLYPH_EM = 0.5  # average glyph width of Liberation Sans (digits 0.556, lower case ~0.5)
SVG = "{http://www.w3.org/2000/svg}"


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle in figure px."""

    x: float
    y: float
    w: float
    h: float

    def overlap(self, other: Box) -> float:
        """Area of the intersection."""
        dx = min(self.x + self.w, other.x + other.w) - max(self.x, other.x)
        dy = min(self.y + self.h, other.y + other.h) - max(self.y, other.y)
        return max(0.0, dx) * max(0.0, dy)


def _translate(el: ET.Element) -> tuple[float, float]:
    m = re.search(r"translate\(\s*([-\d.e]+)[ ,]*([-\d.e]*)\s*\)", el.get("transform") or "")
    return (float(m.group(1)), float(m.group(2) or 0)) if m else (0.0, 0.0)


def _cls(el: ET.Element) -> set[str]:
    return set((el.get("class") or "").split())


def _font_px(el: ET.Element) -> float:
    m = re.search(r"font-size:\s*([\d.]+)px", el.get("style") or "")
    return float(m.group(1)) if m else 12.0


def _text(el: ET.Element) -> str:
    return "".join(el.itertext())


class Rendered:
    """Geometry read from one rendered SVG."""

    def __init__(self, svg: bytes) -> None:
        self.root = ET.fromstring(svg)
        self.width, self.height = float(self.root.get("width")), float(self.root.get("height"))
        self.parent = {c: p for p in self.root.iter() for c in p}

    def panels(self) -> list[Box]:
        """Plot area of each subplot (its clip rectangle at its translation)."""
        clips = {c.get("id"): c.find(f"{SVG}rect") for c in self.root.iter(f"{SVG}clipPath")
                 if "plotclip" in _cls(c)}
        out = []
        for el in self.root.iter():
            m = re.fullmatch(r"url\(#(.+)\)", el.get("clip-path") or "")
            if m and m.group(1) in clips and el.get("transform"):
                rect = clips[m.group(1)]
                out.append(Box(*_translate(el), float(rect.get("width")), float(rect.get("height"))))
        return out

    def legend(self) -> tuple[Box | None, list[str]]:
        """The legend's box and the texts of the entries drawn inside its visible (clipped) area."""
        legend = next((g for g in self.root.iter(f"{SVG}g") if "legend" in _cls(g)), None)
        if legend is None:
            return None, []
        lx, ly = _translate(legend)
        bg = next(r for r in legend.iter(f"{SVG}rect") if "bg" in _cls(r))
        box = Box(lx, ly, float(bg.get("width")), float(bg.get("height")))
        scroll = next(g for g in legend.iter(f"{SVG}g") if "scrollbox" in _cls(g))
        clip_id = re.fullmatch(r"url\(#(.+)\)", scroll.get("clip-path")).group(1)
        clip = next(c for c in self.root.iter(f"{SVG}clipPath") if c.get("id") == clip_id).find(f"{SVG}rect")
        cw, ch = float(clip.get("width")), float(clip.get("height"))
        shown = []
        for item in (t for t in scroll.iter(f"{SVG}g") if "traces" in _cls(t)):
            x, y = _translate(item)
            up = self.parent[item]
            while up is not scroll:
                gx, gy = _translate(up)
                x, y, up = x + gx, y + gy, self.parent[up]
            sx, sy = _translate(scroll)
            if 0 <= y + sy <= ch and 0 <= x + sx < cw:
                shown.append(_text(next(e for e in item.iter(f"{SVG}text") if "legendtext" in _cls(e))))
        return box, shown

    def xtick_rows(self) -> list[list[ET.Element]]:
        """The x tick labels of each x axis."""
        rows = []
        for layer in (g for g in self.root.iter(f"{SVG}g") if "xaxislayer-above" in _cls(g)):
            rows.append([t for g in layer if "xtick" in _cls(g) for t in g.iter(f"{SVG}text")])
        return rows

    def heatmap_labels(self) -> tuple[list[ET.Element], float]:
        """Cell label texts and the width of one cell (px), over every heatmap."""
        labels, cell = [], float("inf")
        for hm in (g for g in self.root.iter(f"{SVG}g") if "hm" in _cls(g)):
            img = hm.find(f"{SVG}image")
            texts = [t for g in hm if "heatmap-label" in _cls(g) for t in g.iter(f"{SVG}text")]
            xs = sorted({float(t.get("x")) for t in texts})
            if img is not None and texts:
                cell = min(cell, float(img.get("width")) / len(xs))
                labels += texts
        return labels, cell


def expected_entries(fig: go.Figure) -> tuple[set[str], set[str]]:
    """(names the legend must show, legend groups of every plotted series) of a paper figure."""
    names, groups, series = set(), {}, []
    for t in fig.data:
        if t.type == "heatmap" or t.visible is False:
            continue
        shown = t.showlegend is not False
        key = t.legendgroup or t.name
        series.append(key)
        if shown and t.name:
            names.add(str(t.name))
            groups.setdefault(key, set()).add(str(t.name))
    missing = {k for k in series if k not in groups}
    assert not missing, f"series without any legend entry: {missing}"
    return names, set(groups)


# A figure read back from JSON (as a page may hold it) keeps numeric arrays in plotly's typed-array form.
ROUND_TRIP = ("heatmap", "sensitivity", "cc_layer_selection")


@pytest.fixture(scope="module")
def rendered(chromium):
    """(kind, width) → (paper figure, its SVG geometry); the ROUND_TRIP kinds go through JSON first."""
    out = {}
    for kind, make in KINDS.items():
        fig = pio.from_json(make().to_json()) if kind in ROUND_TRIP else make()
        for width in WIDTHS:
            paper = paper_figure(fig, width)
            out[kind, width] = paper, Rendered(render_image(paper, "svg"))
    return out


CASES = [(k, w) for k in KINDS for w in WIDTHS]


@pytest.mark.parametrize("kind,width", CASES)
def test_plot_area_keeps_most_of_the_height(rendered, kind, width):
    _, svg = rendered[kind, width]
    panels = svg.panels()
    assert panels, "no plot area found"
    top, bottom = min(p.y for p in panels), max(p.y + p.h for p in panels)
    share = (bottom - top) / svg.height
    assert share >= MIN_PLOT_SHARE, f"plot area {share:.0%} of {svg.height:.0f} px"


@pytest.mark.parametrize("kind,width", CASES)
def test_every_series_is_in_a_visible_legend_off_the_plot(rendered, kind, width):
    fig, svg = rendered[kind, width]
    names, _ = expected_entries(fig)
    box, shown = svg.legend()
    if not names:
        assert any("colorbar" in _cls(g) for g in svg.root.iter(f"{SVG}g")), "neither a legend nor a colour bar"
        return
    assert box is not None, "no legend drawn"
    assert names <= set(shown), f"not visible in the legend: {sorted(names - set(shown))}"
    assert box.x >= -0.5 and box.y >= -0.5, box
    assert box.x + box.w <= svg.width + 0.5 and box.y + box.h <= svg.height + 0.5, (box, svg.width, svg.height)
    for panel in svg.panels():
        assert box.overlap(panel) <= 1.0, f"legend {box} covers the plot {panel}"


@pytest.mark.parametrize("kind,width", CASES)
def test_x_ticks_horizontal_and_apart(rendered, kind, width):
    _, svg = rendered[kind, width]
    for row in svg.xtick_rows():
        assert not any("rotate" in (t.get("transform") or "") for t in row), [t.get("transform") for t in row]
        spans = sorted((_translate(t)[0] + float(t.get("x") or 0), GLYPH_EM * _font_px(t) * len(_text(t)))
                       for t in row if _text(t))
        for (x1, w1), (x2, w2) in zip(spans, spans[1:]):
            assert x2 - x1 >= (w1 + w2) / 2, f"tick labels overlap at {x1:.0f}/{x2:.0f} px"


@pytest.mark.parametrize("kind,width", [c for c in CASES if "heatmap" in c[0]])
def test_heatmap_cell_labels_readable(rendered, kind, width):
    _, svg = rendered[kind, width]
    labels, cell = svg.heatmap_labels()
    for t in labels:
        assert _font_px(t) >= MIN_CELL_PX, f"{_text(t)!r} at {_font_px(t)} px"
        assert GLYPH_EM * _font_px(t) * len(_text(t)) <= cell, f"{_text(t)!r} wider than its {cell:.0f} px cell"


def test_the_report_case_is_labelled_at_both_widths(rendered):
    """The 8-language retrieval figure: cell labels on the 8-language heatmap, 'ja' in the legend."""
    for width in WIDTHS:
        assert "ja" in rendered["retrieval", width][1].legend()[1]
        labels, _ = rendered["heatmap", width][1].heatmap_labels()
        assert len(labels) == 64, width

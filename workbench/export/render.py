"""Paper styling and static rendering: paper sizes, :func:`paper_figure`, kaleido/Chromium.

Static rendering: plotly hands the figure to kaleido 1.x, which drives a headless
Chromium through choreographer (no browser is bundled). :func:`find_chromium` picks the
browser in this order: the ``BROWSER_PATH`` environment variable (choreographer's own
override), ``chromium`` / ``chromium-browser`` / ``google-chrome`` on ``PATH`` (Debian's
``apt-get install chromium`` gives ``/usr/bin/chromium``), then a Chrome downloaded by
``kaleido_get_chrome``. The path is passed explicitly as ``Kaleido(path=...)``; MathJax is
off and plotly.js comes from the installed plotly package, so rendering needs no network.
One browser is started on first use and kept for the life of the process (closed at
exit), so exporting many figures costs one start-up (~2 s), not one per image.
If no browser is found, :class:`ChromiumNotFoundError` says how to install one.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import threading
from typing import Any

import plotly.graph_objects as go

from workbench.errors import ChromiumNotFoundError, ExportError
from workbench.viz.paper import Frame, fit_layout, subplot_titles
from workbench.viz.theme import FONT_FAMILY, paper_layout

log = logging.getLogger(__name__)

__all__ = ["COLUMN_WIDTHS", "CSS_DPI", "NO_CHROMIUM", "find_chromium", "paper_figure", "render_image", "width_inches"]

COLUMN_WIDTHS = {"single": 3.3, "double": 6.9}
"""Figure widths in inches: one column / the full width of a two-column paper."""
CSS_DPI = 96
"""Plotly sizes figures in CSS pixels, 96 per inch (so 1 px = 0.75 pt in a PDF)."""


def width_inches(width_in: float | str) -> float:
    """Inches from ``"single"``/``"double"`` (:data:`COLUMN_WIDTHS`) or a number of inches (1 to 20).

    Raises:
        ExportError: not a column name nor a number between 1 and 20.
    """
    if isinstance(width_in, str):
        if width_in in COLUMN_WIDTHS:
            return COLUMN_WIDTHS[width_in]
        try:
            width_in = float(width_in)
        except ValueError:
            raise ExportError(f"width must be 'single', 'double' or inches, got {width_in!r}") from None
    if not 1.0 <= float(width_in) <= 20.0:
        raise ExportError(f"width must be between 1 and 20 inches, got {width_in}")
    return float(width_in)


def _shrink_traces(fig: go.Figure, base: int) -> None:
    """Marker, line and text sizes that suit a printed column."""
    for trace in fig.data:
        kind = trace.type
        if kind == "scatter":
            if trace.marker is not None and isinstance(trace.marker.size, int | float):  # not a per-point array
                trace.marker.size = min(trace.marker.size, 4)
            if trace.line is not None and trace.line.width is not None:
                trace.line.width = min(trace.line.width, 2.0)
        elif kind == "heatmap":
            # cell labels are sized by `fit_layout` (they must fit their cells)
            trace.update(colorbar={"thickness": 10, "title": {"font": {"size": base}}, "tickfont": {"size": base - 1}})


def paper_figure(fig: go.Figure, width_in: float | str = 3.3, *, height_in: float | None = None,
                 title: bool = True) -> go.Figure:
    """A copy of ``fig`` styled for print: paper size, readable fonts, no UI chrome.

    Applies :func:`workbench.viz.theme.paper_layout` (the ``"workbench"`` template with its
    colour-blind-safe palette; language colours are already set by the builders), then
    uses 10 px text (7.5 pt in the PDF) with 9 px ticks and legend, shrinks markers and
    lines, drops menus and sliders, turns hover off, and lays the figure out for its size
    with :func:`workbench.viz.paper.fit_layout`: the legend outside the plot (right, or in
    columns below), horizontal thinned ticks, re-spaced panels, wrapped titles and heatmap
    cell labels that fit their cells.

    Args:
        fig: the interactive figure (left unchanged).
        width_in: inches, or ``"single"`` (3.3) / ``"double"`` (6.9).
        height_in: inches; default ``0.75 ×`` width for one column, ``0.45 ×`` for wider,
            taller when a legend below the plot needs the room.
        title: keep the figure title (papers often move it to the caption).

    Returns:
        The styled copy, sized in whole CSS pixels (96 per inch).
    """
    w = width_inches(width_in)
    out = go.Figure(fig)
    paper_layout(out, w)
    h = height_in if height_in is not None else (0.75 * w if w < 5 else 0.45 * w)
    base = 10
    if not title:
        out.layout.title.text = None
    frame = fit_layout(out, Frame(round(w * CSS_DPI), round(h * CSS_DPI), left=44, right=10, top=6, bottom=42),
                       font_px=base - 1, title_font_px=base + 1, grow=height_in is None)
    out.update_layout(
        width=frame.width,
        height=frame.height,
        font={"family": FONT_FAMILY, "size": base, "color": "#000000"},
        # plotly puts a wrapped title's first baseline at the pad (one line gets dy = 0.7 em)
        title={"font": {"size": base + 1}, "x": 0, "xref": "container", "xanchor": "left",
               "y": 1, "yref": "container", "yanchor": "top",
               "pad": {"l": 4, "t": 4 + (round(0.8 * (base + 1)) if "<br>" in str(out.layout.title.text) else 0)}},
        legend={"font": {"size": base - 1}, "title": {"text": ""}, "itemwidth": 30, "tracegroupgap": 4,
                "bgcolor": "rgba(0,0,0,0)", "grouptitlefont": {"size": base - 1}},
        margin={"l": frame.left, "r": frame.right, "t": frame.top, "b": frame.bottom, "pad": 0},
        hovermode=False,
        updatemenus=[],
        sliders=[],
    )
    axis: dict[str, Any] = {"tickfont": {"size": base - 1}, "title": {"font": {"size": base}, "standoff": 4},
                            "automargin": True}
    if any(t.type == "heatmap" for t in out.data):
        axis["showgrid"] = False  # grid lines would cross the cells
    out.update_xaxes(**axis)
    out.update_yaxes(**axis)
    titles = subplot_titles(out)
    for ann in out.layout.annotations or ():
        ann.font = {"size": base - 1 if ann in titles else base, "family": FONT_FAMILY}
    _shrink_traces(out, base)
    return out


def find_chromium() -> str | None:
    """Path of the Chromium-based browser kaleido will drive, or None (see the module docstring)."""
    env = os.environ.get("BROWSER_PATH")
    if env:
        return env if os.access(env, os.X_OK) else None
    for exe in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        found = shutil.which(exe)
        if found:
            return found
    for typical in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/snap/bin/chromium"):
        if os.access(typical, os.X_OK):
            return typical
    try:  # a Chrome fetched by `kaleido_get_chrome` / `plotly_get_chrome`
        from choreographer.browsers.chromium import Chromium  # here: kaleido's dependency, optional like it

        return Chromium.find_browser(skip_local=False)
    except Exception:  # noqa: BLE001 - best effort; None gives the install message
        return None


NO_CHROMIUM = ("static export (PDF/SVG/PNG) needs Chromium, which kaleido drives headless, and none was "
               "found: install it (Debian/Ubuntu: `sudo apt-get install chromium`; `make test` does this), "
               "or set BROWSER_PATH to a Chrome/Chromium executable, or run `kaleido_get_chrome`")


class _Renderer:
    """One kaleido browser kept open in a background event loop (thread-safe, started lazily).

    kaleido's own sync server would do the same, but when the browser cannot start it
    leaves callers waiting forever; here a failed start raises at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._kaleido: Any = None
        self.path: str | None = None

    def _start(self) -> None:
        try:
            import kaleido  # imported here: optional, and only static export needs it
        except ImportError:
            raise ExportError("static export (PDF/SVG/PNG) needs kaleido 1.x: pip install 'kaleido>=1'") from None
        path = find_chromium()
        if path is None:
            raise ChromiumNotFoundError(NO_CHROMIUM)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="workbench-kaleido", daemon=True)
        thread.start()

        async def open_browser() -> Any:
            k = kaleido.Kaleido(n=1, timeout=120, mathjax=False, path=path)
            await k.open()
            return k

        try:
            self._kaleido = asyncio.run_coroutine_threadsafe(open_browser(), loop).result(timeout=120)
        except Exception as e:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            raise ChromiumNotFoundError(f"could not start {path} for static export: {e}. {NO_CHROMIUM}") from e
        self._loop, self._thread, self.path = loop, thread, path
        log.info("kaleido renders with %s", path)

    def render(self, fig_dict: dict[str, Any], opts: dict[str, Any]) -> bytes:
        with self._lock:
            for attempt in (1, 2):
                if self._kaleido is None or self._loop is None:
                    self._start()
                loop: Any = self._loop
                future = asyncio.run_coroutine_threadsafe(self._kaleido.calc_fig(fig_dict, opts=opts), loop)
                try:
                    return bytes(future.result(timeout=180))
                except Exception:
                    if attempt == 2:
                        raise
                    log.warning("rendering failed; restarting the browser once", exc_info=True)
                    self._close_locked()
            raise AssertionError("unreachable")

    def _close_locked(self) -> None:
        if self._kaleido is not None and self._loop is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._kaleido.close(), self._loop).result(timeout=30)
            except Exception:  # noqa: BLE001 - closing a dead browser
                log.debug("closing the browser failed", exc_info=True)
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
        self._kaleido = self._loop = self._thread = None

    def close(self) -> None:
        with self._lock:
            self._close_locked()


_RENDERER = _Renderer()
atexit.register(_RENDERER.close)


def render_image(fig: go.Figure, fmt: str, *, dpi: float = 300) -> bytes:
    """Static image bytes of a (paper-styled) figure.

    Args:
        fig: a figure with ``layout.width``/``height`` in CSS pixels (see :func:`paper_figure`).
        fmt: ``"pdf"``, ``"svg"`` or ``"png"``.
        dpi: PNG resolution; the PNG is ``width_px / 96 × dpi`` pixels wide. PDF and SVG
            keep the figure's size (1 CSS px = 0.75 pt).

    Raises:
        ChromiumNotFoundError: no browser to render with.
    """
    width, height = int(fig.layout.width), int(fig.layout.height)
    scale = dpi / CSS_DPI if fmt == "png" else 1.0
    return _RENDERER.render(fig.to_dict(), {"format": fmt, "width": width, "height": height, "scale": scale})


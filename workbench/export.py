"""Figures to PDF/SVG/PNG (and HTML), their data to CSV/Parquet, and a manifest that rebuilds both.

    paths = export_figure(fig, data, "out/", "retrieval", width_in="single", manifest=info)

writes ``retrieval.pdf``, ``.svg``, ``.png`` (``width_in × dpi`` pixels wide), ``.csv``,
``.parquet`` and ``retrieval.manifest.json``. The manifest holds the figure spec that
:func:`workbench.report.build_figure` takes, so ``workbench export --manifest
retrieval.manifest.json --out elsewhere/`` writes the same CSV (byte for byte) and the same
pictures again. Nothing is overwritten unless ``overwrite=True``; names typed by users go
through :func:`safe_name`.

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
import copy
import datetime as _dt
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shlex
import shutil
import threading
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from workbench.viz.theme import FONT_FAMILY, paper_layout
from workbench.errors import ChromiumNotFoundError, ExportError, OverwriteError

log = logging.getLogger(__name__)

__all__ = [
    "COLUMN_WIDTHS",
    "FORMATS",
    "MANIFEST_SUFFIX",
    "ChromiumNotFoundError",
    "ExportError",
    "OverwriteError",
    "export_figure",
    "find_chromium",
    "library_versions",
    "paper_figure",
    "read_manifest",
    "render_image",
    "safe_name",
    "target_paths",
]

FORMATS = ("pdf", "svg", "png", "html")
"""Figure formats :func:`export_figure` writes (``html`` is the interactive, self-contained page)."""
COLUMN_WIDTHS = {"single": 3.3, "double": 6.9}
"""Figure widths in inches: one column / the full width of a two-column paper."""
MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = 1
CSS_DPI = 96
"""Plotly sizes figures in CSS pixels, 96 per inch (so 1 px = 0.75 pt in a PDF)."""
_VERSIONED = ("workbench", "multilingual-workbench", "torch", "transformers", "nnsight", "plotly", "kaleido",
              "numpy", "pandas", "pyarrow", "scikit-learn")




# --------------------------------------------------------------------------- names and paths


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def safe_name(name: str, *, max_len: int = 100) -> str:
    """A file-name stem safe on every OS from a name a user typed.

    Keeps ASCII letters, digits, ``.``, ``_`` and ``-``; everything else (path separators,
    ``..``, spaces, control and non-ASCII characters) becomes ``_``; leading dots and
    dashes are dropped (no hidden files, no option-like names); a known figure suffix
    (``.pdf``, ``.png`` …) is dropped; Windows device names get a ``_`` suffix.

    Args:
        name: what the user typed, e.g. ``"../../etc/passwd"`` or ``"Fig 3: en→sw"``.
        max_len: longest stem kept.

    Returns:
        A non-empty stem such as ``"etc_passwd"`` or ``"Fig_3_en_sw"`` (``"figure"`` if
        nothing usable is left).
    """
    # Accents go (é -> e); any other non-ASCII character (→, CJK) becomes a separator.
    text = "".join(c if ord(c) < 128 else "" if unicodedata.category(c) == "Mn" else "_"
                   for c in unicodedata.normalize("NFKD", str(name)))
    text = _UNSAFE.sub("_", text)
    text = re.sub(r"\.{2,}", "_", text)  # no ".." anywhere
    text = re.sub(r"_+", "_", text).strip("._- ")
    for suffix in (*FORMATS, "csv", "parquet", "json", "manifest"):
        if text.lower().endswith("." + suffix):
            text = text[: -len(suffix) - 1].rstrip("._-")
    text = text[:max_len].rstrip("._-")
    if text.split(".")[0].lower() in _RESERVED:
        text += "_"
    return text or "figure"


def _check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    fmts = tuple(dict.fromkeys(str(f).lower().lstrip(".") for f in formats))
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise ExportError(f"unknown figure format(s) {bad or list(formats)}; choose from {list(FORMATS)}")
    return fmts


def target_paths(out_dir: str | Path, name: str, formats: Sequence[str] = ("pdf", "svg", "png"), *,
                 parquet: bool = True) -> dict[str, Path]:
    """Every file :func:`export_figure` would write, by kind (figure formats, csv, parquet, manifest)."""
    out = Path(out_dir)
    stem = safe_name(name)
    paths = {f: out / f"{stem}.{f}" for f in _check_formats(formats)}
    paths["csv"] = out / f"{stem}.csv"
    if parquet:
        paths["parquet"] = out / f"{stem}.parquet"
    paths["manifest"] = out / f"{stem}{MANIFEST_SUFFIX}"
    return paths


def _width_in(width_in: float | str) -> float:
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


# --------------------------------------------------------------------------- paper theme


def _shrink_traces(fig: go.Figure, base: int) -> None:
    """Marker, line and text sizes that suit a printed column."""
    for trace in fig.data:
        kind = trace.type
        if kind == "scatter":
            if trace.marker is not None and trace.marker.size is not None and not isinstance(trace.marker.size,
                                                                                              (list, tuple)):
                trace.marker.size = min(trace.marker.size, 4)
            if trace.line is not None and trace.line.width is not None:
                trace.line.width = min(trace.line.width, 2.0)
        elif kind == "heatmap":
            trace.update(textfont={"size": base - 1},
                         colorbar={"thickness": 10, "title": {"font": {"size": base}},
                                   "tickfont": {"size": base - 1}})


_ROW_PX = 19  # one legend row at 9 px text, in CSS px
_TITLE_PX = 20


def _legend_rows(fig: go.Figure, plot_px: float, font_px: int) -> int:
    """Rows a horizontal legend will take (plotly wraps entries to the plot width)."""
    entries = [t for t in fig.data if t.showlegend is not False and t.name]
    if not entries or fig.layout.showlegend is False:
        return 0
    groups: dict[str, int] = {}
    for t in entries:
        if t.legendgrouptitle is not None and t.legendgrouptitle.text:
            groups[t.legendgroup or ""] = groups.get(t.legendgroup or "", 0) + 1
    if groups:  # grouped entries sit in columns under their group titles
        return 1 + max(groups.values())
    rows, used = 1, 0.0
    for t in entries:
        width = 42 + 0.5 * font_px * len(str(t.name))
        if used and used + width > plot_px:
            rows, used = rows + 1, 0.0
        used += width
    return rows


def paper_figure(fig: go.Figure, width_in: float | str = 3.3, *, height_in: float | None = None,
                 title: bool = True) -> go.Figure:
    """A copy of ``fig`` styled for print: paper size, readable fonts, no UI chrome.

    Applies :func:`workbench.viz.theme.paper_layout` (the ``"workbench"`` template with its
    colour-blind-safe palette; language colours are already set by the builders), then
    uses 10 px text (7.5 pt in the PDF) with 9 px ticks and legend, puts the title and a
    horizontal legend in a band above the plot sized to fit them, shrinks subplot
    titles, markers and lines, drops menus and sliders, and turns hover off.

    Args:
        fig: the interactive figure (left unchanged).
        width_in: inches, or ``"single"`` (3.3) / ``"double"`` (6.9).
        height_in: inches; default ``0.75 ×`` width for one column, ``0.45 ×`` for wider.
        title: keep the figure title (papers often move it to the caption).

    Returns:
        The styled copy, sized in whole CSS pixels (96 per inch).
    """
    w = _width_in(width_in)
    out = go.Figure(fig)
    paper_layout(out, w)
    h = height_in if height_in is not None else (0.75 * w if w < 5 else 0.45 * w)
    base, left, right = 10, 44, 10
    width_px, height_px = round(w * CSS_DPI), round(h * CSS_DPI)
    title_text = out.layout.title.text if title else None
    title_px = _TITLE_PX if title_text else 4
    legend_px = _ROW_PX * _legend_rows(out, width_px - left - right, base - 1)
    subplot_titles = 16 if any(a.yref == "paper" and (a.y or 0) >= 1 for a in out.layout.annotations or ()) else 0
    out.update_layout(
        width=width_px,
        height=height_px,
        font={"family": FONT_FAMILY, "size": base, "color": "#000000"},
        title={"text": title_text, "font": {"size": base + 1}, "x": 0, "xref": "container", "xanchor": "left",
               "y": 1, "yref": "container", "yanchor": "top", "pad": {"l": 4, "t": 4}},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1 - title_px / height_px, "yref": "container",
                "yanchor": "top", "font": {"size": base - 1}, "title": {"text": ""}, "itemwidth": 30,
                "tracegroupgap": 4, "bgcolor": "rgba(0,0,0,0)",
                "grouptitlefont": {"size": base - 1}},
        margin={"l": left, "r": right, "t": title_px + legend_px + subplot_titles + 6, "b": 34, "pad": 0},
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
    for ann in out.layout.annotations or ():
        ann.font = {"size": base, "family": FONT_FAMILY}
    _shrink_traces(out, base)
    return out


# --------------------------------------------------------------------------- the browser


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
        from choreographer.browsers.chromium import Chromium

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
            import kaleido
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


# --------------------------------------------------------------------------- provenance


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape a figure's numbers and pixels."""
    import platform

    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in _VERSIONED:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    if out.get("multilingual-workbench"):
        out["workbench"] = out.pop("multilingual-workbench")
    else:
        out.pop("multilingual-workbench", None)
        from workbench import __version__

        out["workbench"] = __version__
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def csv_bytes(data: pd.DataFrame) -> bytes:
    """The CSV bytes :func:`export_figure` writes: UTF-8, no index, LF line ends, full float precision."""
    return data.to_csv(index=False, lineterminator="\n").encode("utf-8")


def _parquet_frame(data: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type per column: mixed ones (``"emb"``, 0, 1 …) become text."""
    out = data.copy()
    out.attrs = {}
    for col in out.columns:
        if out[col].dtype == object:
            kinds = {type(v) for v in out[col].dropna()}
            if len(kinds) > 1:
                out[col] = out[col].map(lambda v: None if v is None else str(v))
    out.columns = [str(c) for c in out.columns]
    return out


def _parquet_bytes(data: pd.DataFrame) -> bytes:
    import io

    buf = io.BytesIO()
    _parquet_frame(data).to_parquet(buf, index=False)
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _jsonable(obj: Any) -> Any:
    """Plain-JSON copy (tuples to lists, numpy scalars to Python)."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _manifest(manifest: dict[str, Any] | None, paths: dict[str, Path], export: dict[str, Any],
              data_sha: str) -> dict[str, Any]:
    out = _jsonable(copy.deepcopy(manifest or {}))
    mpath = paths["manifest"].resolve()
    commands = dict(out.get("commands") or {})
    if out.get("spec"):
        commands["regenerate"] = shlex.join(["workbench", "export", "--manifest", str(mpath), "--overwrite"])
        commands["regenerate_elsewhere"] = shlex.join(["workbench", "export", "--manifest", str(mpath),
                                                       "--out", "DIR"])
    else:
        commands.setdefault("regenerate", None)
    out.update(
        format="workbench-figure-manifest",
        format_version=MANIFEST_FORMAT,
        name=paths["manifest"].name[: -len(MANIFEST_SUFFIX)],
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        export=export,
        files={k: p.name for k, p in paths.items() if k != "manifest"},
        data_sha256=data_sha,
        versions=library_versions(),
        commands=commands,
    )
    return out


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check a figure manifest written by :func:`export_figure`.

    Raises:
        ExportError: not a figure manifest, or one without the spec to rebuild the figure.
        FileNotFoundError: no such file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no manifest at {p}")
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ExportError(f"{p} is not valid JSON: {e}") from None
    if not isinstance(m, dict) or m.get("format") != "workbench-figure-manifest":
        raise ExportError(f"{p} is not a workbench figure manifest (no format 'workbench-figure-manifest')")
    if int(m.get("format_version", 0)) > MANIFEST_FORMAT:
        raise ExportError(f"{p} has manifest format {m.get('format_version')}; this workbench reads "
                          f"up to {MANIFEST_FORMAT}")
    if not m.get("spec"):
        raise ExportError(f"{p} has no figure spec, so it cannot be regenerated")
    return m


# --------------------------------------------------------------------------- export


def export_figure(fig: go.Figure, data: pd.DataFrame, out_dir: str | Path, name: str, *,
                  formats: Sequence[str] = ("pdf", "svg", "png"), width_in: float | str = 3.3,
                  height_in: float | None = None, dpi: int = 300, manifest: dict[str, Any] | None = None,
                  overwrite: bool = False, parquet: bool = True, title: bool = True) -> list[Path]:
    """Write a figure in print formats, its data and a manifest; return the paths written.

    Args:
        fig: the (interactive) figure; a paper-styled copy is rendered (:func:`paper_figure`).
        data: the table the figure shows (written as ``<name>.csv`` and ``<name>.parquet``).
        out_dir: folder, created if needed.
        name: file stem; sanitised with :func:`safe_name`.
        formats: any of ``pdf``, ``svg``, ``png``, ``html``.
        width_in: inches, or ``"single"`` (3.3) / ``"double"`` (6.9).
        height_in: inches (default from :func:`paper_figure`).
        dpi: PNG resolution; the PNG is ``round(width_in × dpi)`` pixels wide.
        manifest: provenance to record (e.g. the ``info`` of
            :func:`workbench.report.build_figure`: spec, model, corpus, parameters);
            versions, time, files and commands are added.
        overwrite: replace existing files; without it an existing file raises.
        parquet: also write Parquet.
        title: keep the figure title in the static formats.

    Returns:
        Paths written: figures in ``formats`` order, CSV, Parquet, manifest.

    Raises:
        OverwriteError: a target exists and ``overwrite`` is False (nothing is written).
        ChromiumNotFoundError: a static format was asked for and no browser was found.
        ExportError: unknown format, bad width or dpi.
    """
    fmts = _check_formats(formats)
    w = _width_in(width_in)
    if not 50 <= int(dpi) <= 2400:
        raise ExportError(f"dpi must be between 50 and 2400, got {dpi}")
    paths = target_paths(out_dir, name, fmts, parquet=parquet)
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise OverwriteError(f"{existing[0]} exists" + (f" (and {len(existing) - 1} more)" if len(existing) > 1
                             else "") + "; pass overwrite=True (CLI: --overwrite) or choose another name or --out")
    # Size in whole CSS pixels with the PNG scale chosen so that PNG width = width_in × dpi exactly.
    paper = paper_figure(fig, w, height_in=height_in, title=title)
    blobs: dict[str, bytes] = {}
    for fmt in fmts:
        if fmt == "html":
            blobs[fmt] = fig.to_html(include_plotlyjs=True, full_html=True).encode("utf-8")
        else:
            blobs[fmt] = render_image(paper, fmt, dpi=round(w * dpi) / paper.layout.width * CSS_DPI)
    blobs["csv"] = csv_bytes(data)
    if parquet:
        blobs["parquet"] = _parquet_bytes(data)
    png_scale = round(w * dpi) / paper.layout.width
    export = {"formats": list(fmts), "width_in": w, "height_in": round(paper.layout.height / CSS_DPI, 4),
              "dpi": int(dpi), "title": title,
              "png_px": [round(paper.layout.width * png_scale), round(paper.layout.height * png_scale)]}
    doc = _manifest(manifest, paths, export, _sha256(blobs["csv"]))
    blobs["manifest"] = (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for kind, path in paths.items():
        _write_atomic(path, blobs[kind])
        written.append(path)
    log.info("wrote %s", ", ".join(p.name for p in written))
    return written

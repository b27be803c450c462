"""Export files: safe names, target paths, CSV/Parquet bytes, atomic writes, :func:`export_figure`.

    paths = export_figure(fig, data, "out/", "retrieval", width_in="single", manifest=info)

writes ``retrieval.pdf``, ``.svg``, ``.png`` (``width_in × dpi`` pixels wide), ``.csv``,
``.parquet`` and ``retrieval.manifest.json``, all or nothing (`fileio.atomic_write_files`).
Nothing is overwritten unless ``overwrite=True``; names typed by users go through
:func:`safe_name`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from workbench.errors import OUTPUT_REMEDY, ExportError, OverwriteError
from workbench.export import render  # the module, so a test's stub of `render.render_image` takes effect here
from workbench.export.manifest import MANIFEST_SUFFIX, build_manifest
from workbench.fileio import atomic_write_files

log = logging.getLogger(__name__)

__all__ = ["FORMATS", "csv_bytes", "export_figure", "safe_name", "target_paths"]

FORMATS = ("pdf", "svg", "png", "html")
"""Figure formats :func:`export_figure` writes (``html`` is the interactive, self-contained page)."""


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
    buf = io.BytesIO()
    _parquet_frame(data).to_parquet(buf, index=False)
    return buf.getvalue()



def export_figure(fig: go.Figure, data: pd.DataFrame, out_dir: str | Path, name: str, *,
                  formats: Sequence[str] = ("pdf", "svg", "png"), width_in: float | str = 3.3,
                  height_in: float | None = None, dpi: int = 300, manifest: dict[str, Any] | None = None,
                  overwrite: bool = False, parquet: bool = True, title: bool = True,
                  portable: bool = False) -> list[Path]:
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
            :func:`workbench.recipes.build_figure`: spec, model, corpus, parameters);
            versions, time, files and commands are added.
        overwrite: replace existing files; without it an existing file raises.
        parquet: also write Parquet.
        title: keep the figure title in the static formats.
        portable: the manifest's commands name it relative to its folder (for a zip).

    Returns:
        Paths written: figures in ``formats`` order, CSV, Parquet, manifest.

    Raises:
        OverwriteError: a target exists and ``overwrite`` is False (nothing is written).
        ChromiumNotFoundError: a static format was asked for and no browser was found.
        ExportError: unknown format, bad width or dpi.
        WriteError: the files cannot be written (read-only, no space, a file in the way);
            none of them is (all or nothing).
    """
    fmts = _check_formats(formats)
    w = render.width_inches(width_in)
    if not 50 <= int(dpi) <= 2400:
        raise ExportError(f"dpi must be between 50 and 2400, got {dpi}")
    paths = target_paths(out_dir, name, fmts, parquet=parquet)
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise OverwriteError(f"{existing[0]} exists" + (f" (and {len(existing) - 1} more)" if len(existing) > 1
                             else "") + "; pass overwrite=True (CLI: --overwrite) or choose another name or --out")
    # Size in whole CSS pixels with the PNG scale chosen so that PNG width = width_in × dpi exactly.
    paper = render.paper_figure(fig, w, height_in=height_in, title=title)
    blobs: dict[str, bytes] = {}
    for fmt in fmts:
        if fmt == "html":
            blobs[fmt] = fig.to_html(include_plotlyjs=True, full_html=True).encode("utf-8")
        else:
            png_dpi = round(w * dpi) / paper.layout.width * render.CSS_DPI
            blobs[fmt] = render.render_image(paper, fmt, dpi=png_dpi)
    blobs["csv"] = csv_bytes(data)
    if parquet:
        blobs["parquet"] = _parquet_bytes(data)
    png_scale = round(w * dpi) / paper.layout.width
    export = {"formats": list(fmts), "width_in": w, "height_in": round(paper.layout.height / render.CSS_DPI, 4),
              "dpi": int(dpi), "title": title,
              "png_px": [round(paper.layout.width * png_scale), round(paper.layout.height * png_scale)]}
    doc = build_manifest(manifest, paths, export, _sha256(blobs["csv"]), portable=portable)
    blobs["manifest"] = (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    written = atomic_write_files({path: blobs[kind] for kind, path in paths.items()}, OUTPUT_REMEDY)
    log.info("wrote %s", ", ".join(p.name for p in written))
    return written


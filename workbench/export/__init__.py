"""Figures to PDF/SVG/PNG (and HTML), their data to CSV/Parquet, and a manifest that rebuilds both.

    paths = export_figure(fig, data, "out/", "retrieval", width_in="single", manifest=info)

writes ``retrieval.pdf``, ``.svg``, ``.png`` (``width_in × dpi`` pixels wide), ``.csv``,
``.parquet`` and ``retrieval.manifest.json``. The manifest holds the figure spec that
:func:`workbench.recipes.build_figure` takes, so ``workbench export --manifest
retrieval.manifest.json --out elsewhere/`` writes the same CSV (byte for byte) and the same
pictures again. Nothing is overwritten unless ``overwrite=True``; names typed by users go
through :func:`safe_name`.

One job per module (imports go down this list only):

- `render`: paper sizes and styling (:func:`paper_figure`), the kaleido/Chromium renderer
  (:func:`find_chromium`, :func:`render_image`).
- `manifest`: the one manifest builder, :func:`read_manifest`, :func:`library_versions`.
- `files`: :func:`safe_name`, :func:`target_paths`, CSV/Parquet bytes, atomic writes,
  :func:`export_figure`.

To stub rendering in a test, patch ``workbench.export.render.render_image`` (where
:func:`export_figure` looks it up), not this package's re-exported name.
"""

from workbench.errors import ChromiumNotFoundError, ExportError, OverwriteError
from workbench.export.files import FORMATS, csv_bytes, export_figure, safe_name, target_paths
from workbench.export.manifest import MANIFEST_FORMAT, MANIFEST_SUFFIX, build_manifest, library_versions, read_manifest
from workbench.export.render import COLUMN_WIDTHS, CSS_DPI, NO_CHROMIUM, find_chromium, paper_figure, render_image

__all__ = [
    "COLUMN_WIDTHS",
    "CSS_DPI",
    "FORMATS",
    "MANIFEST_FORMAT",
    "MANIFEST_SUFFIX",
    "NO_CHROMIUM",
    "ChromiumNotFoundError",
    "ExportError",
    "OverwriteError",
    "build_manifest",
    "csv_bytes",
    "export_figure",
    "find_chromium",
    "library_versions",
    "paper_figure",
    "read_manifest",
    "render_image",
    "safe_name",
    "target_paths",
]

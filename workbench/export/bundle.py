"""A figure the UI shows, exported as one zip: paper figure, data and manifest.

The UI's export popover calls `export_zip`; its manifest holds the same provenance as a
CLI export (`recipes.provenance` over the recordings `recipes.needs` names, looked up in
the store, never recorded again), so `workbench export --manifest` rebuilds it.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from workbench.export.files import export_figure, safe_name
from workbench.models import TINY_DEFAULT, is_tiny
from workbench.recipes import analyze_command, normalize_spec
from workbench.recipes.build import provenance, stored_recordings

FORMATS = ("pdf", "svg", "png")
UI_SOURCE = "workbench UI (Streamlit)"
TINY_NOTE = (f"made with a tiny random-init test model ({TINY_DEFAULT!r}), which exists only to test the "
             "workbench: the manifest records it, but no command regenerates it")


def export_table(data: pd.DataFrame | None, index: bool = False) -> pd.DataFrame:
    """The table written as CSV/Parquet: the index (when the page shows it) as the first column, text headers."""
    if data is None:
        return pd.DataFrame()
    out = data.reset_index() if index else data.copy()
    out.columns = [str(c) for c in out.columns]
    return out


def export_manifest(spec: Mapping[str, Any] | None, *, figure: str) -> dict[str, Any]:
    """Provenance of a UI figure for `export_figure`'s manifest, as `recipes.build_figure` gives it.

    Figures of a tiny test model, or without a spec, are marked ``regenerable: false`` with
    the reason.

    Raises:
        ExportError: a bad spec, or its recording is not in the store.
    """
    source = {"exported_from": UI_SOURCE, "ui_figure": figure}
    if spec is None:
        return {**source, "regenerable": False,
                "not_regenerable": "this view gave no figure spec, so no command can rebuild it"}
    canon = normalize_spec(spec)
    info = {"analysis": canon["analysis"], "params": dict(canon["params"]), "spec": canon,
            **provenance(canon, stored_recordings(canon)),
            "commands": {"analyze": analyze_command(canon)}, **source, "regenerable": True}
    if is_tiny(canon["model"]["source"]):
        info["ui_spec"] = info.pop("spec")  # no "spec": `workbench export --manifest` refuses it clearly
        info["commands"]["analyze"] = None
        info.update(regenerable=False, not_regenerable=TINY_NOTE)
    return info


def export_zip(fig: go.Figure, data: pd.DataFrame | None, name: str, *, spec: Mapping[str, Any] | None = None,
               formats: Sequence[str] = FORMATS, width: str | float = "single", dpi: int = 300,
               index: bool = False) -> bytes:
    """A zip of the paper figure, its data and manifest, flat (``<name>.pdf``, ``.csv``, ...).

    Written into a fresh temporary folder, so nothing existing is overwritten.

    Raises:
        ExportError: bad spec or options, or the recording is gone; ChromiumNotFoundError: no
            browser to render PDF/SVG/PNG.
    """
    stem = safe_name(name)
    if spec is not None and not spec.get("title") and fig.layout.title.text:
        spec = {**spec, "title": fig.layout.title.text}  # so the regenerated figure has the same title
    info = export_manifest(spec, figure=name)
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="workbench-export-") as tmp:
        paths = export_figure(fig, export_table(data, index), tmp, stem, formats=formats, width_in=width, dpi=dpi,
                              manifest=info, portable=True)
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for p in paths:
                zf.write(p, arcname=p.name)
    return buf.getvalue()

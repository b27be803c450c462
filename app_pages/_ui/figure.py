"""A figure on a page: the chart, HTML/CSV downloads and the paper Export popover."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from workbench import export as wb_export
from workbench.errors import user_message
from workbench.export.bundle import export_table, export_zip
from workbench.models import is_tiny

log = logging.getLogger("workbench.app")

EXPORT_FORMATS = ("pdf", "svg", "png")
EXPORT_WIDTHS = {"single": "Single column (3.3 in)", "double": "Double column (6.9 in)"}
EXPORT_DPIS = (150, 300, 600)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "figure"


def show_figure(fig: go.Figure, name: str, data: pd.DataFrame | None = None, *, height: int | None = None,
                index: bool = False, spec: Mapping[str, Any] | None = None) -> None:
    """Render a figure with downloads: the figure (HTML), its numbers (CSV) and a paper export.

    Args:
        fig: the figure; the export renders this same object in the paper theme.
        name: figure name (widget keys and file names).
        data: the table behind the figure.
        height: on-screen height in px.
        index: `data`'s index is part of the table (it becomes the first CSV column).
        spec: the figure spec (`workbench.report` format, see `figure_spec`) that rebuilds this
            figure from the page's current choices; it goes into the export's manifest.
    """
    if height:
        fig.update_layout(height=height)
    # Let plotly grow the margins for long tick labels (small scores like 0.0035).
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    slug = _slug(name)
    st.plotly_chart(fig, theme=None, key=f"fig-{slug}",
                    config={"displaylogo": False, "toImageButtonOptions": {"filename": slug, "scale": 2}})
    row = st.container(horizontal=True, gap="small")
    row.download_button("Figure (HTML)", fig.to_html(include_plotlyjs="cdn"), file_name=f"{slug}.html",
                        mime="text/html", on_click="ignore", icon=":material/download:", key=f"dl-{slug}",
                        help="Interactive figure as a standalone HTML file.")
    if data is not None:
        # The same bytes as the export's CSV (and `workbench export`'s), so the two downloads agree.
        row.download_button("Data (CSV)", wb_export.csv_bytes(export_table(data, index)), file_name=f"{slug}.csv",
                            mime="text/csv", on_click="ignore", icon=":material/table:", key=f"csv-{slug}",
                            help="The numbers behind the figure.")
    with row.popover("Export", icon=":material/ios_share:", key=f"exp-{slug}",
                     help="Paper figure (PDF, SVG, PNG at column width), its data (CSV, Parquet) and a "
                          "manifest with the command that regenerates them."):
        _export_panel(fig, name, data, spec=spec, index=index)


def export_state_key(name: str) -> str:
    """Session-state key of a figure's prepared export: {"token", "file_name", "data"}."""
    return f"exp-zip-{_slug(name)}"


def _export_token(fig: go.Figure, spec: Mapping[str, Any] | None, options: dict[str, Any]) -> str:
    """Identity of what an export would contain: a prepared zip is offered only while it matches."""
    h = hashlib.sha256(fig.to_json().encode("utf-8"))
    h.update(json.dumps([spec, options], sort_keys=True, default=str).encode("utf-8"))
    return h.hexdigest()


def _export_panel(fig: go.Figure, name: str, data: pd.DataFrame | None, *, spec: Mapping[str, Any] | None,
                  index: bool) -> None:
    """The Export popover's content: options, "Prepare export", then one zip download."""
    slug = _slug(name)
    formats = st.multiselect("Formats", list(EXPORT_FORMATS), default=list(EXPORT_FORMATS), key=f"exp-fmt-{slug}")
    width = st.radio("Width", list(EXPORT_WIDTHS), format_func=EXPORT_WIDTHS.__getitem__, key=f"exp-width-{slug}")
    dpi = st.selectbox("PNG resolution", EXPORT_DPIS, index=EXPORT_DPIS.index(300), key=f"exp-dpi-{slug}",
                       format_func=lambda d: f"{d} dpi")
    st.caption("Paper theme, with the data as CSV and Parquet and a manifest (model fingerprint, corpus "
               "hash, languages, parameters, versions, the `workbench export --manifest …` command).")
    model = (spec or {}).get("model")
    if is_tiny(str(model if isinstance(model, str) else (model or {}).get("source", ""))):
        st.caption("Tiny test model: the manifest records everything, but the CLI cannot regenerate it.")
    options = {"formats": formats, "width": width, "dpi": dpi, "index": index}
    token = _export_token(fig, spec, options)
    key = export_state_key(name)
    file_name = f"{wb_export.safe_name(name)}.zip"
    if st.button("Prepare export", key=f"exp-go-{slug}", icon=":material/picture_as_pdf:", disabled=not formats,
                 help="Render the files (a few seconds) and offer them as one zip."):
        try:
            with st.spinner("Rendering the paper figure…", show_time=True):
                blob = export_zip(fig, data, name, spec=spec, formats=formats, width=width, dpi=dpi, index=index)
        except Exception as e:  # noqa: BLE001 - shown to the user; the traceback goes to the log
            log.warning("export of %s failed", name, exc_info=True)
            st.error(f"Could not export this figure: {user_message(e)} The HTML and CSV downloads above "
                     "still work.", icon=":material/error:")
        else:
            st.session_state[key] = {"token": token, "file_name": file_name, "data": blob}
    prepared = st.session_state.get(key)
    if prepared is not None and prepared["token"] == token:  # stale once the figure or options change
        st.download_button(f"Download {file_name}", prepared["data"], file_name=file_name, mime="application/zip",
                           on_click="ignore", type="primary", icon=":material/download:", key=f"exp-dl-{slug}")
    elif not formats:
        st.caption("Choose at least one format.")

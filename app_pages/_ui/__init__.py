"""Shared Streamlit pieces of the pages (not a page itself: app.py lists only the view files).

- `state`: the Setup choices (session and URL), figure specs, error guard, small helpers;
- `views`: a view = `recipes.build` of its figure spec from the store, cached;
- `recording`: empty states with a Record button, live progress of background recordings;
- `figure`: charts with HTML/CSV downloads and the paper Export popover.

Computation lives in `workbench`; this package only wires widgets to it.
"""

from __future__ import annotations

import streamlit as st

from app_pages._ui.figure import export_state_key, export_zip, show_figure
from app_pages._ui.recording import (
    estimate_text,
    finished_recording,
    job_panel,
    layer_options,
    model_check,
    ndif_problems,
    record_button,
    recording_plan,
    require_recording,
    sidebar_jobs,
)
from app_pages._ui.state import (
    PAGES,
    URL_WARNINGS,
    corpus_of,
    data_key,
    default_pair,
    figure_spec,
    get_settings,
    guard,
    language_label,
    save_settings,
    settings_line,
    sync_url,
)
from app_pages._ui.views import needs_of, view
from app_pages._ui.widgets import field_widget, widget_fields
from workbench.recipes.settings import Settings

__all__ = ["PAGES", "corpus_of", "data_key", "default_pair", "export_state_key", "export_zip", "field_widget",
           "estimate_text", "figure_spec", "finished_recording",
           "get_settings", "guard", "job_panel", "language_label", "layer_options", "model_check", "ndif_problems",
           "needs_of", "page_header", "record_button", "recording_plan", "require_recording", "save_settings",
           "show_figure", "view", "widget_fields"]


def page_header(title: str, caption: str, *, show_settings: bool = True) -> Settings:
    """Title, a one-line explanation, the current choice (also written into the URL), the sidebar jobs."""
    s = get_settings()
    sync_url(s)
    st.title(title)
    st.caption(caption)
    for line in st.session_state.pop(URL_WARNINGS, []):
        st.warning(f"The link's {line} could not be used and was dropped; its other choices are kept.",
                   icon=":material/link_off:")
    if show_settings:
        cols = st.columns([6, 1], vertical_alignment="center")
        cols[0].markdown(settings_line(s))
        cols[1].page_link(PAGES["setup"], label="Change", icon=":material/tune:")
    sidebar_jobs()
    return s

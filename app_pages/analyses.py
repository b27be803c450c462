"""Every analysis: any registered analysis of the Setup's recording, its parameters as widgets, with Export.

The list and the widgets come from the analysis registry (`workbench.recipes.registry`:
one widget per field of the analysis's `Params`), so an analysis registered anywhere
appears here without editing this page. The view is built from the store; what the store
lacks is offered as a Record button (nothing records as a side effect of drawing).
"""

from __future__ import annotations

import logging

import streamlit as st

from app_pages import _ui as ui_st
from app_pages._ui.lens import require_lens
from workbench import recordings
from workbench.errors import user_message
from workbench.recipes.registry import REGISTRY, get_analysis

log = logging.getLogger("workbench.app")

PERSIST = "session"
# Forms that need inputs this page has no widgets for: two states (the Compare page), N states' outcomes.
SKIP = {"eval_scores"}
WORKER_VIEWS = {"deactivation", "steering"}  # listed here, built on the Intervene page (workbench.recipes.jobs)

s = ui_st.page_header(
    "Every analysis",
    "Any registered analysis of the Setup's recording, with every parameter it takes. The curated pages show "
    "the usual views; this one shows them all, including analyses added by a plug-in.",
)
names = [n for n, a in REGISTRY.items() if a.base is None and n not in SKIP]
name = st.selectbox("Analysis", names, key="an_analysis", bind="query-params", persist_state=PERSIST,
                    format_func=lambda n: f"{n}: {REGISTRY[n].help}")
analysis = get_analysis(name)
if name in WORKER_VIEWS:  # they evaluate intervened states: the model worker computes them, never this page
    st.info(f"**{name}** evaluates intervened model states; it is computed in the model worker on the Intervene "
            "page (with its parameters and Export).", icon=":material/science:")
    st.page_link("app_pages/intervene.py", label="Intervene", icon=":material/science:")
    st.stop()
helps = analysis.params.help()
params = {}
with st.expander("Parameters", expanded=True):
    fields = ui_st.widget_fields(analysis.params)
    cols = st.columns(4)
    for i, f in enumerate(fields):
        params[f.name] = ui_st.field_widget(f"an_{name}", f, helps[f.name], cols[i % 4], persist=PERSIST)

with ui_st.guard(name):
    spec = ui_st.figure_spec(s, name, params)
    try:
        missing = [n for n in ui_st.needs_of(spec) if recordings.store_status(
            n.model, n.corpus, n.record, n.pairs, remote=n.remote).recording is None]
    except Exception as e:  # noqa: BLE001 - bad parameters, unknown language: the user's to fix
        log.info("analysis %s rejected", name, exc_info=True)
        st.error(f"**These parameters cannot be used:** {user_message(e)}", icon=":material/error:")
        st.stop()
    if missing:
        st.info(f"This view reads {len(missing)} recording(s) that the store does not have yet.",
                icon=":material/info:")
        for n in missing:
            ui_st.record_button(n.model, n.corpus, n.record, list(n.pairs) if n.pairs else None,
                                f"Record {', '.join(n.corpus.langs)} ({n.role})", remote=n.remote)
        st.stop()
    if not require_lens(spec, f"The {name} view"):  # a lens view: its readouts, or their Record buttons
        st.stop()
    fig, table, _, _ = ui_st.view(spec)
    ui_st.show_figure(fig, name, table, height=460, spec=spec)

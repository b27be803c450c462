"""Intervene: switch a language's neurons off, steer with a language vector, remove a language subspace.

Preview: pick a kind and its source (languages, layers, strength) and see a handful of
held-out continuations before and after within seconds (the warm model worker's quick
lane: the intervention is resolved from the Setup's recording, the base stays loaded, the
intervened state is a hooked copy sharing its weights). "Keep for Compare" lists the state
on the Compare page (Scores and Outputs with it as a column). The experiments — the
deactivation matrix, the steering curve, cross-lingual patching — are registered views:
the worker builds them (evaluating what the store lacks), the page draws them with Export.
"""

from __future__ import annotations

import logging

import pandas as pd
import streamlit as st

from app_pages import _ui as ui_st
from app_pages._ui.recording import job_panel
from workbench.config import ModelSpec
from workbench.errors import user_message
from workbench.interventions import saved
from workbench.interventions.jobs import preview_args, preview_key
from workbench.jobs.warm import WARM
from workbench.recipes.jobs import view_from_result, view_key
from workbench.recipes.registry import get_analysis
from workbench.recipes.settings import Settings

log = logging.getLogger("workbench.app")

PERSIST = "session"
Q = "query-params"
KINDS = {"neurons": "Language neurons (LAPE)", "vector": "Language vector", "subspace": "Language subspace (LENS)"}
VIEWS = {"Preview": None, "Deactivation matrix": "deactivation", "Steering curve": "steering",
         "Patching": "patching"}
VIEW_HELP = {
    "deactivation": "Perplexity change when each language's LAPE neurons are off (rows) on each language's held-out "
                    "text (columns), with 95% bootstrap intervals, a random-neuron control row of the same size and "
                    "the generation language shift (Tang et al. 2024).",
    "steering": "Output-language fidelity and chrF++ of held-out translation prompts as a function of the language "
                "vector's strength α: where the language switches, and what it costs.",
    "patching": "The last-token state of a prompt in one language patched into the run of the parallel prompt in "
                "another at each layer: P(concept in the target language), P(target answer), P(source answer) "
                "(Dumas et al. 2024).",
}


def _layers(col) -> str:
    text = col.text_input("Layers", "", key="iv_layers", bind=Q, placeholder="all",
                          help="Blocks to act on: 6-12, 3+5+7, or empty for all.")
    return f",layers={text.strip()}" if text.strip() else ""


def request(langs: list[str]) -> tuple[str, str, str]:
    """The widgets of one intervention → (its `--intervention` text, the preview prompts' language, a label)."""
    kind = st.radio("Kind", list(KINDS), format_func=KINDS.__getitem__, key="iv_kind", horizontal=True, bind=Q)
    c = st.columns(4)
    if kind == "neurons":
        lang = c[0].selectbox("Language of the neurons", langs, index=len(langs) - 1, key="iv_lang", bind=Q)
        mode = c[1].selectbox("Set them to", ["zero", "mean", "scale"], key="iv_mode", bind=Q,
                              help="zero (Tang et al.), the language's mean activation, or scaled by a factor.")
        extra = ""
        if mode == "scale":
            extra = f",factor={c[2].number_input('Factor', value=0.0, step=0.5, key='iv_factor', bind=Q):g}"
        return f"neurons:lang={lang},mode={mode}{extra}{_layers(c[3])}", lang, f"{lang} neurons {mode}"
    if kind == "vector":
        src = c[0].selectbox("From (subtract)", langs, index=0, key="iv_src", bind=Q)
        tgt = c[1].selectbox("To (add)", langs, index=len(langs) - 1, key="iv_tgt", bind=Q)
        alpha = c[2].number_input("Strength α", 0.0, 64.0, 4.0, 0.5, key="iv_alpha", bind=Q,
                                  help="h ← h − α·v_from + α·v_to at the chosen layers (0: the base).")
        layers = _layers(c[3])
        norm = st.checkbox("Restore the norm of h", value=False, key="iv_norm", bind=Q)
        text = f"vector:src={src},tgt={tgt},alpha={alpha:g},norm={str(norm).lower()}{layers}"
        return text, src, f"vector {src}→{tgt} α={alpha:g}"
    lang = c[0].selectbox("Language", langs, index=len(langs) - 1, key="iv_sub_lang", bind=Q)
    mode = c[1].selectbox("Action", ["remove", "swap"], key="iv_sub_mode", bind=Q,
                          help="remove its language-specific component, or swap it for another language's")
    tgt = c[2].selectbox("Swap to", langs, key="iv_sub_tgt", bind=Q) if mode == "swap" else None
    text = f"subspace:lang={lang},mode={mode}" + (f",tgt={tgt}" if tgt else "") + _layers(c[3])
    return text, lang, f"subspace {lang} {mode}" + (f"→{tgt}" if tgt else "")


def preview(s: Settings) -> None:
    """Generations before and after the chosen intervention, from the warm worker's quick lane."""
    langs = list(s.corpus.langs)
    text, lang, label = request(langs)
    st.caption(f"The same state from the command line: `--intervention {text}` (record, analyze, eval, compare, "
               "export). Its neurons or vectors come from the Setup's recording (recorded first if the store "
               "lacks it).")
    with ui_st.guard("the preview"):
        args = preview_args(s.model, s.corpus, s.record_spec(), [text], lang)
        key = preview_key(args)
        job = WARM.get(key)
        snap = job.snapshot() if job is not None else None
        if snap is None or not snap.running:
            if st.button("Preview", type="primary", icon=":material/visibility:", key=f"iv-prev-{key}",
                         help="Five held-out sentence starts in the chosen language, 32 new tokens each."):
                WARM.submit(key, f"Intervention preview · {label}", "intervene_preview", args, rerun_done=True,
                            lane="quick")
                st.rerun()
        snap = job_panel(key)
        if snap is None or snap.state != "done" or not snap.result:
            return
        rows = pd.DataFrame(snap.result["rows"])
        st.dataframe(rows, hide_index=True, column_config={
            "prompt": st.column_config.TextColumn("prompt", width="small"),
            "before_lang": st.column_config.TextColumn("language before"),
            "after_lang": st.column_config.TextColumn("language after")})
        if "after_lang" in rows:
            moved = int((rows["before_lang"] != rows["after_lang"]).sum())
            st.caption(f"{moved} of {len(rows)} continuations changed language (py3langid over the Setup's languages).")
        model = ModelSpec.from_dict(snap.result["model"])
        if st.button("Keep for Compare", icon=":material/compare_arrows:", key=f"iv-keep-{key}",
                     help="List this intervened state on the Compare page (Scores, Outputs)."):
            entry = saved.keep_state(label, model, langs)
            st.success(f"Kept as **{entry['label']}**: pick it on the Compare page.", icon=":material/check:")


def experiment(s: Settings, name: str) -> None:
    """One intervention experiment: its parameters as widgets, built in the worker, drawn here with Export."""
    analysis = get_analysis(name)
    st.caption(VIEW_HELP[name])
    helps = analysis.params.help()
    params = {}
    with ui_st.guard(name):
        try:
            with st.expander("Parameters", expanded=False):
                cols = st.columns(4)
                for i, f in enumerate(ui_st.widget_fields(analysis.params)):
                    params[f.name] = ui_st.field_widget(f"iv_{name}", f, helps[f.name], cols[i % 4], persist=PERSIST)
            spec = ui_st.figure_spec(s, name, params)
            key = view_key(spec)
        except Exception as e:  # noqa: BLE001 - bad parameters, unknown language: the user's to fix
            log.info("experiment %s rejected", name, exc_info=True)
            st.error(f"**These parameters cannot be used:** {user_message(e)}", icon=":material/error:")
            return
        job = WARM.get(key)
        snap = job.snapshot() if job is not None else None
        if snap is None or not snap.running:
            if snap is None or snap.state != "done":
                st.info("Not computed yet. It runs in the model worker (every step stored: a second run, or the "
                        "CLI's `workbench analyze " + name + "`, reuses it); leave the page and come back.",
                        icon=":material/info:")
            if st.button("Compute" if snap is None or snap.state != "done" else "Compute again",
                         type="primary" if snap is None else "secondary", icon=":material/play_arrow:",
                         key=f"iv-run-{key}"):
                WARM.submit(key, f"{name} · {s.model.source}", "view", {"spec": spec}, rerun_done=True)
                st.rerun()
        snap = job_panel(key)
        if snap is None or snap.state != "done" or not snap.result:
            return
        fig, table, _ = view_from_result(snap.result)
        ui_st.show_figure(fig, name, table, height=480, spec=spec)
        st.dataframe(table, hide_index=True)  # the numbers behind the figure, intervals and n included


s = ui_st.page_header(
    "Intervene",
    "Cause, not only correlate: switch a language's neurons off, steer with a language vector, remove a language "
    "subspace — see outputs before and after, then the experiments with intervals.",
)
if len(s.corpus.langs) < 2:
    st.info("Choose at least two languages on the Setup page.", icon=":material/info:")
    st.stop()
view_name = st.radio("View", list(VIEWS), key="iv_view", horizontal=True, bind=Q, label_visibility="collapsed")
if VIEWS[view_name] is None:
    preview(s)
else:
    experiment(s, str(VIEWS[view_name]))

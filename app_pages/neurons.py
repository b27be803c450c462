"""Neurons: overlap curves of several languages and language-specific (LAPE) neuron counts."""

from __future__ import annotations

import streamlit as st

from app_pages import _ui as ui_st

PERSIST = "session"

s = ui_st.page_header(
    "Neurons",
    "Which FFN neurons fire for which language: overlap of each language's most active neurons with a "
    "pivot, and neurons specific to one language by activation-probability entropy (LAPE).",
)
rec = ui_st.require_recording(s, what="The neuron view")
if rec is None:
    st.stop()

key = ui_st.data_key(s)
langs = list(rec.entries)

st.header("Overlap with the pivot", divider="gray")
controls, plot = st.columns([1, 3], gap="large")
with controls:
    pivot = st.selectbox("Pivot language", langs, index=langs.index(s.pivot) if s.pivot in langs else 0,
                         key="nr_pivot", bind="query-params", persist_state=PERSIST)
    others = [x for x in langs if x != pivot]
    chosen = st.multiselect("Languages", others, default=others, key=f"nr_langs_{pivot}",
                            help="Languages compared with the pivot.")
    top_pct = st.slider("Activated set: top % of neurons", 1, 50, 5, key="nr_top", bind="query-params",
                        persist_state=PERSIST)
    measure = st.radio("Measure", ["jaccard", "pivot_frac"], key="nr_measure", bind="query-params",
                       persist_state=PERSIST,
                       format_func=lambda x: {"jaccard": "Jaccard |∩|/|∪|", "pivot_frac": "|∩| / |pivot set|"}[x])
with plot:
    if not chosen:
        st.info("Pick at least one language to compare with the pivot.")
    else:
        with ui_st.guard("neuron overlap"):
            spec = ui_st.figure_spec(s, "overlap", {"pivot": pivot, "top_frac": top_pct / 100, "measure": measure},
                                     langs=[pivot, *chosen])
            fig, overlap, _, _ = ui_st.view(spec)
            ui_st.show_figure(fig, "neuron-overlap-languages", overlap, height=420, spec=spec)

st.header("Language-specific neurons", divider="gray")
controls, plot = st.columns([1, 3], gap="large")
with controls:
    lape_langs = st.multiselect("Languages", langs, default=langs, key="nr_lape_langs", bind="query-params",
                                help="Entropy is taken over these languages (at least two).")
    ent_pct = st.slider("Keep lowest-entropy neurons (%)", 0.1, 10.0, 1.0, 0.1, key="nr_entropy", bind="query-params",
                        persist_state=PERSIST, help="LAPE keeps 1% of all neurons.")
    prob_q = st.slider("Activation bar: quantile of p", 0.50, 0.99, 0.95, 0.01, key="nr_probq", bind="query-params",
                       persist_state=PERSIST, help="A neuron counts for a language above this quantile (LAPE: 0.95).")
with plot:
    if len(lape_langs) < 2:
        st.info("Pick at least two languages.")
    else:
        with ui_st.guard("language-specific neurons"):
            spec = ui_st.figure_spec(s, "specific_neurons", {"entropy_quantile": ent_pct / 100,
                                                             "prob_quantile": prob_q}, langs=lape_langs)
            fig, data, _, _ = ui_st.view(spec)
            ui_st.show_figure(fig, "language-specific-neurons", data, height=420, spec=spec)
            total = data.drop(columns=[data.columns[0]]).sum()
            st.caption("Neurons per language: " + ", ".join(f"{lang} {int(n)}" for lang, n in total.items()))

"""Language subspaces (LENS): agnostic and specific projections, separation per layer."""

from __future__ import annotations

import streamlit as st

from app_pages import _ui as ui_st

PERSIST = "session"

s = ui_st.page_header(
    "Language subspaces",
    "LENS splits each layer's language means into a shared, language-agnostic direction and a "
    "language-specific subspace: sentences should converge in the first and separate in the second.",
)
rec = ui_st.require_recording(s, what="The subspace view")
if rec is None:
    st.stop()

key = ui_st.data_key(s)
langs = list(rec.entries)
labels = ui_st.layer_options(rec)
c = st.columns([3, 1, 1], gap="medium", vertical_alignment="bottom")
layer = c[0].select_slider("Layer", labels, value=labels[len(labels) // 2], key="sub_layer", bind="query-params",
                           format_func=str,
                           persist_state=PERSIST)
max_rank = len(langs) - 1
rank = int(c[1].number_input("Rank r", 1, max_rank, max_rank, key="sub_rank", bind="query-params",
                             persist_state=PERSIST,
                             help=f"Dimension of the language-specific subspace (1…{max_rank})."))
central = c[2].selectbox("Central language", langs, index=langs.index(s.pivot) if s.pivot in langs else 0,
                         key="sub_central", bind="query-params", persist_state=PERSIST,
                         help="Language directions δ = P_s(m_lang − m_central) are measured from it.")

left, right = st.columns([3, 1], gap="large")
with ui_st.guard("the language subspaces"):
    spec = ui_st.figure_spec(s, "subspace", {"layer": layer, "rank": rank, "central": central},
                             title=f"Language subspaces at layer {layer} (rank {rank})")
    fig, points, _, extra = ui_st.view(spec)
    norms = extra["norms"]
    with left:
        fig.update_layout(margin={"t": 90})
        ui_st.show_figure(fig, f"subspaces-layer-{layer}", points, height=480, spec=spec)
        st.caption("Left: each sentence's position along the language-agnostic direction u_a (one row per "
                   "language; overlapping rows = converged). Right: PCA of its coordinates in the "
                   "language-specific subspace (separated clusters = language identity kept).")
    with right:
        st.markdown(f"**Language directions at layer {layer}**")
        st.dataframe(norms, hide_index=True, column_config={
            "direction norm ‖δ‖": st.column_config.NumberColumn(format="%.3f")})
        st.caption(f"‖P_s(m_lang − m_{central})‖: how far each language's mean sits from {central}'s inside "
                   "the language-specific subspace.")

st.header("Separation by layer", divider="gray")
holdout = st.toggle("Hold out half of the sentences", value=len(ui_st.corpus_of(s)) >= 4, key="sub_holdout",
                    bind="query-params",
                    persist_state=PERSIST,
                    help="Fit on even-indexed sentences, measure on odd ones. In-sample, the agnostic ratio is "
                         "~0 by construction.")
with ui_st.guard("the separation table"):
    spec = ui_st.figure_spec(s, "separation", {"rank": rank, "central": central, "holdout": holdout})
    fig, sep, _, _ = ui_st.view(spec)
    fig.update_layout(margin={"t": 90})
    ui_st.show_figure(fig, "subspace-separation", sep, height=440, spec=spec)
    st.caption("Left: between-language over within-language variance of the projected sentences (low = "
               "languages mixed, high = separated). Right: norm of each language's direction per layer.")

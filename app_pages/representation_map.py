"""Representation map: a 2-D map of one layer's sentence vectors and its retrieval heatmap."""

from __future__ import annotations

import streamlit as st

from app_pages import _ui as ui_st
from workbench.analysis import embed2d, retrieval

PERSIST = "session"
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}

s = ui_st.page_header(
    "Representation map",
    "Sentence vectors of one layer in 2-D, coloured by language (hover for the sentence), next to how well "
    "each language pair retrieves its translations at that layer.",
)
rec = ui_st.require_recording(s, what="The representation map")
if rec is None:
    st.stop()

key = ui_st.data_key(s)
labels = ui_st.layer_options(rec)
c = st.columns([4, 3, 2, 3], gap="medium", vertical_alignment="bottom")
layer = c[0].select_slider("Layer", labels, value=labels[len(labels) // 2], key="map_layer", bind="query-params",
                           format_func=str, persist_state=PERSIST,
                           help="'emb' is the embedding output; 0… are decoder blocks (before the final norm).")
method = c[1].segmented_control("Projection", list(embed2d.EMBED_METHODS), default="pca", required=True,
                                format_func=METHOD_NAMES.get, key="map_method", bind="query-params",
                                persist_state=PERSIST)
seed = int(c[2].number_input("Seed", 0, 10_000, 0, key="map_seed", bind="query-params", persist_state=PERSIST,
                             help="random_state of t-SNE / UMAP (PCA is deterministic)."))
links = c[3].toggle("Join translations", value=False, key="map_links", bind="query-params", persist_state=PERSIST,
                    help="Draw a grey line from each sentence to its translations.")

left, right = st.columns([3, 2], gap="large")
with left, ui_st.guard("the 2-D map"):
    spec = ui_st.figure_spec(s, "map", {"layer": layer, "method": method, "seed": seed, "links": links},
                             title=f"{METHOD_NAMES[method]} of layer {layer} ({s.pooling} pooling)")
    n_points = len(rec.entries) * len(ui_st.corpus_of(s))
    busy = (f"Computing the PCA map of {n_points} sentences…" if method == "pca" else
            f"Computing the {METHOD_NAMES[method]} map of {n_points} sentences: slower than PCA and growing with "
            "the points; this map is kept, so showing it again is instant…")
    with st.spinner(busy, show_time=method != "pca"):
        fig, pts, _, _ = ui_st.view(spec)
    ui_st.show_figure(fig, f"map-layer-{layer}-{method}", pts, height=560, spec=spec)
with right:
    hm_method = st.segmented_control("Retrieval method", list(retrieval.METHODS), default="margin",
                                     required=True, key="map_hm_method", bind="query-params", persist_state=PERSIST)
    with ui_st.guard("the retrieval heatmap"):
        spec = ui_st.figure_spec(s, "retrieval_heatmap", {"layer": layer, "method": hm_method, "k": 4},
                                 title=f"Retrieval accuracy at layer {layer} ({hm_method})")
        fig, matrix, _, _ = ui_st.view(spec)  # rows: source languages (the table's first column)
        ui_st.show_figure(fig, f"retrieval-heatmap-layer-{layer}", matrix, height=470, spec=spec)
        st.caption("Rows: source language; columns: target language. Diagonal left blank.")

"""Layer profile: retrieval accuracy, SiLP projection sensitivity and neuron overlap per layer."""

from __future__ import annotations

import streamlit as st

from app_pages import _ui as ui_st
from workbench import recipes
from workbench.analysis import retrieval, sensitivity
from workbench.recipes import tables as views

# A radio, not segmented buttons: it wraps in a narrow column instead of clipping the labels.
METHODS = list(retrieval.METHODS)
METHOD_HELP = ("cosine: the gold translation is the nearest neighbour. margin: ratio margin of Artetxe & "
               "Schwenk (2019), robust to hubs. mexa: nearest neighbour in both directions (strict).")
PERSIST = "session"

s = ui_st.page_header(
    "Layer profile",
    "How well translations find each other at every layer, where SiLP's projection sensitivity puts its "
    "N2D / D2N layers, and how much the active FFN neurons overlap with the pivot language.",
)
rec = ui_st.require_recording(s, what="The layer profile")
if rec is None:
    st.stop()

key = ui_st.data_key(s)
langs = list(rec.entries)
n_blocks = len(views.ffn_layer_labels(rec))
fmt = ui_st.language_label(s)
pivot = st.selectbox("Pivot language", langs, index=langs.index(s.pivot) if s.pivot in langs else 0,
                     key="lp_pivot", bind="query-params", persist_state=PERSIST, format_func=fmt, width=320,
                     help="Per-language lines and the overlap curves are measured against this language.")

# --------------------------------------------------------------------------- retrieval

st.header("Translation retrieval by layer", divider="gray")
st.caption("Fraction of sentences whose nearest neighbour in the other language is their translation "
           f"({s.pooling}-pooled states; chance = 1/{len(ui_st.corpus_of(s))}).")
controls, plot = st.columns([1, 3], gap="large")
with controls:
    method = st.radio("Method", METHODS, index=METHODS.index("margin"), horizontal=True,
                      key="lp_method", bind="query-params", help=METHOD_HELP, persist_state=PERSIST)
    k = 4
    if method == "margin":
        k = int(st.number_input("Margin neighbourhood k", 1, 32, 4, key="lp_k", bind="query-params",
                                persist_state=PERSIST))
    per_language = st.toggle("Per-language lines", value=True, key="lp_per_lang", bind="query-params",
                             persist_state=PERSIST)
    center = st.toggle("Centre languages", value=False, key="lp_center", bind="query-params", persist_state=PERSIST,
                       help="Subtract each language's mean vector per layer before comparing.")
with plot, ui_st.guard("retrieval accuracy"):
    spec = ui_st.figure_spec(s, "retrieval", {"method": method, "k": k, "pivot": pivot, "center": center,
                                             "per_language": per_language})
    fig, summary, _, _ = ui_st.view(spec)
    all_pairs = summary[summary["series"] == "all_pairs"]
    best = recipes.best_layer(summary)  # the one definition: a block, never emb; ties -> lower
    best_acc = float(all_pairs.loc[all_pairs["layer"] == best, "accuracy"].iloc[0])
    m = st.columns(3)
    m[0].metric("Best layer (all pairs)", str(best), f"{best_acc:.1%}", delta_color="off",
                help="The decoder block with the highest all-pairs accuracy (never the embeddings; ties: "
                     "the lower block).")
    m[1].metric("Mean over layers", f"{all_pairs['accuracy'].mean():.1%}")
    try:
        m[2].metric("Mid-align score", f"{retrieval.mid_align_score(summary):.1%}",
                    help="Mean all-pairs accuracy over even-numbered layers (Mid-align).")
    except ValueError:
        m[2].metric("Mid-align score", "—")
    ui_st.show_figure(fig, "retrieval-by-layer", summary, height=430, spec=spec)

# --------------------------------------------------------------------------- sensitivity

st.header("SiLP projection sensitivity", divider="gray")
st.caption("How much the mean FFN activation moves from one layer to the next on translation prompts; SiLP "
           "tunes the most sensitive layers before the split (N2D) and after it (D2N).")
controls, plot = st.columns([1, 3], gap="large")
with controls:
    src0, tgt0 = ui_st.default_pair(langs, pivot)
    a, b = st.columns(2)
    src = a.selectbox("Source", langs, index=langs.index(src0), key="lp_src", bind="query-params",
                      persist_state=PERSIST,
                      help="Translation direction of SiLP's prompts: source → target.")
    tgt = b.selectbox("Target", langs, index=langs.index(tgt0), key="lp_tgt", bind="query-params",
                      persist_state=PERSIST)
    variant = st.segmented_control("Score", list(sensitivity.VARIANTS), default="paper", required=True,
                                   key="lp_variant", bind="query-params", persist_state=PERSIST,
                                   help="paper: |Σ diff| as printed in SiLP; abs: Σ |diff| per neuron.")
    if n_blocks >= 3:  # split k in 1…L−2 leaves candidates on both sides (METHODS §2)
        split = st.slider("Split layer k", 1, n_blocks - 2, sensitivity.default_split(n_blocks), key="lp_split",
                          bind="query-params",
                          persist_state=PERSIST, help="N2D candidates are layers 1…k, D2N candidates k+1…L−1.")
        a, b = st.columns(2)
        k1 = int(a.number_input("N2D layers k1", 1, split, min(sensitivity.PAPER_K, split), key=f"lp_k1_{split}",
                                persist_state=PERSIST, help=f"Top-k1 of the {split} N2D candidates (paper: 4)."))
        n_d2n = n_blocks - 1 - split
        k2 = int(b.number_input("D2N layers k2", 1, n_d2n, min(sensitivity.PAPER_K, n_d2n), key=f"lp_k2_{split}",
                                persist_state=PERSIST, help=f"Top-k2 of the {n_d2n} D2N candidates (paper: 4)."))
with plot:
    if n_blocks < 3:
        st.info("Projection sensitivity needs at least three recorded blocks.")
    elif src == tgt:
        st.warning("Choose two different languages for the translation direction.")
    else:
        pair_rec = ui_st.require_recording(s, pair=(src, tgt), what="Projection sensitivity")
        if pair_rec is not None:
            with ui_st.guard("projection sensitivity"):
                spec = ui_st.figure_spec(s, "sensitivity", {"src": src, "tgt": tgt, "split": split, "k1": k1,
                                                            "k2": k2, "variant": variant},
                                         title=f"Projection sensitivity, {src} → {tgt} ({variant})")
                fig, data, _, _ = ui_st.view(spec)
                n2d = [int(x) for x in data.loc[data["allocation"] == "N2D", "layer"]]
                d2n = [int(x) for x in data.loc[data["allocation"] == "D2N", "layer"]]
                st.markdown(f"**N2D layers** {', '.join(map(str, n2d)) or '—'} · "
                            f"**D2N layers** {', '.join(map(str, d2n)) or '—'} · split after layer {split}")
                ui_st.show_figure(fig, "projection-sensitivity", data, height=400, spec=spec)

# --------------------------------------------------------------------------- overlap

st.header("Neuron overlap with the pivot", divider="gray")
st.caption(f"Overlap of each language's most often active FFN neurons with {pivot}'s, per layer.")
controls, plot = st.columns([1, 3], gap="large")
with controls:
    top_pct = st.slider("Activated set: top % of neurons", 1, 50, 5, key="lp_top", bind="query-params",
                        persist_state=PERSIST,
                        help="Per layer, the neurons with the highest activation probability.")
    measure = st.radio("Measure", ["jaccard", "pivot_frac"], key="lp_measure", bind="query-params",
                       persist_state=PERSIST,
                       format_func=lambda x: {"jaccard": "Jaccard |∩|/|∪|", "pivot_frac": "|∩| / |pivot set|"}[x])
with plot, ui_st.guard("neuron overlap"):
    spec = ui_st.figure_spec(s, "overlap", {"pivot": pivot, "top_frac": top_pct / 100, "measure": measure})
    fig, overlap, _, _ = ui_st.view(spec)
    ui_st.show_figure(fig, "neuron-overlap", overlap, height=400, spec=spec)

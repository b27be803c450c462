"""Layer predictions: what each layer is about to say (logit or tuned lens): latent-language curves, token view.

Widgets → a registry figure spec (`latent`, `tokens`) → the lens readouts it reads, from the
store (`pages._ui.lens.require_lens` offers to record what is missing) → `recipes.build` →
the figure. The same spec is what `workbench analyze latent|tokens` and the export manifest hold.
"""

from __future__ import annotations

import streamlit as st

from app_pages import _ui as ui_st
from app_pages._ui import lens as ui_lens
from workbench.analysis.latent_curves import BAND_METHODS
from workbench.latent import load_words
from workbench.recipes.latent import ENGLISH, PROMPT_KINDS

PERSIST = "session"

s = ui_st.page_header(
    "Layer predictions",
    "Decode every layer with the model's own final norm and unembedding (the logit lens) or a tuned lens: on "
    "translation prompts, the probability that the next token starts the answer in the target language, in "
    "English or in the source language (Wendler et al. 2024), and the top token of every layer at each position.",
)
lenses = ui_lens.lens_choices(s.model)
lens = st.selectbox("Lens", list(lenses), format_func=lenses.__getitem__, key="lp_lens", persist_state=PERSIST,
                    help="Train a tuned lens in the last tab; it is listed here once saved.", width=420)
word_langs = list(load_words().langs)
tabs = st.tabs(["Latent-language curves", "Token view", "Tuned lens"], key="lpred_tab", on_change="rerun")


def pair(prefix: str, langs: list[str]) -> tuple[str, str]:
    """Source and target pickers (defaults fr → zh, Wendler et al.'s first pair)."""
    a, b = st.columns(2)
    src = a.selectbox("Source", langs, index=langs.index("fr") if "fr" in langs else 0, key=f"{prefix}_src",
                      persist_state=PERSIST)
    tgt = b.selectbox("Target", langs, index=langs.index("zh") if "zh" in langs else 1, key=f"{prefix}_tgt",
                      persist_state=PERSIST)
    return src, tgt


with tabs[0]:
    if tabs[0].open:
        controls, plot = st.columns([1, 3], gap="large")
        with controls:
            kind = st.radio("Prompts", list(PROMPT_KINDS), horizontal=True, key="lpred_kind", persist_state=PERSIST,
                            help="words: Wendler et al.'s few-shot word translation over the bundled word list; "
                                 "sentences: Tatoeba pairs with English, the answer = the reference's first word.")
            src, tgt = pair("lpred", word_langs if kind == "words" else ["en", "sw", "zh", "ja", "fr", "de", "es"])
            max_items = st.number_input("At most N items", 1, 10_000, value=None, key="lpred_max",
                                        placeholder="all", help="Fewer items: a quicker first look.")
            band = st.radio("Band", list(BAND_METHODS), horizontal=True, key="lpred_band", persist_state=PERSIST,
                            help="bootstrap: 95% percentile band over items; gaussian: mean ± 1.96 σ/√n "
                                 "(the authors' figure).")
        with plot:
            if src == tgt:
                st.warning("Choose two different languages.")
            else:
                params = {"prompts": kind, "source": src, "target": tgt, "band": band, "lens": lens,
                          "max_items": int(max_items) if max_items else None}
                spec = ui_st.figure_spec(s, "latent", params, langs=list(dict.fromkeys([src, tgt, ENGLISH])))
                if ui_lens.require_lens(spec, "The latent-language curves"):
                    with ui_st.guard("the latent-language curves"):
                        fig, table, info, _ = ui_st.view(spec)
                        f = next(iter(info["latent"].values()))
                        sm = f["summary"]
                        m = st.columns(3)
                        m[0].metric("P(en) peaks at layer", str(sm["en_peak_layer"]), f"{sm['en_peak']:.3f}",
                                    delta_color="off",
                                    help=f"95% band [{sm['en_peak_lo']:.3f}, {sm['en_peak_hi']:.3f}]")
                        m[1].metric(f"P({tgt}) overtakes P(en)", "never" if sm["overtake_layer"] is None
                                    else f"layer {sm['overtake_layer']}")
                        m[2].metric("Items read", f"{f['read']}", f"of {f['candidates']}", delta_color="off")
                        st.caption(f["drops"])
                        ui_st.show_figure(fig, f"latent-{src}-{tgt}-{kind}", table, height=560, spec=spec)

with tabs[1]:
    if tabs[1].open:
        controls, plot = st.columns([1, 3], gap="large")
        with controls:
            src, tgt = pair("ltok", word_langs)
            words = load_words()
            item = st.selectbox("Concept", list(words.concepts), key="ltok_item", persist_state=PERSIST,
                                format_func=lambda c: f"{c} ({words.word(c, src)} → {words.word(c, tgt)})"
                                if src != tgt else c)
            color = st.radio("Colour", ["probability", "entropy"], horizontal=True, key="ltok_color",
                             persist_state=PERSIST)
            last = int(st.number_input("Last N positions", 1, 512, 16, key="ltok_last", persist_state=PERSIST))
        with plot:
            if src == tgt:
                st.warning("Choose two different languages.")
            else:
                spec = ui_st.figure_spec(s, "tokens", {"source": src, "target": tgt, "item": item, "color": color,
                                                       "last_positions": last, "lens": lens},
                                         langs=list(dict.fromkeys([src, tgt, ENGLISH])))
                if ui_lens.require_lens(spec, "The token view"):
                    with ui_st.guard("the token view"):
                        fig, grid, info, extra = ui_st.view(spec)
                        ui_st.show_figure(fig, f"tokens-{src}-{tgt}-{item}", grid, height=620, spec=spec)
                        st.caption("Decoded language per layer at the last position (the answer's first token):")
                        st.dataframe(extra["strip"], hide_index=True)

with tabs[2]:
    if tabs[2].open:
        ui_lens.tuned_lens_panel(s)

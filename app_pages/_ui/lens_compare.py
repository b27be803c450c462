"""The Compare page's "Layer predictions" tab: latent-language curves of any number of states in one figure.

A reader is a model state (the base, a tuned state, another base) read through a lens (the
logit lens, or a tuned lens of that state). The first reader is the spec's model; the others
go into the `latent` analysis's `others` parameter, so the figure, its table and its export
manifest are the registry's, the same as `workbench analyze latent --others …`.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app_pages._ui.figure import show_figure
from app_pages._ui.lens import lens_choices, require_lens
from app_pages._ui.state import guard
from app_pages._ui.views import view
from workbench.config import ModelSpec
from workbench.latent import load_words
from workbench.recipes.latent import ENGLISH
from workbench.recipes.settings import Settings

__all__ = ["lens_tab"]


def _readers(options: dict[str, dict[str, Any]]) -> dict[str, tuple[str, ModelSpec, str]]:
    """Reader id -> (label, model, lens): every state with the logit lens and with each of its tuned lenses."""
    out = {}
    for key, o in options.items():
        model = ModelSpec.from_dict(o["model"])
        for lens, name in lens_choices(model).items():
            out[f"{key}|{lens}"] = (f"{o['label']} · {name}", model, lens)
    return out


def lens_tab(s: Settings, options: dict[str, dict[str, Any]], a: str, b: str) -> None:
    """Latent-language curves of the chosen readers (default: states A and B through the logit lens)."""
    readers = _readers(options)
    default = [x for x in (f"{a}|logit", f"{b}|logit") if x in readers]
    langs = list(load_words().langs)
    c = st.columns([4, 1, 1, 1], vertical_alignment="bottom")
    picked = c[0].multiselect("States and lenses", list(readers), default=list(dict.fromkeys(default)),
                              format_func=lambda x: readers[x][0], key="cmp_lens_readers",
                              help="Any number of model states, each through the logit lens or a tuned lens of it.")
    src = c[1].selectbox("Source", langs, index=langs.index("fr") if "fr" in langs else 0, key="cmp_lens_src")
    tgt = c[2].selectbox("Target", langs, index=langs.index("zh") if "zh" in langs else 1, key="cmp_lens_tgt")
    n = c[3].number_input("Items", 1, 10_000, value=None, placeholder="all", key="cmp_lens_n")
    if not picked or src == tgt:
        st.info("Choose at least one state and two different languages.", icon=":material/info:")
        return
    chosen = [readers[x] for x in picked]
    (_, first, lens), rest = chosen[0], chosen[1:]
    params = {"source": src, "target": tgt, "lens": lens, "max_items": int(n) if n else None,
              "others": [{**m.to_dict(), "lens": x} for _, m, x in rest], "labels": [r[0] for r in chosen]}
    spec = s.figure_spec("latent", params, model=first, langs=list(dict.fromkeys([src, tgt, ENGLISH])))
    if not require_lens(spec, "The latent-language curves"):
        return
    with guard("the latent-language curves"):
        fig, table, info, _ = view(spec)
        lines = [f"**{label}**: P(en) peaks at layer {f['summary']['en_peak_layer']} "
                 f"({f['summary']['en_peak']:.3f}); P({tgt}) overtakes it "
                 + ("never" if f["summary"]["overtake_layer"] is None else f"at layer {f['summary']['overtake_layer']}")
                 for label, f in info["latent"].items()]
        st.markdown(" · ".join(lines))
        show_figure(fig, f"compare-latent-{src}-{tgt}", table, height=580, spec=spec)

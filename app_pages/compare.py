"""Compare: two model states (base, or base + a fine-tune artifact) side by side and as a difference.

Widgets → two state specs → their recordings of the Setup's corpus (recorded here if
missing) → `recipes.compare` tables (the `workbench.views` numbers of each state, joined)
→ `viz.compare_figures`. Held-out loss and perplexity come from `workbench.evaluation.losses`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from app_pages import _ui as ui_st
from app_pages._ui import lens_compare, outcomes
from workbench import models, recipes, recordings
from workbench.analysis import embed2d, retrieval, sensitivity
from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.errors import user_message
from workbench.finetune import jobs as finetune_jobs
from workbench.interventions import saved
from workbench.jobs.warm import WARM
from workbench.models import artifacts
from workbench.recipes.settings import Settings

log = logging.getLogger("workbench.app")

PERSIST = "session"
FINETUNE_PAGE = "app_pages/finetune.py"
BASE = "base"
TABS = ["Outputs", "Scores", "Retrieval", "Sensitivity", "Overlap", "Subspaces", "Maps", "Layer predictions"]
# A radio, not segmented buttons: it wraps in a narrow column instead of clipping the labels.
METHODS = list(retrieval.METHODS)
METHOD_HELP = ("cosine: nearest neighbour. margin: ratio margin (Artetxe & Schwenk 2019). "
               "mexa: nearest neighbour in both directions.")

s = ui_st.page_header(
    "Compare",
    "Any view for two model states, side by side and as a difference B − A, plus held-out translation loss "
    "and English perplexity: the gain of a fine-tune and anything it made the model forget.",
)


# --------------------------------------------------------------------------- states


def state_options(s: Settings) -> dict[str, dict[str, Any]]:
    """Every state a picker lists: the Setup's model, the bases of tuned states, every tuned state."""
    tuned = finetune_jobs.tuned_states()
    options = {BASE: {"label": f"Base: {Path(s.model.source).name} (Setup's model)", "model": s.model.to_dict()}}
    for t in tuned:
        base = ModelSpec.from_dict({**t["model"], "artifact": None})
        if not any(models.same_base(base, ModelSpec.from_dict(o["model"])) for o in options.values()):
            options[f"base:{base.source}"] = {"label": f"Base: {Path(base.source).name}", "model": base.to_dict()}
    options.update({t["job_id"]: t for t in tuned})
    for k in saved.kept_states():  # intervened states kept on the Intervene page
        options[k["id"]] = {**k, "label": f"Intervened: {k['label']}", "short": f"iv-{k['label']}", "intervened": True}
    for t in [t for t in tuned if t["method"] == "cctuning"]:  # its deterministic variant, beside the default
        options[f"{t['job_id']}@argmax"] = {**t, "label": f"{t['label']} · Decision Maker argmax",
                                            "short": f"cctuning-{t['job_id'][-6:]}-argmax",
                                            "model": {**t["model"], "inference": [["decide", "argmax"]]}}
    return options


def _state_loader(spec: ModelSpec, progress: Any = None) -> Any:
    """Loader handed to recording jobs: tiny states in the library, real ones via the shared cache."""
    return models.load(spec, progress=progress)


def require_state_recording(name: str, label: str, spec: ModelSpec, corpus_spec: CorpusSpec, rspec: RecordSpec,
                            pairs: list[tuple[str, str]] | None = None) -> Any:
    """The state's stored recording, or a message with a Record button (and its progress)."""
    try:
        rec = recordings.stored_recording(spec, corpus_spec, rspec, pairs)
        fp = models.fingerprint(spec, download=False)
    except Exception as e:  # noqa: BLE001 - unknown language, missing artifact, ...
        log.warning("store lookup failed for %s", spec, exc_info=True)
        st.error(f"State {name}: {user_message(e)}", icon=":material/error:")
        return None
    if rec is not None:
        return rec
    key = recordings.job_key(spec, corpus_spec, rspec, pairs)
    job = WARM.get(key)
    if fp is None and (done := ui_st.finished_recording(job, corpus_spec, rspec, pairs)) is not None:
        return done  # the store cannot be checked before the model is fetched (hub model): the run's own
    what = f"the {pairs[0][0]} → {pairs[0][1]} SiLP pass" if pairs else "the Setup's languages"
    st.info(f"State **{name}** ({label}) has no recording of {what} yet.", icon=":material/info:")
    if job is None or not job.snapshot().running:
        with ui_st.guard("the estimate"):
            st.caption(ui_st.recording_plan(spec, corpus_spec, rspec, pairs))
        if st.button(f"Record state {name}", type="primary", icon=":material/fiber_manual_record:",
                     key=f"cmp-rec-{key}"):
            recordings.start_recording(spec, corpus_spec, rspec, pairs, rerun_done=True)
            st.rerun()
    ui_st.job_panel(key)
    return None


# --------------------------------------------------------------------------- views (the registry's)


def cspec(analysis: str, params: dict[str, Any]) -> dict[str, Any]:
    """The registry's figure spec of a two-state view: A = spec_a (the spec's model), B = `state_b`."""
    return s.figure_spec(analysis, {**params, "state_b": spec_b.to_dict(), "labels": list(labels)}, model=spec_a)




# --------------------------------------------------------------------------- tabs


def _pct(x: float) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.1%}"


def retrieval_tab(langs: list[str], labels: tuple[str, str]) -> None:
    c = st.columns([3, 1, 2, 2, 3], vertical_alignment="bottom")
    method = c[0].radio("Method", METHODS, index=METHODS.index("margin"), horizontal=True,
                        key="cmp_method", bind="query-params", help=METHOD_HELP, persist_state=PERSIST)
    k = int(c[1].number_input("k", 1, 32, 4, key="cmp_k", bind="query-params", persist_state=PERSIST,
                              help="Margin neighbourhood (margin only).")) if method == "margin" else 4
    pivot = c[2].selectbox("Pivot", langs, index=langs.index(s.pivot) if s.pivot in langs else 0, key="cmp_pivot",
                           bind="query-params",
                           persist_state=PERSIST)
    center = c[3].toggle("Centre", value=False, key="cmp_center", bind="query-params", persist_state=PERSIST,
                         help="Subtract each language's mean vector per layer before comparing.")
    series = ["all_pairs", "pivot", *[x for x in langs if x != pivot]]
    shown = c[4].multiselect("Lines", series, default=["all_pairs"], key="cmp_series", bind="query-params",
                             persist_state=PERSIST,
                             help="all_pairs: mean over ordered pairs; pivot: pairs with the pivot; a language: "
                                  "its two directions with the pivot.")
    with ui_st.guard("retrieval by layer"):
        spec = cspec("compare_retrieval", {"method": method, "k": k, "pivot": pivot, "center": center,
                                           "series": shown or ["all_pairs"]})
        fig, table, _, _ = ui_st.view(spec)
        all_pairs = table[table["series"] == "all_pairs"]
        m = st.columns(4)
        m[0].metric(f"Mean over layers, {labels[0]}", _pct(all_pairs["a"].mean()))
        gain = all_pairs["diff"].mean()
        same = not abs(gain) >= 5e-4  # below the display precision (or NaN): no sign, no arrow
        m[1].metric(f"Mean over layers, {labels[1]}", _pct(all_pairs["b"].mean()),
                    f"±0.0% vs {labels[0]}" if same else f"{gain:+.1%} vs {labels[0]}",
                    delta_color="off" if same else "normal", delta_arrow="off" if same else "auto")
        for i, col in ((2, "a"), (3, "b")):
            best = recipes.best_layer(all_pairs.rename(columns={col: "accuracy"}))  # the one definition
            m[i].metric(f"Best layer, {labels[i - 2]}", str(best), _pct(all_pairs.loc[all_pairs["layer"] == best,
                                                                                          col].iloc[0]),
                        delta_color="off")
        ui_st.show_figure(fig, "compare-retrieval", table, height=560, spec=spec)


def stored_direction(specs: tuple[ModelSpec, ModelSpec], langs: list[str], default: tuple[str, str]) -> tuple[str, str]:
    """The direction to open on: `default`, else its reverse, else any pivot direction both states have stored.

    The SiLP pass is recorded per direction; opening on one that is stored shows a figure at
    once instead of a Record button for a direction the user never chose. Only looks up the store.
    """
    src, tgt = default
    others = [x for x in langs if x not in default]
    candidates = [default, (tgt, src), *[(src, x) for x in others], *[(x, src) for x in others]][:12]
    for pair in candidates:
        try:
            if all(recordings.store_status(m, s.pair_corpus(*pair), s.silp_spec(), [pair]).recording is not None
                   for m in specs):
                return pair
        except Exception:  # noqa: BLE001 - a lookup that cannot be made just does not pick that pair
            continue
    return default


def sensitivity_tab(spec_a: ModelSpec, spec_b: ModelSpec, langs: list[str], labels: tuple[str, str],
                    default: tuple[str, str], names: tuple[str, str]) -> None:
    if "cmp_src" not in st.session_state and "cmp_tgt" not in st.session_state:
        default = stored_direction((spec_a, spec_b), langs, default)
    c = st.columns([1, 1, 2], vertical_alignment="bottom")
    src = c[0].selectbox("Source", langs, index=langs.index(default[0]) if default[0] in langs else 0,
                         key="cmp_src", bind="query-params", persist_state=PERSIST,
                         help="Translation direction of SiLP's prompts.")
    tgt = c[1].selectbox("Target", langs, index=langs.index(default[1]) if default[1] in langs else 1,
                         key="cmp_tgt", bind="query-params", persist_state=PERSIST)
    variant = c[2].segmented_control("Score", list(sensitivity.VARIANTS), default="paper", required=True,
                                     key="cmp_variant", bind="query-params", persist_state=PERSIST,
                                     help="paper: |Σ diff| as printed in SiLP; abs: Σ |diff| per neuron.")
    if src == tgt:
        st.warning("Choose two different languages.")
        return
    pairs = [(src, tgt)]
    corpus_spec, rspec = s.pair_corpus(src, tgt), s.silp_spec()
    ra = require_state_recording(labels[0], names[0], spec_a, corpus_spec, rspec, pairs)
    rb = require_state_recording(labels[1], names[1], spec_b, corpus_spec, rspec, pairs)
    if ra is None or rb is None:
        return
    with ui_st.guard("projection sensitivity"):
        spec = cspec("compare_sensitivity", {"src": src, "tgt": tgt, "variant": variant})
        fig, table, _, _ = ui_st.view(spec)
        lines = []
        for side, label in (("a", labels[0]), ("b", labels[1])):
            _, n2d, d2n, _ = recipes.tables.allocation_table(table[side].to_numpy())
            lines.append(f"**{label}** N2D {', '.join(map(str, n2d)) or '—'} · D2N {', '.join(map(str, d2n)) or '—'}")
        st.markdown("SiLP allocation (default split, top 4 / 4): " + " ; ".join(lines))
        ui_st.show_figure(fig, "compare-sensitivity", table, height=520, spec=spec)


def overlap_tab(langs: list[str], labels: tuple[str, str], focus: list[str]) -> None:
    c = st.columns([1, 2, 2, 3], vertical_alignment="bottom")
    pivot = c[0].selectbox("Pivot", langs, index=langs.index(s.pivot) if s.pivot in langs else 0,
                           key="cmp_ov_pivot", bind="query-params", persist_state=PERSIST)
    top = c[1].slider("Activated set: top % of neurons", 1, 50, 5, key="cmp_top", bind="query-params",
                      persist_state=PERSIST)
    measure = c[2].radio("Measure", ["jaccard", "pivot_frac"], horizontal=True, key="cmp_measure", bind="query-params",
                         persist_state=PERSIST,
                         format_func=lambda x: {"jaccard": "Jaccard |∩|/|∪|", "pivot_frac": "|∩| / |pivot set|"}[x])
    others = [x for x in langs if x != pivot]
    default = [x for x in focus if x in others] or others
    shown = c[3].multiselect("Languages", others, default=default, key="cmp_ov_langs", bind="query-params",
                             help="Lines to draw (the table has every language). Default: the fine-tune's.")
    with ui_st.guard("neuron overlap"):
        spec = cspec("compare_overlap", {"pivot": pivot, "top_frac": top / 100, "measure": measure,
                                         "shown": shown or others})
        fig, table, _, _ = ui_st.view(spec)
        ui_st.show_figure(fig, "compare-overlap", table, height=520, spec=spec)


def subspaces_tab(langs: list[str], labels: tuple[str, str]) -> None:
    c = st.columns([1, 1, 1, 3], vertical_alignment="bottom")
    max_rank = len(langs) - 1
    rank = int(c[0].number_input("Rank r", 1, max_rank, max_rank, key="cmp_rank", bind="query-params",
                                 persist_state=PERSIST))
    central = c[1].selectbox("Central", langs, index=langs.index(s.pivot) if s.pivot in langs else 0,
                             key="cmp_central", bind="query-params", persist_state=PERSIST)
    holdout = c[2].toggle("Hold out", value=len(ui_st.corpus_of(s)) >= 4, key="cmp_holdout", bind="query-params",
                          persist_state=PERSIST,
                          help="Fit on even-indexed sentences, measure on odd ones.")
    measures = ["agnostic_ratio", "specific_ratio", *[f"direction_norm_{x}" for x in langs if x != central]]
    shown = c[3].multiselect("Measures", measures, default=["agnostic_ratio", "specific_ratio"],
                             key="cmp_sep_measures", bind="query-params", persist_state=PERSIST,
                             help="Between/within-language variance ratios of the projections, and ‖δ‖ per "
                                  "language.")
    with ui_st.guard("subspace separation"):
        spec = cspec("compare_separation", {"rank": rank, "central": central, "holdout": holdout,
                                            "measures": shown or measures})
        fig, table, _, _ = ui_st.view(spec)
        ui_st.show_figure(fig, "compare-separation", table, height=560, spec=spec)


def maps_tab(rec: Any, labels: tuple[str, str]) -> None:
    layer_labels = ui_st.layer_options(rec)
    c = st.columns([4, 3, 2], vertical_alignment="bottom")
    layer = c[0].select_slider("Layer", layer_labels, value=layer_labels[len(layer_labels) // 2], key="cmp_layer",
                               bind="query-params",
                               format_func=str, persist_state=PERSIST)
    method = c[1].segmented_control("Projection", list(embed2d.EMBED_METHODS), default="pca", required=True,
                                    key="cmp_map_method", bind="query-params", persist_state=PERSIST)
    seed = int(c[2].number_input("Seed", 0, 10_000, 0, key="cmp_seed", bind="query-params", persist_state=PERSIST))
    with ui_st.guard("the maps"), st.spinner("Computing the maps…"):
        spec = cspec("compare_map", {"layer": layer, "method": method, "seed": seed})
        fig, pts, _, _ = ui_st.view(spec)
        ui_st.show_figure(fig, f"compare-maps-{layer}", pts, height=520, spec=spec)
        st.caption("Each panel is its own projection: compare how the languages cluster, not positions.")
    with ui_st.guard("the retrieval difference"):
        spec = cspec("compare_retrieval_heatmap", {"layer": layer, "method": "margin", "k": 4})
        fig, diff, _, _ = ui_st.view(spec)
        ui_st.show_figure(fig, f"compare-retrieval-diff-{layer}", diff, height=420, spec=spec)



def cctuning_tab(option: dict) -> None:
    """CC-Tuning's own views of a tuned state: selected layers (Fig. 8), W_T fit (Fig. 5), |Δ| (Table 2)."""
    from workbench.viz.cctuning_figures import cctuning_figures

    manifest = artifacts.read_manifest(option["artifact"])
    report = manifest.get("metrics", {}).get("cctuning")
    if not report:
        st.info("This CC-Tuning artifact holds no evaluation report (the job ran with evaluation off).",
                icon=":material/info:")
        return
    figs = cctuning_figures(report)
    c = st.columns(2)
    with c[0]:
        ui_st.show_figure(figs["layer_selection"], "cctuning-layer-selection", height=380)
        st.caption("Layers the Decision Maker picks on held-out inputs, with the real English input and with "
                   "the Transform Matrix (CC-Tuning Fig. 8): a Gumbel sample per input, as the authors' code and "
                   "a state's default inference do, and the deterministic argmax.")
    with c[1]:
        ui_st.show_figure(figs["transform_fit"], "cctuning-transform-fit", height=380)
        st.caption("Least-squares fit error of W_T against the number of parallel pairs (CC-Tuning Fig. 5).")
    ui_st.show_figure(figs["parallel_gap"], "cctuning-parallel-gap", height=360)
    st.caption("Held-out loss without the connection, with the real English parallel input, and with W_T "
               "(the |Δ| of CC-Tuning Table 2).")


# --------------------------------------------------------------------------- page

options = state_options(s)
tuned_ids = [k for k, o in options.items() if "job_id" in o or o.get("intervened")]
if not tuned_ids:
    st.info("No tuned or intervened model state yet. Start a fine-tune (each finished job adds a state to "
            "compare) or keep an intervened state on the Intervene page.", icon=":material/info:")
    st.page_link(FINETUNE_PAGE, label="Fine-tune", icon=":material/model_training:")
    st.stop()

c = st.columns(2)
ids = list(options)
a = c[0].selectbox("State A", ids, index=0, format_func=lambda x: options[x]["label"], key="cmp_a", bind="query-params",
                   help="Usually the base model.")
b = c[1].selectbox("State B", ids, index=ids.index(tuned_ids[0]), format_func=lambda x: options[x]["label"],
                   key="cmp_b", bind="query-params", help="Usually a tuned state (the newest is pre-selected).")
spec_a, spec_b = ModelSpec.from_dict(options[a]["model"]), ModelSpec.from_dict(options[b]["model"])
labels = ("A", "B")
st.caption(f"**A** = {options[a]['label']} · **B** = {options[b]['label']} · differences are B − A.")
if a == b:
    st.info("A and B are the same state: every difference is 0.", icon=":material/info:")
elif not models.same_base(spec_a, spec_b):
    st.warning("A and B have different base models: layers are matched by index.", icon=":material/warning:")

cc = next((options[x] for x in (b, a) if options[x].get("method") == "cctuning"), None)
tabs = st.tabs(TABS + (["CC-Tuning"] if cc else []), key="cmp_tab", bind="query-params", on_change="rerun")
with tabs[0]:
    if tabs[0].open:
        outcomes.outputs_tab(s, options, a, b)
with tabs[1]:
    if tabs[1].open:
        outcomes.scores_tab(s, options, a, b)
with tabs[7]:
    if tabs[7].open:
        lens_compare.lens_tab(s, options, a, b)
if cc:
    with tabs[8]:
        if tabs[8].open:
            with ui_st.guard("the CC-Tuning views"):
                cctuning_tab(cc)
if not any(tabs[i].open for i in range(2, 7)):
    st.stop()  # the representation views below need both states' recordings

ra = require_state_recording("A", options[a]["label"], spec_a, s.corpus, s.record_spec())
rb = require_state_recording("B", options[b]["label"], spec_b, s.corpus, s.record_spec())
if ra is None or rb is None:
    st.stop()

langs = list(ra.entries)
tuned_langs = next((options[x]["languages"] for x in (b, a) if "languages" in options[x]), [])
pair0 = ui_st.default_pair(langs, s.pivot)
if len(tuned_langs) >= 2 and all(x in langs for x in tuned_langs[:2]):
    pair0 = (tuned_langs[0], tuned_langs[1])

with tabs[2]:
    if tabs[2].open:
        retrieval_tab(langs, labels)
with tabs[3]:
    if tabs[3].open:
        sensitivity_tab(spec_a, spec_b, langs, labels, pair0, (options[a]["label"], options[b]["label"]))
with tabs[4]:
    if tabs[4].open:
        overlap_tab(langs, labels, tuned_langs)
with tabs[5]:
    if tabs[5].open:
        subspaces_tab(langs, labels)
with tabs[6]:
    if tabs[6].open:
        maps_tab(ra, labels)

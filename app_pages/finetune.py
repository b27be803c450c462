"""Fine-tune: start a SiLP / Mid-align / LENS / CC-Tuning job (a separate process), follow it, cancel it.

Widgets → specs (`workbench.finetune.specs`, defaults and help from the dataclasses) →
`jobs.start_job`. The jobs table reads everything back from disk, so finished, failed and
cancelled jobs of earlier app runs are listed with their reasons.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app_pages import _ui as ui_st
from workbench import models, ranks
from workbench.config import ModelSpec
from workbench.corpus import uploads
from workbench.errors import user_message
from workbench.examples import DataSpec
from workbench.finetune import jobs
from workbench.finetune.method import Method
from workbench.finetune.methods import METHODS, get_method
from workbench.paths import cache_root
from workbench.recipes.settings import Settings
from workbench.viz import compare_figures

log = logging.getLogger("workbench.app")

PERSIST = "session"
COMPARE_PAGE = "app_pages/compare.py"
UPLOAD = "__upload__"
SHORT_RUN_STEPS = 20
# Spec fields with their own widget elsewhere on the page (steps), or only reachable through the CLI's --set.
OTHER_WIDGETS = {"max_steps", "push_per_lang"}
STATE_BADGE = {"queued": "gray", "running": "blue", "done": "green", "failed": "red", "cancelled": "orange"}

s = ui_st.page_header(
    "Fine-tune",
    "Train SiLP, Mid-align, LENS or CC-Tuning on parallel pairs in a separate process. The result is a new model "
    "state (base + a small artifact) that the Compare page sets against its base.",
)


@st.cache_data(show_spinner=False)
def _corpora() -> dict[str, dict[str, Any]]:
    from workbench.corpus import list_corpora

    return {c["name"]: c for c in list_corpora()}


@st.cache_data(show_spinner="Checking the data…", max_entries=32)
def _check_data(data: dict[str, Any], langs: tuple[str, ...], root: str) -> tuple[int, int]:
    """(training units, held-out units) of the split the job will build (raises what it would)."""
    from workbench.examples import build_split

    split = build_split(DataSpec.from_dict(data), list(langs))
    return len(split.train), len(split.heldout)


# --------------------------------------------------------------------------- base model and languages


def base_model(s: Settings) -> ModelSpec:
    """The Setup page's model, or the base of an earlier fine-tune."""
    options = {"setup": s.model}
    for t in jobs.tuned_states():
        base = dataclasses.replace(ModelSpec.from_dict(t["model"]), artifact=None)
        if not any(models.same_base(base, m) for m in options.values()):
            options[base.source] = base
    names = {"setup": f"Setup's model: {Path(s.model.source).name}"}
    choice = st.selectbox("Base model", list(options), key="ft_base", bind="query-params", persist_state=PERSIST,
                          width=420,
                          format_func=lambda k: names.get(k, f"{Path(k).name} (base of an earlier fine-tune)"),
                          help="Jobs train a base model; a tuned state cannot be tuned further yet. "
                               "Change the Setup page's model to train another one.")
    return options[choice]


def languages(method: Method, s: Settings) -> tuple[str, ...] | None:
    """(pivot, target) for a method of a pair; the language set, central first, for one of many (LENS)."""
    tatoeba = [n.split(":", 1)[1] for n in _corpora() if n.startswith("tatoeba:")]
    codes = list(dict.fromkeys([*s.corpus.langs, "en", *tatoeba]))
    pivot0, target0 = ui_st.default_pair(list(s.corpus.langs), s.pivot)
    if method.many_languages:
        c = st.columns([3, 1])
        langs = c[0].multiselect("Languages", codes, default=list(s.corpus.langs), key="ft_lens_langs",
                                 bind="query-params",
                                 persist_state=PERSIST, help="Every language of the set, the central one included.")
        central = c[1].selectbox("Central language", langs or ["—"], key="ft_central", bind="query-params",
                                 persist_state=PERSIST,
                                 index=langs.index(s.pivot) if s.pivot in langs else 0,
                                 help="c: its representations are retained; the others are pushed from it.")
        if len(langs) < 2:
            st.warning("Pick at least two languages.", icon=":material/translate:")
            return None
        return (central, *[x for x in langs if x != central])
    c = st.columns(2)
    fields = method.from_langs(("PIVOT", "TARGET"))  # which spec field each choice sets, for the help
    role = {v: k for k, v in fields.items() if isinstance(v, str)}
    pivot = c[0].selectbox("Pivot (dominant) language", codes, index=codes.index(pivot0), key="ft_pivot",
                           bind="query-params",
                           persist_state=PERSIST, help=f"{method.label}'s `{role.get('PIVOT')}`. Usually English.")
    target = c[1].selectbox("Target language", codes, index=codes.index(target0), key="ft_target", bind="query-params",
                            persist_state=PERSIST,
                            help=f"{method.label}'s `{role.get('TARGET')}`: the language to serve better.")
    if pivot == target:
        st.warning("Choose two different languages.", icon=":material/translate:")
        return None
    return pivot, target


# --------------------------------------------------------------------------- data


def _upload() -> str | None:
    """Path of the validated upload, or None (errors shown inline)."""
    from workbench.corpus import CorpusError

    f = st.file_uploader("Parallel pair file", type=["tsv", "jsonl"], key="ft_upload",
                         help="TSV: a header row of language codes (optional first column 'id'), one aligned "
                              'unit per line. JSONL: one object per line, e.g. {"en": "...", "sw": "..."}.')
    if f is None:
        st.info("Upload a TSV or JSONL file of aligned translations.", icon=":material/upload_file:")
        return None
    try:
        path = uploads.save_upload(f.name, f.getvalue())
        uploads.read_upload(path, display_name=f.name)
    except CorpusError as e:
        st.error(f"**This file cannot be used:** {e}\n\nFix the file and upload it again.", icon=":material/error:")
        return None
    return str(path)


def data_spec(langs: tuple[str, ...], s: Settings) -> DataSpec | None:
    """The DataSpec from the source choice and the data options (None while incomplete or invalid)."""
    corpora = _corpora()
    sources: dict[str, str] = {}
    others = [x for x in langs if x != "en"]
    if "en" in langs and len(others) == 1 and f"tatoeba:{others[0]}" in corpora:
        name = f"tatoeba:{others[0]}"
        sources[name] = f"Tatoeba {others[0]}–en pairs ({corpora[name]['n_units']})"
    sources["udhr"] = f"UDHR ({corpora['udhr']['n_units']} articles)" if "udhr" in corpora else "UDHR"
    if s.corpus.source not in sources:
        sources[s.corpus.source] = f"Setup's corpus ({Path(s.corpus.source).name})"
    sources[UPLOAD] = "Upload a file…"
    source = st.radio("Training data", list(sources), format_func=sources.get, horizontal=True, key="ft_source",
                      bind="query-params",
                      persist_state=PERSIST,
                      help="Parallel units in the chosen languages; a seeded held-out part is kept for evaluation.")
    if source == UPLOAD:
        source = _upload()
        if source is None:
            return None
    h = DataSpec.help()
    with st.expander("Data options"):
        c = st.columns(4)
        heldout = c[0].number_input("Held-out fraction", 0.01, 0.9, DataSpec().heldout, 0.05, key="ft_heldout",
                                    bind="query-params",
                                    persist_state=PERSIST, help=h["heldout"])
        limit = c[1].number_input("Training units (limit)", 1, None, None, key="ft_limit", bind="query-params",
                                  persist_state=PERSIST,
                                  placeholder="all", help=h["limit"])
        max_length = c[2].number_input("Max length (tokens)", 8, 8192, DataSpec().max_length, 16,
                                       key="ft_max_length", bind="query-params", persist_state=PERSIST,
                                       help=h["max_length"])
        seed = c[3].number_input("Split seed", 0, None, 0, key="ft_split_seed", bind="query-params",
                                 persist_state=PERSIST,
                                 help=h["split_seed"])
        template = st.text_area("Prompt template", DataSpec().template, key="ft_template", bind="query-params",
                                persist_state=PERSIST,
                                help=h["template"])
    try:
        spec = DataSpec(source=source, heldout=float(heldout), limit=int(limit) if limit else None,
                        split_seed=int(seed), max_length=int(max_length), template=template)
        n_train, n_held = _check_data(spec.to_dict(), langs, str(cache_root()))
    except Exception as e:  # noqa: BLE001 - corpus and spec errors are the user's to fix
        log.info("fine-tune data rejected: %s", e)
        st.error(f"**This data cannot be used:** {user_message(e)}", icon=":material/error:")
        return None
    st.caption(f"{n_train} training units, {n_held} held out for evaluation ({', '.join(langs)}).")
    return spec


# --------------------------------------------------------------------------- method options


def _layers(text: str) -> tuple[int, ...] | None:
    """'' → None (SiLP's allocation), 'none' → () (skip the stage), '1, 2' → (1, 2)."""
    text = text.strip()
    if not text:
        return None
    if text.lower() in ("none", "-", "skip"):
        return ()
    try:
        return tuple(int(x) for x in text.replace(";", ",").split(",") if x.strip())
    except ValueError:
        raise ValueError(f"layers must be comma-separated block indices, got {text!r}") from None


def _prefilled(method: Method, s: Settings, base: ModelSpec, langs: tuple[str, ...],
               knobs: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """(spec fields, a note) from the stored analysis the method names (`Method.prefill`), or None.

    Built from the store only; SiLP's layers come from the stored projection sensitivity.
    """
    pre = method.prefill
    if pre is None or base != s.model or any(x not in s.corpus.langs for x in langs[:2]):
        return None
    for params in pre.params(langs, knobs):
        try:
            _, table, _, _ = ui_st.view(s.figure_spec(pre.analysis, params))
        except Exception:  # noqa: BLE001 - a pre-fill only (not stored, bad knobs); the job computes its own
            log.info("no stored %s view for %s", pre.analysis, params, exc_info=True)
            continue
        return pre.fields(table), pre.note.format(**params)
    return None


def layer_boxes(method: Method, s: Settings, base: ModelSpec, langs: tuple[str, ...],
                knobs: dict[str, Any]) -> dict[str, Any]:
    """Text boxes of the block-list fields (`Method.layer_fields`), pre-filled from the store where it can."""
    found, note = _prefilled(method, s, base, langs, knobs) or ({}, "")
    values = {f: list(found.get(f) or []) for f in method.layer_fields}
    short = {v: k for k, v in method.aliases.items()}
    sig = "_".join("-".join(map(str, v)) for v in values.values())  # a new pre-fill gives fresh boxes
    helps = method.spec.help()
    out: dict[str, Any] = {}
    for col, (name, v) in zip(st.columns(len(values)), values.items()):
        text = col.text_input(name.replace("_", " "), ", ".join(map(str, v)), key=f"ft_{short.get(name, name)}_{sig}",
                              placeholder="auto", help=f"{helps[name]} Empty: computed by the job; 'none': ().")
        out[name] = _layers(text)
    if found:
        st.caption(f"Pre-filled {note}; edit freely.")
    elif method.prefill is not None:
        st.caption(f"Nothing stored to pre-fill these from (record the {method.prefill.analysis} view on the Layer "
                   "profile page); empty boxes let the job compute them.")
    return out


def method_spec(method: Method, langs: tuple[str, ...], steps: int | None, s: Settings, base: ModelSpec) -> Any:
    """The method spec from the widgets (raises ValueError for invalid values)."""
    helps = method.spec.help()
    fields = [f for f in method.own_fields() if f.name not in OTHER_WIDGETS and f.name not in method.layer_fields]
    knobs: dict[str, Any] = {}
    with st.expander(f"{method.label} options (the paper's defaults)"):
        cols = st.columns(4)
        for i, f in enumerate(fields):
            knobs[f.name] = ui_st.field_widget(f"ft_{method.name}", f, helps[f.name], cols[i % 4], persist=PERSIST)
        if method.layer_fields:
            knobs.update(layer_boxes(method, s, base, langs, knobs))
        rest = [f for f in method.own_fields() if f.name in OTHER_WIDGETS - {"max_steps"}]
        if rest:
            st.caption(f"Also: {', '.join(f'`{f.name}`' for f in rest)} through `workbench finetune {method.name} "
                       "--set FIELD=VALUE`.")
    return method.spec_from({**knobs, **method.from_langs(langs), "max_steps": steps})


# --------------------------------------------------------------------------- new job


def new_job(s: Settings) -> None:
    st.header("New fine-tune", divider="gray")
    name = st.radio("Method", list(METHODS), format_func=lambda m: METHODS[m].label, horizontal=True,
                    captions=[m.caption for m in METHODS.values()], key="ft_method", bind="query-params",
                    persist_state=PERSIST)
    method = get_method(name)
    base = base_model(s)
    langs = languages(method, s)
    if langs is None:
        return
    data = data_spec(langs, s)
    c = st.columns([1, 1, 2], vertical_alignment="bottom")
    per_stage = bool(method.stages)
    steps = c[0].number_input("Steps per stage" if per_stage else "Total steps", 1, None, SHORT_RUN_STEPS,
                              key="ft_steps", bind="query-params", persist_state=PERSIST, placeholder="epochs",
                              help=(f"Cap on the optimiser steps of each of {method.label}'s stages "
                                    f"({', '.join(method.stages)})" if per_stage else "Cap on the optimiser steps")
                                   + ", so a CPU run takes minutes. Empty: the paper's epochs.")
    if per_stage and steps:
        parts = " + ".join(f"{x} {int(steps)}" for x in method.stages)
        c[0].caption(f"= {int(steps) * len(method.stages)} steps in all ({parts})")
    evaluate = c[1].toggle("Evaluate before/after", value=True, key="ft_evaluate", bind="query-params",
                           persist_state=PERSIST,
                           help="Held-out translation loss (both directions) and pivot perplexity, before and "
                                "after training.")
    processes, gpus = 1, ranks.visible_devices()
    if gpus > 1 and method.shardable:  # the field exists only where it can help
        processes = int(c[2].number_input("Processes", 1, gpus, 1, key="ft_processes", bind="query-params",
                                          persist_state=PERSIST,
                                          help=f"Data-parallel training on up to {gpus} GPUs (one process each, "
                                               "accelerate launch); the batch is split over them."))
    try:
        spec = method_spec(method, langs, int(steps) if steps else None, s, base)
        problem = None if data is not None else "the training data is not ready"
    except ValueError as e:
        spec, problem = None, str(e)
        st.error(f"**Invalid option:** {e}", icon=":material/error:")
    if st.button("Start", type="primary", icon=":material/play_arrow:", key="ft_start", disabled=problem is not None,
                 help=f"Cannot start: {problem}." if problem else "Start the job in a separate process."):
        try:
            job_id = jobs.start_job(method.name, base, data, spec, evaluate=evaluate, num_processes=processes)
        except (ValueError, OSError) as e:
            st.error(f"**Could not start the job:** {user_message(e)}", icon=":material/error:")
            return
        st.session_state["ft_job"] = job_id
        st.rerun()


# --------------------------------------------------------------------------- jobs


def _fmt_s(t: float | None) -> str:
    if t is None:
        return "…"
    t = int(round(t))
    return f"{t // 60} min {t % 60:02d} s" if t >= 60 else f"{t} s"


def jobs_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One line per job: what the table shows."""
    out = []
    for r in rows:
        final = r.get("state") in jobs.FINAL_STATES
        rec = METHODS.get(str(r.get("method")))
        out.append({"job": r["id"], "method": rec.label if rec else r.get("method"),
                    "state": r.get("state"), "steps": f"{r.get('step') or 0}/{r.get('total') or '?'}",
                    "loss": r.get("loss"), "created": str(r.get("created", ""))[:19].replace("T", " "),
                    "reason": r.get("reason") if r.get("state") in ("failed", "cancelled") else
                    (None if final else r.get("message")),
                    "artifact": r.get("artifact")})
    return pd.DataFrame(out, columns=["job", "method", "state", "steps", "loss", "created", "reason", "artifact"])


def _log_tail(d: str, n: int = 200) -> str:
    path = Path(d) / "log.txt"
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _eval_table(metrics: dict[str, Any]) -> pd.DataFrame | None:
    before, after = metrics.get("eval_before"), metrics.get("eval_after")
    if not before or not after:
        return None
    return pd.DataFrame([{"metric": k, "before": before[k], "after": after.get(k),
                          "change": (after.get(k) or float("nan")) - before[k]} for k in before])


def job_detail(job_id: str) -> None:
    """Progress, loss curve, cancel, and the outcome (reason and log, or artifact) of one job."""
    try:
        st_ = jobs.job_status(job_id)
    except jobs.JobError as e:
        st.warning(str(e))
        return
    state = st_.get("state", "queued")
    rec = METHODS.get(str(st_.get("method")))
    method = rec.label if rec else st_.get("method")
    st.markdown(f"**{method}** `{job_id}` :{STATE_BADGE.get(state, 'gray')}-badge[{state}]")
    step, total = st_.get("step") or 0, st_.get("total")
    history = st_.get("history") or []
    if state in ("queued", "running"):
        st.progress(min(1.0, step / total) if total else 0.0,
                    text=f"{st_.get('message') or state} · step {step}/{total or '?'}")
        m = st.columns(4)
        m[0].metric("Step", f"{step}/{total or '?'}")
        m[1].metric("Loss", f"{history[-1]['loss']:.4f}" if history and history[-1].get("loss") is not None else "—")
        m[2].metric("Steps/s", f"{st_['steps_per_s']:.2f}" if st_.get("steps_per_s") else "—")
        eta = st_.get("eta_s")
        if eta is not None and st_.get("eta_at"):  # counts down from the estimate, through every phase left
            eta = max(0.0, float(eta) - (time.time() - float(st_["eta_at"])))
        m[3].metric("ETA", _fmt_s(eta) if eta is not None else "—",
                    help="Training steps left, then the evaluation after training (about as long as the one before).")
        if st.button("Cancel", key=f"ft_cancel_{job_id}", icon=":material/stop:"):
            st_ = jobs.cancel_job(job_id, grace_s=2.0)
            st.rerun(scope="app")
    if history:
        fig = compare_figures.training_loss_figure(history, title=f"Training loss, {method} ({job_id[-6:]})")
        ui_st.show_figure(fig, f"loss-{job_id}", pd.DataFrame(history), height=340)
    if state == "failed":
        st.error(f"**The job failed:** {st_.get('reason') or 'no reason was recorded'}", icon=":material/error:")
    elif state == "cancelled":
        st.warning(f"**Cancelled:** {st_.get('reason') or ''}", icon=":material/stop_circle:")
    elif state == "done":
        st.success(f"Done: a new model state, base + artifact `{st_.get('artifact')}`.",
                   icon=":material/check_circle:")
        table = _eval_table(st_.get("metrics") or {})
        if table is not None:
            st.dataframe(table, hide_index=True, column_config={
                c: st.column_config.NumberColumn(format="%.4f") for c in ("before", "after", "change")})
            st.caption("Held-out translation loss (nats per target token) and pivot perplexity, measured by the "
                       "job before and after training (lower is better).")
        st.page_link(COMPARE_PAGE, label="Compare with its base", icon=":material/compare_arrows:")
    with st.expander("Log" if state != "failed" else "Full log"):
        st.code(_log_tail(st_["dir"]), language=None)
    with st.expander("Configuration"):
        st.json(st_.get("config") or {}, expanded=False)


def jobs_section() -> None:
    st.header("Jobs", divider="gray")
    rows = jobs.list_jobs()
    busy = {r["id"] for r in rows if r.get("state") not in jobs.FINAL_STATES}

    @st.fragment(run_every=2 if busy else 10)
    def _poll() -> None:
        now = jobs.list_jobs()
        if {r["id"] for r in now if r.get("state") not in jobs.FINAL_STATES} != busy:
            st.rerun(scope="app")  # a job started or ended: refresh the whole page (polling rate, states)
        if not now:
            st.caption("No jobs yet. Start one above; jobs of earlier sessions are listed here too.")
            return
        st.dataframe(jobs_table(now), hide_index=True, column_config={
            "loss": st.column_config.NumberColumn(format="%.4f"),
            "reason": st.column_config.TextColumn(width="large"),
            "artifact": st.column_config.TextColumn(help="base + this artifact = the tuned model state")})
        ids = [r["id"] for r in now]
        if st.session_state.get("ft_job") not in ids:
            st.session_state.pop("ft_job", None)
        # the state is the badge below (a label with it would show the state of when the box was first drawn)
        label = {r["id"]: f"{r['id']} · {str(r.get('created', ''))[:16].replace('T', ' ')}" for r in now}
        job_id = st.selectbox("Job", ids, format_func=label.get, key="ft_job", bind="query-params", width=480)
        job_detail(job_id)

    _poll()


new_job(s)
jobs_section()

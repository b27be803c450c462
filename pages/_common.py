"""Shared Streamlit pieces of the pages: settings, caches, recording panels, figure output.

Not a page itself (app.py's st.navigation lists only the view files). Computation lives
in `workbench` (analysis via `workbench.ui_support`'s view tables); this module only
wires widgets, caches and the background recording jobs to the page.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import re
import shlex
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from workbench import export as wb_export
from workbench import recipes, recordings
from workbench import ui_support as ui
from workbench.config import SILP_TEMPLATE, CorpusSpec, ModelSpec, RecordSpec
from workbench.errors import user_message
from workbench.jobs.progress import Snapshot
from workbench.jobs.threads import JOBS
from workbench.paths import cache_root
from workbench.recipes import tables as views

log = logging.getLogger("workbench.app")

SETTINGS_KEY = "wb_settings"
PAGES = {
    "setup": "pages/setup.py",
    "layer_profile": "pages/layer_profile.py",
    "map": "pages/representation_map.py",
    "subspaces": "pages/language_subspaces.py",
    "neurons": "pages/neurons.py",
    "finetune": "pages/finetune.py",
    "compare": "pages/compare.py",
}


# --------------------------------------------------------------------------- settings


def get_settings() -> ui.Settings:
    """The Setup page's choices (defaults until it has been visited)."""
    raw = st.session_state.get(SETTINGS_KEY)
    if raw:
        try:
            return ui.Settings.from_dict(raw)
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring unreadable settings in session state: %r", raw)
    return ui.Settings()


def save_settings(settings: ui.Settings) -> None:
    """Keep the choices for every page of this session."""
    st.session_state[SETTINGS_KEY] = settings.to_dict()


def data_key(settings: ui.Settings) -> dict[str, Any]:
    """Hashable key of everything a cached table depends on (specs and the store root)."""
    return {"settings": settings.to_dict(), "root": str(cache_root())}


# --------------------------------------------------------------------------- caches


def _recording(key: dict[str, Any], pair: tuple[str, str] | None = None) -> Any:
    """The complete recording behind a cached table (called only on cache misses)."""
    s = ui.Settings.from_dict(key["settings"])
    if pair:
        status = recordings.store_status(s.model, s.pair_corpus(*pair), s.silp_spec(), [pair])
    else:
        status = recordings.store_status(s.model, s.corpus, s.record_spec())
    if status.recording is None:
        raise RuntimeError("the recording is no longer in the store; record it again on the Setup page")
    return status.recording


def corpus_of(settings: ui.Settings) -> Any:
    """The corpus with the chosen languages and limit."""
    from workbench.recordings import load_corpus_spec

    return load_corpus_spec(settings.corpus)


@st.cache_data(show_spinner=False, max_entries=64)
def retrieval_tables(key: dict, pooling: str, method: str, k: int, pivot: str,
                     center: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    return views.retrieval_tables(_recording(key), pooling, method=method, k=k, pivot=pivot, center=center)


@st.cache_data(show_spinner=False, max_entries=64)
def retrieval_matrix(key: dict, pooling: str, layer: Any, method: str, k: int) -> pd.DataFrame:
    return views.retrieval_matrix_at(_recording(key), pooling, layer, method=method, k=k)


@st.cache_data(show_spinner=False, max_entries=64)
def sensitivity_scores(key: dict, src: str, tgt: str, variant: str) -> Any:
    return views.sensitivity_scores(_recording(key, (src, tgt)), f"{src}>{tgt}", variant)


@st.cache_data(show_spinner=False, max_entries=64)
def overlap_table(key: dict, pivot: str, langs: tuple[str, ...], top_frac: float) -> pd.DataFrame:
    return views.overlap_table(_recording(key), pivot, langs, top_frac=top_frac)


@st.cache_data(show_spinner=False, max_entries=64)
def specific_counts(key: dict, langs: tuple[str, ...], entropy_quantile: float,
                    prob_quantile: float) -> pd.DataFrame:
    return views.specific_counts(_recording(key), langs, entropy_quantile=entropy_quantile,
                              prob_quantile=prob_quantile)


@st.cache_data(show_spinner="Computing the map…", max_entries=32)
def map_points(key: dict, pooling: str, layer: Any, method: str, random_state: int) -> pd.DataFrame:
    s = ui.Settings.from_dict(key["settings"])
    return views.map_points(_recording(key), corpus_of(s), pooling, layer, method=method,
                         random_state=random_state)


@st.cache_data(show_spinner=False, max_entries=32)
def subspace_view(key: dict, pooling: str, layer: Any, rank: int | None,
                  central: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, bool]]:
    s = ui.Settings.from_dict(key["settings"])
    return views.subspace_view(_recording(key), corpus_of(s), pooling, layer, rank=rank, central=central)


@st.cache_data(show_spinner=False, max_entries=32)
def separation_table(key: dict, pooling: str, rank: int | None, central: str, holdout: bool) -> pd.DataFrame:
    return views.separation_table(_recording(key), pooling, rank=rank, central=central, holdout=holdout)


# --------------------------------------------------------------------------- page frame


def _lang_list(langs: Sequence[str], n: int = 8) -> str:
    return ", ".join(langs[:n]) + (f" … (+{len(langs) - n})" if len(langs) > n else "")


def settings_line(s: ui.Settings) -> str:
    """One markdown line naming the current choice."""
    from pathlib import Path

    limit = f" · first {s.corpus.limit} units" if s.corpus.limit else ""
    model = Path(s.model.source).name + (f" + {Path(s.model.artifact).parent.name}" if s.model.artifact else "")
    return (f"**Model** `{model}` · **Corpus** `{Path(s.corpus.source).name}`{limit} · "
            f"**Languages** {_lang_list(list(s.corpus.langs))} · **Pooling** {s.pooling} · "
            f"**Max length** {s.max_length}")


def page_header(title: str, caption: str, *, show_settings: bool = True) -> ui.Settings:
    """Title, a one-line explanation, the current choice, and the sidebar status."""
    s = get_settings()
    st.title(title)
    st.caption(caption)
    if show_settings:
        cols = st.columns([6, 1], vertical_alignment="center")
        cols[0].markdown(settings_line(s))
        cols[1].page_link(PAGES["setup"], label="Change", icon=":material/tune:")
    _sidebar_jobs()
    return s


def _sidebar_jobs() -> None:
    running = [j.snapshot() for j in JOBS.jobs()]
    running = [j for j in running if j.running]
    if running:
        with st.sidebar:
            st.caption("Recording in the background")
            for j in running:
                st.progress(j.fraction, text=j.label)


@contextmanager
def guard(what: str) -> Iterator[None]:
    """Show an error inside a view as a readable message; the traceback goes to the log."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - one view failing must not take the page down
        log.warning("%s failed", what, exc_info=True)
        st.error(f"Could not compute {what}: {user_message(e)}", icon=":material/error:")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "figure"


def show_figure(fig: go.Figure, name: str, data: pd.DataFrame | None = None, *, height: int | None = None,
                index: bool = False, spec: Mapping[str, Any] | None = None) -> None:
    """Render a figure with downloads: the figure (HTML), its numbers (CSV) and a paper export.

    Args:
        fig: the figure; the export renders this same object in the paper theme.
        name: figure name (widget keys and file names).
        data: the table behind the figure.
        height: on-screen height in px.
        index: `data`'s index is part of the table (it becomes the first CSV column).
        spec: the figure spec (`workbench.report` format, see `figure_spec`) that rebuilds this
            figure from the page's current choices; it goes into the export's manifest.
    """
    if height:
        fig.update_layout(height=height)
    # Let plotly grow the margins for long tick labels (small scores like 0.0035).
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    slug = _slug(name)
    st.plotly_chart(fig, theme=None, key=f"fig-{slug}",
                    config={"displaylogo": False, "toImageButtonOptions": {"filename": slug, "scale": 2}})
    row = st.container(horizontal=True, gap="small")
    row.download_button("Figure (HTML)", fig.to_html(include_plotlyjs="cdn"), file_name=f"{slug}.html",
                        mime="text/html", on_click="ignore", icon=":material/download:", key=f"dl-{slug}",
                        help="Interactive figure as a standalone HTML file.")
    if data is not None:
        # The same bytes as the export's CSV (and `workbench export`'s), so the two downloads agree.
        row.download_button("Data (CSV)", wb_export.csv_bytes(export_table(data, index)), file_name=f"{slug}.csv",
                            mime="text/csv", on_click="ignore", icon=":material/table:", key=f"csv-{slug}",
                            help="The numbers behind the figure.")
    with row.popover("Export", icon=":material/ios_share:", key=f"exp-{slug}",
                     help="Paper figure (PDF, SVG, PNG at column width), its data (CSV, Parquet) and a "
                          "manifest with the command that regenerates them."):
        _export_panel(fig, name, data, spec=spec, index=index)


# --------------------------------------------------------------------------- paper export

EXPORT_FORMATS = ("pdf", "svg", "png")
EXPORT_WIDTHS = {"single": "Single column (3.3 in)", "double": "Double column (6.9 in)"}
EXPORT_DPIS = (150, 300, 600)
UI_SOURCE = "workbench UI (Streamlit)"
TINY_NOTE = ("made with the tiny random-init test model ('tiny-test', WORKBENCH_UI_TINY_MODEL=1), which exists "
             "only inside the app: `workbench export --manifest` cannot load it, so the figure spec is kept "
             "under 'ui_spec' (not 'spec') and there is no regenerate command")


def figure_spec(s: ui.Settings, analysis: str, params: Mapping[str, Any], *, langs: Sequence[str] | None = None,
                title: str | None = None) -> dict[str, Any]:
    """The figure spec (`workbench.report` format) of a view: the Setup choice plus the view's parameters.

    Args:
        s: the settings (model, corpus, languages, limit, max length, pooling).
        analysis: a `workbench.recipes.ANALYSES` name.
        params: the analysis parameters chosen on the page; `pooling` is filled in from the
            settings for analyses that take it.
        langs: the languages the view uses (default: the Setup choice).
        title: the figure title (default: the shown figure's, filled in by `export_zip`).

    Returns:
        A spec `workbench.recipes.normalize_spec` accepts; `build_figure` rebuilds the view from it.
    """
    default = RecordSpec().to_dict()
    record = {k: v for k, v in s.record_spec().to_dict().items() if v != default[k]}
    p = dict(params)
    if "pooling" in recipes.ANALYSES.get(analysis, {}):
        p.setdefault("pooling", s.pooling)
    return {"analysis": analysis, "model": s.model.to_dict(), "corpus": s.corpus.source,
            "langs": list(langs if langs is not None else s.corpus.langs), "limit": s.corpus.limit,
            "record": record, "params": p, "title": title}


def export_table(data: pd.DataFrame | None, index: bool = False) -> pd.DataFrame:
    """The table written as CSV/Parquet: the index (when the page shows it) as the first column, text headers."""
    if data is None:
        return pd.DataFrame()
    out = data.reset_index() if index else data.copy()
    out.columns = [str(c) for c in out.columns]
    return out


def _spec_recordings(canon: dict[str, Any]) -> list[tuple[str, Any]]:
    """The stored recordings a canonical spec reads, as `report.build_figure` records them (lookup only).

    Raises:
        ExportError: a recording is not in the store (the spec does not describe the page's data).
    """
    p = canon["params"]
    model = ModelSpec.from_dict(canon["model"])
    rspec = RecordSpec.from_dict({**RecordSpec().to_dict(), **canon["record"]})
    langs, pairs = list(canon["langs"]), None
    if canon["analysis"] == "sensitivity":  # SiLP's pair-template pass of one direction
        langs, pairs = [p["src"], p["tgt"]], [(p["src"], p["tgt"])]
        rspec = dataclasses.replace(rspec, template=SILP_TEMPLATE, poolings=("mean",), embeddings=False,
                                    ffn_stats=True)
    elif canon["analysis"] == "overlap":
        langs = [p["pivot"], *[x for x in langs if x != p["pivot"]]]
    states = [("main", model)]
    if canon["analysis"] == "retrieval_compare":
        states = [("before", model), ("after", dataclasses.replace(model, artifact=str(p["artifact"])))]
    corpus = CorpusSpec(source=canon["corpus"], langs=tuple(langs), limit=canon["limit"])
    out = []
    for role, m in states:
        status = recordings.store_status(m, corpus, rspec, pairs)
        if status.recording is None:
            why = status.unknown or f"{', '.join(status.missing) or 'some units'} not in the store"
            raise wb_export.ExportError(f"the recording behind this figure cannot be found ({why}); "
                                        "record it again on the Setup page")
        out.append((role, status.recording))
    return out


def export_manifest(spec: Mapping[str, Any] | None, *, figure: str) -> dict[str, Any]:
    """Provenance of a UI figure for `export_figure`'s manifest, as `report.build_figure` gives it.

    Holds analysis, params, the canonical spec, model (source, name, state fingerprint),
    corpus (source, name, limit, content hash per language), languages, record spec, the
    recordings' store keys and `commands.analyze`; `export_figure` adds versions, files,
    export options and the `workbench export --manifest` command. Figures of the tiny test
    model, or without a spec, are marked ``regenerable: false`` with the reason.

    Args:
        spec: the figure spec the page passed (None: the manifest says it cannot be rebuilt).
        figure: the figure's name on the page.

    Raises:
        ExportError: a bad spec (`report.normalize_spec`), or its recording is not in the store.
    """
    source = {"exported_from": UI_SOURCE, "ui_figure": figure}
    if spec is None:
        return {**source, "regenerable": False,
                "not_regenerable": "this view gave no figure spec, so no command can rebuild it"}
    canon = recipes.normalize_spec(spec)
    # build_figure's own provenance code, over the recordings the page read from the store
    # (found, never re-recorded), so UI and CLI manifests hold the same fields.
    info = {"analysis": canon["analysis"], "params": dict(canon["params"]), "spec": canon,
            **recipes.provenance(canon, _spec_recordings(canon)),
            "commands": {"analyze": recipes.analyze_command(canon)}, **source, "regenerable": True}
    if canon["model"]["source"] == ui.TINY_MODEL:
        info["ui_spec"] = info.pop("spec")  # no "spec": `workbench export --manifest` refuses it clearly
        info["commands"]["analyze"] = None
        info.update(regenerable=False, not_regenerable=TINY_NOTE)
    return info


def _portable_commands(manifest: Path) -> None:
    """Regenerate commands that work where the zip is unpacked (export_figure wrote the temp folder's path)."""
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    commands = doc.setdefault("commands", {})
    commands["regenerate"] = shlex.join(["workbench", "export", "--manifest", manifest.name, "--overwrite"])
    commands["regenerate_elsewhere"] = shlex.join(["workbench", "export", "--manifest", manifest.name,
                                                   "--out", "DIR"])
    doc["commands_run_in"] = "the folder the export zip was unpacked into"
    manifest.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def export_zip(fig: go.Figure, data: pd.DataFrame | None, name: str, *, spec: Mapping[str, Any] | None = None,
               formats: Sequence[str] = EXPORT_FORMATS, width: str | float = "single", dpi: int = 300,
               index: bool = False) -> bytes:
    """A zip of the paper figure, its data and manifest, rendered by `workbench.export.export_figure`.

    Written into a fresh temporary folder (nothing existing is overwritten) and zipped flat:
    ``<name>.pdf/.svg/.png`` (those in `formats`), ``<name>.csv``, ``<name>.parquet`` and
    ``<name>.manifest.json``, with ``<name> = export.safe_name(name)``.

    Args:
        fig: the figure the page shows (rendered in export's paper theme, itself unchanged).
        data: the table behind it.
        name: figure name.
        spec: the figure spec (see `figure_spec`); its title defaults to the figure's.
        formats: any of pdf, svg, png.
        width: ``"single"`` (3.3 in), ``"double"`` (6.9 in) or inches.
        dpi: PNG resolution (the PNG is ``width × dpi`` pixels wide).
        index: `data`'s index is part of the table.

    Returns:
        The zip file's bytes.

    Raises:
        ExportError: bad spec or options, or the recording is gone; ChromiumNotFoundError: no
            browser to render PDF/SVG/PNG.
    """
    stem = wb_export.safe_name(name)
    if spec is not None and not spec.get("title") and fig.layout.title.text:
        spec = {**spec, "title": fig.layout.title.text}  # so the regenerated figure has the same title
    info = export_manifest(spec, figure=name)
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="workbench-export-") as tmp:
        paths = wb_export.export_figure(fig, export_table(data, index), tmp, stem, formats=formats, width_in=width,
                                        dpi=dpi, manifest=info)
        if info["regenerable"]:
            _portable_commands(next(p for p in paths if p.name.endswith(wb_export.MANIFEST_SUFFIX)))
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for p in paths:
                zf.write(p, arcname=p.name)
    return buf.getvalue()


def export_state_key(name: str) -> str:
    """Session-state key of a figure's prepared export: {"token", "file_name", "data"}."""
    return f"exp-zip-{_slug(name)}"


def _export_token(fig: go.Figure, spec: Mapping[str, Any] | None, options: dict[str, Any]) -> str:
    """Identity of what an export would contain: a prepared zip is offered only while it matches."""
    h = hashlib.sha256(fig.to_json().encode("utf-8"))
    h.update(json.dumps([spec, options], sort_keys=True, default=str).encode("utf-8"))
    return h.hexdigest()


def _export_panel(fig: go.Figure, name: str, data: pd.DataFrame | None, *, spec: Mapping[str, Any] | None,
                  index: bool) -> None:
    """The Export popover's content: options, "Prepare export", then one zip download."""
    slug = _slug(name)
    formats = st.multiselect("Formats", list(EXPORT_FORMATS), default=list(EXPORT_FORMATS), key=f"exp-fmt-{slug}")
    width = st.radio("Width", list(EXPORT_WIDTHS), format_func=EXPORT_WIDTHS.__getitem__, key=f"exp-width-{slug}")
    dpi = st.selectbox("PNG resolution", EXPORT_DPIS, index=EXPORT_DPIS.index(300), key=f"exp-dpi-{slug}",
                       format_func=lambda d: f"{d} dpi")
    st.caption("Paper theme, with the data as CSV and Parquet and a manifest (model fingerprint, corpus "
               "hash, languages, parameters, versions, the `workbench export --manifest …` command).")
    model = (spec or {}).get("model")
    if (model if isinstance(model, str) else (model or {}).get("source")) == ui.TINY_MODEL:
        st.caption("Tiny test model: the manifest records everything, but the CLI cannot regenerate it.")
    options = {"formats": formats, "width": width, "dpi": dpi, "index": index}
    token = _export_token(fig, spec, options)
    key = export_state_key(name)
    file_name = f"{wb_export.safe_name(name)}.zip"
    if st.button("Prepare export", key=f"exp-go-{slug}", icon=":material/picture_as_pdf:", disabled=not formats,
                 help="Render the files (a few seconds) and offer them as one zip."):
        try:
            with st.spinner("Rendering the paper figure…", show_time=True):
                blob = export_zip(fig, data, name, spec=spec, formats=formats, width=width, dpi=dpi, index=index)
        except Exception as e:  # noqa: BLE001 - shown to the user; the traceback goes to the log
            log.warning("export of %s failed", name, exc_info=True)
            st.error(f"Could not export this figure: {user_message(e)} The HTML and CSV downloads above "
                     "still work.", icon=":material/error:")
        else:
            st.session_state[key] = {"token": token, "file_name": file_name, "data": blob}
    prepared = st.session_state.get(key)
    if prepared is not None and prepared["token"] == token:  # stale once the figure or options change
        st.download_button(f"Download {file_name}", prepared["data"], file_name=file_name, mime="application/zip",
                           on_click="ignore", type="primary", icon=":material/download:", key=f"exp-dl-{slug}")
    elif not formats:
        st.caption("Choose at least one format.")


# --------------------------------------------------------------------------- recordings


def _fmt_seconds(t: float | None) -> str:
    if t is None:
        return "…"
    t = int(round(t))
    return f"{t // 60} min {t % 60:02d} s" if t >= 60 else f"{t} s"


def _progress_text(j: Snapshot) -> str:
    parts = [j.message]
    if j.total:
        parts.append(f"{j.done}/{j.total} sentences")
    if j.rate:
        parts.append(f"{j.rate:.1f} sentences/s")
        parts.append(f"ETA {_fmt_seconds(j.eta)}")
    parts.append(f"elapsed {_fmt_seconds(j.elapsed)}")
    return " · ".join(parts)


def job_panel(key: str) -> Snapshot | None:
    """Progress of the job `key` (polled every second while it runs), or its outcome."""
    job = JOBS.get(key)
    if job is None:
        return None
    snap = job.snapshot()
    if snap.running:

        @st.fragment(run_every=1.0)
        def _poll() -> None:
            s = job.snapshot()
            if not s.running:
                st.rerun(scope="app")
            st.progress(s.fraction, text=_progress_text(s))
            if st.button("Cancel", key=f"cancel-{key}", icon=":material/stop:", type="tertiary"):
                job.cancel()

        _poll()
    elif snap.state == "failed":
        st.error(f"Recording failed: {snap.error}", icon=":material/error:")
    elif snap.state == "cancelled":
        st.warning("Recording cancelled. Units finished before the cancel are kept in the store.",
                   icon=":material/stop_circle:")
    return snap


def record_button(model: ModelSpec, corpus_spec: Any, spec: Any, pairs: list[tuple[str, str]] | None,
                  label: str) -> None:
    """A primary button that starts (or joins) the background recording of these specs."""
    key = recordings.job_key(model, corpus_spec, spec, pairs)
    job = JOBS.get(key)
    if job is None or not job.snapshot().running:
        if st.button(label, type="primary", icon=":material/fiber_manual_record:", key=f"rec-{key}"):
            # The button shows only when the store lacks the recording, so a finished job of the
            # same specs is stale (entries removed since): run again rather than reuse it.
            recordings.start_recording(model, corpus_spec, spec, pairs, rerun_done=True)
            st.rerun()
    job_panel(key)


def require_recording(s: ui.Settings, *, pair: tuple[str, str] | None = None, what: str) -> Any:
    """The recording a view needs, or an empty state saying what to record (with the button).

    Args:
        s: the settings.
        pair: a translation direction: the view needs SiLP's pair-template pass for it.
        what: what the view shows (for the message).
    """
    if pair:
        corpus_spec, spec, pairs = s.pair_corpus(*pair), s.silp_spec(), [pair]
    else:
        corpus_spec, spec, pairs = s.corpus, s.record_spec(), None
    try:
        status = recordings.store_status(s.model, corpus_spec, spec, pairs)
    except Exception as e:  # noqa: BLE001 - unknown language, bad corpus file, ...
        log.warning("store lookup failed", exc_info=True)
        st.error(f"{user_message(e)} Fix the choice on the Setup page.", icon=":material/error:")
        return None
    if status.recording is not None:
        return status.recording
    job = JOBS.get(recordings.job_key(s.model, corpus_spec, spec, pairs))
    if status.unknown and job is not None and job.snapshot().state == "done":
        return job.snapshot().recording  # the store cannot be checked (hub model): trust the run
    if pair:
        msg = (f"{what} needs SiLP's translation-prompt pass for **{pair[0]} → {pair[1]}** "
               f"({corpus_spec.limit or 'all'} units); it is not in the store yet.")
        label = f"Record {pair[0]} → {pair[1]} pass"
    else:
        have = len(status.units) - len(status.missing)
        stored = (f" ({have} of {len(status.units)} languages are stored)" if status.unknown is None and have
                  else "")
        msg = (f"{what} needs this model's layer representations of the chosen languages; "
               f"nothing complete is stored yet{stored}.")
        label = "Record now"
    if status.unknown:
        msg += f" The store could not be checked ({status.unknown}); recording reuses whatever is stored."
    st.info(msg, icon=":material/info:")
    record_button(s.model, corpus_spec, spec, pairs, label)
    return None


def layer_options(recording: Any) -> list[Any]:
    """The recorded layer labels ("emb", 0, 1, …)."""
    return list(recording.layer_labels)


def language_label(settings: ui.Settings) -> Any:
    """A format_func for language codes: "sw — Swahili"."""
    languages = corpus_of(settings).languages

    def fmt(code: str) -> str:
        lang = languages.get(code)
        return f"{code} — {lang.name}" if lang is not None else code

    return fmt


def default_pair(langs: Sequence[str], pivot: str) -> tuple[str, str]:
    """A default translation direction: pivot → the first other language."""
    other = [x for x in langs if x != pivot]
    return pivot, (other[0] if other else pivot)

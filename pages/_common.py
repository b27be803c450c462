"""Shared Streamlit pieces of the pages: settings, caches, recording panels, figure output.

Not a page itself (app.py's st.navigation lists only the view files). Computation lives
in `workbench` (analysis via `workbench.ui_support`'s view tables); this module only
wires widgets, caches and the background recording jobs to the page.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from workbench import ui_support as ui
from workbench import views
from workbench.config import ModelSpec
from workbench.paths import cache_root

log = logging.getLogger("workbench.app")

SETTINGS_KEY = "wb_settings"
PAGES = {
    "setup": "pages/setup.py",
    "layer_profile": "pages/layer_profile.py",
    "map": "pages/representation_map.py",
    "subspaces": "pages/language_subspaces.py",
    "neurons": "pages/neurons.py",
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


@st.cache_resource(show_spinner=False, max_entries=2)
def _model_state(spec: dict[str, Any], _progress: Any = None) -> Any:
    """The loaded, read-only model (shared by every session and tab of this server).

    `_progress` (not part of the cache key) receives loading / converting messages.
    """
    return ui.load_state(ModelSpec.from_dict(spec), _progress)


def state_loader(spec: ModelSpec, progress: Any = None) -> Any:
    """Loader handed to recording jobs: the st.cache_resource-backed model state."""
    return _model_state(spec.to_dict(), progress)


def _recording(key: dict[str, Any], pair: tuple[str, str] | None = None) -> Any:
    """The complete recording behind a cached table (called only on cache misses)."""
    s = ui.Settings.from_dict(key["settings"])
    if pair:
        status = ui.store_status(s.model, s.pair_corpus(*pair), s.silp_spec(), [pair])
    else:
        status = ui.store_status(s.model, s.corpus, s.record_spec())
    if status.recording is None:
        raise RuntimeError("the recording is no longer in the store; record it again on the Setup page")
    return status.recording


def corpus_of(settings: ui.Settings) -> Any:
    """The corpus with the chosen languages and limit."""
    from workbench.session import load_corpus_spec

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
    return (f"**Model** `{Path(s.model.source).name}` · **Corpus** `{Path(s.corpus.source).name}`{limit} · "
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
    running = [j.snapshot() for j in ui.JOBS.jobs()]
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
        st.error(f"Could not compute {what}: {ui.describe_error(e)}", icon=":material/error:")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "figure"


def show_figure(fig: go.Figure, name: str, data: pd.DataFrame | None = None, *, height: int | None = None,
                index: bool = False) -> None:
    """Render a figure with download buttons for the figure (HTML) and its numbers (CSV)."""
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
        row.download_button("Data (CSV)", data.to_csv(index=index), file_name=f"{slug}.csv", mime="text/csv",
                            on_click="ignore", icon=":material/table:", key=f"csv-{slug}",
                            help="The numbers behind the figure.")


# --------------------------------------------------------------------------- recordings


def _fmt_seconds(t: float | None) -> str:
    if t is None:
        return "…"
    t = int(round(t))
    return f"{t // 60} min {t % 60:02d} s" if t >= 60 else f"{t} s"


def _progress_text(j: ui.JobSnapshot) -> str:
    parts = [j.message]
    if j.total:
        parts.append(f"{j.done}/{j.total} sentences")
    if j.rate:
        parts.append(f"{j.rate:.1f} sentences/s")
        parts.append(f"ETA {_fmt_seconds(j.eta)}")
    parts.append(f"elapsed {_fmt_seconds(j.elapsed)}")
    return " · ".join(parts)


def job_panel(key: str) -> ui.JobSnapshot | None:
    """Progress of the job `key` (polled every second while it runs), or its outcome."""
    job = ui.JOBS.get(key)
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
    elif snap.state == "error":
        st.error(f"Recording failed: {snap.error}", icon=":material/error:")
    elif snap.state == "cancelled":
        st.warning("Recording cancelled. Units finished before the cancel are kept in the store.",
                   icon=":material/stop_circle:")
    return snap


def record_button(model: ModelSpec, corpus_spec: Any, spec: Any, pairs: list[tuple[str, str]] | None,
                  label: str) -> None:
    """A primary button that starts (or joins) the background recording of these specs."""
    key = ui.job_key(model, corpus_spec, spec, pairs)
    job = ui.JOBS.get(key)
    if job is None or not job.snapshot().running:
        if st.button(label, type="primary", icon=":material/fiber_manual_record:", key=f"rec-{key}"):
            # The button shows only when the store lacks the recording, so a finished job of the
            # same specs is stale (entries removed since): run again rather than reuse it.
            ui.start_recording(model, corpus_spec, spec, pairs, state_loader=state_loader, rerun_done=True)
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
        status = ui.store_status(s.model, corpus_spec, spec, pairs)
    except Exception as e:  # noqa: BLE001 - unknown language, bad corpus file, ...
        log.warning("store lookup failed", exc_info=True)
        st.error(f"{ui.describe_error(e)} Fix the choice on the Setup page.", icon=":material/error:")
        return None
    if status.recording is not None:
        return status.recording
    job = ui.JOBS.get(ui.job_key(s.model, corpus_spec, spec, pairs))
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

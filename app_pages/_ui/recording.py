"""Recording on a page: the empty state with a Record button, live progress shared by every tab."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import streamlit as st

from workbench import recordings
from workbench.config import ModelSpec
from workbench.corpus import load_corpus_spec
from workbench.errors import user_message
from workbench.jobs import history, warm
from workbench.jobs.warm import WARM
from workbench.models import checks
from workbench.progress import Snapshot
from workbench.recipes.settings import Settings
from workbench.recordings import Recording

log = logging.getLogger("workbench.app")


def _fmt_seconds(t: float | None) -> str:
    if t is None:
        return "…"
    t = int(round(t))
    return f"{t // 60} min {t % 60:02d} s" if t >= 60 else f"{t} s"


# job id -> (units done, ETA when that count was first seen, when): the ETA shown counts down
# from the last estimate until the next progress report, instead of climbing while one batch
# runs (the rate over the window falls as time passes without a report). Process-wide, so
# every tab shows the same numbers.
_ETA_SEEN: dict[str, tuple[int, float | None, float]] = {}
_ETA_LOCK = threading.Lock()


def shown_eta(j: Snapshot, now: float | None = None) -> float | None:
    """Seconds left as shown: the running-rate ETA at the last progress report, counted down since.

    Args:
        j: the job's snapshot (its `eta` comes from the job's `RateMeter`).
        now: the time (`time.monotonic()`), for tests.

    Returns:
        None while no rate is known yet; never more than the estimate at the last report.
    """
    now = time.monotonic() if now is None else now
    with _ETA_LOCK:
        if not j.running:
            _ETA_SEEN.pop(j.id, None)
            return None
        seen = _ETA_SEEN.get(j.id)
        if seen is None or seen[0] != j.done or seen[1] is None:
            _ETA_SEEN[j.id] = seen = (j.done, j.eta, now)
        done, eta, t = seen
        return None if eta is None else max(0.0, eta - (now - t))


def _singular(unit: str) -> str:
    return unit[:-1] if unit.endswith("s") else unit


def rate_text(rate: float, unit: str) -> str:
    """A rate that never reads "0.0 sentences/s": per second from 1 up, else seconds per unit."""
    return f"{rate:.1f} {unit}/s" if rate >= 1 else f"{1 / rate:.1f} s per {_singular(unit)}"


def progress_text(j: Snapshot, now: float | None = None) -> str:
    """One line for a running job: phase, units done (of those that are computed), running rate, ETA, elapsed."""
    parts = [j.message]
    if j.total:
        parts.append(f"{j.done}/{j.total} {j.unit}")
        if j.rate:
            parts.append(rate_text(j.rate, j.unit))
        eta = shown_eta(j, now)
        parts.append("ETA: estimating" if eta is None else "ETA: any moment" if eta < 1 else f"ETA {_fmt_seconds(eta)}")
    parts.append(f"elapsed {_fmt_seconds(j.elapsed)}")
    return " · ".join(parts)


def outcome_text(j: Snapshot) -> str:
    """One line for a finished job: done (and how long), failed (why) or cancelled."""
    if j.state == "done":
        return f"finished in {_fmt_seconds(j.elapsed)}"
    if j.state == "failed":
        return f"failed: {j.error}"
    return j.state


def job_panel(key: str) -> Snapshot | None:
    """Progress of the job `key` (polled every second while it runs), or its outcome."""
    job = WARM.get(key)
    if job is None:
        return None
    snap = job.snapshot()
    if snap.running:

        @st.fragment(run_every=1.0)
        def _poll() -> None:
            s = job.snapshot()
            if not s.running:
                st.rerun(scope="app")
            st.progress(s.fraction, text=progress_text(s))
            if st.button("Cancel", key=f"cancel-{key}", icon=":material/stop:", type="tertiary"):
                job.cancel()

        _poll()
    elif snap.state == "failed":
        st.error(f"Recording failed: {snap.error}", icon=":material/error:")
    elif snap.state == "cancelled":
        st.warning("Recording cancelled. Units finished before the cancel are kept in the store.",
                   icon=":material/stop_circle:")
    return snap


def estimate_text(kind: str, model: ModelSpec, units: int, unit: str) -> str:
    """What a job will compute and about how long it takes here (from the worker's history of earlier runs)."""
    loaded = any(m.get("source") == model.source for m in warm.worker_state().get("loaded", []))
    seconds, basis = history.estimate(warm.worker_root(), kind, model.source, units, loaded=loaded)
    when = f"about {_fmt_seconds(seconds)} ({basis})" if seconds is not None else f"time unknown ({basis})"
    return f"{units} {unit} to compute · {when}"


def recording_plan(model: ModelSpec, corpus_spec: Any, spec: Any, pairs: list[tuple[str, str]] | None) -> str:
    """One line: the units a recording would compute (what the store lacks) and the estimated time."""
    status = recordings.store_status(model, corpus_spec, spec, pairs)
    n = len(load_corpus_spec(corpus_spec))
    missing = status.missing if status.unknown is None else status.units
    return f"Recording {len(missing)} unit(s) × {n} sentences: " + estimate_text("record", model, len(missing) * n,
                                                                                 "sentences")


def finished_recording(job: Any, corpus_spec: Any, spec: Any, pairs: list[tuple[str, str]] | None) -> Any:
    """The recording a finished job made, found under the fingerprint it reports (None if not done or gone)."""
    if job is None or job.snapshot().state != "done":
        return None
    fp = (job.snapshot().result or {}).get("fingerprint")
    return recordings.stored_by_fingerprint(fp, corpus_spec, spec, pairs) if fp else None


def record_button(model: ModelSpec, corpus_spec: Any, spec: Any, pairs: list[tuple[str, str]] | None,
                  label: str, *, remote: bool = False) -> None:
    """A primary button that starts (or joins) the background recording of these specs.

    `remote`: record on NDIF; while NDIF cannot be used, its one-line reason is shown instead.
    """
    key = recordings.job_key(model, corpus_spec, spec, pairs, remote=remote)
    job = WARM.get(key)
    problems = ndif_problems(model) if remote and (job is None or not job.snapshot().running) else []
    if problems:
        st.error("Cannot record on NDIF: " + "; ".join(problems) + ".", icon=":material/cloud_off:")
    elif job is None or not job.snapshot().running:
        try:
            st.caption(recording_plan(model, corpus_spec, spec, pairs))
        except Exception:  # noqa: BLE001 - an estimate only; the button still works
            log.info("no recording estimate", exc_info=True)
        if st.button(label + (" on NDIF" if remote else ""), type="primary", icon=":material/fiber_manual_record:",
                     key=f"rec-{key}"):
            # The button shows only when the store lacks the recording, so a finished job of the
            # same specs is stale (entries removed since): run again rather than reuse it.
            recordings.start_recording(model, corpus_spec, spec, pairs, rerun_done=True, remote=remote)
            st.rerun()
    job_panel(key)


@st.cache_data(show_spinner="Checking NDIF…", ttl=30)
def ndif_problems(model: ModelSpec) -> list[str]:
    """`recordings.remote_problems`, cached half a minute (it tries to reach the NDIF host)."""
    return recordings.remote_problems(model)


@st.cache_data(show_spinner="Checking the model…", ttl=60)
def model_check(model: ModelSpec) -> checks.ModelCheck:
    """`checks.check_model_source`, cached a minute (it may ask the Hugging Face hub)."""
    return checks.check_model_source(model)


def require_recording(s: Settings, *, pair: tuple[str, str] | None = None, what: str) -> Any:
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
        status = recordings.store_status(s.model, corpus_spec, spec, pairs, remote=s.remote)
    except Exception as e:  # noqa: BLE001 - unknown language, bad corpus file, ...
        log.warning("store lookup failed", exc_info=True)
        st.error(f"{user_message(e)} Fix the choice on the Setup page.", icon=":material/error:")
        return None
    if status.recording is not None:
        return status.recording
    job = WARM.get(recordings.job_key(s.model, corpus_spec, spec, pairs, remote=s.remote))
    if status.unknown and (done := finished_recording(job, corpus_spec, spec, pairs)) is not None:
        return done  # the store cannot be checked before the model is fetched (hub model): the run's own
    if status.unknown and (job is None or not job.snapshot().running):
        check = model_check(s.model)  # a bookmark may name a model that cannot be had here
        if not check.usable:
            st.error(f"{check.message} Fix the choice on the Setup page.", icon=":material/error:")
            return None
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
    record_button(s.model, corpus_spec, spec, pairs, label, remote=s.remote)
    return None


SEEN_JOBS = "wb_seen_jobs"


def sidebar_jobs() -> None:
    """Background jobs in the sidebar, the same in every tab: live progress while any runs, then the outcome.

    The jobs live in the model worker's registry (`jobs.warm.WARM`: files under the cache), so
    a second tab, or the app after a restart, sees a recording started in the first. The
    sidebar polls while a job runs; when one finishes it reruns the whole page (whose views
    may now have their recording) and then names the outcome instead of the stale line.
    """
    snaps = [j.snapshot() for j in WARM.jobs()]
    seen: list[str] = st.session_state.setdefault(SEEN_JOBS, [])
    running = [s.id for s in snaps if s.running]
    seen.extend(k for k in running if k not in seen)
    finished = [s for s in snaps if not s.running and s.id in seen][-3:]
    if not running and not finished:
        return
    with st.sidebar:
        if finished:
            st.caption("Background jobs")
            for s in finished:
                icon = {"done": ":material/check_circle:", "failed": ":material/error:"}.get(s.state,
                                                                                           ":material/stop_circle:")
                st.caption(f"{icon} {s.label} · {outcome_text(s)}")
        if running:
            _poll_running(running)


def _poll_running(keys: list[str]) -> None:
    @st.fragment(run_every=1.0)
    def _poll() -> None:
        jobs = [j for j in (WARM.get(k) for k in keys) if j is not None]
        snaps = [j.snapshot() for j in jobs]
        if len(snaps) < len(keys) or any(not s.running for s in snaps):
            st.rerun(scope="app")  # one finished: the page (and this list) shows its outcome
        st.caption("Working in the background (the model worker)")
        for s in snaps:
            st.progress(s.fraction, text=f"{s.label} · {progress_text(s)}")

    _poll()


def layer_options(recording: Recording) -> list[Any]:
    """The recorded layer labels ("emb", 0, 1, …)."""
    return list(recording.layer_labels)

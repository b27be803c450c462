"""UI-free helpers for the Streamlit front end (this module never imports Streamlit).

- `Settings`: the choices made on the Setup page (model, corpus, languages, pooling,
  max length), as plain specs; `to_dict()` is what pages keep in session state and what
  their data caches are keyed by.
- The tiny random-init test model (`tiny-test`, enabled by ``WORKBENCH_UI_TINY_MODEL=1``).
- `store_status`: what the store holds for a choice, without loading the model.
- `JobRegistry` / `start_recording`: recordings run in background threads, one per set of
  specs, so a page can be left and revisited (and two tabs share one run).
- Upload handling for user corpora, and `describe_error` for readable messages.
- View tables: thin compositions of `workbench.analysis` functions over a `Recording`
  (the numbers the pages plot; no analysis is re-implemented here).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.config import SILP_TEMPLATE, CorpusSpec, ModelSpec, RecordSpec, stable_hash
from workbench.paths import cache_root

log = logging.getLogger(__name__)

TINY_MODEL = "tiny-test"
"""Model source name of the tiny random-init test model (UI tests and demos)."""
TINY_ENV = "WORKBENCH_UI_TINY_MODEL"
REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_TOKENIZER = REPO_ROOT / "tests" / "fixtures" / "tiny-tokenizer"
UPLOAD_SUFFIXES = (".tsv", ".tab", ".jsonl", ".ndjson")


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """What the Setup page chose; every view reads its recording through these specs."""

    model: ModelSpec = field(default_factory=ModelSpec)
    corpus: CorpusSpec = field(default_factory=CorpusSpec)
    max_length: int = 256
    pooling: str = "mean"  # which recorded pooling the views use (all three are recorded)

    def record_spec(self) -> RecordSpec:
        """The main recording: every pooling, embeddings and FFN statistics."""
        return RecordSpec(max_length=self.max_length, batch_tokens=max(4096, self.max_length))

    def silp_spec(self) -> RecordSpec:
        """SiLP's pair-template pass (FFN statistics of translation prompts)."""
        return RecordSpec(template=SILP_TEMPLATE, poolings=("mean",), embeddings=False,
                          max_length=self.max_length, batch_tokens=max(4096, self.max_length))

    def pair_corpus(self, src: str, tgt: str) -> CorpusSpec:
        """The corpus spec of a SiLP pass for one translation direction."""
        return CorpusSpec(source=self.corpus.source, langs=(src, tgt), limit=self.corpus.limit)

    @property
    def pivot(self) -> str:
        """Default pivot language: English if chosen, else the first language."""
        return "en" if "en" in self.corpus.langs else self.corpus.langs[0]

    def to_dict(self) -> dict[str, Any]:
        """Plain, hashable-by-value dict (for session state and cache keys)."""
        return {"model": self.model.to_dict(), "corpus": self.corpus.to_dict(),
                "max_length": self.max_length, "pooling": self.pooling}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Settings:
        """Inverse of `to_dict`."""
        return cls(ModelSpec.from_dict(d["model"]), CorpusSpec.from_dict(d["corpus"]),
                   int(d["max_length"]), str(d["pooling"]))


# --------------------------------------------------------------------------- tiny model

_TINY: Any = None
_TINY_LOCK = threading.Lock()


def tiny_model_enabled() -> bool:
    """True when the environment offers the tiny test model (``WORKBENCH_UI_TINY_MODEL=1``)."""
    return os.environ.get(TINY_ENV, "").strip().lower() in ("1", "true", "yes")


def tiny_state() -> Any:
    """The tiny random-init Llama of `tests/conftest.py` as a ModelState (built once, shared).

    Same config and seed as the test fixture, so its fingerprint (and store keys) match.
    """
    global _TINY
    with _TINY_LOCK:
        if _TINY is None:
            from workbench.finetune import testing
            from workbench.models import ModelError, state_from_model

            if not TINY_TOKENIZER.is_dir():
                raise ModelError(f"the tiny test model needs a source checkout ({TINY_TOKENIZER} is missing)")
            _TINY = state_from_model(testing.tiny_model("llama"), testing.tiny_tokenizer(), name=TINY_MODEL,
                                     spec=ModelSpec(source=TINY_MODEL))
        return _TINY


def _is_tiny(source: str) -> bool:
    """The UI's tiny model or the job worker's `tiny-test:<type>`."""
    from workbench.finetune.testing import is_tiny

    return source == TINY_MODEL or is_tiny(source)


def load_state(spec: ModelSpec, progress: Callable[[str], None] | None = None) -> Any:
    """A loaded model state: the tiny test model, or `session.get_state` (cached per process).

    `progress` receives one-line messages (converting, loading).
    """
    if spec.source == TINY_MODEL and not spec.artifact:
        return tiny_state()
    if _is_tiny(spec.source):  # a tuned tiny state, or the job worker's name for the tiny model
        from workbench.compare import load_state as load_tiny

        return load_tiny(spec)
    from workbench.session import get_state

    return get_state(spec, progress=progress)


# --------------------------------------------------------------------------- the store

_FINGERPRINTS: dict[ModelSpec, str] = {}  # learnt from finished recordings (hub ids)


def model_fingerprint(spec: ModelSpec) -> str | None:
    """The state fingerprint of `spec` without loading weights, or None if that needs a download.

    Bundled models count only once converted (converting takes a minute and happens on
    Record); hub ids are known once recorded in this process.
    """
    from workbench import models

    if spec.source == TINY_MODEL and not spec.artifact:
        return str(tiny_state().fingerprint)
    if _is_tiny(spec.source):  # the artifact is part of the fingerprint
        from workbench.compare import state_fingerprint

        return str(state_fingerprint(spec))
    if spec in _FINGERPRINTS:
        return _FINGERPRINTS[spec]
    if spec.source in models.BUNDLED:
        return models.state_fingerprint(spec) if models.bundled_status(spec.source) == "ready" else None
    path = Path(spec.source).expanduser()
    if path.is_dir():
        return models.state_fingerprint(spec)
    return None


@dataclass(frozen=True)
class StoreStatus:
    """What the store holds for one choice of model, corpus and recording spec."""

    units: list[str]
    entries: dict[str, Any]  # unit -> store Entry or None
    recording: Any  # tracing.Recording when every unit is stored, else None
    unknown: str | None = None  # why the store could not be checked (None if it was)

    @property
    def missing(self) -> list[str]:
        """Units not (known to be) stored."""
        return [u for u in self.units if self.entries.get(u) is None]

    def table(self, corpus: Any) -> pd.DataFrame:
        """One row per unit: unit, language, stored, sentences, MB, recorded at."""
        rows = []
        for u in self.units:
            e = self.entries.get(u)
            names = " → ".join(corpus.languages[c].name for c in u.split(">"))
            rows.append({"unit": u, "language": names, "stored": e is not None,
                         "sentences": e.manifest.get("n_units") if e else None,
                         "MB": round(e.nbytes / 2**20, 2) if e else None,
                         "seconds": e.manifest.get("seconds") if e else None,
                         "created": str(e.manifest.get("created", ""))[:16].replace("T", " ") if e else None,
                         "key": e.key[:12] if e else None})
        return pd.DataFrame(rows)


def store_status(model: ModelSpec, corpus_spec: CorpusSpec, spec: RecordSpec,
                 pairs: Sequence[tuple[str, str]] | None = None) -> StoreStatus:
    """Look up every unit of a choice in the store (`tracing.lookup`); never loads a model."""
    from workbench import tracing
    from workbench.session import load_corpus_spec

    corpus = load_corpus_spec(corpus_spec)
    units = tracing.units_for(corpus, corpus_spec.langs, spec, pairs)
    fp = model_fingerprint(model)
    if fp is None:
        why = ("the model is not converted yet" if model.source in _bundled_names()
               else "the model's files are not available yet")
        return StoreStatus(units, {}, None, unknown=why)
    found = tracing.lookup(fp, corpus, units, spec)
    complete = {u: e for u, e in found.items() if e is not None}
    rec = None
    if len(complete) == len(found):
        first = next(iter(complete.values()))
        rec = tracing.Recording(first.manifest.get("model_name", model.source), fp, corpus.name, spec,
                                complete, first.manifest["layer_labels"])
    return StoreStatus(units, dict(found), rec)


def _bundled_names() -> list[str]:
    from workbench.models import BUNDLED

    return list(BUNDLED)


# --------------------------------------------------------------------------- jobs


class JobCancelled(RuntimeError):
    """Raised inside a recording thread when its job was cancelled."""


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent view of a job at one instant (safe to read from any thread)."""

    key: str
    label: str
    state: str  # "running" | "done" | "error" | "cancelled"
    message: str
    done: int
    total: int
    elapsed: float
    rate: float | None  # sentences (forward passes) per second, recorded ones only
    eta: float | None  # seconds
    error: str | None
    recording: Any = field(repr=False)

    @property
    def running(self) -> bool:
        """True while the worker thread is busy."""
        return self.state == "running"

    @property
    def fraction(self) -> float:
        """Progress in [0, 1]."""
        return min(1.0, self.done / self.total) if self.total else 0.0


class RecordJob:
    """One background recording. The worker calls `progress`/`status`; pages call `snapshot`."""

    def __init__(self, key: str, label: str) -> None:
        self.key, self.label = key, label
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._cancel = False
        self._state, self._message = "running", "starting"
        self._error: str | None = None
        self._done = self._total = self._skipped = 0
        self._t0 = time.monotonic()
        self._t_compute: float | None = None
        self._t_end: float | None = None
        self._recording: Any = None

    # -- called by the worker
    def status(self, message: str) -> None:
        """A one-line phase message (loading, converting, ...)."""
        self._check_cancel()
        with self._lock:
            self._message = message

    def computing(self) -> None:
        """Mark the start of forward passes (rate and ETA count from here)."""
        with self._lock:
            self._t_compute = time.monotonic()

    def progress(self, done: int, total: int, message: str) -> None:
        """`tracing.record`'s progress callback; raises `JobCancelled` once cancelled."""
        self._check_cancel()
        with self._lock:
            if message.endswith("from store"):
                self._skipped += done - self._done
            self._done, self._total, self._message = done, total, message

    def _check_cancel(self) -> None:
        if self._cancel:
            raise JobCancelled("cancelled")

    def finish(self, recording: Any = None, error: str | None = None, *, cancelled: bool = False) -> None:
        """Record the outcome and wake any waiters."""
        with self._lock:
            self._recording, self._error = recording, error
            self._state = "cancelled" if cancelled else ("error" if error else "done")
            self._message = {"done": "done", "error": "failed", "cancelled": "cancelled"}[self._state]
            self._t_end = time.monotonic()
        self._finished.set()

    # -- called by pages
    def cancel(self) -> None:
        """Ask the worker to stop at the next batch (finished units stay in the store)."""
        self._cancel = True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job finished; True if it did within `timeout` seconds."""
        return self._finished.wait(timeout)

    def snapshot(self) -> JobSnapshot:
        """The job's state now."""
        with self._lock:
            now = self._t_end or time.monotonic()
            computed = self._done - self._skipped
            rate = eta = None
            if self._t_compute is not None and computed > 0 and now > self._t_compute:
                rate = computed / (now - self._t_compute)
                eta = max(0, self._total - self._done) / rate
            return JobSnapshot(self.key, self.label, self._state, self._message, self._done, self._total,
                               now - self._t0, rate, eta, self._error, self._recording)


class JobRegistry:
    """Process-wide registry of recording jobs keyed by their specs (thread-safe).

    Submitting a key that is running or done returns that job, so a page that is left
    and revisited, or a second tab asking for the same thing, sees the same run. A failed
    or cancelled job is replaced by a fresh run.
    """

    def __init__(self, keep: int = 64) -> None:
        self._jobs: dict[str, RecordJob] = {}
        self._lock = threading.Lock()
        self._keep = keep

    def get(self, key: str) -> RecordJob | None:
        """The job of `key`, if any."""
        with self._lock:
            return self._jobs.get(key)

    def jobs(self) -> list[RecordJob]:
        """All known jobs, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def submit(self, key: str, label: str, work: Callable[[RecordJob], Any], *,
               rerun_done: bool = False) -> RecordJob:
        """Start `work(job)` in a daemon thread unless `key` is running (or done, unless `rerun_done`)."""
        with self._lock:
            job = self._jobs.get(key)
            keep = ("running",) if rerun_done else ("running", "done")
            if job is not None and job.snapshot().state in keep:
                return job
            job = RecordJob(key, label)
            self._jobs[key] = job
            self._prune()
        threading.Thread(target=_run_job, args=(job, work), name=f"record-{key[:8]}", daemon=True).start()
        return job

    def _prune(self) -> None:
        finished = [k for k, j in self._jobs.items() if not j.snapshot().running]
        for k in finished[: max(0, len(self._jobs) - self._keep)]:
            del self._jobs[k]


def _run_job(job: RecordJob, work: Callable[[RecordJob], Any]) -> None:
    try:
        job.finish(work(job))
    except JobCancelled:
        log.info("recording %s cancelled", job.label)
        job.finish(cancelled=True)
    except Exception as e:  # noqa: BLE001 - the page shows a message; the traceback goes to the log
        log.exception("recording %s failed", job.label)
        job.finish(error=describe_error(e))


JOBS = JobRegistry()
"""The registry the pages use (one per server process)."""


def job_key(model: ModelSpec, corpus_spec: CorpusSpec, spec: RecordSpec,
            pairs: Sequence[tuple[str, str]] | None = None) -> str:
    """Key of a recording job: the specs and the store root (tests use one root each)."""
    return stable_hash({"model": model.to_dict(), "corpus": corpus_spec.to_dict(), "spec": spec.to_dict(),
                        "pairs": [list(p) for p in pairs or []], "root": str(cache_root())}, n=20)


def job_label(model: ModelSpec, corpus_spec: CorpusSpec, pairs: Sequence[tuple[str, str]] | None = None) -> str:
    """Short human label of a job."""
    what = ", ".join(f"{s}→{t}" for s, t in pairs) + " (SiLP pass)" if pairs else ", ".join(corpus_spec.langs)
    limit = f", first {corpus_spec.limit} units" if corpus_spec.limit else ""
    tuned = f" + {Path(model.artifact).parent.name}" if model.artifact else ""
    return f"{Path(model.source).name}{tuned} · {Path(corpus_spec.source).name} · {what}{limit}"


def start_recording(model: ModelSpec, corpus_spec: CorpusSpec, spec: RecordSpec,
                    pairs: Sequence[tuple[str, str]] | None = None, *,
                    state_loader: Callable[[ModelSpec, Callable[[str], None]], Any] = load_state,
                    registry: JobRegistry | None = None, rerun_done: bool = False) -> RecordJob:
    """Record in the background whatever the store lacks; returns the (possibly shared) job.

    The worker serves stored units without loading the model; otherwise it loads the model
    through `state_loader` (the UI passes its `st.cache_resource`-backed loader) and calls
    `session.ensure_recording`, which records only the missing units. A running job of the
    same specs is joined; a finished one is returned unless `rerun_done` (e.g. the store
    lost its entries since).
    """
    registry = registry or JOBS

    def work(job: RecordJob) -> Any:
        from workbench.session import ensure_recording

        job.status("checking the store")
        status = store_status(model, corpus_spec, spec, pairs)
        if status.recording is not None:
            return status.recording
        job.status(f"loading {model.source}")
        state = state_loader(model, job.status)
        job.computing()
        rec = ensure_recording(model, corpus_spec, spec, pairs=pairs, progress=job.progress,
                               status=job.status, state=state)
        _FINGERPRINTS[model] = rec.fingerprint
        return rec

    return registry.submit(job_key(model, corpus_spec, spec, pairs), job_label(model, corpus_spec, pairs), work,
                           rerun_done=rerun_done)


def recording_rows(recording: Any) -> pd.DataFrame:
    """The units of a finished recording: unit, key, sentences, MB, seconds."""
    return pd.DataFrame([{"unit": u, "key": e.key[:12], "sentences": e.manifest.get("n_units"),
                          "MB": round(e.nbytes / 2**20, 2), "seconds": e.manifest.get("seconds")}
                         for u, e in recording.entries.items()])


# --------------------------------------------------------------------------- uploads and errors


def save_upload(name: str, data: bytes) -> Path:
    """Write an uploaded corpus file under the cache (content-addressed, so it stays valid).

    Raises:
        CorpusError: for a file type the readers do not take.
    """
    from workbench.corpus import CorpusError

    safe = Path(name).name or "upload.tsv"
    if Path(safe).suffix.lower() not in UPLOAD_SUFFIXES:
        raise CorpusError(f"unsupported file type {Path(safe).suffix or '(none)'!r}: upload a .tsv "
                          "(header row of language codes) or a .jsonl file (one object per line)", path=safe)
    path = cache_root() / "uploads" / hashlib.sha256(data).hexdigest()[:16] / safe
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def read_upload(path: Path, display_name: str | None = None) -> Any:
    """Parse and validate an uploaded corpus with `read_tsv`/`read_jsonl`.

    Raises:
        CorpusError: with the reader's message (file, line, language), the cache path
            replaced by `display_name`.
    """
    from workbench.corpus import CorpusError, read_jsonl, read_tsv

    reader = read_jsonl if path.suffix.lower() in (".jsonl", ".ndjson") else read_tsv
    try:
        return reader(path)
    except CorpusError as e:
        if display_name is None:
            raise
        raise CorpusError(str(e).replace(str(path), display_name)) from e


def is_upload(source: str) -> bool:
    """True if a corpus source is a file saved by `save_upload`."""
    try:
        return Path(source).resolve().is_relative_to((cache_root() / "uploads").resolve())
    except OSError:
        return False


def describe_error(e: BaseException) -> str:
    """A message a user can act on (the traceback belongs in the log, not on the page)."""
    from workbench.errors import user_message

    return user_message(e)

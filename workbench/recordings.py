"""Getting recordings: store first, load the model only when something is missing.

The one home of "give me the recording of (model state, corpus, record spec)":
`ensure_recording` (compute what the store lacks), `stored_recording` / `store_status`
(look without loading any model, for pages that must stay fast) and `start_recording`
(the same work as a background job of `workbench.jobs.threads`, shared by every tab).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from workbench import models, tracing
from workbench.config import CorpusSpec, ModelSpec, RecordSpec, stable_hash
from workbench.corpus import ParallelCorpus, load_corpus
from workbench.jobs.progress import Progress, StatusFn
from workbench.jobs.threads import JOBS, ThreadJob, ThreadRegistry
from workbench.models import ModelState
from workbench.paths import cache_root
from workbench.store import Store

log = logging.getLogger(__name__)


def load_corpus_spec(spec: CorpusSpec) -> ParallelCorpus:
    """The corpus of a CorpusSpec, with its languages checked and `limit` applied."""
    corpus = load_corpus(spec.source)
    langs = corpus.check_langs(list(spec.langs))
    return corpus.subset(langs, limit=spec.limit)


def _recording(fp: str, corpus: ParallelCorpus, spec: RecordSpec, found: dict[str, Any],
               name: str) -> tracing.Recording:
    first = next(iter(found.values()))
    return tracing.Recording(first.manifest.get("model_name", name), fp, corpus.name, spec, found,
                             first.manifest["layer_labels"])


def ensure_recording(model: ModelSpec, corpus_spec: CorpusSpec, spec: RecordSpec | None = None, *,
                     pairs: Sequence[tuple[str, str]] | None = None, store: Store | None = None,
                     progress: Progress | None = None, status: StatusFn | None = None,
                     state: ModelState | None = None) -> tracing.Recording:
    """A `tracing.Recording` for these specs, recording only what the store lacks.

    Args:
        model: which model state.
        corpus_spec: corpus, languages and limit.
        spec: what to record (default `RecordSpec()`).
        pairs: (src, tgt) pairs for a pair template.
        store: the store (default: the cache's).
        progress: progress(done, total, message) while recording.
        status: one-line messages (loading, converting).
        state: an already loaded ModelState to use instead of loading `model`.
    """
    spec = spec or RecordSpec()
    store = store or Store()
    corpus = load_corpus_spec(corpus_spec)
    units = tracing.units_for(corpus, corpus_spec.langs, spec, pairs)
    fp = state.fingerprint if state is not None else models.fingerprint(model)
    assert fp is not None  # download=True: known or raised
    found = tracing.lookup(fp, corpus, units, spec, store)
    if all(e is not None for e in found.values()):
        if status:
            status("all units found in the store")
        return _recording(fp, corpus, spec, found, model.source)
    if state is None:
        state = models.load(model, progress=status)
    return tracing.record(state, corpus, corpus_spec.langs, spec, pairs=pairs, store=store, progress=progress)


@dataclass(frozen=True)
class StoreStatus:
    """What the store holds for one choice of model, corpus and recording spec."""

    units: list[str]
    entries: dict[str, Any]  # unit -> store Entry or None
    recording: tracing.Recording | None  # when every unit is stored
    unknown: str | None = None  # why the store could not be checked (None if it was)

    @property
    def missing(self) -> list[str]:
        """Units not (known to be) stored."""
        return [u for u in self.units if self.entries.get(u) is None]

    def table(self, corpus: ParallelCorpus) -> pd.DataFrame:
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
    """Look up every unit of a choice in the store; never loads a model, downloads or converts."""
    corpus = load_corpus_spec(corpus_spec)
    units = tracing.units_for(corpus, corpus_spec.langs, spec, pairs)
    fp = models.fingerprint(model, download=False)
    if fp is None:
        why = ("the model is not converted yet" if model.source in models.BUNDLED
               else "the model's files are not available yet")
        return StoreStatus(units, {}, None, unknown=why)
    found = tracing.lookup(fp, corpus, units, spec)
    complete = {u: e for u, e in found.items() if e is not None}
    rec = _recording(fp, corpus, spec, complete, model.source) if len(complete) == len(found) else None
    return StoreStatus(units, dict(found), rec)


def stored_recording(model: ModelSpec, corpus_spec: CorpusSpec, spec: RecordSpec,
                     pairs: Sequence[tuple[str, str]] | None = None) -> tracing.Recording | None:
    """The complete stored recording of a state, or None (never loads a model)."""
    return store_status(model, corpus_spec, spec, pairs).recording


def recording_rows(recording: tracing.Recording) -> pd.DataFrame:
    """The units of a finished recording: unit, key, sentences, MB, seconds."""
    return pd.DataFrame([{"unit": u, "key": e.key[:12], "sentences": e.manifest.get("n_units"),
                          "MB": round(e.nbytes / 2**20, 2), "seconds": e.manifest.get("seconds")}
                         for u, e in recording.entries.items()])


# --------------------------------------------------------------------------- background recordings


def job_key(model: ModelSpec, corpus_spec: CorpusSpec, spec: RecordSpec,
            pairs: Sequence[tuple[str, str]] | None = None) -> str:
    """Key of a recording job: the specs and the store root (tests use one root each)."""
    return stable_hash({"model": model.to_dict(), "corpus": corpus_spec.to_dict(), "spec": spec.to_dict(),
                        "pairs": [list(p) for p in pairs or []], "root": str(cache_root())}, n=20)


def job_label(model: ModelSpec, corpus_spec: CorpusSpec, pairs: Sequence[tuple[str, str]] | None = None) -> str:
    """Short human label of a recording job."""
    what = ", ".join(f"{s}→{t}" for s, t in pairs) + " (SiLP pass)" if pairs else ", ".join(corpus_spec.langs)
    limit = f", first {corpus_spec.limit} units" if corpus_spec.limit else ""
    tuned = f" + {Path(model.artifact).parent.name}" if model.artifact else ""
    return f"{Path(model.source).name}{tuned} · {Path(corpus_spec.source).name} · {what}{limit}"


def start_recording(model: ModelSpec, corpus_spec: CorpusSpec, spec: RecordSpec,
                    pairs: Sequence[tuple[str, str]] | None = None, *, registry: ThreadRegistry | None = None,
                    rerun_done: bool = False) -> ThreadJob:
    """Record in the background whatever the store lacks; returns the (possibly shared) job.

    Stored units are served without loading the model; otherwise the model is loaded
    through `models.load` (memoised per process) and only the missing units are recorded.
    A running job of the same specs is joined; a finished one is returned unless
    `rerun_done` (e.g. the store lost its entries since).
    """
    def work(job: ThreadJob) -> tracing.Recording:
        job.status("checking the store")
        found = store_status(model, corpus_spec, spec, pairs)
        if found.recording is not None:
            return found.recording
        job.status(f"loading {model.source}")
        state = models.load(model, progress=job.status)
        job.computing()
        return ensure_recording(model, corpus_spec, spec, pairs=pairs, progress=job.progress, status=job.status,
                                state=state)

    return (registry or JOBS).submit(job_key(model, corpus_spec, spec, pairs), job_label(model, corpus_spec, pairs),
                                     work, kind="record", rerun_done=rerun_done)

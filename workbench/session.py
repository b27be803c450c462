"""Orchestration shared by the CLI and the UI: store first, load the model only when needed.

`ensure_recording` computes the store keys from the model's fingerprint (no weights
loaded), serves everything that is stored, and loads the model and records only the
units that are missing. Loaded model states are kept in a small process-wide cache so
the CLI, a notebook or the UI's worker threads share one read-only copy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.store import Store

log = logging.getLogger(__name__)

_STATES: dict[ModelSpec, Any] = {}
_STATES_LOCK = threading.Lock()


def get_state(spec: ModelSpec, *, progress: Callable[[str], None] | None = None) -> Any:
    """Load (once per process) the model state for `spec`; thread-safe; never mutated."""
    from workbench.models import load

    with _STATES_LOCK:
        if spec not in _STATES:
            _STATES[spec] = load(spec, progress=progress)
        return _STATES[spec]


def load_corpus_spec(spec: CorpusSpec) -> Any:
    """The corpus of a CorpusSpec, with its languages checked and `limit` applied."""
    from workbench.corpus import load_corpus

    corpus = load_corpus(spec.source)
    langs = corpus.check_langs(list(spec.langs))
    return corpus.subset(langs, limit=spec.limit)


def ensure_recording(model: ModelSpec, corpus_spec: CorpusSpec, spec: RecordSpec | None = None, *,
                     pairs: Sequence[tuple[str, str]] | None = None, store: Store | None = None,
                     progress: Callable[[int, int, str], None] | None = None,
                     status: Callable[[str], None] | None = None, state: Any = None) -> Any:
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
    from workbench import models, tracing

    spec = spec or RecordSpec()
    store = store or Store()
    corpus = load_corpus_spec(corpus_spec)
    units = tracing.units_for(corpus, corpus_spec.langs, spec, pairs)
    fingerprint = state.fingerprint if state is not None else models.state_fingerprint(model)
    found = tracing.lookup(fingerprint, corpus, units, spec, store)
    if all(e is not None for e in found.values()):
        prep_name = state.name if state is not None else models.prepare(model).name
        labels = next(iter(found.values())).manifest["layer_labels"]  # type: ignore[union-attr]  # all found
        if status:
            status("all units found in the store")
        return tracing.Recording(prep_name, fingerprint, corpus.name, spec, found, labels)  # type: ignore[arg-type]
    if state is None:
        state = get_state(model, progress=status)
    return tracing.record(state, corpus, corpus_spec.langs, spec, pairs=pairs, store=store, progress=progress)

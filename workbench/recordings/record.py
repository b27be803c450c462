"""Record what the store lacks with a loaded state, in this process: per-key locks, then the recorder, then the store.

`tracing` computes (one forward pass per batch → per-unit arrays); this module is where
those arrays meet the store: units already stored are read, the missing ones recorded
together and each stored atomically under its key (`recordings.keys`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from workbench import tracing
from workbench.config import RecordSpec
from workbench.models import ModelState
from workbench.progress import Progress
from workbench.recordings.keys import find_entry, unit_key
from workbench.recordings.recording import Recording
from workbench.store import Entry, Store
from workbench.tracing import recorder
from workbench.tracing.inputs import Batching

__all__ = ["record"]


def record(state: ModelState, corpus: Any, langs: Sequence[str], spec: RecordSpec | None = None, *,
           pairs: Sequence[tuple[str, str]] | None = None, store: Store | None = None,
           progress: Progress | None = None, padding_side: str = "right",
           batching: Batching | None = None, remote: bool | str = False) -> Recording:
    """Record every unit missing from the store, then return the `Recording` of all of them.

    Units already stored are read, not recomputed; the missing ones are recorded together
    (batched across units). `progress(done, total)` counts the sentences that are computed
    (stored units are not part of `total`). A unit being recorded by another process is waited for
    (per-key locks, taken in key order) rather than computed twice. `remote`: see `traced`.
    """
    spec = spec or RecordSpec()
    store = store or Store()
    labels = tracing.checked_labels(state, spec)  # a bad layer fails before any look-up
    units = tracing.units_for(corpus, langs, spec, pairs)
    keys = {u: unit_key(state.fingerprint, corpus, u, spec) for u in units}
    entries: dict[str, Entry | None] = {u: find_entry(store, state.fingerprint, corpus, u, spec) for u in units}
    # progress counts the sentences that will be computed: stored units are not part of it
    total = sum(e is None for e in entries.values()) * len(corpus)
    done = 0
    for group in recorder.unit_groups(state, corpus, [u for u in units if entries[u] is None], spec):
        with contextlib.ExitStack() as held:
            for k in sorted({keys[u] for u in group}):
                held.enter_context(store.lock(k))
            for u in group:  # another process may have stored it while we waited
                entries[u] = find_entry(store, state.fingerprint, corpus, u, spec)
            todo = [u for u in group if entries[u] is None]
            total -= (len(group) - len(todo)) * len(corpus)  # stored by another process meanwhile
            if not todo:
                continue
            t0 = time.perf_counter()

            def tick(k: int, todo: list[str] = todo) -> None:
                nonlocal done
                done += k
                if progress:
                    progress(done, total, f"recording {', '.join(todo)}")

            arrays = recorder.record_units(state, corpus, todo, spec, padding_side=padding_side, batching=batching,
                                           progress=tick, remote=remote)
            secs = round((time.perf_counter() - t0) / len(todo), 3)
            for u in todo:
                manifest = tracing.record_manifest(state, corpus, u, spec, seconds=secs, recorded_with=todo)
                entries[u] = store.put(keys[u], arrays[u], manifest)
    return Recording(state.name, state.fingerprint, corpus.name, spec, entries, labels)  # type: ignore[arg-type]  # all set above

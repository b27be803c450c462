"""How a recorded unit is found in the store (no model, no nnsight).

Store key of one unit (HOUSE_STYLE 7): the model state's fingerprint, the corpus content
of the unit's languages, the number of units, the unit, every `RecordSpec` field that
changes the bytes, the format version and the transformers minor version. `batch_tokens`
is not part of it: how sentences are grouped into forward passes changes only the order
of float additions, never which tokens count or how they are pooled (tests pin the
equality), so recordings that differ only in batching share one entry.

Entries written before the recorder batched by a padding budget (keys that included
`batch_tokens` and predate `final_norm`) are still found: `find_entry` falls back to that
legacy key when the new one is missing and the spec has `final_norm=False`. Their arrays
have the same names, shapes and meaning; they agree with a fresh recording to float
rounding. Nothing is rewritten; a legacy entry removed by `store gc` is recomputed under
the new key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import transformers

from workbench.config import RecordSpec
from workbench.store import Entry, Store, make_key

__all__ = ["EXECUTION_FIELDS", "find_entry", "legacy_unit_key", "lookup", "spec_key", "unit_key"]

#: RecordSpec fields that only say how to batch: left out of the store key.
EXECUTION_FIELDS = ("batch_tokens",)

def spec_key(spec: RecordSpec) -> dict[str, Any]:
    """The spec's part of the store key: every field except the execution-only ones."""
    return {k: v for k, v in spec.to_dict().items() if k not in EXECUTION_FIELDS}


def unit_key(fingerprint: str, corpus: Any, unit: str, spec: RecordSpec) -> str:
    """Store key of one unit: model state, corpus content, unit, spec and format version."""
    return make_key({"kind": "record", "format": RecordSpec.FORMAT_VERSION, "model": fingerprint,
                     "corpus": corpus.content_hash(unit.split(">")), "n_units": len(corpus), "unit": unit,
                     "spec": spec_key(spec), "batching": "excluded",
                     "transformers": transformers.__version__.split(".")[:2]})


def legacy_unit_key(fingerprint: str, corpus: Any, unit: str, spec: RecordSpec) -> str | None:
    """The key the recorder used before padding-budget batching, or None if none could match.

    It hashed every RecordSpec field of the time, `batch_tokens` included; `final_norm`
    did not exist, so only specs with `final_norm=False` can have a legacy entry.
    """
    if getattr(spec, "final_norm", False):
        return None
    old = {k: v for k, v in spec.to_dict().items() if k != "final_norm"}
    return make_key({"kind": "record", "format": RecordSpec.FORMAT_VERSION, "model": fingerprint,
                     "corpus": corpus.content_hash(unit.split(">")), "n_units": len(corpus), "unit": unit,
                     "spec": old, "transformers": transformers.__version__.split(".")[:2]})


def find_entry(store: Store, fingerprint: str, corpus: Any, unit: str, spec: RecordSpec) -> Entry | None:
    """The stored entry of one unit under its key, else under its legacy key, else None."""
    entry = store.get(unit_key(fingerprint, corpus, unit, spec))
    if entry is None:
        legacy = legacy_unit_key(fingerprint, corpus, unit, spec)
        entry = store.get(legacy) if legacy is not None else None
    return entry


def lookup(fingerprint: str, corpus: Any, units: Sequence[str], spec: RecordSpec,
           store: Store | None = None) -> dict[str, Entry | None]:
    """Stored entries for these units, without loading the model (None where missing)."""
    store = store or Store()
    return {u: find_entry(store, fingerprint, corpus, u, spec) for u in units}

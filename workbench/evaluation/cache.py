"""Evaluation results in the store: one entry per (state, suite, everything that changes the numbers).

An entry holds the suite's eval rows and generation rows as UTF-8 JSON byte arrays (so
the store's checksums cover them) and a manifest with the key's parts, sacrebleu
signatures, flags and timings. Writes go through `Store.put` (temporary directory,
rename), so a failed or cancelled evaluation leaves nothing behind; the per-key lock
stops two processes computing the same suite twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from workbench.store import Store, make_key

__all__ = ["EVAL_FORMAT", "CachedSuite", "read_suite", "suite_key", "versions", "write_suite"]

EVAL_FORMAT = 2
"""Bump when the rows an evaluation stores change meaning (2: rows carry `n`)."""
_PACKAGES = ("torch", "transformers", "sacrebleu", "lm_eval", "py3langid")


def versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour changes the numbers (part of every key)."""
    out = {"eval_format": str(EVAL_FORMAT)}
    for pkg in _PACKAGES:
        try:
            out[pkg] = version(pkg.replace("_", "-"))
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def suite_key(parts: dict[str, Any]) -> str:
    """Store key of one suite's results: `parts` plus the kind and library versions."""
    return make_key({"kind": "evaluation", "versions": versions(), **parts})


@dataclass(frozen=True)
class CachedSuite:
    """A suite's results: eval rows and generation rows (dicts without the state label) and its manifest."""

    eval_rows: list[dict[str, Any]]
    generation_rows: list[dict[str, Any]]
    manifest: dict[str, Any]


def _encode(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.frombuffer(json.dumps(rows, ensure_ascii=False, allow_nan=True).encode("utf-8"), dtype=np.uint8)


def _decode(arr: np.ndarray) -> list[dict[str, Any]]:
    return json.loads(bytes(np.asarray(arr)).decode("utf-8"))


def read_suite(store: Store, key: str) -> CachedSuite | None:
    """The stored suite for `key`, or None (absent, or damaged and removed by the store)."""
    entry = store.get(key)
    if entry is None:
        return None
    return CachedSuite(_decode(entry["eval_rows"]), _decode(entry["generation_rows"]), entry.manifest)


def write_suite(store: Store, key: str, suite: CachedSuite) -> CachedSuite:
    """Store a suite atomically; returns what is stored (another process's identical entry if it won)."""
    entry = store.put(key, {"eval_rows": _encode(suite.eval_rows), "generation_rows": _encode(suite.generation_rows)},
                      {"kind": "evaluation", **suite.manifest})
    return CachedSuite(_decode(entry["eval_rows"]), _decode(entry["generation_rows"]), entry.manifest)

"""What a store entry's manifest must hold, and the one error for a damaged entry.

Checked whenever an entry is read: the store's own fields (key, format, arrays with
shape/dtype/bytes/sha256), the types of the fields readers use, and the manifest's own
checksum (any edit after writing is damage).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import numpy as np

from workbench.errors import StoreError
from workbench.fileio import json_is as _is  # one home of JSON type checks

STORE_FORMAT = 1
_ARRAY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_HEX64 = re.compile(r"[0-9a-f]{64}")

_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "kind": str, "unit": str, "n_units": int, "layer_labels": list, "spec": dict, "model_name": str,
    "model_fingerprint": str, "corpus_name": str, "created": str, "seconds": (int, float), "versions": dict,
}
"""JSON types of the manifest fields readers rely on, checked whenever present."""

_REQUIRED_BY_KIND = {"record": ("unit", "n_units", "layer_labels", "spec")}
"""Fields every entry of a kind must have (readers index them)."""


def _manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a manifest, without its own `manifest_sha256` field."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


def _array_meta_problem(name: Any, meta: Any) -> str | None:
    """What is wrong with one `arrays` item of a manifest, or None."""
    if not isinstance(name, str) or not _ARRAY_NAME.fullmatch(name):
        return f"array name {name!r} is not a plain file name"
    if not isinstance(meta, dict):
        return f"arrays.{name} is not an object"
    shape = meta.get("shape")
    if not isinstance(shape, list) or not all(_is(x, int) and x >= 0 for x in shape):
        return f"arrays.{name}.shape is not a list of sizes: {shape!r}"
    try:
        np.dtype(meta.get("dtype"))
    except TypeError:
        return f"arrays.{name}.dtype is not a dtype: {meta.get('dtype')!r}"
    if not _is(meta.get("bytes"), int) or meta["bytes"] < 0:
        return f"arrays.{name}.bytes is not a byte count: {meta.get('bytes')!r}"
    if not isinstance(meta.get("sha256"), str) or not _HEX64.fullmatch(meta["sha256"]):
        return f"arrays.{name}.sha256 is not a sha256 hex digest: {meta.get('sha256')!r}"
    return None


def manifest_problems(key: str, manifest: Any) -> list[str]:
    """Everything wrong with a parsed manifest of entry `key` (empty if it is well formed).

    Checks the store's own fields (key, format, arrays with shape/dtype/bytes/sha256), the
    types of the fields readers use and the manifest's own checksum (any edit after
    writing is damage); an entry written before manifests carried a checksum must at
    least have the fields its kind's readers index.
    """
    if not isinstance(manifest, dict):
        return [f"not a JSON object (a JSON {type(manifest).__name__})"]
    problems = []
    if manifest.get("key") != key:
        problems.append(f"key is {manifest.get('key')!r}, the folder says {key}")
    if manifest.get("store_format") != STORE_FORMAT:
        problems.append(f"store_format is {manifest.get('store_format')!r}, this version reads {STORE_FORMAT}")
    arrays = manifest.get("arrays")
    if not isinstance(arrays, dict) or not arrays:
        problems.append(f"arrays must be a non-empty object, got {arrays!r}"[:160])
    else:
        problems += [p for n, m in arrays.items() if (p := _array_meta_problem(n, m))]
    for name, kind in _FIELD_TYPES.items():
        if name in manifest and not _is(manifest[name], kind):
            problems.append(f"{name} has the wrong type: {manifest[name]!r}"[:160])
    return problems + _integrity_problems(manifest)


def _integrity_problems(manifest: dict[str, Any]) -> list[str]:
    """The manifest's own checksum; for older manifests without one, the fields readers index."""
    if "manifest_sha256" in manifest:  # exactly what the writer wrote, or damaged
        if manifest["manifest_sha256"] != _manifest_digest(manifest):
            return ["edited after it was written (its manifest_sha256 does not match)"]
        return []
    kind = manifest.get("kind")
    return [f"missing field {name!r} (every {kind} entry has it)"
            for name in _REQUIRED_BY_KIND.get(str(kind), ()) if name not in manifest]


def damaged_error(key: str, problems: list[str]) -> StoreError:
    """The one-line StoreError for a damaged entry: its key, the first file at fault, what to do."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    first = problems[0] if problems else "unknown damage"
    return StoreError(f"store entry {key} is damaged: {first}{more}; `workbench store gc` removes it and the next "
                      "run that needs it recomputes it")

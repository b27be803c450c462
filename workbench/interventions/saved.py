"""Intervened states the user kept (the Intervene page's "Keep for Compare"): one JSON list in the cache.

Each entry is a resolved intervened `ModelSpec` (its tensors content-addressed under
`<cache>/interventions/`), a label, its languages and the held-out data its outcomes are
scored on (Tatoeba of its non-English language), so the Compare page can list it beside
the base and the tuned states and score it on the same suites.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench import models
from workbench.config import ModelSpec, stable_hash
from workbench.examples import DataSpec
from workbench.fileio import atomic_write_json, read_json_or_none
from workbench.paths import cache_root

__all__ = ["forget_state", "keep_state", "kept_states"]


def _path() -> Path:
    return cache_root() / "interventions" / "kept.json"


def kept_states() -> list[dict[str, Any]]:
    """The kept intervened states, oldest first (a damaged file reads as none)."""
    got = read_json_or_none(_path())
    rows = got if isinstance(got, list) else []
    return [d for d in rows if isinstance(d, dict) and {"id", "label", "model"} <= set(d)]


def keep_state(label: str, model: ModelSpec, languages: list[str]) -> dict[str, Any]:
    """Keep a resolved intervened state (kept once per fingerprint); returns its entry."""
    if not model.interventions or not all(iv.resolved for iv in model.interventions):
        raise ValueError("only a resolved intervened state can be kept")
    fp = str(models.fingerprint(model))
    other = next((x for x in languages if x != "en"), languages[0])
    entry = {"id": f"iv:{stable_hash(fp, n=12)}", "label": label, "model": model.to_dict(),
             "languages": list(languages),
             "pivot": "en" if "en" in languages else languages[0],
             "data": DataSpec(source=f"tatoeba:{other}").to_dict(), "fingerprint": fp}
    rows = [r for r in kept_states() if r["id"] != entry["id"]] + [entry]
    atomic_write_json(_path(), rows)
    return entry


def forget_state(state_id: str) -> None:
    """Drop a kept state from the list (its tensors stay in the cache until `store gc`)."""
    atomic_write_json(_path(), [r for r in kept_states() if r["id"] != state_id])

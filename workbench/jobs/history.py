"""How fast this machine ran earlier jobs: units per second per kind and model, and model load times.

The worker notes each finished job (`note`); a page asks `estimate` before it starts one, to
say what the job will compute and about how long it will take ("from the rate of earlier
runs here"), and shows nothing it cannot back with a measurement.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.fileio import atomic_write_json, read_json_or_none

__all__ = ["estimate", "model_of", "note"]

_LOCK = threading.Lock()
_KEEP = 20  # recent runs per key


def _path(root: Path) -> Path:
    return root / "rates.json"


def model_of(args: Mapping[str, Any]) -> str:
    """The model source a job's arguments name (the first state of an evaluation)."""
    if isinstance(args.get("model"), Mapping):
        return str(args["model"].get("source", ""))
    states = args.get("states")
    if isinstance(states, Mapping) and states:
        first = next(iter(states.values()))
        return str(first.get("source", "")) if isinstance(first, Mapping) else ""
    return ""


def note(root: Path, kind: str, model: str, *, units: int, seconds: float, loads: Mapping[str, float]) -> None:
    """Add one finished job to the history (ignored when it computed nothing)."""
    with _LOCK:
        doc = read_json_or_none(_path(root))
        doc = doc if isinstance(doc, dict) else {}
        if units > 0 and seconds > 0:
            runs = doc.setdefault("rates", {}).setdefault(f"{kind}|{model}", [])
            runs.append({"units": units, "seconds": round(seconds, 3), "time": time.time()})
            del runs[:-_KEEP]
        for source, s in loads.items():
            times = doc.setdefault("loads", {}).setdefault(source, [])
            times.append(round(s, 3))
            del times[:-_KEEP]
        atomic_write_json(_path(root), doc)


def estimate(root: Path, kind: str, model: str, units: int, *, loaded: bool) -> tuple[float | None, str]:
    """(seconds, how it was estimated) for `units` of `kind` on `model`; (None, why not) without history."""
    doc = read_json_or_none(_path(root))
    doc = doc if isinstance(doc, dict) else {}
    runs = (doc.get("rates") or {}).get(f"{kind}|{model}") or []
    if not runs:
        return None, "no earlier run of this kind on this model here"
    rate = sum(r["units"] for r in runs) / max(sum(r["seconds"] for r in runs), 1e-9)
    seconds = units / rate
    loads = (doc.get("loads") or {}).get(model) or []
    if not loaded and loads:
        seconds += sorted(loads)[len(loads) // 2]
    basis = f"{rate:.1f} units/s over {len(runs)} earlier run(s) here" + ("" if loaded or not loads else
                                                                          ", plus loading the model")
    return seconds, basis

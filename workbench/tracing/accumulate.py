"""Accumulators of the recorder: one unit's result arrays, filled batch by batch; shard merging.

No model and no nnsight here: `merge_shards` runs in the process that launched a sharded
recording (`workbench.sharding.record_sharded`). Array layout: `workbench.tracing.recorder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.errors import RecordError


@dataclass
class Accumulator:
    """Accumulators for one unit, filled batch by batch (rows in corpus order)."""

    n: int
    n_labels: int
    poolings: Sequence[str]
    ffn_layers: int
    d: int
    m: int
    pooled: dict[str, np.ndarray] = field(init=False)
    pos_counts: np.ndarray = field(init=False)
    layer_mean: np.ndarray = field(init=False)
    absdiff: np.ndarray = field(init=False)
    n_tokens: np.ndarray = field(init=False)
    filled: np.ndarray = field(init=False)  # rows whose batch ran here (all of them unless sharded)

    def __post_init__(self) -> None:
        self.pooled = {p: np.zeros((self.n_labels, self.n, self.d), np.float32) for p in self.poolings}
        self.pos_counts = np.zeros((self.ffn_layers, self.m), np.int64)
        self.layer_mean = np.full((self.n, self.ffn_layers), np.nan, np.float32)
        self.absdiff = np.full((self.n, self.ffn_layers), np.nan, np.float32)
        self.n_tokens = np.zeros(self.n, np.int64)
        self.filled = np.zeros(self.n, bool)

    def arrays(self) -> dict[str, np.ndarray]:
        """The stored arrays of the unit (module docstring)."""
        out: dict[str, np.ndarray] = {f"pooled_{p}": a for p, a in self.pooled.items()}
        out["n_tokens"] = self.n_tokens
        if self.ffn_layers:
            out.update(ffn_pos_counts=self.pos_counts, ffn_tokens=np.array([self.n_tokens.sum()]),
                       ffn_layer_mean=self.layer_mean, ffn_absdiff=self.absdiff)
        return out


def acc_bytes(n: int, plan: dict[str, Any], d: int, m: int) -> int:
    """Bytes of one unit's result arrays (what `record` holds in memory before storing)."""
    return 4 * n * (len(plan["labels"]) * d * len(plan["poolings"]) + 2 * plan["ffn_layers"]) + 8 * (
        n + plan["ffn_layers"] * m)


def accumulate(accs: list[Accumulator], owner: list[tuple[int, int]], order: list[int], out: dict[Any, Any],
                plan: dict[str, Any]) -> None:
    """Scatter one batch's per-sentence results into the accumulators of their units."""
    units = np.array([owner[g][0] for g in order])
    rows = np.array([owner[g][1] for g in order])
    host: dict[Any, Any] = {k: ({p: t.cpu().numpy() for p, t in v.items()} if isinstance(v, dict)
                                else tuple(None if t is None else t.cpu().numpy() for t in v))
                            for k, v in out.items()}
    for u in np.unique(units):
        sel = units == u
        acc, r = accs[u], rows[sel]
        acc.filled[r] = True
        for li, label in enumerate(plan["labels"]):
            for p, v in host[label].items():
                acc.pooled[p][li, r] = v[sel]
        for layer in range(acc.ffn_layers):
            pos, mean, diff = host[f"ffn{layer}"]
            acc.pos_counts[layer] += np.rint(pos[sel].sum(0)).astype(np.int64)
            acc.layer_mean[r, layer] = mean[sel]
            if diff is not None:
                acc.absdiff[r, layer] = diff[sel]


#: Arrays whose rows are sentences (a row comes from the one rank that ran its batch).
_ROW_ARRAYS = frozenset({"ffn_layer_mean", "ffn_absdiff"})


def _row_axis(name: str) -> int | None:
    """The sentence axis of a stored array (None: not per sentence)."""
    return 1 if name.startswith("pooled_") else 0 if name in _ROW_ARRAYS else None


def compact_shard(arrays: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """A rank's arrays with the per-sentence ones cut to `rows` (what it ran); the rest as is."""
    out = {}
    for name, a in arrays.items():
        axis = _row_axis(name)
        out[name] = a if axis is None else np.take(a, rows, axis=axis)
    return out


def merge_shards(parts: Sequence[tuple[dict[str, np.ndarray], np.ndarray]]) -> dict[str, np.ndarray]:
    """One unit's arrays from the `record_shard` results of every rank (pure).

    Each part is (arrays, bool mask of the rows that rank ran); its per-sentence arrays may
    hold every row (`record_shard`) or only the ones it ran (`compact_shard`). Per-sentence
    arrays take each row from the rank that ran it; the positive counts (integers) are
    summed; `n_tokens`/`ffn_tokens` are the same on every rank.

    Raises:
        RecordError: a sentence was run by no rank, or by two.
    """
    filled = np.stack([f for _, f in parts])
    if not (filled.sum(0) == 1).all():
        bad = np.flatnonzero(filled.sum(0) != 1)
        raise RecordError(f"shards do not cover every sentence exactly once (rows {bad[:5].tolist()}…)")
    n = filled.shape[1]
    out: dict[str, np.ndarray] = {}
    for name, first in parts[0][0].items():
        axis = _row_axis(name)
        if axis is not None:
            shape = list(first.shape)
            shape[axis] = n
            merged = np.empty(shape, first.dtype)  # every row is written below, exactly once
            for arrays, f in parts:
                rows = np.flatnonzero(f)
                src = arrays[name] if arrays[name].shape[axis] == len(rows) else np.take(arrays[name], rows, axis=axis)
                if axis:
                    merged[:, rows] = src
                else:
                    merged[rows] = src
            out[name] = merged
        elif name == "ffn_pos_counts":
            out[name] = np.asarray(np.sum([a[name] for a, _ in parts], axis=0, dtype=np.int64))
        else:
            out[name] = first
    return out

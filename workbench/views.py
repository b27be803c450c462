"""Recording -> tables for each view: the one glue layer the CLI and the UI both call.

So the numbers the UI shows equal what `workbench analyze` prints for the same settings.
Every function is a thin composition of `workbench.analysis` pure functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def ffn_layer_labels(recording: Any) -> list[int]:
    """Block indices of the FFN statistics (`(L_ffn, M)` arrays)."""
    probs = next(iter(recording.entries.values()))["ffn_pos_counts"]
    return list(range(probs.shape[0]))


def retrieval_tables(recording: Any, pooling: str, *, method: str, k: int, pivot: str,
                     center: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long per-pair table, per-layer summary) from `analysis.retrieval`."""
    from workbench.analysis import retrieval

    df = retrieval.retrieval_by_layer(recording.vectors(pooling), method=method, k=k, pivot=pivot,
                                      center=center, layer_labels=recording.layer_labels)
    return df, retrieval.summarize_by_layer(df, pivot)


def retrieval_matrix_at(recording: Any, pooling: str, layer: Any, *, method: str, k: int) -> pd.DataFrame:
    """Language × language retrieval accuracy at one layer (`analysis.retrieval.retrieval_matrix`)."""
    from workbench.analysis import retrieval

    i = recording.layer_index(layer)
    return retrieval.retrieval_matrix({u: v[i] for u, v in recording.vectors(pooling).items()},
                                      method=method, k=k)


def sensitivity_scores(pair_recording: Any, unit: str, variant: str = "paper") -> np.ndarray:
    """SiLP projection sensitivity `(L,)` of one translation direction (entry 0 NaN)."""
    from workbench.analysis import sensitivity

    entry = pair_recording.entries[unit]
    if variant == "abs":
        return sensitivity.abs_sensitivity_from_diffs(np.asarray(entry["ffn_absdiff"]))
    return sensitivity.projection_sensitivity(np.asarray(entry["ffn_layer_mean"]), variant="paper")


def overlap_table(recording: Any, pivot: str, langs: Sequence[str], *, top_frac: float) -> pd.DataFrame:
    """Per-layer activated-neuron overlap of `langs` with `pivot` (`analysis.overlap`)."""
    from workbench.analysis import overlap

    probs = recording.activation_probs()
    chosen = {u: probs[u] for u in [pivot, *[x for x in langs if x != pivot]]}
    return overlap.overlap_by_layer(chosen, pivot, top_frac=top_frac, layer_labels=ffn_layer_labels(recording))


def specific_counts(recording: Any, langs: Sequence[str], *, entropy_quantile: float,
                    prob_quantile: float) -> pd.DataFrame:
    """Language-specific (LAPE) neuron counts per layer and language."""
    from workbench.analysis import overlap

    probs = recording.activation_probs()
    df = overlap.language_specific_neurons({u: probs[u] for u in langs}, entropy_quantile=entropy_quantile,
                                           prob_quantile=prob_quantile)
    return overlap.count_specific(df)


def _layer_points(recording: Any, pooling: str, layer: Any) -> tuple[np.ndarray, list[str], list[int]]:
    """All sentence vectors of one layer stacked: `(n_units * n, d)`, unit per row, index per row."""
    i = recording.layer_index(layer)
    vecs = recording.vectors(pooling)
    x = np.concatenate([np.asarray(v[i]) for v in vecs.values()])
    n = next(iter(vecs.values())).shape[1]
    return x, [u for u in vecs for _ in range(n)], [j for _ in vecs for j in range(n)]


def map_points(recording: Any, corpus: Any, pooling: str, layer: Any, *, method: str,
               random_state: int = 0) -> pd.DataFrame:
    """2-D map of one layer (`analysis.embed2d.embed_2d`): x, y, lang, unit index, text."""
    from workbench.analysis import embed2d

    x, langs, idx = _layer_points(recording, pooling, layer)
    xy = embed2d.embed_2d(x, method=method, random_state=random_state)
    texts = {u: corpus.texts(u) for u in recording.entries}
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "lang": langs, "unit": idx,
                         "text": [texts[u][j] for u, j in zip(langs, idx)]})


def _panel(z: np.ndarray, langs: Sequence[str]) -> tuple[np.ndarray, bool]:
    """2-D coordinates of projected points `z` `(n, k)`, and whether they form a strip.

    PCA when the projection has at least 2 dimensions; else a strip: (coordinate, the
    language's row plus a small deterministic jitter).
    """
    from workbench.analysis import embed2d

    z = np.asarray(z, dtype=np.float64).reshape(len(langs), -1)
    if z.shape[1] >= 2:
        return embed2d.embed_2d(z, method="pca"), False
    order = {u: i for i, u in enumerate(dict.fromkeys(langs))}
    rows = np.array([order[u] for u in langs], dtype=np.float64)
    jitter = np.zeros_like(rows)
    for u, i in order.items():
        idx = np.flatnonzero(rows == i)
        jitter[idx] = np.linspace(-0.15, 0.15, idx.size) if idx.size > 1 else 0.0
    return np.column_stack([z[:, 0], rows + jitter]), True


def subspace_view(recording: Any, corpus: Any, pooling: str, layer: Any, *, rank: int | None,
                  central: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, bool]]:
    """LENS subspaces of one layer (`analysis.subspace.language_subspace`).

    Returns:
        (points, norms, strips): points has x/y_agnostic (coordinate along the agnostic
        direction, one row per language: it is 1-D), x/y_specific (PCA of the coordinates in
        the specific subspace; a strip too when rank is 1), lang, text; norms has one row
        per non-central language with ``‖δ_lang‖``; strips says which panels are strips.
    """
    from workbench.analysis import subspace

    x, langs, idx = _layer_points(recording, pooling, layer)
    units = list(recording.entries)
    means = np.stack([x[np.asarray(langs) == u].mean(axis=0) for u in units])
    sub = subspace.language_subspace(means, rank=rank, languages=units)
    ca, strip_a = _panel(sub.agnostic_coords(x), langs)
    cs, strip_s = _panel(sub.specific_coords(x), langs)
    texts = {u: corpus.texts(u) for u in units}
    points = pd.DataFrame({"x_agnostic": ca[:, 0], "y_agnostic": ca[:, 1], "x_specific": cs[:, 0],
                           "y_specific": cs[:, 1], "lang": langs,
                           "text": [texts[u][j] for u, j in zip(langs, idx)]})
    norms = pd.DataFrame([{"language": u, "direction norm ‖δ‖": float(np.linalg.norm(sub.direction(u, central)))}
                          for u in units if u != central])
    return points, norms, {"agnostic": strip_a, "specific": strip_s}


def separation_table(recording: Any, pooling: str, *, rank: int | None, central: str,
                     holdout: bool) -> pd.DataFrame:
    """Per-layer separation numbers (`analysis.subspace.separation_by_layer`)."""
    from workbench.analysis import subspace

    return subspace.separation_by_layer(recording.vectors(pooling), rank=rank, central=central,
                                        holdout=holdout, layer_labels=recording.layer_labels)

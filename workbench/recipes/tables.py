"""Recording -> tables: the one definition of each view's numbers.

The pages, `workbench analyze`, `export`, `report` and figure sets all reach these through
the registry (`workbench.recipes.build`), so a number is computed by one code path
whichever door the user came in by. Every function is a thin composition of
`workbench.analysis` pure functions; "best layer", the SiLP pair pass and the allocation
table are defined here, once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from workbench.analysis import embed2d, overlap, retrieval, sensitivity, subspace
from workbench.config import SILP_TEMPLATE, RecordSpec
from workbench.errors import ParamError
from workbench.presets import hf_hidden_state_labels


def ffn_layer_labels(recording: Any) -> list[int]:
    """Block indices of the FFN statistics (`(L_ffn, M)` arrays)."""
    probs = next(iter(recording.entries.values()))["ffn_pos_counts"]
    return list(range(probs.shape[0]))


LAYER_SETS = ("all", "hf_hidden_states")
"""Layer sets a per-layer view runs over: every recorded layer, or HF `hidden_states`' (MEXA's)."""


def layer_set(recording: Any, name: str) -> list[Any] | None:
    """The layer labels of set `name` in `recording` (None: 'all', every recorded layer).

    'hf_hidden_states': HF's `output_hidden_states` entries, `emb, 0 … L−2, final` (the
    post-norm top replaces block L−1; `presets.hf_hidden_state_labels`), as MEXA's code reads them.

    Raises:
        ParamError: unknown set, or a recording without the embedding output, every block
            and the post-norm top layer (what the `mexa` preset records).
    """
    if name == "all":
        return None
    if name != "hf_hidden_states":
        raise ParamError(f"layers must be one of {', '.join(LAYER_SETS)}; got {name!r}")
    labels = list(recording.layer_labels)
    blocks = [x for x in labels if is_block(x)]
    if "emb" not in labels or "final" not in labels or not blocks or recording.spec.layers is not None:
        raise ParamError("layers 'hf_hidden_states' (HF's emb, blocks 0…L−2, final) needs a recording of the "
                         "embedding output, every block and the post-norm top layer (final_norm; the mexa preset "
                         f"records them); this one has {labels}")
    return hf_hidden_state_labels(max(int(x) for x in blocks) + 1)


def retrieval_tables(recording: Any, pooling: str, *, method: str, k: int, pivot: str,
                     center: bool = False, layers: Sequence[Any] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long per-pair table, per-layer summary) from `analysis.retrieval`, over `layers` (None: every recorded one)."""
    vectors, labels = recording.vectors(pooling), list(recording.layer_labels)
    if layers is not None:
        idx = [recording.layer_index(x) for x in layers]
        vectors, labels = {u: np.asarray(v)[idx] for u, v in vectors.items()}, list(layers)
    df = retrieval.retrieval_by_layer(vectors, method=method, k=k, pivot=pivot, center=center, layer_labels=labels)
    return df, retrieval.summarize_by_layer(df, pivot)


def retrieval_matrix_at(recording: Any, pooling: str, layer: Any, *, method: str, k: int) -> pd.DataFrame:
    """Language × language retrieval accuracy at one layer (`analysis.retrieval.retrieval_matrix`)."""
    i = recording.layer_index(layer)
    return retrieval.retrieval_matrix({u: v[i] for u, v in recording.vectors(pooling).items()},
                                      method=method, k=k)


def sensitivity_scores(pair_recording: Any, unit: str, variant: str = "paper") -> np.ndarray:
    """SiLP projection sensitivity `(L,)` of one translation direction (entry 0 NaN)."""
    entry = pair_recording.entries[unit]
    if variant == "abs":
        return sensitivity.abs_sensitivity_from_diffs(np.asarray(entry["ffn_absdiff"]))
    return sensitivity.projection_sensitivity(np.asarray(entry["ffn_layer_mean"]), variant="paper")


def overlap_table(recording: Any, pivot: str, langs: Sequence[str], *, top_frac: float) -> pd.DataFrame:
    """Per-layer activated-neuron overlap of `langs` with `pivot` (`analysis.overlap`)."""
    probs = recording.activation_probs()
    chosen = {u: probs[u] for u in [pivot, *[x for x in langs if x != pivot]]}
    return overlap.overlap_by_layer(chosen, pivot, top_frac=top_frac, layer_labels=ffn_layer_labels(recording))


def specific_counts(recording: Any, langs: Sequence[str], *, entropy_quantile: float,
                    prob_quantile: float) -> pd.DataFrame:
    """Language-specific (LAPE) neuron counts per layer and language."""
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
    """2-D map of one layer (`analysis.embed2d.embed_2d_info`): x, y, lang, unit index, text.

    ``attrs``: ``method`` and what it reports (PCA's ``explained_variance`` per axis).
    """
    x, langs, idx = _layer_points(recording, pooling, layer)
    xy, info = embed2d.embed_2d_info(x, method=method, random_state=random_state)
    texts = {u: corpus.texts(u) for u in recording.entries}
    out = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "lang": langs, "unit": idx,
                        "text": [texts[u][j] for u, j in zip(langs, idx)]})
    out.attrs.update(method=method, **info)
    return out


def _panel(z: np.ndarray, langs: Sequence[str]) -> tuple[np.ndarray, bool]:
    """2-D coordinates of projected points `z` `(n, k)`, and whether they form a strip.

    PCA when the projection has at least 2 dimensions; else a strip: (coordinate, the
    language's row plus a small deterministic jitter).
    """
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
    return subspace.separation_by_layer(recording.vectors(pooling), rank=rank, central=central,
                                        holdout=holdout, layer_labels=recording.layer_labels)


def is_block(label: Any) -> bool:
    """True for a decoder-block layer label (an int), False for 'emb' or 'final'."""
    return isinstance(label, int | np.integer) and not isinstance(label, bool)


def best_layer(summary: pd.DataFrame) -> int:
    """THE best layer: the decoder block with the highest all-pairs accuracy in a retrieval summary.

    Never 'emb' (or 'final'); ties go to the lower block.

    Raises:
        ParamError: no decoder block in the summary.
    """
    allp = summary[summary["series"] == "all_pairs"]
    blocks = allp[[is_block(x) for x in allp["layer"]]]
    if blocks.empty:
        raise ParamError("no decoder block was recorded, so there is no best layer; choose a layer")
    top = blocks["accuracy"].max()
    return int(min(int(x) for x in blocks.loc[blocks["accuracy"] == top, "layer"]))


def best_layer_of(recording: Any, pooling: str = "mean", *, pivot: str | None = None) -> int:
    """`best_layer` of a recording by all-pairs margin retrieval (k = 4)."""
    pivot_ = pivot if pivot is not None and pivot in recording.entries else next(iter(recording.entries))
    _, summary = retrieval_tables(recording, pooling, method="margin", k=4, pivot=pivot_)
    return best_layer(summary)


def silp_record_spec(base: RecordSpec | None = None, **override: Any) -> RecordSpec:
    """THE RecordSpec of SiLP's pair pass.

    `base` (max length, batching, layers) with the translation prompt, FFN statistics, only
    mean pooling and no embeddings.
    """
    base = base or RecordSpec()
    return dataclasses.replace(base, template=SILP_TEMPLATE, poolings=("mean",), embeddings=False, ffn_stats=True,
                               **override)


def allocation_table(scores: np.ndarray, *, split: int | None = None, k1: int | None = None,
                     k2: int | None = None) -> tuple[pd.DataFrame, list[int], list[int], int]:
    """THE allocation table: (layer, score, N2D/D2N/"") rows, the N2D and D2N layers, the split.

    `None` means the paper's default (`sensitivity.check_allocation`): split round(0.625·L),
    k1 = k2 = min(4, candidates); an explicit value out of range is a ParamError.
    """
    k, k1, k2 = sensitivity.check_allocation(len(scores), split=split, k1=k1, k2=k2)
    n2d, d2n = sensitivity.allocate_layers(scores, split=k, k1=k1, k2=k2)
    table = pd.DataFrame({"layer": range(len(scores)), "score": scores,
                          "allocation": ["N2D" if i in n2d else "D2N" if i in d2n else "" for i in range(len(scores))]})
    return table, list(n2d), list(d2n), k

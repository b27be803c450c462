"""Two model states side by side (METHODS.md §7): each view's table for A and B, joined, and B − A.

Every before/after table is long: the view's key columns (``layer``, ``series``, ``lang``,
…), ``measure``, ``a``, ``b`` and ``diff = b − a``. Nothing here re-implements a metric:
each table is the one-state table of `recipes.tables` for both recordings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from workbench.recipes import tables as views

__all__ = ["map_compare", "overlap_compare", "retrieval_compare", "retrieval_matrix_compare", "sensitivity_compare",
           "separation_compare", "side_by_side"]


def side_by_side(a: pd.DataFrame, b: pd.DataFrame, keys: Sequence[str], values: Sequence[str]) -> pd.DataFrame:
    """Join two tables of the same view: long, with ``measure, a, b, diff = b − a``.

    Rows keep `a`'s order; rows only in `b` follow (with ``a`` NaN). Values are float64,
    so ``diff`` is exactly ``b − a`` and identical inputs give exactly 0 (NaN stays NaN).

    Args:
        a: the view's table for state A.
        b: the same view's table for state B.
        keys: columns identifying a row (``layer``, ``series``, ``lang``, …).
        values: the numeric columns to compare (one ``measure`` each).
    """
    keys = list(keys)
    on = [*keys, "measure"]
    la = a.melt(id_vars=keys, value_vars=list(values), var_name="measure", value_name="a")
    lb = b.melt(id_vars=keys, value_vars=list(values), var_name="measure", value_name="b")
    # Layer labels mix "emb" and ints: a left merge keeps a's order (an outer one would sort them).
    out = la.merge(lb, on=on, how="left")
    only_b = lb.merge(la[on], on=on, how="left", indicator=True)
    only_b = only_b[only_b["_merge"] == "left_only"].drop(columns="_merge")
    if len(only_b):
        out = pd.concat([out, only_b.assign(a=np.nan)[out.columns]], ignore_index=True)
    out["a"] = out["a"].astype(np.float64)
    out["b"] = out["b"].astype(np.float64)
    out["diff"] = out["b"] - out["a"]
    return out


def retrieval_compare(rec_a: Any, rec_b: Any, pooling: str, *, method: str = "margin", k: int = 4,
                      pivot: str = "en", center: bool = False) -> pd.DataFrame:
    """Retrieval accuracy by layer (`views.retrieval_tables` summary): layer, series, measure, a, b, diff."""
    _, sa = views.retrieval_tables(rec_a, pooling, method=method, k=k, pivot=pivot, center=center)
    _, sb = views.retrieval_tables(rec_b, pooling, method=method, k=k, pivot=pivot, center=center)
    keys = ["center", "layer", "series"] if "center" in sa.columns else ["layer", "series"]
    out = side_by_side(sa, sb, keys, ["accuracy"])
    out.attrs.update(method=method, pivot=pivot, k=k, pooling=pooling)
    return out


def sensitivity_compare(pair_a: Any, pair_b: Any, unit: str, variant: str = "paper") -> pd.DataFrame:
    """SiLP projection sensitivity of one direction (`views.sensitivity_scores`): layer, measure, a, b, diff."""
    scores = (views.sensitivity_scores(pair_a, unit, variant), views.sensitivity_scores(pair_b, unit, variant))
    frames = [pd.DataFrame({"layer": range(len(s)), "sensitivity": np.asarray(s, np.float64)}) for s in scores]
    out = side_by_side(frames[0], frames[1], ["layer"], ["sensitivity"])
    out.attrs.update(unit=unit, variant=variant)
    return out


def overlap_compare(rec_a: Any, rec_b: Any, pivot: str, langs: Sequence[str], *, top_frac: float) -> pd.DataFrame:
    """Neuron overlap with the pivot (`views.overlap_table`): layer, lang, measure (jaccard, pivot_frac), a, b, diff."""
    ta = views.overlap_table(rec_a, pivot, langs, top_frac=top_frac)
    tb = views.overlap_table(rec_b, pivot, langs, top_frac=top_frac)
    out = side_by_side(ta, tb, ["layer", "lang"], ["jaccard", "pivot_frac"])
    out.attrs.update(pivot=pivot, top_frac=top_frac)
    return out


def separation_compare(rec_a: Any, rec_b: Any, pooling: str, *, rank: int | None, central: str,
                       holdout: bool) -> pd.DataFrame:
    """Subspace separation by layer (`views.separation_table`): layer, measure, a, b, diff.

    Measures: ``agnostic_ratio``, ``specific_ratio`` and ``direction_norm_<lang>``.
    """
    ta = views.separation_table(rec_a, pooling, rank=rank, central=central, holdout=holdout)
    tb = views.separation_table(rec_b, pooling, rank=rank, central=central, holdout=holdout)
    values = [c for c in ta.columns if c != "layer"]
    out = side_by_side(ta, tb, ["layer"], values)
    out.attrs.update(central=ta.attrs.get("central", central), rank=rank, holdout=holdout)
    return out


def retrieval_matrix_compare(rec_a: Any, rec_b: Any, pooling: str, layer: Any, *, method: str = "margin",
                             k: int = 4) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Language × language retrieval at one layer (`views.retrieval_matrix_at`): (A, B, B − A)."""
    ma = views.retrieval_matrix_at(rec_a, pooling, layer, method=method, k=k)
    mb = views.retrieval_matrix_at(rec_b, pooling, layer, method=method, k=k)
    return ma, mb, mb.astype(np.float64) - ma.astype(np.float64)


def map_compare(rec_a: Any, rec_b: Any, corpus: Any, pooling: str, layer: Any, *, method: str = "pca",
                random_state: int = 0) -> pd.DataFrame:
    """2-D maps of one layer for both states (`views.map_points`), stacked with a ``state`` column ('a', 'b').

    Each state's map is its own projection (axes are not comparable point by point; a
    difference of maps is not defined), so only the layouts are compared.
    """
    pa = views.map_points(rec_a, corpus, pooling, layer, method=method, random_state=random_state)
    pb = views.map_points(rec_b, corpus, pooling, layer, method=method, random_state=random_state)
    return pd.concat([pa.assign(state="a"), pb.assign(state="b")], ignore_index=True)

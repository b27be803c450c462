"""Two model states side by side (METHODS.md §7): each view's table for A and B, joined, and B − A.

Every before/after table is long: the view's key columns (``layer``, ``series``, ``lang``,
…), ``measure``, ``a``, ``b`` and ``diff = b − a``: `side_by_side` joins the one-state
tables of an analysis's two states (each analysis's `Compare` form calls it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["side_by_side"]


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

"""CC-Tuning's numbers as pure functions (METHODS §6; CC-Tuning Fig. 5, Fig. 8, Table 2).

Arrays in, arrays or DataFrames out; no model, no I/O. `workbench.finetune.cctuning`
collects the FFN outputs and re-exports these names.

- `fit_transform_matrix`: Eq. 7, `W_T = argmin ‖A W_T − B‖²` by `numpy.linalg.lstsq`.
- `transform_mse`: Table 2's MSE, `1/(N·L) Σ (1/d) ‖f W_T − f^en‖²`.
- `transform_fit_curve`: Fig. 5, that error against the number of pairs `W_T` is fitted on.
- `layer_distribution`: Fig. 8, how often the Decision Maker selects each layer.
- `parallel_gap`: Table 2's |Δ| between the real English input and `W_T`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["fit_transform_matrix", "layer_distribution", "parallel_gap", "transform_fit_curve", "transform_mse"]


def _rows(x: np.ndarray) -> np.ndarray:
    """`(N, L, d)` or `(n, d)` → `(rows, d)` float64."""
    a = np.asarray(x, dtype=np.float64)
    return a.reshape(-1, a.shape[-1])


def fit_transform_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Eq. 7: `W_T = argmin ‖A W_T − B‖²` by `numpy.linalg.lstsq` (minimum-norm when underdetermined).

    Args:
        a: `(N, L, d)` (or `(n, d)`) non-English FFN outputs.
        b: the English ones, same shape.

    Returns:
        `(d, d)` float64.
    """
    a2, b2 = _rows(a), _rows(b)
    if a2.shape != b2.shape or a2.shape[0] < 1:
        raise ValueError(f"A and B must have the same non-empty shape, got {np.shape(a)} and {np.shape(b)}")
    return np.linalg.lstsq(a2, b2, rcond=None)[0]


def transform_mse(a: np.ndarray, b: np.ndarray, w_t: np.ndarray | None) -> float:
    """Table 2's MSE: `1/(N·L) Σ (1/d) ‖f W_T − f^en‖²` (`w_t` None = identity, no transform)."""
    a2, b2 = _rows(a), _rows(b)
    pred = a2 if w_t is None else a2 @ np.asarray(w_t, dtype=np.float64)
    return float(np.mean((pred - b2) ** 2))


def _grid(n: int, points: int) -> list[int]:
    return sorted({int(round(x)) for x in np.geomspace(1, n, max(points, 1))} | {n})


def transform_fit_curve(a: np.ndarray, b: np.ndarray, a_held: np.ndarray | None = None,
                        b_held: np.ndarray | None = None, *, n_pairs: Sequence[int] | None = None,
                        points: int = 8) -> pd.DataFrame:
    """Fig. 5: the fit error of `W_T` against the number of pairs it is fitted on.

    Args:
        a: `(N, L, d)` non-English FFN outputs of the fitting pairs (the first n are used).
        b: `(N, L, d)` English ones.
        a_held: optional `(M, L, d)` held-out non-English outputs.
        b_held: optional held-out English outputs.
        n_pairs: the pair counts (default: `points` geometric steps from 1 to N).
        points: number of counts when `n_pairs` is None.

    Returns:
        One row per count: `n_pairs`, `n_rows` (= n·L), `fit_mse` (on the fitting pairs, what
        the paper plots), `heldout_mse` and `identity_mse` (held-out, no transform; NaN
        without held-out data). With `n·L < d` the fit interpolates (fit_mse ≈ 0).
    """
    n_all = np.shape(a)[0]
    counts = list(n_pairs) if n_pairs is not None else _grid(n_all, points)
    if not counts or min(counts) < 1 or max(counts) > n_all:
        raise ValueError(f"n_pairs must be in [1, {n_all}], got {counts}")
    per_pair = np.shape(a)[1] if np.ndim(a) == 3 else 1
    held = (a_held, b_held) if a_held is not None and b_held is not None and len(a_held) > 0 else None
    ident = transform_mse(*held, None) if held else float("nan")
    rows = []
    for n in counts:
        w = fit_transform_matrix(a[:n], b[:n])
        rows.append({"n_pairs": int(n), "n_rows": int(n * per_pair), "fit_mse": transform_mse(a[:n], b[:n], w),
                     "heldout_mse": transform_mse(*held, w) if held else float("nan"), "identity_mse": ident})
    return pd.DataFrame(rows)


def layer_distribution(selected: Mapping[str, Sequence[int] | np.ndarray] | Sequence[int] | np.ndarray,
                       n_layers: int) -> pd.DataFrame:
    """Fig. 8: how often each layer is selected, per source.

    Args:
        selected: chosen layer per example, or `{source name: chosen layers}` (e.g.
            `{"English input": …, "Transform Matrix": …}`).
        n_layers: L (every layer gets a row, also the never-chosen ones).

    Returns:
        Columns `source`, `layer`, `count`, `fraction` (of that source's examples).
    """
    series = selected if isinstance(selected, Mapping) else {"selected": selected}
    out = []
    for name, sel in series.items():
        s = np.asarray(sel, dtype=np.int64).reshape(-1)
        if s.size and (s.min() < 0 or s.max() >= n_layers):
            raise ValueError(f"{name}: layer indices must be in [0, {n_layers}), got {s.min()}..{s.max()}")
        counts = np.bincount(s, minlength=n_layers)
        total = max(int(counts.sum()), 1)
        out += [{"source": name, "layer": i, "count": int(c), "fraction": float(c) / total}
                for i, c in enumerate(counts)]
    return pd.DataFrame(out, columns=["source", "layer", "count", "fraction"])


def parallel_gap(nll: Mapping[str, np.ndarray], correct: Mapping[str, np.ndarray], tokens: np.ndarray, *,
                 real: str = "english", transformed: str = "transform") -> dict[str, float]:
    """Table 2's |Δ|: held-out loss and token accuracy with the real English input vs with `W_T`.

    Args:
        nll: `{variant: (n,) summed NLL of each example's response tokens}`.
        correct: `{variant: (n,) number of response tokens predicted right (top-1)}`.
        tokens: `(n,)` response tokens per example.
        real: the variant using the real English parallel input.
        transformed: the variant using `F W_T`.

    Returns:
        `loss_<variant>` (mean NLL per token), `acc_<variant>` for every variant, and
        `delta_loss`, `delta_acc` = |real − transformed|.
    """
    n_tok = max(float(np.sum(tokens)), 1.0)
    out: dict[str, float] = {}
    for k in nll:
        out[f"loss_{k}"] = float(np.sum(nll[k])) / n_tok
        out[f"acc_{k}"] = float(np.sum(correct[k])) / n_tok
    out["delta_loss"] = abs(out[f"loss_{real}"] - out[f"loss_{transformed}"])
    out["delta_acc"] = abs(out[f"acc_{real}"] - out[f"acc_{transformed}"])
    return out

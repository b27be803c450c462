"""Projection-sensitivity scores and N2D/D2N layer allocation (METHODS.md §2; SiLP §3.1–3.2).

Layers are 0-based decoder blocks. ``S_0`` is undefined and returned as NaN. SiLP Eq. 2,
with the absolute value outside both sums as printed::

    S_l = | Σ_n Σ_i (A^l_{i,n} − A^{l−1}_{i,n}) | / (M · N)

Since ``Σ_i A^l_{i,n} = M · mean_i A^l_{i,n}``, the paper score only needs the per-pass,
per-layer mean activation, which is what the recorder stores (bounded memory). The
``abs`` variant puts the absolute value inside; it needs the per-pass mean absolute
difference, see :func:`abs_sensitivity_from_diffs`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "VARIANTS",
    "abs_sensitivity_from_diffs",
    "allocate_layers",
    "default_split",
    "projection_sensitivity",
]

VARIANTS = ("paper", "abs")
"""Names accepted by ``projection_sensitivity(variant=...)``."""


def projection_sensitivity(layer_means: np.ndarray, *, variant: str = "paper") -> np.ndarray:
    """Per-layer projection-sensitivity score.

    Args:
        layer_means: for ``variant="paper"``: ``(n_passes, n_layers)`` mean neuron
            activation per pass and layer (a per-neuron ``(n_passes, n_layers, M)`` array
            is also accepted and averaged over neurons). For ``variant="abs"``: the
            per-neuron activations ``(n_passes, n_layers, M)``.
        variant: ``"paper"`` (|Σ Σ diff| / (M·N)) or ``"abs"`` (Σ Σ |diff| / (M·N)).

    Returns:
        ``(n_layers,)`` float scores; entry 0 is NaN.

    Raises:
        ValueError: for an unknown variant, a wrong number of dimensions or no passes.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown sensitivity variant {variant!r}; expected one of {VARIANTS}")
    arr = np.asarray(layer_means, dtype=np.float64)
    if variant == "abs":
        if arr.ndim != 3:
            raise ValueError(
                f"variant='abs' needs per-neuron activations (n_passes, n_layers, M), "
                f"got shape {arr.shape}"
            )
        return abs_sensitivity_from_diffs(np.abs(np.diff(arr, axis=1)).mean(axis=2), padded=False)
    if arr.ndim == 3:
        arr = arr.mean(axis=2)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(
            f"variant='paper' needs layer means (n_passes, n_layers) with n_passes >= 1, "
            f"got shape {arr.shape}"
        )
    scores = np.abs(np.diff(arr, axis=1).sum(axis=0)) / arr.shape[0]
    return np.concatenate([[np.nan], scores])


def abs_sensitivity_from_diffs(absdiff: np.ndarray, *, padded: bool = True) -> np.ndarray:
    """``abs`` variant from stored per-pass mean absolute differences.

    Args:
        absdiff: ``(n_passes, n_layers)`` with ``absdiff[n, l] = mean_i |A^l_{i,n} −
            A^{l−1}_{i,n}|``; column 0 is ignored (NaN in the recorder's output).
        padded: ``False`` if column 0 is absent, i.e. the input is ``(n_passes,
            n_layers - 1)`` starting at layer 1.

    Returns:
        ``(n_layers,)`` scores ``S_l^abs = mean_n absdiff[n, l]``; entry 0 is NaN.

    Raises:
        ValueError: if ``absdiff`` is not 2-D with at least one pass.
    """
    arr = np.asarray(absdiff, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(
            f"absdiff must be (n_passes, n_layers) with n_passes >= 1, got {arr.shape}"
        )
    body = arr[:, 1:] if padded else arr
    return np.concatenate([[np.nan], body.mean(axis=0)])


def default_split(n_layers: int) -> int:
    """SiLP's split point scaled to depth: ``round(0.625 · L)``, halves rounded up.

    Args:
        n_layers: number of decoder blocks ``L``.

    Returns:
        The split layer index ``k`` (20 for ``L = 32``, as in the paper).
    """
    # Round half up rather than Python's round-half-to-even, so e.g. L = 4 gives 3.
    return int(np.floor(0.625 * n_layers + 0.5))


def _top_k(scores: np.ndarray, layers: np.ndarray, k: int) -> list[int]:
    """Top-``k`` of ``layers`` by score; ties go to the lower layer; sorted ascending."""
    order = np.argsort(-scores[layers], kind="stable")
    return sorted(int(layer) for layer in layers[order[: min(k, layers.size)]])


def allocate_layers(
    scores: Sequence[float] | np.ndarray,
    *,
    split: int | None = None,
    k1: int = 4,
    k2: int = 4,
) -> tuple[list[int], list[int]]:
    """SiLP layer allocation from projection-sensitivity scores.

    Args:
        scores: ``(n_layers,)`` scores from :func:`projection_sensitivity` (entry 0 is
            never a candidate and may be NaN).
        split: split layer ``k``; default :func:`default_split`. Must be in
            ``[1, n_layers - 1]``.
        k1: number of N2D layers, the top-``k1`` of ``S_1 … S_split``.
        k2: number of D2N layers, the top-``k2`` of ``S_{split+1} … S_{L-1}``.

    Returns:
        ``(n2d, d2n)``: 0-based layer indices, each sorted ascending; ``k1``/``k2`` are
        clipped to the number of candidates. Equal scores go to the lower layer.

    Raises:
        ValueError: for fewer than 2 layers, an out-of-range ``split``, negative ``k1``/
            ``k2`` or non-finite candidate scores.
    """
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"scores must be 1-D with at least 2 layers, got shape {arr.shape}")
    n_layers = arr.size
    split = default_split(n_layers) if split is None else split
    if not 1 <= split <= n_layers - 1:
        raise ValueError(f"split must be in [1, {n_layers - 1}] for {n_layers} layers, got {split}")
    if k1 < 0 or k2 < 0:
        raise ValueError(f"k1 and k2 must be >= 0, got k1={k1}, k2={k2}")
    if not np.isfinite(arr[1:]).all():
        raise ValueError("scores S_1 … S_{L-1} must be finite")
    n2d = _top_k(arr, np.arange(1, split + 1), k1)
    d2n = _top_k(arr, np.arange(split + 1, n_layers), k2)
    return n2d, d2n

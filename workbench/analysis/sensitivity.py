"""Projection-sensitivity scores and N2D/D2N layer allocation (METHODS.md §2; SiLP §3.1–3.2).

Layers are 0-based decoder blocks. ``S_0`` is undefined and returned as NaN. SiLP Eq. 2,
with the absolute value outside both sums as printed::

    S_l = | Σ_n Σ_i (A^l_{i,n} − A^{l−1}_{i,n}) | / (M · N)

Since ``Σ_i A^l_{i,n} = M · mean_i A^l_{i,n}``, the paper score only needs the per-pass,
per-layer mean activation, which is what the recorder stores (bounded memory). The
``abs`` variant puts the absolute value inside; it needs the per-pass mean absolute
difference, see :func:`abs_sensitivity_from_diffs`.

Allocation parameters (our reading of METHODS §2, where the paper's "k1 = k2 = 4,
clipped to the number of candidate layers" is the rule for the *default*):

- ``k1``/``k2`` left at ``None`` mean the paper default, ``min(4, candidates)``;
- an explicit ``k1``/``k2`` must lie in ``1 … candidates`` (N2D: the ``split`` layers
  ``1 … split``; D2N: the ``L − 1 − split`` layers ``split+1 … L−1``), else a
  `ParamError` names it: asking for 50 layers or for 0 is never silently clamped, and
  a stage never comes out empty;
- ``split`` must lie in ``1 … L−2`` so that both stages have a candidate; the default
  ``round(0.625·L)`` is capped at ``L − 2`` (shallow models only: ``L < 7``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workbench.errors import ParamError

__all__ = [
    "PAPER_K",
    "VARIANTS",
    "abs_sensitivity_from_diffs",
    "allocate_layers",
    "check_allocation",
    "check_direction",
    "default_split",
    "projection_sensitivity",
]

PAPER_K = 4
"""SiLP's default number of N2D and of D2N layers (clipped to the candidates when not given)."""

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
        raise ParamError(f"unknown sensitivity variant {variant!r}; expected one of {VARIANTS}")
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
    """SiLP's split point scaled to depth: ``round(0.625 · L)``, halves rounded up, at most ``L − 2``.

    The cap keeps one D2N candidate on shallow models (it binds only for ``L < 7``).

    Args:
        n_layers: number of decoder blocks ``L`` (at least 3).

    Returns:
        The split layer index ``k`` (20 for ``L = 32``, as in the paper).

    Raises:
        ParamError: for fewer than 3 layers (no split leaves a candidate on both sides).
    """
    if n_layers < 3:
        raise ParamError(f"the N2D/D2N allocation needs at least 3 layers (S_1 on each side of a split), "
                         f"got {n_layers}")
    # Round half up rather than Python's round-half-to-even, so e.g. L = 12 gives 8.
    return min(int(np.floor(0.625 * n_layers + 0.5)), n_layers - 2)


def check_direction(src: str, tgt: str) -> None:
    """Refuse a translation "direction" from a language to itself (nothing to allocate).

    Raises:
        ParamError: if ``src == tgt``.
    """
    if src == tgt:
        raise ParamError(f"src and tgt are both {src!r}: projection sensitivity and the N2D/D2N allocation need "
                         "a translation direction between two different languages")


def _check_k(name: str, k: int | None, candidates: range) -> int:
    if k is None:
        return min(PAPER_K, len(candidates))
    stage = "N2D" if name == "k1" else "D2N"
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ParamError(f"{name} ({stage} layers) must be a whole number of layers, got {k!r}")
    if not 1 <= k <= len(candidates):
        raise ParamError(f"{name} ({stage} layers) must be in 1…{len(candidates)}, the candidate layers "
                         f"{candidates[0]}…{candidates[-1]} of this split; got {k}")
    return int(k)


def check_allocation(
    n_layers: int, *, split: int | None = None, k1: int | None = None, k2: int | None = None
) -> tuple[int, int, int]:
    """Validate the allocation parameters before any work; resolve the defaults.

    Args:
        n_layers: number of decoder blocks ``L`` (entries of the score vector).
        split: split layer ``k`` in ``1 … L−2``; ``None``: :func:`default_split`.
        k1: N2D layers in ``1 … split``; ``None``: ``min(4, split)``.
        k2: D2N layers in ``1 … L−1−split``; ``None``: ``min(4, L−1−split)``.

    Returns:
        ``(split, k1, k2)`` as they will be used.

    Raises:
        ParamError: naming the first parameter out of range (one line).
    """
    if n_layers < 3:
        raise ParamError(f"the N2D/D2N allocation needs at least 3 layers, got {n_layers}")
    if split is None:
        split = default_split(n_layers)
    elif isinstance(split, bool) or not isinstance(split, int | np.integer) or not 1 <= split <= n_layers - 2:
        raise ParamError(f"split must be in 1…{n_layers - 2} for {n_layers} layers (so both N2D and D2N have a "
                         f"candidate), got {split!r}")
    split = int(split)
    return split, _check_k("k1", k1, range(1, split + 1)), _check_k("k2", k2, range(split + 1, n_layers))


def _top_k(scores: np.ndarray, layers: np.ndarray, k: int) -> list[int]:
    """Top-``k`` of ``layers`` by score; ties go to the lower layer; sorted ascending."""
    order = np.argsort(-scores[layers], kind="stable")
    return sorted(int(layer) for layer in layers[order[:k]])


def allocate_layers(
    scores: Sequence[float] | np.ndarray,
    *,
    split: int | None = None,
    k1: int | None = None,
    k2: int | None = None,
) -> tuple[list[int], list[int]]:
    """SiLP layer allocation from projection-sensitivity scores.

    Args:
        scores: ``(n_layers,)`` scores from :func:`projection_sensitivity` (entry 0 is
            never a candidate and may be NaN).
        split: split layer ``k`` in ``1 … L−2``; default :func:`default_split`.
        k1: number of N2D layers, the top-``k1`` of ``S_1 … S_split``; default
            ``min(4, split)`` (the paper's 4, clipped); an explicit value must be in
            ``1 … split``.
        k2: number of D2N layers, the top-``k2`` of ``S_{split+1} … S_{L-1}``; default
            ``min(4, L−1−split)``; an explicit value must be in ``1 … L−1−split``.

    Returns:
        ``(n2d, d2n)``: 0-based layer indices, each sorted ascending and non-empty.
        Equal scores go to the lower layer.

    Raises:
        ParamError: for fewer than 3 layers, an out-of-range ``split``, ``k1`` or ``k2``
            (see :func:`check_allocation`), or non-finite candidate scores.
    """
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1:
        raise ParamError(f"scores must be 1-D (one per layer), got shape {arr.shape}")
    n_layers = arr.size
    split, k1, k2 = check_allocation(n_layers, split=split, k1=k1, k2=k2)
    if not np.isfinite(arr[1:]).all():
        raise ParamError("scores S_1 … S_{L-1} must be finite")
    n2d = _top_k(arr, np.arange(1, split + 1), k1)
    d2n = _top_k(arr, np.arange(split + 1, n_layers), k2)
    return n2d, d2n

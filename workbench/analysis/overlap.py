"""Neuron overlap between languages and language-specific neurons (METHODS.md §3).

Inputs are activation *counts* (tokens with ``A[i] > 0``), never raw activations, so
memory does not grow with corpus size. Per layer and language, the activation
probability ``p[i]`` is the fraction of real tokens with ``A[i] > 0``; the activated set
is the top ``ρ`` fraction of neurons by ``p`` (or ``p ≥ τ``). Language-specific neurons
follow LAPE (Tang et al. 2024, "Language-Specific Neurons").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ParamError

__all__ = [
    "MEASURES",
    "activated_set",
    "activation_probability",
    "check_probs",
    "count_specific",
    "language_specific_neurons",
    "neuron_overlap",
    "overlap_by_layer",
]

MEASURES = ("jaccard", "pivot_frac")
"""Names accepted by ``neuron_overlap(measure=...)``."""


def _round_half_up(x: float) -> int:
    # 0.05 * 100 is 5.000000000000001 in floats: ceil would give 6, round-half-up gives 5.
    return int(np.floor(x + 0.5))


def check_probs(lang: str, prob: Any) -> np.ndarray:
    """Activation probabilities of one language as float64 ``(L, M)``, checked.

    Zero counted tokens make every ``p = 0/0`` undefined (NaN); a top-ρ set of NaNs is an
    arbitrary set and two of them overlap perfectly, so this is an error, never a Jaccard 1.

    Raises:
        ParamError: no tokens were counted for ``lang`` (empty corpus, ``--limit 0``).
        ValueError: not ``(L, M)`` with ``L, M ≥ 1``, or values outside ``[0, 1]``.
    """
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim != 2 or 0 in p.shape:
        raise ValueError(f"probs[{lang!r}] must be (L, M) with L, M >= 1, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ParamError(f"no tokens counted for language {lang!r}: its activation probabilities are undefined "
                         "(0/0); record at least one non-empty unit (was the corpus empty or --limit 0?)")
    if (p < 0).any() or (p > 1).any():
        raise ValueError(f"probs[{lang!r}] must lie in [0, 1]")
    return p


def activation_probability(counts: np.ndarray, n_tokens: Any) -> np.ndarray:
    """Fraction of tokens on which each neuron fired.

    Args:
        counts: ``(L, M)`` (or ``(M,)``) number of real tokens with ``A[i] > 0``.
        n_tokens: number of real tokens counted; a scalar, or ``(L,)`` per layer.

    Returns:
        ``counts / n_tokens`` as float64, same shape as ``counts``.

    Raises:
        ValueError: if ``n_tokens`` is not positive, or counts are negative or exceed it.
    """
    c = np.asarray(counts, dtype=np.float64)
    n = np.asarray(n_tokens, dtype=np.float64)
    if n.ndim == 1 and c.ndim == 2:
        if n.shape[0] != c.shape[0]:
            raise ValueError(f"n_tokens has {n.shape[0]} entries for {c.shape[0]} layers")
        n = n[:, None]
    elif n.ndim != 0:
        raise ValueError(f"n_tokens must be a scalar or (L,), got shape {n.shape}")
    if not np.isfinite(n).all() or (n <= 0).any():
        raise ParamError(f"n_tokens must be positive (no tokens were counted: empty corpus or --limit 0?), "
                         f"got {n_tokens!r}")
    if (c < 0).any() or (c > n).any():
        raise ValueError("counts must lie in [0, n_tokens]")
    return c / n


def activated_set(
    prob: np.ndarray, *, top_frac: float = 0.05, threshold: float | None = None
) -> np.ndarray:
    """Boolean mask of the activated neurons.

    Args:
        prob: ``(M,)`` or ``(L, M)`` activation probabilities (row-wise for 2-D).
        top_frac: ``ρ``: keep the top ``round(ρ·M)`` neurons (at least 1) of each row;
            equal probabilities are broken by the lower neuron index, so the set is
            deterministic and has exactly that size.
        threshold: if given, keep ``p ≥ threshold`` instead (``top_frac`` is ignored).

    Returns:
        Boolean mask with the shape of ``prob``.

    Raises:
        ValueError: for a ``prob`` that is not 1-D or 2-D.
        ParamError: for NaN probabilities (nothing counted) or ``top_frac`` outside (0, 1].
    """
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim not in (1, 2) or p.shape[-1] == 0:
        raise ValueError(f"prob must be (M,) or (L, M) with M >= 1, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ParamError("activation probabilities are undefined (NaN): no tokens were counted")
    if threshold is not None:
        return p >= threshold
    if not 0.0 < top_frac <= 1.0:
        raise ParamError(f"top_frac must be in (0, 1], got {top_frac}")
    m = p.shape[-1]
    k = min(m, max(1, _round_half_up(top_frac * m)))
    order = np.argsort(-p, axis=-1, kind="stable")[..., :k]
    mask = np.zeros(p.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return mask


def neuron_overlap(
    prob_pivot: np.ndarray,
    prob_other: np.ndarray,
    *,
    top_frac: float = 0.05,
    threshold: float | None = None,
    measure: str = "jaccard",
) -> float | np.ndarray:
    """Overlap of the activated sets of the pivot and another language.

    Args:
        prob_pivot: ``(M,)`` or ``(L, M)`` activation probabilities of the pivot.
        prob_other: same shape, the other language.
        top_frac: see :func:`activated_set`.
        threshold: see :func:`activated_set`.
        measure: ``"jaccard"`` (``|∩| / |∪|``) or ``"pivot_frac"`` (``|∩| / |S_pivot|``).

    Returns:
        A float for 1-D input, an ``(L,)`` array for 2-D input; NaN where the denominator
        is an empty set (possible only in threshold mode).

    Raises:
        ValueError: for mismatched shapes or an unknown measure.
    """
    if measure not in MEASURES:
        raise ParamError(f"unknown overlap measure {measure!r}; expected one of {MEASURES}")
    a, b = np.asarray(prob_pivot), np.asarray(prob_other)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: prob_pivot {a.shape} vs prob_other {b.shape}")
    s_a = activated_set(a, top_frac=top_frac, threshold=threshold)
    s_b = activated_set(b, top_frac=top_frac, threshold=threshold)
    inter = (s_a & s_b).sum(axis=-1)
    denom = (s_a | s_b).sum(axis=-1) if measure == "jaccard" else s_a.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denom > 0, inter / np.maximum(denom, 1), np.nan)
    return float(out) if out.ndim == 0 else out


def overlap_by_layer(
    probs: Mapping[str, np.ndarray],
    pivot: str,
    *,
    top_frac: float = 0.05,
    threshold: float | None = None,
    layer_labels: Sequence[int | str] | None = None,
) -> pd.DataFrame:
    """Per-layer overlap of every language with the pivot.

    Args:
        probs: language code -> ``(L, M)`` activation probabilities.
        pivot: pivot language code (a key of ``probs``).
        top_frac: see :func:`activated_set`.
        threshold: see :func:`activated_set`.
        layer_labels: ``L`` labels; default ``0 … L-1``.

    Returns:
        Long DataFrame with columns ``layer, lang, jaccard, pivot_frac``, one row per
        layer and non-pivot language (languages in input order).

    Raises:
        ParamError: if the pivot is missing, no other language is given, or a language
            has no counted tokens (see :func:`check_probs`).
        ValueError: if shapes differ.
    """
    if pivot not in probs:
        raise ParamError(f"pivot {pivot!r} is not among the languages {list(probs)}")
    if len(probs) < 2:
        raise ParamError(f"neuron overlap needs at least one language besides the pivot {pivot!r}")
    checked = {lang: check_probs(lang, p) for lang, p in probs.items()}
    ref = checked[pivot]
    labels = list(range(ref.shape[0])) if layer_labels is None else list(layer_labels)
    if len(labels) != ref.shape[0]:
        raise ValueError(f"{len(labels)} layer_labels for {ref.shape[0]} layers")
    frames = []
    for lang, p in checked.items():
        if lang == pivot:
            continue
        values = {
            measure: neuron_overlap(ref, p, top_frac=top_frac, threshold=threshold, measure=measure)
            for measure in MEASURES
        }
        frames.append(pd.DataFrame({"layer": labels, "lang": lang, **values}))
    out = pd.concat(frames, ignore_index=True)
    out.attrs.update(pivot=pivot, top_frac=top_frac, threshold=threshold)
    return out


def _kth_smallest(values: np.ndarray, frac: float) -> float:
    """LAPE's ``kthvalue(round(N · frac))``: the k-th smallest value, k >= 1."""
    k = min(values.size, max(1, _round_half_up(values.size * frac)))
    return float(np.partition(values, k - 1)[k - 1])


def _normalized_entropy(stack: np.ndarray) -> np.ndarray:
    """``(n_lang, L, M)`` probabilities -> ``(L, M)`` entropy of ``p`` normalised over languages.

    Neurons that never fire in any language get entropy 0 (as in LAPE); they are removed
    later by the probability bar.
    """
    total = stack.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(total > 0, stack / total, 0.0)
        logq = np.where(q > 0, np.log(np.where(q > 0, q, 1.0)), 0.0)
    return -(q * logq).sum(axis=0)


def language_specific_neurons(
    probs: Mapping[str, np.ndarray],
    *,
    entropy_quantile: float = 0.01,
    prob_quantile: float = 0.95,
) -> pd.DataFrame:
    """Language-specific neurons by LAPE (language activation probability entropy).

    Follows LAPE's reference code: the bar is the ``k``-th smallest of all
    ``n_lang·L·M`` probabilities with ``k = round(prob_quantile · N)``; neurons whose
    largest ``p`` does not exceed the bar are dismissed; of the rest, the
    ``round(entropy_quantile · L·M)`` neurons (at least 1) with the lowest entropy of
    ``p`` normalised over languages are kept (ties to the lower flat index); each kept
    neuron is assigned to every language whose ``p`` exceeds the bar.

    Args:
        probs: language code -> ``(L, M)`` activation probabilities (at least 2 languages).
        entropy_quantile: fraction of all neurons kept by lowest entropy (LAPE: 0.01).
        prob_quantile: quantile of all ``p`` that defines the bar (LAPE: 0.95).

    Returns:
        DataFrame with columns ``layer, neuron, lang`` (a neuron specific to two languages
        has two rows), sorted by layer, neuron, language order; ``attrs`` hold
        ``languages, n_layers, bar``.

    Raises:
        ParamError: for fewer than 2 languages, quantiles outside (0, 1) or a language
            without counted tokens.
        ValueError: for mismatched shapes.
    """
    if len(probs) < 2:
        raise ParamError(f"language-specific neurons need at least 2 languages, got {len(probs)}")
    for name, q in (("entropy_quantile", entropy_quantile), ("prob_quantile", prob_quantile)):
        if not 0.0 < q < 1.0:
            raise ParamError(f"{name} must be in (0, 1), got {q}")
    langs = list(probs)
    arrays = [check_probs(lang, probs[lang]) for lang in langs]
    if arrays[0].ndim != 2 or any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError(
            f"every probs[lang] must be (L, M) of one shape, got {[a.shape for a in arrays]}"
        )
    stack = np.stack(arrays)  # (n_lang, L, M)
    n_layers, m = stack.shape[1:]

    bar = _kth_smallest(stack.ravel(), prob_quantile)
    entropy = _normalized_entropy(stack).ravel()
    eligible = (stack > bar).any(axis=0).ravel()
    n_keep = min(int(eligible.sum()), max(1, _round_half_up(entropy.size * entropy_quantile)))
    candidates = np.flatnonzero(eligible)
    keep = candidates[np.argsort(entropy[candidates], kind="stable")[:n_keep]]
    keep.sort()

    above = stack.reshape(len(langs), -1)[:, keep] > bar  # (n_lang, n_keep)
    neuron_pos, lang_idx = np.nonzero(above.T)
    flat = keep[neuron_pos]
    out = pd.DataFrame(
        {
            "layer": flat // m,
            "neuron": flat % m,
            "lang": np.asarray(langs, dtype=object)[lang_idx],
        }
    )
    out.attrs.update(languages=langs, n_layers=int(n_layers), bar=bar)
    return out


def count_specific(df: pd.DataFrame) -> pd.DataFrame:
    """Count language-specific neurons per layer and language.

    Args:
        df: output of :func:`language_specific_neurons` (columns ``layer, neuron, lang``).

    Returns:
        Wide int DataFrame, index ``layer`` (every layer ``0 … n_layers-1`` when
        ``df.attrs`` has ``n_layers``), one column per language (all of
        ``df.attrs["languages"]`` when present), zeros where none.
    """
    counts = pd.crosstab(df["layer"], df["lang"]) if len(df) else pd.DataFrame()
    layers = range(int(df.attrs["n_layers"])) if "n_layers" in df.attrs else counts.index
    langs = df.attrs.get("languages", list(counts.columns))
    counts = counts.reindex(index=layers, columns=langs, fill_value=0).astype(int)
    counts.index.name = "layer"
    counts.columns.name = "lang"
    return counts

"""Language-agnostic and language-specific subspaces (METHODS.md §4; LENS §3.2, App. B).

With the language means stacked as columns ``M ∈ R^{d×n}`` and rank ``r < n``:

1. ``c = M·1/n``; ``U, Σ, Vᵀ = svd(M − c1ᵀ)``; ``Γ = V_r Σ_r``.
2. ``M' = c1ᵀ + U_r Γᵀ``.
3. ``u_a = pinv(M')ᵀ1 / ‖pinv(M')ᵀ1‖²`` (language-agnostic direction).
4. ``U_s`` = first ``r`` left singular vectors of ``M' − u_a 1ᵀ`` (language-specific).

Singular-vector signs are fixed with :func:`sklearn.utils.extmath.svd_flip` so the result
does not depend on the LAPACK build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.utils.extmath import svd_flip

from workbench.errors import ParamError

__all__ = [
    "LanguageSubspace",
    "between_within_ratio",
    "language_means",
    "language_subspace",
    "separation_by_layer",
]


def _readonly(x: np.ndarray) -> np.ndarray:
    arr = np.array(x, dtype=np.float64, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class LanguageSubspace:
    """Fitted language subspaces of one layer (arrays are read-only copies)."""

    agnostic: np.ndarray
    """(d,) language-agnostic direction ``u_a`` (not unit-norm: ``u_aᵀ m'_l = 1/‖v‖²``)."""
    specific: np.ndarray
    """(d, r) orthonormal basis ``U_s`` of the language-specific subspace."""
    languages: tuple[str, ...]
    """(n_langs,) language codes, the row order of ``means``."""
    means: np.ndarray
    """(n_langs, d) language mean vectors the subspaces were fitted on."""

    def __post_init__(self) -> None:
        agn, spec, means = (_readonly(a) for a in (self.agnostic, self.specific, self.means))
        object.__setattr__(self, "agnostic", agn)
        object.__setattr__(self, "specific", spec)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "languages", tuple(str(lang) for lang in self.languages))
        if agn.ndim != 1:
            raise ValueError(f"agnostic must be (d,), got shape {agn.shape}")
        d = agn.shape[0]
        if spec.ndim != 2 or spec.shape[0] != d:
            raise ValueError(f"specific must be (d={d}, r), got shape {spec.shape}")
        if means.ndim != 2 or means.shape[1] != d:
            raise ValueError(f"means must be (n_langs, d={d}), got shape {means.shape}")
        if len(self.languages) != means.shape[0]:
            raise ValueError(f"{len(self.languages)} languages for {means.shape[0]} means")
        if len(set(self.languages)) != len(self.languages):
            raise ValueError(f"duplicate language codes: {self.languages}")

    @property
    def rank(self) -> int:
        """Dimension ``r`` of the language-specific subspace."""
        return int(self.specific.shape[1])

    def _check_x(self, x: np.ndarray) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.agnostic.shape[0]:
            raise ValueError(
                f"x must be (d,) or (n, d) with d={self.agnostic.shape[0]}, got {arr.shape}"
            )
        return arr

    def agnostic_coords(self, x: np.ndarray) -> np.ndarray:
        """Coordinate of ``x`` along the unit agnostic direction: ``(...)`` from ``(..., d)``."""
        return self._check_x(x) @ (self.agnostic / np.linalg.norm(self.agnostic))

    def specific_coords(self, x: np.ndarray) -> np.ndarray:
        """Coordinates ``U_sᵀ x`` in the specific basis: ``(..., r)`` from ``(..., d)``."""
        return self._check_x(x) @ self.specific

    def project_agnostic(self, x: np.ndarray) -> np.ndarray:
        """``P_a x = u_a u_aᵀ x / ‖u_a‖²`` for ``x`` of shape ``(d,)`` or ``(n, d)``."""
        u = self.agnostic
        return np.multiply.outer(self._check_x(x) @ u / (u @ u), u)

    def project_specific(self, x: np.ndarray) -> np.ndarray:
        """``P_s x = U_s U_sᵀ x`` for ``x`` of shape ``(d,)`` or ``(n, d)``."""
        return self.specific_coords(x) @ self.specific.T

    def direction(self, lang: str, central: str = "en") -> np.ndarray:
        """Language expression direction ``δ = P_s(m_lang − m_central)``, shape ``(d,)``.

        Raises:
            KeyError: if either language was not fitted.
        """
        for code in (lang, central):
            if code not in self.languages:
                raise KeyError(f"language {code!r} not in the subspace ({self.languages})")
        diff = self.means[self.languages.index(lang)] - self.means[self.languages.index(central)]
        return self.project_specific(diff)


def language_subspace(
    means: np.ndarray, *, rank: int | None = None, languages: Sequence[str] | None = None
) -> LanguageSubspace:
    """Fit the language-agnostic direction and language-specific subspace.

    Args:
        means: ``(n_langs, d)`` mean vector of each language (rows).
        rank: ``r`` in ``[1, n_langs − 1]``; default ``n_langs − 1``.
        languages: ``n_langs`` codes; default ``"0", "1", …``.

    Returns:
        The fitted :class:`LanguageSubspace`.

    Raises:
        ParamError: for fewer than 2 languages, a bad rank, or a language whose mean is
            not finite (no sentences), naming it.
        ValueError: for a malformed ``means`` or ``languages``.
    """
    m_rows = np.asarray(means, dtype=np.float64)
    if m_rows.ndim != 2 or m_rows.shape[1] < 1:
        raise ValueError(f"means must be (n_langs >= 2, d), got shape {m_rows.shape}")
    langs = [str(i) for i in range(m_rows.shape[0])] if languages is None else [str(x) for x in languages]
    if len(langs) != m_rows.shape[0]:
        raise ValueError(f"{len(langs)} languages for {m_rows.shape[0]} means")
    if m_rows.shape[0] < 2:
        raise ParamError(f"LENS subspaces need at least 2 languages (means must be (n_langs >= 2, d)), "
                         f"got {m_rows.shape[0]}: {langs}")
    bad = [lang for lang, row in zip(langs, m_rows, strict=True) if not np.isfinite(row).all()]
    if bad:
        raise ParamError(f"the mean vector of language {bad[0]!r} is not finite: no sentences were recorded for "
                         "it (empty corpus or --limit 0?) or its vectors hold NaN/inf")
    n = m_rows.shape[0]
    r = n - 1 if rank is None else int(rank)
    if not 1 <= r <= n - 1:
        raise ParamError(f"rank must be in [1, {n - 1}] for {n} languages, got {rank}")
    if r > m_rows.shape[1]:
        raise ParamError(f"rank {r} exceeds the dimension d={m_rows.shape[1]}")

    big_m = m_rows.T  # (d, n), columns = languages
    c = big_m.mean(axis=1)
    u, s, vt = np.linalg.svd(big_m - c[:, None], full_matrices=False)
    u, vt = svd_flip(u, vt)
    gamma = vt[:r].T * s[:r]  # (n, r) = V_r Σ_r
    m_prime = c[:, None] + u[:, :r] @ gamma.T  # (d, n)
    v = np.linalg.pinv(m_prime).T @ np.ones(n)  # (d,)
    u_a = v / (v @ v)
    u_s, _, vt_s = np.linalg.svd(m_prime - u_a[:, None], full_matrices=False)
    u_s, _ = svd_flip(u_s, vt_s)
    return LanguageSubspace(agnostic=u_a, specific=u_s[:, :r], languages=tuple(langs), means=m_rows)


def language_means(vectors: Mapping[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """Mean vector of each language: ``(n_langs, d)`` and the language order.

    Args:
        vectors: language code -> ``(n, d)`` sentence vectors of one layer.

    Raises:
        ParamError: fewer than 2 languages, or a language with no sentence (``n = 0``).
        ValueError: a language's vectors are not ``(n, d)`` of the common ``d``.
    """
    langs = list(vectors)
    if len(langs) < 2:
        raise ParamError(f"LENS subspaces need at least 2 languages, got {len(langs)}: {langs}")
    rows = []
    for lang in langs:
        x = np.asarray(vectors[lang], dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"vectors[{lang!r}] must be (n, d), got shape {x.shape}")
        if x.shape[0] == 0:
            raise ParamError(f"no sentences for language {lang!r}: LENS subspaces need at least one "
                             "(empty corpus or --limit 0?)")
        rows.append(x.mean(axis=0))
    if len({r.shape for r in rows}) != 1:
        raise ValueError(f"vectors of different dimensions: {[r.shape[0] for r in rows]}")
    return np.stack(rows), langs


def between_within_ratio(z: np.ndarray, labels: np.ndarray) -> float:
    """Between-group over within-group variance (traces of the scatter matrices).

    Args:
        z: ``(n, k)`` coordinates (``(n,)`` is treated as ``k = 1``).
        labels: ``(n,)`` group labels.

    Returns:
        ``Σ_g n_g ‖μ_g − μ‖² / Σ_i ‖z_i − μ_{g(i)}‖²``; ``inf`` if the within part is 0
        and the between part is not, NaN if both are 0.
    """
    zz = np.asarray(z, dtype=np.float64).reshape(len(labels), -1)
    codes, inverse = np.unique(np.asarray(labels), return_inverse=True)
    counts = np.bincount(inverse, minlength=codes.size)
    sums = np.zeros((codes.size, zz.shape[1]))
    np.add.at(sums, inverse, zz)
    group_means = sums / counts[:, None]
    between = float((counts * ((group_means - zz.mean(axis=0)) ** 2).sum(axis=1)).sum())
    within = float(((zz - group_means[inverse]) ** 2).sum())
    if within == 0.0:
        return np.nan if between == 0.0 else np.inf
    return between / within


def _separation_row(
    fit: np.ndarray, ev: np.ndarray, langs: list[str], central: str, rank: int | None
) -> dict[str, float]:
    """One layer: fit on ``fit`` ``(n_lang, n_fit, d)``, evaluate on ``ev`` ``(n_lang, n_ev, d)``.

    Returns:
        The row's values: variance ratios and direction norms.
    """
    sub = language_subspace(fit.mean(axis=1), rank=rank, languages=langs)
    x = ev.reshape(-1, ev.shape[-1])
    labels = np.repeat(np.arange(len(langs)), ev.shape[1])
    row = {
        "agnostic_ratio": between_within_ratio(sub.agnostic_coords(x), labels),
        "specific_ratio": between_within_ratio(sub.specific_coords(x), labels),
    }
    for lang in langs:
        if lang != central:
            row[f"direction_norm_{lang}"] = float(np.linalg.norm(sub.direction(lang, central)))
    return row


def separation_by_layer(
    vectors: Mapping[str, np.ndarray],
    *,
    rank: int | None = None,
    central: str | None = "en",
    holdout: bool = False,
    layer_labels: Sequence[int | str] | None = None,
) -> pd.DataFrame:
    """Per-layer summary of "converge in agnostic, separate in specific".

    Per layer the subspaces are fitted on the language means, then every sentence vector
    is projected and the between-language over within-language variance ratio is taken
    in the agnostic projection (``P_a x``, 1-D) and in the specific one (``P_s x``).

    Note: with ``rank = n_langs − 1`` and in-sample evaluation, every language mean has
    the same agnostic coordinate by construction (``M'ᵀu_a ∝ 1``), so the agnostic ratio
    is ~0 trivially. ``holdout=True`` fits on even-indexed sentences and evaluates on
    odd-indexed ones (deterministic), which makes the agnostic ratio informative.

    Args:
        vectors: language code -> ``(n_layers, n, d)`` pooled vectors (same shape for all).
        rank: subspace rank (default ``n_langs − 1``).
        central: language of the expression directions ``δ``; default ``"en"``, falling
            back to the first language when absent (``None``: the first language).
        holdout: fit on even-indexed sentences, evaluate on odd-indexed ones.
        layer_labels: ``n_layers`` labels; default ``0 … n_layers-1``.

    Returns:
        DataFrame, one row per layer: ``layer, agnostic_ratio, specific_ratio`` and
        ``direction_norm_<lang>`` (``‖δ_lang‖``) for every non-central language; ``attrs``
        hold ``languages, central, rank, holdout``.

    Raises:
        ParamError: for fewer than 2 languages or too few sentences.
        ValueError: for mismatched shapes.
    """
    langs = list(vectors)
    arrays = [np.asarray(vectors[lang], dtype=np.float64) for lang in langs]
    if len(langs) < 2:
        raise ParamError(f"LENS subspaces need at least 2 languages, got {len(langs)}: {langs}")
    if arrays[0].ndim != 3 or any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError(
            f"every vectors[lang] must be (n_layers, n, d) of one shape, got "
            f"{[a.shape for a in arrays]}"
        )
    n_layers, n, _ = arrays[0].shape
    if n < (4 if holdout else 2):
        raise ParamError(f"the subspace separation needs at least {4 if holdout else 2} sentences per language"
                         f"{' (half to fit, half held out)' if holdout else ''}, got {n} (raise --limit)")
    labels = list(range(n_layers)) if layer_labels is None else list(layer_labels)
    if len(labels) != n_layers:
        raise ValueError(f"{len(labels)} layer_labels for {n_layers} layers")
    central = central if central in langs else langs[0]

    stack = np.stack(arrays)  # (n_lang, n_layers, n, d)
    fit_idx = np.arange(0, n, 2) if holdout else np.arange(n)
    ev_idx = np.arange(1, n, 2) if holdout else np.arange(n)
    rows = [
        {
            "layer": lab,
            **_separation_row(
                stack[:, i][:, fit_idx], stack[:, i][:, ev_idx], langs, central, rank
            ),
        }
        for i, lab in enumerate(labels)
    ]
    out = pd.DataFrame(rows)
    out.attrs.update(languages=langs, central=central, rank=rank, holdout=holdout)
    return out

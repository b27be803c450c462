"""Latent-language curves (Wendler et al. 2024; METHODS §9) from the lens's masses.

Per layer: the mean probability that the next token starts the answer in the target
language, in English and in the source language, and the mean entropy, each with a 95%
bootstrap band over items.

Input: the lens's masses ``P_l(role)`` per item and layer (roles in the order of
``workbench.latent.ROLES``: target, English, source) and the entropy ``H(p_l)``; output: a
tidy table, one row per layer. Pure: arrays in, a DataFrame out; randomness enters as
``random_state``.

The band (METHODS §9: a 95% bootstrap band) is the percentile bootstrap of the mean over
items, as the authors' ``plot_ci(..., method="bootstrap")`` option computes it
(``scipy.stats.bootstrap(..., method="percentile")``: 95%, 9,999 resamples there and by
default here). One set of resampled items serves every layer and every quantity, so the bands
of different layers are paired. Deliberate difference: the authors' translation figure calls
``plot_ci`` with its default, the Gaussian band (mean ± 1.96 σ/√n, ``std`` with ddof 1 as
torch computes it); ``method="gaussian"`` gives that band.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from workbench.errors import ParamError

__all__ = ["BAND_METHODS", "LatentSummary", "bootstrap_means", "latent_curves", "latent_summary"]

QUANTITIES = ("p_target", "p_en", "p_source")
"""Column names of the three masses (the last axis of ``masses``, in this order)."""
BAND_METHODS = ("bootstrap", "gaussian")
_CHUNK = 512  # resamples per matrix product: memory stays O(chunk × items)
_TOL = 1e-6  # float round-off allowed on probabilities


def bootstrap_means(
    x: np.ndarray, *, n_boot: int = 9999, random_state: int | np.random.Generator | None = 0
) -> np.ndarray:
    """Means of ``n_boot`` bootstrap resamples of the rows of ``x``.

    Args:
        x: ``(n_items, n_features)``.
        n_boot: number of resamples (items drawn with replacement, ``n_items`` each).
        random_state: seed or generator.

    Returns:
        ``(n_boot, n_features)``; every feature uses the same resampled items.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    rng = np.random.default_rng(random_state)
    out = np.empty((n_boot, x.shape[1]))
    for start in range(0, n_boot, _CHUNK):
        m = min(_CHUNK, n_boot - start)
        draws = rng.integers(0, n, size=(m, n))
        counts = np.bincount((draws + n * np.arange(m)[:, None]).ravel(), minlength=m * n).reshape(m, n)
        out[start:start + m] = counts @ x / n
    return out


def _check(masses: np.ndarray, entropy: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    m = np.asarray(masses, dtype=np.float64)
    if m.ndim != 3 or m.shape[2] != len(QUANTITIES) or m.shape[0] < 1 or m.shape[1] < 1:
        raise ParamError(f"masses must be (n_items ≥ 1, n_layers ≥ 1, 3: target, en, source); got {m.shape}")
    if not np.isfinite(m).all() or m.min() < -_TOL or m.max() > 1 + _TOL:
        raise ParamError("masses must be probabilities in [0, 1] (finite)")
    if entropy is None:
        return m, None
    h = np.asarray(entropy, dtype=np.float64)
    if h.shape != m.shape[:2]:
        raise ParamError(f"entropy must be (n_items, n_layers) = {m.shape[:2]}; got {h.shape}")
    if not np.isfinite(h).all() or h.min() < -_TOL:
        raise ParamError("entropy must be finite and ≥ 0")
    return m, h


def latent_curves(
    masses: np.ndarray,
    entropy: np.ndarray | None = None,
    *,
    layers: Sequence[object] | None = None,
    n_boot: int = 9999,
    ci: float = 0.95,
    method: str = "bootstrap",
    random_state: int | np.random.Generator | None = 0,
) -> pd.DataFrame:
    """Mean P(target), P(en), P(source) and entropy per layer, each with a band over items.

    Args:
        masses: ``(n_items, n_layers, 3)``: per item and layer, the lens's probability mass
            on the target, English and source token sets (in that order), each in [0, 1].
        entropy: ``(n_items, n_layers)`` entropy of the layer's distribution (any unit, ≥ 0),
            or None.
        layers: ``n_layers`` labels (block indices, ``"emb"``); default ``0 … n_layers-1``.
        n_boot: bootstrap resamples (scipy's default, which the authors' bootstrap option uses: 9999).
        ci: band coverage (0.95).
        method: ``"bootstrap"`` (percentile; default) or ``"gaussian"`` (mean ± z σ/√n,
            the authors' default band in their figure).
        random_state: seed or generator of the resamples.

    Returns:
        One row per layer: ``layer``, ``n`` (items), and for each of ``p_target``, ``p_en``,
        ``p_source`` (and ``entropy`` when given) the mean and its band, ``<q>_lo`` and
        ``<q>_hi``. ``attrs`` records ``n_boot``, ``ci``, ``method``.
    """
    m, h = _check(masses, entropy)
    n, n_layers, _ = m.shape
    labels = list(range(n_layers)) if layers is None else list(layers)
    if len(labels) != n_layers:
        raise ParamError(f"layers has {len(labels)} labels for {n_layers} layers")
    if not 0 < ci < 1:
        raise ParamError(f"ci must be in (0, 1); got {ci!r}")
    if method not in BAND_METHODS:
        raise ParamError(f"method must be one of {', '.join(BAND_METHODS)}; got {method!r}")
    if method == "bootstrap" and (not isinstance(n_boot, int) or n_boot < 1):
        raise ParamError(f"n_boot must be a positive integer; got {n_boot!r}")
    names = list(QUANTITIES) + (["entropy"] if h is not None else [])
    cols = [m[:, :, k] for k in range(len(QUANTITIES))] + ([h] if h is not None else [])
    x = np.concatenate(cols, axis=1)  # (n, n_quantities * n_layers), quantity-major
    mean = x.mean(axis=0)
    if method == "bootstrap":
        boot = bootstrap_means(x, n_boot=n_boot, random_state=random_state)
        lo, hi = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    else:
        z = NormalDist().inv_cdf((1 + ci) / 2)
        half = z * x.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(mean)
        lo, hi = mean - half, mean + half
    table: dict[str, object] = {"layer": labels, "n": n}
    for k, name in enumerate(names):
        sl = slice(k * n_layers, (k + 1) * n_layers)
        table[name], table[f"{name}_lo"], table[f"{name}_hi"] = mean[sl], lo[sl], hi[sl]
    df = pd.DataFrame(table)
    df.attrs.update({"n_boot": n_boot if method == "bootstrap" else 0, "ci": ci, "method": method})
    return df


@dataclass(frozen=True)
class LatentSummary:
    """The numbers a latent-language figure is read for.

    Attributes:
        en_peak_layer: layer label where mean P(en) is highest (ties: the lower layer).
        en_peak: mean P(en) there.
        en_peak_lo: lower end of its band.
        en_peak_hi: upper end of its band.
        overtake_layer: the first layer after the peak where mean P(target) > mean P(en);
            None if it never does.
        n: number of items.
    """

    en_peak_layer: object
    en_peak: float
    en_peak_lo: float
    en_peak_hi: float
    overtake_layer: object | None
    n: int


def latent_summary(curves: pd.DataFrame) -> LatentSummary:
    """Where P(en) peaks (with its band) and where the target language overtakes it.

    Args:
        curves: output of `latent_curves`.

    Returns:
        The `LatentSummary`.
    """
    missing = {"layer", "n", "p_en", "p_en_lo", "p_en_hi", "p_target"} - set(curves.columns)
    if missing:
        raise ParamError(f"curves lacks columns {sorted(missing)}; pass the output of latent_curves")
    if curves.empty:
        raise ParamError("curves has no layers")
    p_en = curves["p_en"].to_numpy()
    p_tgt = curves["p_target"].to_numpy()
    peak = int(np.argmax(p_en))  # first maximum: the lower layer on ties
    after = np.nonzero(p_tgt[peak + 1:] > p_en[peak + 1:])[0]
    layer = curves["layer"].tolist()  # plain Python labels (ints, "emb"), not numpy scalars
    over = None if after.size == 0 else layer[peak + 1 + int(after[0])]
    col = {c: float(curves[c].iloc[peak]) for c in ("p_en", "p_en_lo", "p_en_hi")}
    return LatentSummary(layer[peak], col["p_en"], col["p_en_lo"], col["p_en_hi"], over, int(curves["n"].iloc[peak]))

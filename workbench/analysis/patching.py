"""Cross-lingual activation-patching curves (Dumas et al. 2024; METHODS §10) from the patched runs' masses.

Per patched layer: the mean probability that the target run's next token starts C1's word
in L2 (the concept moved, the language kept), C2's word in L2 (the target's own answer) and
C1's word in L1 (the source's own answer), and the mean entropy, each with a 95% band over
pairs. The band is `latent_curves`'s (percentile bootstrap of the mean, one set of
resampled pairs for every layer and quantity; or the Gaussian band): the same statistics
as the lens curves, under the names of this view. Pure: arrays in, a DataFrame out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from workbench.analysis.latent_curves import QUANTITIES, latent_curves

__all__ = ["PATCH_QUANTITIES", "patching_curves"]

PATCH_QUANTITIES = ("p_c1_in_target", "p_c2_in_target", "p_c1_in_source")
"""Column names of the three masses (the last axis of ``masses``, in this order)."""


def patching_curves(
    masses: np.ndarray,
    entropy: np.ndarray | None = None,
    *,
    layers: Sequence[object] | None = None,
    n_boot: int = 9999,
    ci: float = 0.95,
    method: str = "bootstrap",
    random_state: int | np.random.Generator | None = 0,
) -> pd.DataFrame:
    """Mean P(C1 in L2), P(C2 in L2), P(C1 in L1) and entropy per patched layer, each with a band over pairs.

    Args:
        masses: ``(n_pairs, n_layers, 3)``: per pair and patched layer, the target run's
            next-token mass on C1's L2 set, C2's L2 set and C1's L1 set (in that order).
        entropy: ``(n_pairs, n_layers)`` entropy of the patched run's distribution, or None.
        layers: ``n_layers`` labels (patched blocks; ``"unpatched"`` for the target's own run).
        n_boot: bootstrap resamples.
        ci: band coverage.
        method: ``"bootstrap"`` (percentile) or ``"gaussian"`` (mean ± z σ/√n).
        random_state: seed or generator of the resamples.

    Returns:
        One row per layer: ``layer``, ``n`` and, for each of `PATCH_QUANTITIES` (and
        ``entropy``), the mean, ``<q>_lo`` and ``<q>_hi``.

    Raises:
        ParamError: masses not `(n ≥ 1, layers ≥ 1, 3)` probabilities, bad entropy shape or band settings.
    """
    table = latent_curves(masses, entropy, layers=layers, n_boot=n_boot, ci=ci, method=method,
                          random_state=random_state)
    names = {}
    for old, new in zip(QUANTITIES, PATCH_QUANTITIES):
        names.update({old: new, f"{old}_lo": f"{new}_lo", f"{old}_hi": f"{new}_hi"})
    out = table.rename(columns=names)
    out.attrs.update(table.attrs)
    return out

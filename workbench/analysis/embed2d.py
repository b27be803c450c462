"""2-D maps of sentence vectors: PCA, t-SNE, UMAP (METHODS.md §5).

Only library implementations are used (scikit-learn, umap-learn). Results are
deterministic for a fixed ``random_state``; PCA axes get a fixed sign.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from workbench.errors import ParamError

__all__ = ["EMBED_METHODS", "embed_2d"]

EMBED_METHODS = ("pca", "tsne", "umap")
"""Names accepted by ``embed_2d(method=...)``."""

MIN_POINTS = 3
"""Fewest points a 2-D map is drawn for (t-SNE's perplexity and UMAP's neighbours need n − 1 ≥ 2)."""

_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def _pca(x: np.ndarray, random_state: int, **kw: Any) -> np.ndarray:
    if x.shape[1] < 2:  # a 1-D input has one axis; the second is all zeros
        x = np.hstack([x, np.zeros_like(x)])
    pca = PCA(
        n_components=2, svd_solver=kw.pop("svd_solver", "full"), random_state=random_state, **kw
    )
    coords = pca.fit_transform(x)
    # svd_flip convention (u_based_decision=False): the largest-|loading| of each
    # component is positive, whatever the sklearn version or LAPACK build.
    comps = pca.components_
    signs = np.sign(comps[np.arange(2), np.argmax(np.abs(comps), axis=1)])
    signs[signs == 0] = 1.0
    return coords * signs


def _tsne(x: np.ndarray, random_state: int, **kw: Any) -> np.ndarray:
    n = x.shape[0]
    # sklearn needs perplexity < n_samples.
    perplexity = min(float(kw.pop("perplexity", 30.0)), n - 1.0)
    kw.setdefault("init", "pca")
    kw.setdefault("learning_rate", "auto")
    tsne = TSNE(n_components=2, perplexity=perplexity, random_state=random_state, **kw)
    return tsne.fit_transform(x)


def _umap(x: np.ndarray, random_state: int, **kw: Any) -> np.ndarray:
    import umap  # slow import (numba): only when asked for

    n = x.shape[0]
    n_neighbors = min(int(kw.pop("n_neighbors", 15)), n - 1)
    if n <= 4:
        # Spectral init needs more points than components + 1 neighbours' graph allows.
        kw.setdefault("init", "random")
    kw.setdefault("n_jobs", 1)  # a seeded UMAP runs single-threaded anyway (else it warns)
    reducer = umap.UMAP(
        n_components=2, n_neighbors=max(2, n_neighbors), random_state=random_state, **kw
    )
    return np.asarray(reducer.fit_transform(x))


_BACKENDS = {"pca": _pca, "tsne": _tsne, "umap": _umap}


def embed_2d(x: np.ndarray, *, method: str = "pca", random_state: int = 0, **kw: Any) -> np.ndarray:
    """Embed sentence vectors in 2-D.

    Args:
        x: ``(n, d)`` vectors, ``n >= 3``.
        method: ``"pca"``, ``"tsne"`` (perplexity clipped below ``n``) or ``"umap"``
            (``n_neighbors`` clipped below ``n``).
        random_state: seed; the same seed gives the same map.
        **kw: passed to the estimator (``PCA``, ``TSNE`` or ``umap.UMAP``).

    Returns:
        ``(n, 2)`` float64 coordinates.

    Raises:
        ParamError: for an unknown method or fewer than ``MIN_POINTS`` points.
        ValueError: for non-2-D or non-finite input.
    """
    if method not in _BACKENDS:
        raise ParamError(f"unknown embedding method {method!r}; expected one of {EMBED_METHODS}")
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"x must be (n, d), got shape {arr.shape}")
    if arr.shape[0] < MIN_POINTS:
        raise ParamError(f"a {_NAMES[method]} map needs at least n={MIN_POINTS} points (sentences × languages), "
                         f"got n={arr.shape[0]}: raise --limit or add languages")
    if not np.isfinite(arr).all():
        raise ValueError("x must be finite")
    return np.asarray(_BACKENDS[method](arr, random_state, **kw), dtype=np.float64)

"""2-D maps of sentence vectors: PCA, t-SNE, UMAP (METHODS.md §5).

Only library implementations are used (scikit-learn, umap-learn). Results are
deterministic for a fixed ``random_state``; PCA axes get a fixed sign and report their
explained variance ratio (:func:`embed_2d_info`).

t-SNE and UMAP maps (tens of seconds on a few thousand sentences) are kept in a small
in-memory LRU cache keyed by the content of ``x`` (its bytes, shape and dtype), the method,
the seed and every keyword: the same recording, layer, pooling and parameters give the
same ``x``, so a page that redraws a map (another link toggle, a second tab) gets it at
once, and any change of the input or a parameter computes a new one. Thread-safe; results
are returned as copies, so a caller cannot alter a cached map.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from workbench.errors import ParamError

__all__ = ["CACHE_SIZE", "EMBED_METHODS", "clear_cache", "embed_2d", "embed_2d_info"]

EMBED_METHODS = ("pca", "tsne", "umap")
"""Names accepted by ``embed_2d(method=...)``."""

MIN_POINTS = 3
"""Fewest points a 2-D map is drawn for (t-SNE's perplexity and UMAP's neighbours need n − 1 ≥ 2)."""

_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


CACHE_SIZE = 32
"""Maps kept by the t-SNE/UMAP cache (each is ``(n, 2)`` float64: a few kB to a few hundred)."""
_CACHED = ("tsne", "umap")  # PCA takes milliseconds: not worth a key's hash
_cache: OrderedDict[str, tuple[np.ndarray, dict[str, Any]]] = OrderedDict()
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every cached map."""
    with _lock:
        _cache.clear()


def _key(x: np.ndarray, method: str, random_state: int, kw: dict[str, Any]) -> str:
    h = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    h.update(repr((x.shape, str(x.dtype), method, random_state, sorted(kw.items()))).encode("utf-8"))
    return h.hexdigest()


def _pca(x: np.ndarray, random_state: int, **kw: Any) -> tuple[np.ndarray, dict[str, Any]]:
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
    ratio = np.nan_to_num(np.asarray(pca.explained_variance_ratio_, dtype=np.float64), nan=0.0)
    return coords * signs, {"explained_variance": tuple(float(r) for r in ratio)}


def _tsne(x: np.ndarray, random_state: int, **kw: Any) -> tuple[np.ndarray, dict[str, Any]]:
    n = x.shape[0]
    # sklearn needs perplexity < n_samples.
    perplexity = min(float(kw.pop("perplexity", 30.0)), n - 1.0)
    kw.setdefault("init", "pca")
    kw.setdefault("learning_rate", "auto")
    tsne = TSNE(n_components=2, perplexity=perplexity, random_state=random_state, **kw)
    return tsne.fit_transform(x), {"perplexity": perplexity}


def _umap(x: np.ndarray, random_state: int, **kw: Any) -> tuple[np.ndarray, dict[str, Any]]:
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
    return np.asarray(reducer.fit_transform(x)), {"n_neighbors": max(2, n_neighbors)}


_BACKENDS = {"pca": _pca, "tsne": _tsne, "umap": _umap}


def embed_2d(x: np.ndarray, *, method: str = "pca", random_state: int = 0, **kw: Any) -> np.ndarray:
    """Embed sentence vectors in 2-D: the coordinates of :func:`embed_2d_info`."""
    return embed_2d_info(x, method=method, random_state=random_state, **kw)[0]


def embed_2d_info(x: np.ndarray, *, method: str = "pca", random_state: int = 0,
                  **kw: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Embed sentence vectors in 2-D, with what the method reports about the map.

    Args:
        x: ``(n, d)`` vectors, ``n >= 3``.
        method: ``"pca"``, ``"tsne"`` (perplexity clipped below ``n``) or ``"umap"``
            (``n_neighbors`` clipped below ``n``).
        random_state: seed; the same seed gives the same map.
        **kw: passed to the estimator (``PCA``, ``TSNE`` or ``umap.UMAP``).

    Returns:
        ``(n, 2)`` float64 coordinates, and a dict: PCA's ``explained_variance`` (the ratio
        of each axis, e.g. ``(0.234, 0.118)``), t-SNE's ``perplexity`` or UMAP's
        ``n_neighbors`` as used after clipping. t-SNE and UMAP results come from the cache
        when the same input and parameters were embedded before (see the module docstring).

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
    if method not in _CACHED:
        coords, info = _BACKENDS[method](arr, random_state, **kw)
        return np.asarray(coords, dtype=np.float64), info
    key = _key(arr, method, random_state, kw)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit[0].copy(), dict(hit[1])
    # computed outside the lock: two threads may both compute a new map; both get the same one
    coords, info = _BACKENDS[method](arr, random_state, **dict(kw))
    coords = np.asarray(coords, dtype=np.float64)
    with _lock:
        _cache[key] = (coords.copy(), dict(info))
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return coords, info

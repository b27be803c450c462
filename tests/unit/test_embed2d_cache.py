"""t-SNE maps are computed once per input and parameters; PCA reports its explained variance."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from workbench.analysis import embed2d
from workbench.analysis.embed2d import CACHE_SIZE, clear_cache, embed_2d, embed_2d_info


@pytest.fixture
def counted(monkeypatch):
    """The t-SNE backend with a call counter, and an empty cache."""
    calls = {"n": 0}
    real = embed2d._BACKENDS["tsne"]

    def tsne(x, random_state, **kw):
        calls["n"] += 1
        return real(x, random_state, **kw)

    monkeypatch.setitem(embed2d._BACKENDS, "tsne", tsne)
    clear_cache()
    yield calls
    clear_cache()


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(24, 6))


def test_same_input_and_parameters_compute_once(counted, x):
    a = embed_2d(x, method="tsne", random_state=1, max_iter=250)
    b = embed_2d(x.copy(), method="tsne", random_state=1, max_iter=250)  # equal content, another array
    assert counted["n"] == 1
    np.testing.assert_array_equal(a, b)
    a[:] = 0  # a caller's edit never reaches the cache
    assert np.abs(embed_2d(x, method="tsne", random_state=1, max_iter=250)).sum() > 0
    assert counted["n"] == 1


@pytest.mark.parametrize("change", ["input", "seed", "parameter"])
def test_any_change_computes_a_new_map(counted, x, change):
    embed_2d(x, method="tsne", random_state=1, max_iter=250)
    y, seed, kw = x, 1, {"max_iter": 250}
    if change == "input":
        y = x.copy()
        y[3, 2] += 1e-9
    elif change == "seed":
        seed = 2
    else:
        kw = {"max_iter": 250, "perplexity": 5.0}
    embed_2d(y, method="tsne", random_state=seed, **kw)
    assert counted["n"] == 2


def test_the_cache_is_bounded_and_thread_safe(counted, x):
    rows = [x + i for i in range(CACHE_SIZE + 2)]
    threads = [threading.Thread(target=embed_2d, args=(r,), kwargs={"method": "tsne", "max_iter": 250})
               for r in rows[:4]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counted["n"] == 4
    for r in rows:
        embed_2d(r, method="tsne", max_iter=250)
    assert len(embed2d._cache) == CACHE_SIZE


def test_pca_reports_explained_variance():
    rng = np.random.default_rng(1)
    # planted variances 9, 4, 1, 0.25, … along the axes: ratios 9/s, 4/s
    scales = np.array([3.0, 2.0, 1.0, 0.5, 0.25])
    z = rng.normal(size=(4000, 5)) * scales
    xy, info = embed_2d_info(z, method="pca")
    total = (scales**2).sum()
    np.testing.assert_allclose(info["explained_variance"], [9 / total, 4 / total], atol=0.02)
    np.testing.assert_array_equal(xy, embed_2d(z, method="pca"))

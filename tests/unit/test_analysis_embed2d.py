"""2-D maps (METHODS.md §5): shape, determinism, validation."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.analysis.embed2d import embed_2d


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    rng = np.random.default_rng(0)
    # two well-separated clusters of 15 points in 10-D
    centers = np.repeat(np.array([[0.0] * 10, [8.0] * 10]), 15, axis=0)
    return centers + rng.normal(size=(30, 10))


# UMAP's numba JIT costs seconds on first use: it appears in this one test only.
@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
def test_shape_and_determinism(points, method):
    a = embed_2d(points, method=method, random_state=3)
    b = embed_2d(points, method=method, random_state=3)
    assert a.shape == (30, 2) and a.dtype == np.float64
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    # the two planted clusters stay apart: every cross-cluster distance exceeds the
    # largest within-cluster distance of the map
    d = np.linalg.norm(a[:, None] - a[None], axis=-1)
    within = max(d[:15, :15].max(), d[15:, 15:].max())
    assert d[:15, 15:].min() > within


def test_pca_matches_sklearn_up_to_fixed_sign(points):
    from sklearn.decomposition import PCA

    ref = PCA(n_components=2, svd_solver="full").fit(points)
    got = embed_2d(points, method="pca")
    np.testing.assert_allclose(np.abs(got), np.abs(ref.transform(points)), atol=1e-10)
    # sign convention: largest-|loading| of each component is positive, so negating the
    # input negates the loadings but not the map's orientation relative to the data
    np.testing.assert_allclose(embed_2d(-points, method="pca"), -got, atol=1e-10)


def test_tsne_perplexity_is_clipped_for_tiny_inputs():
    x = np.random.default_rng(1).normal(size=(5, 4))
    assert embed_2d(x, method="tsne", perplexity=30.0).shape == (5, 2)


def test_seed_changes_tsne(points):
    a = embed_2d(points, method="tsne", random_state=0, init="random")
    b = embed_2d(points, method="tsne", random_state=1, init="random")
    assert not np.allclose(a, b)


@pytest.mark.parametrize(
    ("x", "kw", "match"),
    [
        (np.ones((10, 3)), {"method": "mds"}, "unknown embedding method"),
        (np.ones((2, 3)), {}, "n=3"),
        (np.ones(5), {}, r"\(n, d\)"),
        (np.full((4, 3), np.nan), {}, "finite"),
    ],
)
def test_validation(x, kw, match):
    with pytest.raises(ValueError, match=match):
        embed_2d(x, **kw)

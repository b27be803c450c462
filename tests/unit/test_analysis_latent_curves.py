"""Latent-language curves on planted masses: ranges, sums, bands (contain the mean, narrow with n), summaries."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from workbench.analysis.latent_curves import bootstrap_means, latent_curves, latent_summary
from workbench.errors import ParamError

Q = ("p_target", "p_en", "p_source")


def planted(n: int, n_layers: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Masses from a Dirichlet over (target, en, source, rest): valid probabilities summing ≤ 1."""
    rng = np.random.default_rng(seed)
    alpha = rng.uniform(0.5, 3.0, size=(n_layers, 4))
    full = np.stack([rng.dirichlet(alpha[layer], size=n) for layer in range(n_layers)], axis=1)  # (n, L, 4)
    entropy = rng.gamma(2.0, 1.5, size=(n, n_layers))
    return full[:, :, :3], entropy


def test_means_ranges_and_sums():
    masses, entropy = planted(300)
    df = latent_curves(masses, entropy, n_boot=500, random_state=1)
    assert list(df["layer"]) == list(range(8)) and (df["n"] == 300).all()
    for k, q in enumerate(Q):
        np.testing.assert_allclose(df[q], masses[:, :, k].mean(axis=0), rtol=0, atol=1e-12)
        for col in (q, f"{q}_lo", f"{q}_hi"):
            assert ((df[col] >= 0) & (df[col] <= 1)).all()
    np.testing.assert_allclose(df["entropy"], entropy.mean(axis=0), atol=1e-12)
    assert (df[list(Q)].sum(axis=1) <= 1 + 1e-12).all()
    assert df.attrs == {"n_boot": 500, "ci": 0.95, "method": "bootstrap"}


def test_band_contains_the_mean_and_narrows_with_more_items():
    small_m, small_h = planted(20, seed=3)
    big_m, big_h = planted(2000, seed=3)
    small = latent_curves(small_m, small_h, n_boot=2000, random_state=0)
    big = latent_curves(big_m, big_h, n_boot=2000, random_state=0)
    for df in (small, big):
        for q in (*Q, "entropy"):
            assert (df[f"{q}_lo"] <= df[q]).all() and (df[q] <= df[f"{q}_hi"]).all(), q
            assert (df[f"{q}_hi"] > df[f"{q}_lo"]).all(), q
    for q in (*Q, "entropy"):
        w_small = small[f"{q}_hi"] - small[f"{q}_lo"]
        w_big = big[f"{q}_hi"] - big[f"{q}_lo"]
        assert (w_big < w_small).all(), q
        assert 4 < float(np.median(w_small / w_big)) < 25  # ≈ √(2000/20) = 10


def test_bootstrap_band_matches_scipy_percentile_bootstrap():
    masses, _ = planted(150, n_layers=3, seed=7)
    df = latent_curves(masses, n_boot=9999, random_state=0)
    for layer in range(3):
        for k, q in enumerate(Q):
            ref = stats.bootstrap((masses[:, layer, k],), np.mean, confidence_level=0.95, method="percentile",
                                  n_resamples=9999, random_state=0).confidence_interval
            assert abs(df[f"{q}_lo"][layer] - ref.low) < 0.006 and abs(df[f"{q}_hi"][layer] - ref.high) < 0.006


def test_gaussian_band_is_the_authors_formula():
    masses, entropy = planted(40, seed=2)
    df = latent_curves(masses, entropy, method="gaussian")
    x = masses[:, :, 1]
    half = 1.96 * x.std(axis=0, ddof=1) / np.sqrt(len(x))  # utils.plot_ci, method='gaussian' (torch std: ddof 1)
    np.testing.assert_allclose(df["p_en_lo"], x.mean(0) - half, atol=1e-4)
    np.testing.assert_allclose(df["p_en_hi"], x.mean(0) + half, atol=1e-4)


def test_seeded_and_paired_resamples():
    masses, entropy = planted(50, seed=4)
    a = latent_curves(masses, entropy, n_boot=300, random_state=5)
    assert a.equals(latent_curves(masses, entropy, n_boot=300, random_state=5))
    assert not a.equals(latent_curves(masses, entropy, n_boot=300, random_state=6))
    x = np.column_stack([np.arange(10.0), np.arange(10.0) * 2])  # the same resamples serve every column
    boot = bootstrap_means(x, n_boot=700, random_state=0)
    np.testing.assert_allclose(boot[:, 1], 2 * boot[:, 0], atol=1e-12)
    assert boot.shape == (700, 2)


def test_constant_items_give_a_zero_width_band_and_labels_are_kept():
    masses = np.full((5, 3, 3), 0.25)
    df = latent_curves(masses, layers=["emb", 0, 1], n_boot=100)
    assert list(df["layer"]) == ["emb", 0, 1] and "entropy" not in df.columns
    np.testing.assert_allclose(df[["p_en_lo", "p_en", "p_en_hi"]].to_numpy(), 0.25, atol=1e-12)


@pytest.mark.parametrize(("masses", "entropy", "words"), [
    (np.zeros((4, 3)), None, "masses must be"),
    (np.zeros((4, 3, 2)), None, "masses must be"),
    (np.full((4, 3, 3), 1.5), None, "probabilities"),
    (np.full((4, 3, 3), np.nan), None, "probabilities"),
    (np.zeros((4, 3, 3)), np.zeros((4, 2)), "entropy must be"),
    (np.zeros((4, 3, 3)), -np.ones((4, 3)), "entropy must be"),
])  # fmt: skip
def test_bad_inputs(masses, entropy, words):
    with pytest.raises(ParamError, match=words):
        latent_curves(masses, entropy)


def test_bad_parameters():
    m = np.zeros((4, 3, 3))
    for kw, words in [({"ci": 1.0}, "ci"), ({"method": "t"}, "method"), ({"n_boot": 0}, "n_boot"),
                      ({"layers": [0, 1]}, "labels")]:
        with pytest.raises(ParamError, match=words):
            latent_curves(m, **kw)


def _curves_with(p_en: np.ndarray, p_tgt: np.ndarray):
    n_layers = len(p_en)
    masses = np.zeros((3, n_layers, 3))
    masses[:, :, 0], masses[:, :, 1] = p_tgt, p_en
    return latent_curves(masses, n_boot=50)


def test_summary_finds_the_planted_peak_and_crossing():
    rng = np.random.default_rng(11)
    for _ in range(20):
        n_layers = int(rng.integers(6, 30))
        peak = int(rng.integers(1, n_layers - 2))
        cross = int(rng.integers(peak + 1, n_layers))
        p_en = rng.uniform(0.0, 0.3, n_layers)
        p_en[peak] = 0.6
        p_tgt = np.minimum(p_en * 0.5, 0.3)
        p_tgt[:peak] = p_en[:peak] + 0.01  # the target leads before the peak: not an overtaking
        p_tgt[cross:] = np.maximum(p_en[cross:] + 0.05, 0.35)
        s = latent_summary(_curves_with(p_en, np.minimum(p_tgt, 1 - p_en)))
        assert s.en_peak_layer == peak and s.overtake_layer == cross and s.n == 3
        assert s.en_peak == pytest.approx(0.6) and s.en_peak_lo <= s.en_peak <= s.en_peak_hi
        assert type(s.en_peak_layer) is int


def test_summary_without_overtaking_and_with_ties():
    s = latent_summary(_curves_with(np.array([0.1, 0.5, 0.5, 0.2]), np.array([0.0, 0.1, 0.1, 0.15])))
    assert s.en_peak_layer == 1 and s.overtake_layer is None  # ties: the lower layer
    with pytest.raises(ParamError, match="lacks columns"):
        latent_summary(_curves_with(np.ones(3) * 0.1, np.zeros(3)).drop(columns=["p_en_lo"]))

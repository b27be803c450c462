"""LENS language subspaces (METHODS.md §4) on planted directions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from workbench.analysis.subspace import (
    LanguageSubspace,
    between_within_ratio,
    language_means,
    language_subspace,
    separation_by_layer,
)
from workbench.errors import ParamError


def _abs_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_planted_direction_two_languages():
    rng = np.random.default_rng(0)
    b, w = rng.normal(size=32), rng.normal(size=32)
    sub = language_subspace(np.stack([b + w, b - w]), languages=["en", "fr"])
    assert sub.specific.shape == (32, 1) and sub.rank == 1
    assert _abs_cos(sub.specific[:, 0], w) > 1 - 1e-6
    # δ_fr = P_s(m_fr − m_en) = −2w exactly (w lies in the specific subspace)
    np.testing.assert_allclose(sub.direction("fr", central="en"), -2 * w, atol=1e-10)


def test_planted_direction_four_languages_rank_one():
    # m_l = b + a_l w: the means differ only along w; with rank 1 the specific subspace
    # is span(w), and the agnostic direction is the part of b orthogonal to w.
    rng = np.random.default_rng(1)
    b, w = rng.normal(size=50), rng.normal(size=50)
    means = np.stack([b + a * w for a in (-1.5, -0.2, 0.7, 2.0)])
    sub = language_subspace(means, rank=1, languages=["en", "de", "zh", "ja"])
    assert _abs_cos(sub.specific[:, 0], w) > 1 - 1e-6
    b_perp = b - (b @ w) / (w @ w) * w
    np.testing.assert_allclose(sub.agnostic, b_perp, atol=1e-9)


@pytest.fixture
def fitted() -> LanguageSubspace:
    rng = np.random.default_rng(2)
    means = rng.normal(size=(5, 24)) + 3.0 * rng.normal(size=24)  # shared offset
    return language_subspace(means, languages=["en", "de", "fr", "zh", "ja"])


def test_agnostic_is_orthogonal_to_specific(fitted):
    assert fitted.specific.shape == (24, 4)
    u = fitted.agnostic / np.linalg.norm(fitted.agnostic)
    assert np.abs(fitted.specific.T @ u).max() < 1e-8


def test_specific_columns_are_orthonormal(fitted):
    np.testing.assert_allclose(fitted.specific.T @ fitted.specific, np.eye(4), atol=1e-10)


def test_projections_are_idempotent_and_shape_preserving(fitted):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 24))
    pa, ps = fitted.project_agnostic(x), fitted.project_specific(x)
    assert pa.shape == ps.shape == (7, 24)
    np.testing.assert_allclose(fitted.project_agnostic(pa), pa, atol=1e-8)
    np.testing.assert_allclose(fitted.project_specific(ps), ps, atol=1e-8)
    # 1-D input, and the two projections annihilate each other
    assert fitted.project_agnostic(x[0]).shape == (24,)
    np.testing.assert_allclose(fitted.project_agnostic(ps), 0.0, atol=1e-8)
    np.testing.assert_allclose(fitted.project_specific(pa), 0.0, atol=1e-8)
    # every language mean has the same agnostic coordinate (METHODS step 3)
    coords = fitted.agnostic_coords(fitted.means)
    np.testing.assert_allclose(coords, coords[0], rtol=1e-10)


def test_svd_signs_are_stable():
    rng = np.random.default_rng(4)
    means = rng.normal(size=(4, 16))
    a = language_subspace(means)
    b = language_subspace(means.copy())
    np.testing.assert_array_equal(a.specific, b.specific)
    # reordering the languages spans the same subspace; svd_flip fixes each column's sign
    # from the column itself, so the basis is identical, signs included
    perm = [2, 0, 3, 1]
    c = language_subspace(means[perm])
    np.testing.assert_allclose(c.specific, a.specific, atol=1e-10)
    np.testing.assert_allclose(c.agnostic, a.agnostic, atol=1e-10)
    # the convention: the largest-|entry| of each column is positive
    idx = np.argmax(np.abs(a.specific), axis=0)
    assert (a.specific[idx, np.arange(a.rank)] > 0).all()


def test_result_is_frozen_and_validated(fitted):
    with pytest.raises(dataclasses.FrozenInstanceError):
        fitted.agnostic = np.zeros(24)  # type: ignore[misc]  # the point of the test
    with pytest.raises(ValueError):
        fitted.specific[0, 0] = 1.0  # read-only array
    with pytest.raises(ValueError, match="specific"):
        LanguageSubspace(np.ones(3), np.ones((4, 1)), ("a", "b"), np.ones((2, 3)))
    with pytest.raises(ValueError, match="languages"):
        LanguageSubspace(np.ones(3), np.ones((3, 1)), ("a",), np.ones((2, 3)))
    with pytest.raises(ValueError, match="rank"):
        language_subspace(np.ones((3, 5)), rank=3)
    with pytest.raises(ValueError, match="n_langs >= 2"):
        language_subspace(np.ones((1, 5)))
    with pytest.raises(KeyError, match="xx"):
        fitted.direction("xx")
    with pytest.raises(ValueError, match="x must be"):
        fitted.project_specific(np.ones(5))


def test_between_within_ratio_by_hand():
    # groups {0, 2} and {4, 6}: means 1 and 5, grand mean 3
    # between = 2*(1-3)^2 + 2*(5-3)^2 = 16; within = 1+1+1+1 = 4
    z = np.array([0.0, 2.0, 4.0, 6.0])
    assert between_within_ratio(z, np.array(["a", "a", "b", "b"])) == pytest.approx(4.0)
    assert np.isnan(between_within_ratio(np.zeros(4), np.array([0, 0, 1, 1])))


def test_separation_converge_in_agnostic_separate_in_specific():
    # Sentence content c_i is shared by all languages; each language adds its offset o_l.
    rng = np.random.default_rng(5)
    langs = ["en", "de", "zh"]
    n_layers, n, d = 2, 40, 30
    content = rng.normal(size=(n_layers, n, d))
    offsets = {lang: 4.0 * rng.normal(size=(n_layers, 1, d)) for lang in langs}
    vectors = {lang: content + offsets[lang] + 0.05 * rng.normal(size=content.shape)
               for lang in langs}  # fmt: skip
    sep = separation_by_layer(vectors, layer_labels=["emb", 0])
    assert list(sep.columns) == [
        "layer", "agnostic_ratio", "specific_ratio", "direction_norm_de", "direction_norm_zh"
    ]  # fmt: skip
    assert list(sep["layer"]) == ["emb", 0]
    # in-sample the agnostic between-language variance is 0 by construction
    assert (sep["agnostic_ratio"] < 1e-20).all()
    assert (sep["specific_ratio"] > 1.0).all()
    held = separation_by_layer(vectors, holdout=True)
    assert (held["specific_ratio"] > 100 * held["agnostic_ratio"]).all()
    # direction norms match a direct fit
    means = np.stack([vectors[lang][1].mean(axis=0) for lang in langs])
    sub = language_subspace(means, languages=langs)
    assert sep["direction_norm_zh"][1] == pytest.approx(np.linalg.norm(sub.direction("zh")))
    assert sep.attrs["central"] == "en"


def test_no_sentences_names_the_language():
    """Zero units used to surface as "means must be finite"; now the language is named."""
    rng = np.random.default_rng(3)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        empty_mean = np.zeros((0, 6)).mean(axis=0)  # what a 0-unit recording's mean is: NaN
    means = np.stack([rng.standard_normal(6), empty_mean, rng.standard_normal(6)])
    with pytest.raises(ParamError, match="mean vector of language 'sw' is not finite: no sentences"):
        language_subspace(means, languages=["en", "sw", "fr"])
    with pytest.raises(ParamError, match="no sentences for language 'sw'"):
        language_means({"en": rng.standard_normal((3, 6)), "sw": np.zeros((0, 6))})
    with pytest.raises(ParamError, match="at least 2 sentences per language, got 0"):
        separation_by_layer({"en": np.zeros((2, 0, 6)), "sw": np.zeros((2, 0, 6))})
    with pytest.raises(ParamError, match=r"at least 4 sentences .*held out.*got 3"):
        separation_by_layer({"en": np.ones((2, 3, 6)), "sw": np.ones((2, 3, 6))}, holdout=True)


def test_fewer_than_two_languages_is_a_param_error():
    rng = np.random.default_rng(4)
    with pytest.raises(ParamError, match=r"at least 2 languages .*got 1: \['en'\]"):
        language_subspace(rng.standard_normal((1, 6)), languages=["en"])
    with pytest.raises(ParamError, match="at least 2 languages, got 1"):
        language_means({"en": rng.standard_normal((3, 6))})
    with pytest.raises(ParamError, match="at least 2 languages, got 1"):
        separation_by_layer({"en": rng.standard_normal((2, 4, 6))})
    with pytest.raises(ParamError, match=r"rank must be in \[1, 2\]"):
        language_subspace(rng.standard_normal((3, 6)), rank=3)


def test_language_means_equal_the_row_means():
    x = {"en": np.array([[1.0, 2.0], [3.0, 4.0]]), "sw": np.array([[0.0, 0.0], [2.0, -2.0], [4.0, 2.0]])}
    means, langs = language_means(x)
    assert langs == ["en", "sw"]
    np.testing.assert_array_equal(means, [[2.0, 3.0], [2.0, 0.0]])

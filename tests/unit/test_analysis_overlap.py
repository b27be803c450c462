"""Neuron overlap and LAPE language-specific neurons (METHODS.md §3)."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.analysis.overlap import (
    activated_set,
    activation_probability,
    count_specific,
    language_specific_neurons,
    neuron_overlap,
    overlap_by_layer,
)
from workbench.errors import ParamError


def test_activation_probability():
    counts = np.array([[0, 5, 10], [2, 4, 6]])
    np.testing.assert_array_equal(
        activation_probability(counts, 10), [[0.0, 0.5, 1.0], [0.2, 0.4, 0.6]]
    )
    np.testing.assert_array_equal(
        activation_probability(counts, np.array([10, 20])), [[0.0, 0.5, 1.0], [0.1, 0.2, 0.3]]
    )
    with pytest.raises(ValueError, match="positive"):
        activation_probability(counts, 0)
    with pytest.raises(ValueError, match=r"\[0, n_tokens\]"):
        activation_probability(counts, 8)


def test_activated_set_top_fraction_and_ties():
    p = np.array([0.1, 0.9, 0.5, 0.9, 0.2, 0.0, 0.3, 0.4, 0.6, 0.7])
    # top 20% of 10 = 2 neurons: indices 1 and 3
    np.testing.assert_array_equal(np.flatnonzero(activated_set(p, top_frac=0.2)), [1, 3])
    # top 10% = 1 neuron: 1 and 3 tie at 0.9 -> the lower index wins, deterministically
    np.testing.assert_array_equal(np.flatnonzero(activated_set(p, top_frac=0.1)), [1])
    # 0.05 * 100 is 5.000000000000001 in floats: exactly 5 neurons, not 6
    assert activated_set(np.linspace(0, 1, 100), top_frac=0.05).sum() == 5
    # threshold mode
    np.testing.assert_array_equal(np.flatnonzero(activated_set(p, threshold=0.6)), [1, 3, 8, 9])
    # 2-D is row-wise
    mask = activated_set(np.stack([p, p[::-1]]), top_frac=0.2)
    np.testing.assert_array_equal(mask.sum(axis=1), [2, 2])
    np.testing.assert_array_equal(np.flatnonzero(mask[1]), [6, 8])
    with pytest.raises(ValueError, match="top_frac"):
        activated_set(p, top_frac=0.0)


def test_overlap_identical_disjoint_and_hand_case():
    rng = np.random.default_rng(0)
    p = rng.random(200)
    assert neuron_overlap(p, p) == 1.0
    assert neuron_overlap(p, p, measure="pivot_frac") == 1.0
    # disjoint: the other language's top 5% are the pivot's bottom neurons
    assert neuron_overlap(p, 1.0 - p) == 0.0
    # hand case: sets {0, 1, 2} and {1, 2, 3, 4} by threshold 0.5
    a = np.array([0.9, 0.8, 0.7, 0.1, 0.1, 0.0])
    b = np.array([0.1, 0.8, 0.7, 0.6, 0.9, 0.0])
    assert neuron_overlap(a, b, threshold=0.5) == pytest.approx(2 / 5)
    assert neuron_overlap(a, b, threshold=0.5, measure="pivot_frac") == pytest.approx(2 / 3)
    # empty sets in threshold mode are undefined, not 0 or 1
    assert np.isnan(neuron_overlap(a, b, threshold=2.0))


def test_overlap_per_layer_and_table():
    rng = np.random.default_rng(1)
    en = rng.random((3, 100))
    de = en.copy()
    de[1] = 1.0 - en[1]  # layer 1 disjoint
    fr = rng.random((3, 100))
    per_layer = neuron_overlap(en, de)
    assert isinstance(per_layer, np.ndarray)
    np.testing.assert_array_equal(per_layer, [1.0, 0.0, 1.0])
    df = overlap_by_layer({"en": en, "de": de, "fr": fr}, "en")
    assert list(df.columns) == ["layer", "lang", "jaccard", "pivot_frac"]
    assert list(df["lang"]) == ["de"] * 3 + ["fr"] * 3
    np.testing.assert_array_equal(df["jaccard"][:3], [1.0, 0.0, 1.0])
    np.testing.assert_allclose(df["jaccard"][3:], neuron_overlap(en, fr))
    np.testing.assert_allclose(df["pivot_frac"][3:], neuron_overlap(en, fr, measure="pivot_frac"))
    with pytest.raises(ValueError, match="pivot"):
        overlap_by_layer({"de": de, "fr": fr}, "en")
    with pytest.raises(ValueError, match="measure"):
        neuron_overlap(en, de, measure="dice")
    with pytest.raises(ValueError, match="shape mismatch"):
        neuron_overlap(en, de[:2])


def test_lape_recovers_planted_specific_neurons():
    rng = np.random.default_rng(2)
    langs = ["en", "de", "zh", "ja"]
    # 2,500 neurons: LAPE keeps the round(1%) = 25 lowest-entropy ones. Random neurons,
    # p in [0.05, 0.35) for all 4 languages, have entropy > 1.0 > log 2, above every
    # planted one; the bar (95th percentile of all p) is about 0.335 < 0.9.
    n_layers, m = 5, 500
    probs = {lang: rng.uniform(0.05, 0.35, size=(n_layers, m)) for lang in langs}
    # plant 25: layer 2, neurons 10..19 fire only for zh; layer 3, neurons 40..49 only for
    # ja (entropy 0); layer 0, neurons 0..4 fire for zh and ja alike (entropy log 2)
    for lang in langs:
        probs[lang][2, 10:20] = 0.9 if lang == "zh" else 0.0
        probs[lang][3, 40:50] = 0.9 if lang == "ja" else 0.0
        probs[lang][0, 0:5] = 0.9 if lang in ("zh", "ja") else 0.0
    df = language_specific_neurons(probs)
    assert list(df.columns) == ["layer", "neuron", "lang"]
    got = set(map(tuple, df.itertuples(index=False)))
    expected = (
        {(2, i, "zh") for i in range(10, 20)}
        | {(3, i, "ja") for i in range(40, 50)}
        | {(0, i, lang) for i in range(5) for lang in ("zh", "ja")}
    )
    assert got == expected

    counts = count_specific(df)
    assert list(counts.columns) == langs and list(counts.index) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(
        counts.to_numpy(),
        [[0, 0, 5, 5], [0, 0, 0, 0], [0, 0, 10, 0], [0, 0, 0, 10], [0, 0, 0, 0]],
    )


def test_lape_validation():
    p = np.full((2, 10), 0.5)
    with pytest.raises(ValueError, match="2 languages"):
        language_specific_neurons({"en": p})
    with pytest.raises(ValueError, match="one shape"):
        language_specific_neurons({"en": p, "de": p[:1]})
    with pytest.raises(ValueError, match="entropy_quantile"):
        language_specific_neurons({"en": p, "de": p}, entropy_quantile=0.0)


def test_no_counted_tokens_is_an_error_not_a_perfect_overlap():
    """`--limit 0` gave p = 0/0 = NaN everywhere, and the top-5% sets of two NaN arrays are
    the same arbitrary set: Jaccard 1.000 at every layer. Now it names the language."""
    counts = np.zeros((3, 40))
    with np.errstate(invalid="ignore"):
        empty = counts / 0.0  # what `Recording.activation_probs` computes for 0 tokens
    ok = np.random.default_rng(0).random((3, 40))
    with pytest.raises(ParamError, match="no tokens counted for language 'sw'"):
        overlap_by_layer({"en": ok, "sw": empty}, "en")
    with pytest.raises(ParamError, match="no tokens counted for language 'en'"):
        overlap_by_layer({"en": empty, "sw": ok}, "en")
    with pytest.raises(ParamError, match="no tokens counted for language 'sw'"):
        language_specific_neurons({"en": ok, "sw": empty})
    with pytest.raises(ParamError, match="no tokens"):
        neuron_overlap(empty, empty)
    with pytest.raises(ParamError, match="n_tokens must be positive"):
        activation_probability(counts, 0)


def test_overlap_needs_a_language_besides_the_pivot():
    p = np.full((2, 10), 0.5)
    with pytest.raises(ParamError, match="at least one language besides the pivot 'en'"):
        overlap_by_layer({"en": p}, "en")
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        overlap_by_layer({"en": p, "sw": p + 1}, "en")

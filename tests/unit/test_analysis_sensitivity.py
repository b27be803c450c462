"""SiLP projection sensitivity and layer allocation (METHODS.md §2) on hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.analysis.sensitivity import (
    abs_sensitivity_from_diffs,
    allocate_layers,
    check_allocation,
    check_direction,
    default_split,
    projection_sensitivity,
)
from workbench.errors import ParamError

# Per-neuron activations A[n, l, i]: N = 2 passes, L = 3 layers, M = 2 neurons.
A = np.array(
    [
        [[1.0, 3.0], [2.0, 0.0], [4.0, 4.0]],  # pass 0: layer means 2, 1, 4
        [[0.0, 2.0], [3.0, 3.0], [1.0, 1.0]],  # pass 1: layer means 1, 3, 1
    ]
)
# paper: S_1 = |(1-2) + (3-1)| / 2 = 0.5;  S_2 = |(4-1) + (1-3)| / 2 = 0.5
# abs:   S_1 = (|2-1| + |0-3| + |3-0| + |3-2|) / (2*2) = 8/4 = 2
#        S_2 = (|4-2| + |4-0| + |1-3| + |1-3|) / 4 = 10/4 = 2.5


def test_paper_variant_by_hand():
    means = A.mean(axis=2)
    np.testing.assert_array_equal(means, [[2.0, 1.0, 4.0], [1.0, 3.0, 1.0]])
    s = projection_sensitivity(means)
    assert s.shape == (3,) and np.isnan(s[0])
    np.testing.assert_allclose(s[1:], [0.5, 0.5], atol=1e-15)
    # the per-neuron array gives the same (M cancels)
    np.testing.assert_allclose(projection_sensitivity(A)[1:], [0.5, 0.5], atol=1e-15)


def test_paper_variant_takes_abs_outside_the_sum():
    # differences +1 then -1 across passes cancel: S_1 = 0 (an inside-abs would give 1)
    s = projection_sensitivity(np.array([[0.0, 1.0], [1.0, 0.0]]))
    assert s[1] == 0.0


def test_abs_variant_by_hand_and_from_stored_diffs():
    s = projection_sensitivity(A, variant="abs")
    assert np.isnan(s[0])
    np.testing.assert_allclose(s[1:], [2.0, 2.5], atol=1e-15)
    # what the recorder stores: per-pass mean_i |A^l - A^{l-1}|, NaN at layer 0
    absdiff = np.concatenate(
        [np.full((2, 1), np.nan), np.abs(np.diff(A, axis=1)).mean(axis=2)], axis=1
    )
    from_diffs = abs_sensitivity_from_diffs(absdiff)
    assert np.isnan(from_diffs[0])
    np.testing.assert_allclose(from_diffs[1:], [2.0, 2.5], atol=1e-15)


def test_abs_variant_bounds_paper_variant():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(7, 12, 30))
    paper = projection_sensitivity(acts.mean(axis=2))
    absv = projection_sensitivity(acts, variant="abs")
    assert (absv[1:] >= paper[1:] - 1e-12).all()
    assert (absv[1:] > paper[1:]).any()


@pytest.mark.parametrize(
    ("arr", "variant", "match"),
    [
        (np.ones((2, 3)), "abs", "per-neuron"),
        (np.ones(3), "paper", "n_passes"),
        (np.ones((2, 3)), "squared", "unknown sensitivity variant"),
    ],
)
def test_sensitivity_validation(arr, variant, match):
    with pytest.raises(ValueError, match=match):
        projection_sensitivity(arr, variant=variant)


def test_default_split():
    assert default_split(32) == 20  # the paper's k = 20 of 32
    assert default_split(8) == 5  # 5.0
    assert default_split(4) == 2  # round(2.5) = 3 would leave D2N no candidate: capped at L - 2
    assert default_split(3) == 1
    assert default_split(28) == 18  # 17.5 rounds up (round-half-even would give 18 too)
    assert default_split(12) == 8  # 7.5


def test_allocate_layers_planted():
    # L = 12, default split = 8: N2D candidates 1..8, D2N candidates 9..11.
    scores = np.array([np.nan, 0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.05, 0.6, 0.5, 0.95, 0.4])
    n2d, d2n = allocate_layers(scores, k1=3, k2=2)
    assert n2d == [2, 4, 6]
    assert d2n == [9, 10]
    # default k1 = k2 = 4: D2N has only 3 candidates -> clipped
    n2d, d2n = allocate_layers(scores)
    assert n2d == [2, 4, 6, 8] and d2n == [9, 10, 11]
    # explicit split moves the boundary; layer 0 is never chosen; default k1 clipped to 3
    n2d, d2n = allocate_layers(scores, split=3, k2=1)
    assert n2d == [1, 2, 3] and d2n == [10]
    assert all(isinstance(i, int) for i in n2d + d2n)


def test_allocate_layers_ties_go_to_the_lower_layer():
    n2d, d2n = allocate_layers([np.nan, 1.0, 1.0, 1.0, 2.0, 2.0], split=3, k1=2, k2=1)
    assert n2d == [1, 2] and d2n == [4]


@pytest.mark.parametrize(
    ("scores", "kw", "match"),
    [
        (np.ones(6), {"split": 0}, r"split must be in 1…4 for 6 layers .* got 0"),
        (np.ones(6), {"split": 5}, r"split must be in 1…4 .* got 5"),  # L-1: D2N would be empty
        (np.ones(6), {"split": 6}, "split must be"),
        (np.ones(2), {}, "at least 3 layers"),
        (np.ones(1), {}, "at least 3 layers"),
        (np.ones(6), {"k1": -1}, r"k1 \(N2D layers\) must be in 1…4, the candidate layers 1…4 of this split; got -1"),
        (np.ones(6), {"k1": 0}, r"k1 \(N2D layers\) must be in 1…4"),
        (np.ones(6), {"k2": 0}, r"k2 \(D2N layers\) must be in 1…1, the candidate layers 5…5 of this split; got 0"),
        (np.ones(6), {"split": 2, "k1": 50}, r"k1 .* must be in 1…2, .* got 50"),
        (np.ones(6), {"split": 2, "k2": 4}, r"k2 .* must be in 1…3, the candidate layers 3…5 .* got 4"),
        (np.ones(6), {"k1": 2.5}, "k1 .* must be a whole number"),
        (np.ones((2, 3)), {}, "1-D"),
        (np.array([np.nan, 1.0, np.nan, 1.0]), {}, "finite"),
    ],
)
def test_allocate_layers_validation(scores, kw, match):
    with pytest.raises(ParamError, match=match):
        allocate_layers(scores, **kw)
    assert issubclass(ParamError, ValueError)  # existing `except ValueError` still catches it


def test_explicit_k_at_the_candidate_count_is_allowed_and_fills_the_stage():
    scores = np.array([np.nan, 3.0, 1.0, 2.0, 5.0, 4.0])  # L = 6, split 2: N2D 1..2, D2N 3..5
    assert allocate_layers(scores, split=2, k1=2, k2=3) == ([1, 2], [3, 4, 5])
    assert allocate_layers(scores, split=2, k1=1, k2=1) == ([1], [4])


def test_check_allocation_resolves_the_paper_defaults():
    assert check_allocation(32) == (20, 4, 4)  # the paper's model
    assert check_allocation(18) == (11, 4, 4)  # Gemma-3-270M
    assert check_allocation(4) == (2, 2, 1)  # tiny: defaults clipped, never empty
    assert check_allocation(6, split=1) == (1, 1, 4)


def test_a_stage_is_never_empty_for_any_valid_parameters():
    rng = np.random.default_rng(0)
    for n_layers in range(3, 12):
        scores = np.concatenate([[np.nan], rng.random(n_layers - 1)])
        for split in [None, *range(1, n_layers - 1)]:
            n2d, d2n = allocate_layers(scores, split=split)
            k = default_split(n_layers) if split is None else split
            assert n2d and d2n and max(n2d) <= k < min(d2n)
            assert len(n2d) == min(4, k) and len(d2n) == min(4, n_layers - 1 - k)


def test_check_direction_refuses_the_same_language():
    check_direction("en", "sw")
    with pytest.raises(ParamError, match="src and tgt are both 'en'"):
        check_direction("en", "en")

"""Evaluation metrics: equality with sacrebleu, bootstrap invariants, hand-worked ratios."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sacrebleu.metrics import BLEU, CHRF

from workbench.evaluation.metrics import (
    bootstrap_mean,
    bootstrap_ratio,
    corpus_bleu,
    corpus_chrf,
    resample_counts,
    sentence_chrf,
)

HYPS = ["The cat sat on the mat.", "A dog barks at night", "I like green tea.", "Where is the station?",
        "She reads the book every day.", "We go home"]
REFS = ["The cat sat on a mat.", "The dog barks at night.", "I love green tea.", "Where is the train station?",
        "She reads a book every day.", "We are going home."]


def test_chrf_and_bleu_equal_sacrebleu():
    chrf, bleu = CHRF(word_order=2), BLEU()
    want_c, want_b = chrf.corpus_score(HYPS, [REFS]), bleu.corpus_score(HYPS, [REFS])
    got_c, got_b = corpus_chrf(HYPS, REFS, n_boot=50), corpus_bleu(HYPS, REFS, n_boot=50)
    assert got_c.value == pytest.approx(want_c.score, abs=1e-12)
    assert got_b.value == pytest.approx(want_b.score, abs=1e-12)
    assert got_c.signature == chrf.get_signature().format()
    assert got_b.signature == bleu.get_signature().format()
    assert "nw:2" in got_c.signature and "tok:13a" in got_b.signature


def test_sentence_chrf_equals_sacrebleu_and_identity_is_100():
    want = [CHRF(word_order=2).sentence_score(h, [r]).score for h, r in zip(HYPS, REFS)]
    assert sentence_chrf(HYPS, REFS) == pytest.approx(want)
    assert sentence_chrf(REFS, REFS) == pytest.approx([100.0] * len(REFS))


def test_each_resample_is_the_corpus_metric_of_the_resampled_corpus():
    """Summing sacrebleu's per-sentence statistics = scoring the resampled corpus itself."""
    metric = CHRF(word_order=2)
    stats = np.asarray(metric._extract_corpus_statistics(HYPS, [REFS]), dtype=float)
    counts = resample_counts(len(HYPS), n_boot=3, seed=1)
    for row in counts:
        idx = np.repeat(np.arange(len(HYPS)), row)
        direct = metric.corpus_score([HYPS[i] for i in idx], [[REFS[i] for i in idx]]).score
        assert metric._compute_score_from_stats(list(row @ stats)).score == pytest.approx(direct, abs=1e-9)
    assert (counts.sum(1) == len(HYPS)).all()


def test_interval_contains_point_is_seeded_and_narrows_with_n():
    small = corpus_chrf(HYPS, REFS, n_boot=300, seed=0)
    assert small.low <= small.value <= small.high
    assert corpus_chrf(HYPS, REFS, n_boot=300, seed=0) == small
    big = corpus_chrf(HYPS * 8, REFS * 8, n_boot=300, seed=0)
    assert big.value == pytest.approx(small.value, abs=1e-9)  # the corpus score does not change
    assert (big.high - big.low) < 0.6 * (small.high - small.low)
    bl = corpus_bleu(HYPS, REFS, n_boot=300)
    assert bl.low <= bl.value <= bl.high


def test_bootstrap_mean_planted():
    ones = bootstrap_mean([1, 1, 1, 1])
    assert (ones.value, ones.low, ones.high) == (1.0, 1.0, 1.0)
    m = bootstrap_mean([1, 0, 1, 0, 1, 0, 1, 1], n_boot=500)
    assert m.value == pytest.approx(5 / 8)
    assert 0 <= m.low <= m.value <= m.high <= 1
    wide, narrow = bootstrap_mean([1, 0] * 5, n_boot=500), bootstrap_mean([1, 0] * 100, n_boot=500)
    assert narrow.high - narrow.low < wide.high - wide.low


def test_bootstrap_ratio_token_weighted_and_transformed():
    r = bootstrap_ratio([1.0, 2.0, 3.0], [1, 1, 2], n_boot=200)
    assert r.value == pytest.approx(6 / 4)  # Σnll / Σtokens, not the mean of per-sentence means (1.5 vs 1.5)
    r2 = bootstrap_ratio([2.0, 9.0], [1, 3], n_boot=200)
    assert r2.value == pytest.approx(11 / 4) and r2.value != pytest.approx((2 + 3) / 2)
    p = bootstrap_ratio([2.0, 9.0], [1, 3], transform=math.exp, n_boot=200)
    assert p.value == pytest.approx(math.exp(11 / 4))
    assert p.low == pytest.approx(math.exp(r2.low)) and p.high == pytest.approx(math.exp(r2.high))


def test_mismatched_or_empty_input_raises():
    with pytest.raises(ValueError):
        corpus_chrf(["a"], ["a", "b"])
    with pytest.raises(ValueError):
        corpus_bleu([], [])
    with pytest.raises(ValueError):
        bootstrap_mean([])

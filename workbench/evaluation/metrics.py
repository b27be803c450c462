"""Translation quality and bootstrap intervals: pure functions, strings and arrays in, numbers out.

- `corpus_chrf` / `corpus_bleu`: sacrebleu's corpus chrF++ (`CHRF(word_order=2)`) and BLEU
  (defaults: 13a tokenisation, exp smoothing), with sacrebleu's signature string.
- `sentence_chrf`: chrF++ of each sentence (the same metric on one segment).
- `bootstrap_*`: 95% percentile bootstrap intervals that resample sentences with
  replacement (seeded). For chrF++ and BLEU a resample sums sacrebleu's per-sentence
  sufficient statistics and scores the sum with sacrebleu's own `_compute_score_from_stats`
  (what sacrebleu's paired bootstrap does), so every resample is exactly the corpus metric
  of the resampled corpus. Means and token-weighted means (losses) resample the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

__all__ = ["Interval", "bootstrap", "bootstrap_mean", "bootstrap_ratio", "corpus_bleu", "corpus_chrf",
           "resample_counts", "sentence_chrf"]

N_BOOT = 1000
"""Default number of bootstrap resamples."""
ALPHA = 0.05
"""1 − coverage of the intervals (95%)."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval; `signature` is sacrebleu's, when it applies."""

    value: float
    low: float
    high: float
    signature: str = ""


def _chrf() -> CHRF:
    return CHRF(word_order=2)


def _check(hyps: Sequence[str], refs: Sequence[str]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} outputs but {len(refs)} references")
    if not hyps:
        raise ValueError("no sentences to score")


def resample_counts(n: int, *, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """`(n_boot, n)` int: how often each sentence occurs in each resample (sum of a row = n)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    counts = np.zeros((n_boot, n), dtype=np.int64)
    np.add.at(counts, (np.arange(n_boot)[:, None], idx), 1)
    return counts


def _percentiles(samples: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(samples, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return float(lo), float(hi)


def bootstrap(stats: np.ndarray, score: Callable[[np.ndarray], float], *, n_boot: int = N_BOOT,
              seed: int = 0) -> Interval:
    """Percentile interval of `score(sum of resampled rows of stats)`.

    Args:
        stats: `(n, k)` additive per-sentence statistics.
        score: maps a `(k,)` summed statistic to the metric.
        n_boot: resamples.
        seed: seed of the resampling.
    """
    stats = np.asarray(stats, dtype=np.float64)
    point = score(stats.sum(0))
    sums = resample_counts(len(stats), n_boot=n_boot, seed=seed).astype(np.float64) @ stats
    lo, hi = _percentiles(np.array([score(row) for row in sums]))
    return Interval(point, lo, hi)


def bootstrap_mean(values: Sequence[float] | np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0) -> Interval:
    """Mean of `values` (e.g. 0/1 per sentence) with its percentile interval."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no values to average")
    stats = np.stack([v, np.ones_like(v)], 1)
    return bootstrap(stats, lambda s: float(s[0] / s[1]), n_boot=n_boot, seed=seed)


def bootstrap_ratio(num: Sequence[float] | np.ndarray, den: Sequence[float] | np.ndarray, *,
                    transform: Callable[[float], float] = float, n_boot: int = N_BOOT, seed: int = 0) -> Interval:
    """`transform(Σnum / Σden)` (e.g. mean NLL per token, or its `exp`) with its interval."""
    stats = np.stack([np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)], 1)
    if stats.size == 0 or stats[:, 1].sum() <= 0:
        raise ValueError("nothing to score (no tokens)")
    return bootstrap(stats, lambda s: transform(float(s[0] / max(s[1], 1e-12))), n_boot=n_boot, seed=seed)


def _sacrebleu_bootstrap(metric: BLEU | CHRF, hyps: Sequence[str], refs: Sequence[str], n_boot: int,
                         seed: int) -> Interval:
    _check(hyps, refs)
    # sacrebleu's private stats API is what its own paired bootstrap uses (sacrebleu.significance)
    stats = np.asarray(metric._extract_corpus_statistics(list(hyps), [list(refs)]), dtype=np.float64)
    point = float(metric.corpus_score(list(hyps), [list(refs)]).score)
    ci = bootstrap(stats, lambda s: float(metric._compute_score_from_stats(list(s)).score), n_boot=n_boot, seed=seed)
    return Interval(point, ci.low, ci.high, metric.get_signature().format())


def corpus_chrf(hyps: Sequence[str], refs: Sequence[str], *, n_boot: int = N_BOOT, seed: int = 0) -> Interval:
    """Corpus chrF++ (0–100) with a 95% bootstrap interval and sacrebleu's signature."""
    return _sacrebleu_bootstrap(_chrf(), hyps, refs, n_boot, seed)


def corpus_bleu(hyps: Sequence[str], refs: Sequence[str], *, n_boot: int = N_BOOT, seed: int = 0) -> Interval:
    """Corpus BLEU (0–100, sacrebleu defaults) with a 95% bootstrap interval and signature."""
    return _sacrebleu_bootstrap(BLEU(), hyps, refs, n_boot, seed)


def sentence_chrf(hyps: Sequence[str], refs: Sequence[str]) -> list[float]:
    """chrF++ of each (output, reference) pair, 0–100."""
    _check(hyps, refs)
    metric = _chrf()
    return [float(metric.sentence_score(h, [r]).score) for h, r in zip(hyps, refs)]


def finite_or_nan(x: float) -> float:
    """`x`, or NaN when it is infinite (an overflowing perplexity)."""
    return x if math.isfinite(x) else float("nan")

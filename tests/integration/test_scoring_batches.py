"""Length-grouped (padding-budget) batching of the places that run many sentences through the
model: nll scoring, CC-Tuning's Transform-Matrix pairs and held-out report, SiLP's pair pass. Each must give
the same numbers as running every sentence alone (no padding at all), in input order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench import tracing
from workbench.analysis.sensitivity import projection_sensitivity
from workbench.evaluation.losses import nll_per_example, perplexity_examples
from workbench.examples import IGNORE, Example, scoring_batches, translation_examples
from workbench.finetune.cctuning import cc_examples, cctuning_evaluate, collect_ffn_pairs
from workbench.finetune.cctuning.spec import CCTuningSpec
from workbench.finetune.data import collate
from workbench.finetune.lens import _reps  # the one helper every LENS representation goes through
from workbench.finetune.silp import SiLPSpec, allocation_inputs, silp_allocation
from workbench.models.hooks.cctuning import ffn_outputs

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- the grouping


def test_scoring_batches_on_planted_lengths():
    lengths = [3, 10, 9, 2, 10]
    # budget 2 x 10 = 20: {10, 10} fits exactly; 9 + 3 pads 6 of 18 (> 5%); 3 + 2 pads 1 of 6 (> 5%)
    assert scoring_batches(lengths, batch_size=2) == [[1, 4], [2], [0], [3]]
    # token budget only: 9 + 3 fit in 18 <= 20, adding 2 would need 27
    assert scoring_batches(lengths, batch_size=2, max_padding=1.0) == [[1, 4], [2, 0], [3]]
    # an explicit budget overrides batch_size: 40 holds four rows of 10
    assert scoring_batches(lengths, batch_size=2, max_tokens=40, max_padding=1.0) == [[1, 4, 2, 0], [3]]
    assert scoring_batches([], batch_size=2) == []


def test_short_sequences_share_batches_with_more_rows_not_with_long_ones():
    lengths = [40] + [5] * 16
    groups = scoring_batches(lengths, batch_size=2)
    assert groups[0] == [0]  # the long one alone (no short one fits the padding budget beside it)
    assert groups[1:] == [list(range(1, 17))]  # 16 rows x 5 = 80 tokens = the budget 2 x 40


# --------------------------------------------------------------------------- nll


def _alone(model, examples, pad):
    """Reference: every example in its own forward pass (no padding anywhere)."""
    sums, counts = [], []
    for e in examples:
        s, c = nll_per_example(model, [e], pad, batch_size=1)
        sums.append(s[0])
        counts.append(c[0])
    return np.array(sums), np.array(counts)


def test_nll_per_example_equals_one_at_a_time_in_input_order(state, split):
    tok = state.tokenizer
    ex = translation_examples(tok, split, [("en", "sw"), ("sw", "en")], "train")
    ex += perplexity_examples(tok, split.column("en", "train"), 48)
    rng = np.random.default_rng(0)
    ex = [ex[i] for i in rng.permutation(len(ex))]
    lengths = [len(e.ids) for e in ex]
    assert len(set(lengths)) > 5  # planted: lengths vary, so grouping reorders
    seen = []
    sums, counts = nll_per_example(state.model, ex, tok.pad_token_id, batch_size=4, on_batch=seen.append)
    ref_s, ref_c = _alone(state.model, ex, tok.pad_token_id)
    np.testing.assert_array_equal(counts, ref_c)
    np.testing.assert_allclose(sums, ref_s, rtol=1e-5, atol=1e-4)
    assert sum(seen) == len(ex) and len(seen) == len(scoring_batches(lengths, batch_size=4))
    assert len(set(np.round(ref_s / ref_c, 4))) > len(ex) // 2  # distinct values: a mis-scatter would show
    # the old fixed chunks of 4 in input order: the same numbers to rounding
    old = np.concatenate([nll_per_example(state.model, ex[i:i + 4], tok.pad_token_id, max_tokens=10**6,
                                          max_padding=1.0)[0] for i in range(0, len(ex), 4)])
    np.testing.assert_allclose(sums, old, rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------- CC-Tuning pairs


def test_collect_ffn_pairs_equals_one_at_a_time_in_input_order(state, split):
    examples = cc_examples(state.tokenizer, split, CCTuningSpec())
    assert len({e.pos for e in examples}) > 3 and len({len(e.en) for e in examples}) > 3
    pad = state.tokenizer.pad_token_id
    a, b = collect_ffn_pairs(state.model, state.arch, examples, pad, batch_size=4)
    assert a.shape == b.shape == (len(examples), state.n_layers, state.d_model) and a.dtype == np.float32
    with torch.no_grad():
        for i, e in enumerate(examples):
            x = collate([e.x], pad)
            want_a = ffn_outputs(state.model, state.arch, x["input_ids"], x["attention_mask"], torch.tensor([e.pos]))
            en = collate([Example(e.en, e.en, (True,) * len(e.en))], pad)
            want_b = ffn_outputs(state.model, state.arch, en["input_ids"], en["attention_mask"],
                                 torch.tensor([len(e.en) - 1]))
            np.testing.assert_allclose(a[i], want_a[0].float().numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(b[i], want_b[0].float().numpy(), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- SiLP


def test_silp_allocation_scores_equal_two_separate_recordings(state, split):
    spec = SiLPSpec(src="sw", tgt="en", split=2, k1=1, k2=1, alloc_pairs=12)
    got = silp_allocation(state, split, spec)
    corpus, rspec = allocation_inputs(split, spec.alloc_pairs)
    assert len(corpus) == 12 and rspec.ffn_stats and rspec.template == split.spec.template
    means = [tracing.record_unit(state, corpus, u, rspec)["ffn_layer_mean"] for u in ("sw>en", "en>sw")]
    want = projection_sensitivity(np.concatenate(means).astype(np.float64))
    assert got["scores"][0] is None and np.isnan(want[0])
    np.testing.assert_allclose(np.array(got["scores"][1:], dtype=np.float64), want[1:], rtol=1e-4, atol=1e-7)
    assert np.all(want[1:] > 0)  # not a vacuous comparison of zeros


def test_cctuning_evaluate_equals_one_at_a_time_in_input_order(state, split):
    examples = cc_examples(state.tokenizer, split, CCTuningSpec())
    gen = torch.Generator().manual_seed(0)
    w_dm = torch.randn(state.d_model, state.n_layers, generator=gen) * 3.0
    w_t = torch.eye(state.d_model) + 0.05 * torch.randn(state.d_model, state.d_model, generator=gen)
    got = cctuning_evaluate(state, w_dm, w_t, examples, batch_size=4)
    singles = [cctuning_evaluate(state, w_dm, w_t, [e], batch_size=1) for e in examples]
    for k in ("english", "transform"):
        assert got["selected"][k] == [s["selected"][k][0] for s in singles]
    assert len(set(got["selected"]["transform"])) > 1  # planted: choices differ, so order matters
    toks = np.array([sum(lab != IGNORE for lab in e.x.labels[1:]) for e in examples], dtype=np.float64)
    for k in ("vanilla", "english", "transform"):
        for m in ("loss", "acc"):
            want = sum(s["gap"][f"{m}_{k}"] * t for s, t in zip(singles, toks)) / toks.sum()
            assert got["gap"][f"{m}_{k}"] == pytest.approx(want, rel=1e-5, abs=1e-6), (m, k)


# --------------------------------------------------------------------------- LENS representations


def test_lens_reps_equal_one_at_a_time_in_input_order(state, split):
    ex = perplexity_examples(state.tokenizer, split.column("en", "train") + split.column("sw", "train"), 48)
    assert len({len(e.ids) for e in ex}) > 5
    pad = state.tokenizer.pad_token_id
    last, mean = _reps(state.model, state.arch, ex, pad, "cpu", batch_size=4)
    for i, e in enumerate(ex):
        l1, m1 = _reps(state.model, state.arch, [e], pad, "cpu", batch_size=1)
        torch.testing.assert_close(last[i], l1[0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(mean[i], m1[0], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(last[0], last[1])  # distinct rows: a mis-scatter would show

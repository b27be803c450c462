"""Every eval row carries n, and an interval is reported only from MIN_N_INTERVAL sentences on.

The report's case: Compare with "Held-out units = 1" showed zero-width "95% intervals"
and no n. Here the tiny Llama is evaluated with limit 1 and limit 6 on the same split.
"""

from __future__ import annotations

import math

import pytest

from workbench.evaluation import DecodingSpec, evaluate
from workbench.evaluation.tables import MIN_N_INTERVAL, compare_scores, score_table
from workbench.store import Store
from workbench.viz.eval_figures import eval_scores_figure


@pytest.fixture(scope="module")
def results(tiny_state, split, tmp_path_factory):
    """limit → EvalResult for limits 1 and 6 (translation and loss suites)."""
    store = Store(tmp_path_factory.mktemp("eval-n"))
    kw = dict(directions=["en:sw", "sw:en"], decoding=DecodingSpec(max_new_tokens=3), n_boot=30, store=store)
    return {lim: evaluate(tiny_state, ["translation", "loss"], split, limit=lim, label=f"limit{lim}", **kw)
            for lim in (1, 6)}


def test_rows_carry_the_number_of_sentences(results, split):
    for limit, res in results.items():
        ev = res.eval.set_index(["direction", "metric"])
        for d in ("en>sw", "sw>en"):
            for m in ("chrf++", "bleu", "fidelity", "off_target", "loss"):
                assert ev.loc[(d, m), "n"] == limit, (limit, d, m)
        assert ev.loc[("en", "ppl"), "n"] == limit
        # the identifier is validated on all held-out references of the target, whatever the limit
        assert ev.loc[("en>sw", "langid_accuracy"), "n"] == len(split.column("sw", "heldout"))


def test_no_interval_below_the_minimum_and_the_cell_says_why(results):
    one = compare_scores(results[1].eval, intervals=True)
    assert (one["n"] == 1).loc[one.index.get_level_values("metric") != "langid_accuracy"].all()
    assert one["limit1 low"].isna().all() and one["limit1 high"].isna().all()
    six = compare_scores(results[6].eval, intervals=True)
    assert six.loc[("loss", "en>sw", "loss"), "limit6 low"] <= six.loc[("loss", "en>sw", "loss"), "limit6"]
    shown = score_table(results[1].eval).set_index(["suite", "direction", "metric"])
    assert shown.loc[("loss", "en>sw", "loss"), "limit1 95% interval"] == "n = 1: too few for an interval"
    assert shown.loc[("loss", "en>sw", "loss"), "n"] == 1
    six_shown = score_table(results[6].eval).set_index(["suite", "direction", "metric"])
    assert six_shown.loc[("loss", "en>sw", "loss"), "limit6 95% interval"].startswith("[")
    assert MIN_N_INTERVAL == 5


def test_figure_draws_no_whisker_below_the_minimum(results):
    fig = eval_scores_figure(results[1].eval)
    bars = [t for t in fig.data if t.type == "bar"]
    assert bars and all(all(math.isnan(v) for v in t.error_y.array) for t in bars)
    assert all("n = 1: too few for an interval" in str(c) for t in bars for c in t.customdata)
    assert "n < 5" in fig.layout.title.text
    six = eval_scores_figure(results[6].eval)
    assert any(not math.isnan(v) for t in six.data for v in t.error_y.array)
    assert all(str(c).startswith("n = ") for t in six.data for c in t.customdata)

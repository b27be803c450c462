"""N-state comparison tables: one column per state, differences against a reference."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.evaluation import (
    EVAL_COLUMNS,
    GENERATION_COLUMNS,
    EvalResult,
    combine,
    compare_scores,
    filter_generations,
    side_by_side,
)
from workbench.evaluation.run import both_directions

STATES = ["base", "silp", "lens"]


def _result(state: str, shift: float) -> EvalResult:
    ev = pd.DataFrame([
        [state, "translation", "en>sw", "chrf++", 20 + shift, 18 + shift, 22 + shift, 40],
        [state, "translation", "sw>en", "chrf++", 30 + shift, 28 + shift, 32 + shift, 40],
        [state, "loss", "en", "ppl", 50 - shift, 45 - shift, 55 - shift, 40],
    ], columns=EVAL_COLUMNS)
    out = {"base": ["Habari", "Hello"], "silp": ["Habari", "Jambo"], "lens": ["Habari", "Hello"]}[state]
    lang = {"base": ["sw", "en"], "silp": ["sw", "sw"], "lens": ["sw", "en"]}[state]
    gen = pd.DataFrame([[state, "en>sw", i, f"src{i}", f"ref{i}", out[i], lang[i], 10.0 * i] for i in range(2)],
                       columns=GENERATION_COLUMNS)
    return EvalResult(ev, gen, {state: {}})


@pytest.fixture
def res():
    return combine([_result(s, k) for k, s in enumerate(STATES)])


def test_one_column_per_state_and_differences(res):
    wide = compare_scores(res.eval, reference="base")
    assert list(wide.columns) == ["n", *STATES, "Δ silp", "Δ lens"]
    assert wide.shape == (3, 6) and (wide["n"] == 40).all()
    assert wide.loc[("translation", "en>sw", "chrf++"), "Δ lens"] == pytest.approx(2.0)
    assert wide.loc[("loss", "en", "ppl"), "Δ silp"] == pytest.approx(-1.0)
    assert list(compare_scores(res.eval).columns) == ["n", *STATES]
    with_ci = compare_scores(res.eval, intervals=True)
    assert with_ci.loc[("translation", "sw>en", "chrf++"), "silp low"] == 29
    with pytest.raises(KeyError):
        compare_scores(res.eval, reference="nope")


def test_side_by_side_and_filters(res):
    wide = side_by_side(res.generations)
    assert len(wide) == 2
    assert [c for c in wide.columns if c.endswith(": output")] == [f"{s}: output" for s in STATES]
    assert list(filter_generations(wide, only_disagreements=True)["id"]) == [1]
    assert list(filter_generations(wide, only_off_target=True)["id"]) == [1]
    assert filter_generations(wide, direction="sw>en").empty


def test_eval_result_rejects_wrong_columns():
    with pytest.raises(ValueError):
        EvalResult(pd.DataFrame(columns=["state", "value"]), pd.DataFrame(columns=GENERATION_COLUMNS))


def test_both_directions():
    assert both_directions(["en:sw"]) == [("en", "sw"), ("sw", "en")]
    assert both_directions(["en:sw", "sw:en", ("en", "fr")]) == [("en", "sw"), ("sw", "en"), ("en", "fr"), ("fr", "en")]

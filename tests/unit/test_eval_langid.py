"""Language fidelity: the restricted identifier on planted outputs, its validation, the <90% flag."""

from __future__ import annotations

import math

import pytest

from workbench.evaluation.langid import (
    MIN_ACCURACY,
    UNDETERMINED,
    Identifier,
    accuracy_on_references,
    langid_label,
    validation_table,
)
from workbench.evaluation.suites import _fidelity_rows
from workbench.examples import ParallelSplit

SW = ["Ninapenda kusoma vitabu vya historia.", "Watoto wanacheza mpira uwanjani.", "Mama anapika chakula kitamu.",
      "Tutaenda sokoni kesho asubuhi."]
EN = ["I love reading history books.", "The children are playing football in the field.",
      "Mother is cooking delicious food.", "We will go to the market tomorrow morning."]


def _split(langs=("en", "sw"), en=EN, other=SW):
    units = list(zip(en, other))
    return ParallelSplit(tuple(langs), {langs[0]: "English", langs[1]: "Other"}, units, units, "planted")


def test_identifier_on_planted_outputs():
    ident = Identifier(("en", "sw"))
    assert ident.identify(SW + EN + ["", "   "]) == ["sw"] * 4 + ["en"] * 4 + [UNDETERMINED] * 2


def test_fidelity_rows_on_planted_outputs():
    outputs = SW[:3] + EN[:1]  # 3 of 4 in Swahili
    rows, langs, flag = _fidelity_rows(outputs, "sw", _split(), "en>sw", n_boot=200, seed=0)
    by = {r["metric"]: r for r in rows}
    assert langs == ["sw", "sw", "sw", "en"] and flag is None
    assert by["langid_accuracy"]["value"] == 1.0
    assert by["fidelity"]["value"] == pytest.approx(0.75)
    assert by["off_target"]["value"] == pytest.approx(0.25)
    assert by["fidelity"]["ci_low"] <= 0.75 <= by["fidelity"]["ci_high"]
    assert by["off_target"]["ci_low"] == pytest.approx(1 - by["fidelity"]["ci_high"])


def test_fidelity_withheld_when_identifier_fails_on_references():
    """References labelled Swahili that are English: 0% accuracy on them -> flag, fidelity NaN."""
    rows, _, flag = _fidelity_rows(SW, "sw", _split(other=EN), "en>sw", n_boot=50, seed=0)
    by = {r["metric"]: r["value"] for r in rows}
    assert by["langid_accuracy"] == 0.0 and math.isnan(by["fidelity"]) and math.isnan(by["off_target"])
    assert flag is not None and "withheld" in flag


def test_unsupported_language_is_flagged():
    assert langid_label("tlh") is None and langid_label("zh-Hant") == "zh" and langid_label("sw") == "sw"
    assert math.isnan(accuracy_on_references(["en", "tlh"], "tlh", SW))
    rows, _, flag = _fidelity_rows(SW, "tlh", _split(langs=("en", "tlh")), "en>tlh", n_boot=50, seed=0)
    assert flag is not None and "unsupported" in flag
    assert math.isnan({r["metric"]: r["value"] for r in rows}["fidelity"])


def test_validation_table_on_bundled_tatoeba_sw():
    t = validation_table(["tatoeba:sw"])
    assert list(t.columns) == ["corpus", "lang", "n", "accuracy", "n_candidates", "status"]
    assert set(t["lang"]) == {"en", "sw"} and (t["n_candidates"] == 2).all()
    assert (t["accuracy"] >= MIN_ACCURACY).all() and (t["status"] == "ok").all()

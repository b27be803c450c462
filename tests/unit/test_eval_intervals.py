"""Score tables say what their intervals are: an n column, no interval below MIN_N_INTERVAL, honest changes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench.evaluation import EVAL_COLUMNS, GENERATION_COLUMNS, EvalResult
from workbench.evaluation.tables import (
    MIN_N_INTERVAL,
    compare_scores,
    format_change,
    interval_note,
    score_formats,
    score_table,
)
from workbench.viz.eval_figures import eval_scores_figure


def _rows(n_base: int, n_tuned: int) -> pd.DataFrame:
    return pd.DataFrame([
        ["base", "translation", "en>sw", "chrf++", 30.0, 28.0, 32.0, n_base],
        ["tuned", "translation", "en>sw", "chrf++", 30.00001, 28.0, 32.0, n_tuned],
        ["base", "loss", "en>sw", "loss", 2.5, 2.4, 2.6, n_base],
        ["tuned", "loss", "en>sw", "loss", 2.25, 2.2, 2.3, n_tuned],
        ["base", "translation", "en>sw", "fidelity", float("nan"), float("nan"), float("nan"), n_base],
        ["tuned", "translation", "en>sw", "fidelity", 0.9, 0.8, 1.0, n_tuned],
    ], columns=EVAL_COLUMNS)


@pytest.mark.parametrize("delta,decimals,percent,expected", [
    (-0.0004, 2, False, "0.00"),       # rounding noise: no sign, no loss
    (-0.00049, 1, True, "0.0%"),       # the "−0.0% vs A" of the report
    (-0.0006, 1, True, "−0.1%"),
    (0.004999, 2, False, "0.00"),
    (0.005, 2, False, "+0.01"),
    (-1.5, 2, False, "−1.50"),
    (float("nan"), 2, False, "—"),
    (None, 2, False, "—"),
])
def test_format_change(delta, decimals, percent, expected):
    assert format_change(delta, decimals, percent=percent) == expected


def test_interval_note():
    assert interval_note(1, 30, 30) == "n = 1: too few for an interval"
    assert interval_note(MIN_N_INTERVAL - 1, 1, 2).startswith(f"n = {MIN_N_INTERVAL - 1}:")
    assert interval_note(MIN_N_INTERVAL, 1, 2) == ""
    assert interval_note(40, float("nan"), float("nan")) == "no interval"


def test_n_column_and_masked_intervals():
    wide = compare_scores(_rows(1, 1), reference="base", intervals=True)
    assert list(wide.columns)[0] == "n" and (wide["n"] == 1).all()
    assert wide[["base low", "base high", "tuned low", "tuned high"]].isna().all().all()
    many = compare_scores(_rows(40, 40), intervals=True)
    assert many.loc[("loss", "en>sw", "loss"), "tuned low"] == 2.2
    mixed = compare_scores(_rows(40, 3), intervals=True)
    assert list(mixed.columns)[:2] == ["base n", "tuned n"]
    assert math.isnan(mixed.loc[("loss", "en>sw", "loss"), "tuned low"])
    assert mixed.loc[("loss", "en>sw", "loss"), "base low"] == 2.4


def _shown(table: pd.DataFrame) -> pd.DataFrame:
    """The table's cells as displayed: each column through its formatter (strings as they are)."""
    formats = score_formats(table)
    return pd.DataFrame({c: [formats[c](v) if c in formats else v for v in table[c]] for c in table.columns})


def test_score_table_cells_say_why():
    table = score_table(_rows(1, 1), reference="base").set_index("metric")
    assert list(table.columns[:5]) == ["suite", "direction", "n", "base", "base 95% interval"]
    assert table.loc["loss", "base"] == 2.5 and table.loc["loss", "n"] == 1  # numbers stay numbers
    assert table.loc["loss", "base 95% interval"] == "n = 1: too few for an interval"
    assert table.loc["fidelity", "base 95% interval"] == "n = 1: too few for an interval"
    ok = score_table(_rows(40, 40)).set_index("metric")
    assert ok.loc["loss", "tuned 95% interval"] == "[2.200, 2.300]" and ok.loc["loss", "n"] == 40
    assert ok.loc["fidelity", "base 95% interval"] == "—"  # NaN value, no interval: nothing to say
    assert score_table(_rows(40, 3)).set_index("metric").loc["loss", "n"] == "40 / 3"


def test_score_table_display_has_no_none_and_no_negative_zero():
    shown = _shown(score_table(_rows(40, 40), reference="base")).set_index("metric")
    assert shown.loc["loss", "Δ tuned"] == "−0.2500"
    assert shown.loc["chrf++", "Δ tuned"] == "0.0000"  # 1e-5 on 30: below the last digit, unsigned
    assert shown.loc["fidelity", "base"] == "—" and shown.loc["fidelity", "Δ tuned"] == "—"
    assert shown.loc["loss", "n"] == "40"
    assert not shown.isin(["None", "nan", "NaN", "<NA>"]).any().any()
    html = score_table(_rows(40, 40), reference="base").style.format(score_formats(shown), na_rep="—").to_html()
    assert "None" not in html and ">nan<" not in html.lower()
    noise = _rows(40, 40)
    noise.loc[noise["state"] == "tuned", "value"] = noise.loc[noise["state"] == "base", "value"].to_numpy() - 1e-18
    noisy = _shown(score_table(noise, reference="base")).set_index("metric")
    assert not noisy["Δ tuned"].str.startswith("−").any(), noisy["Δ tuned"]


def test_a_table_from_before_n_reads_as_unknown():
    old = _rows(40, 40)[EVAL_COLUMNS[:-1]]
    res = EvalResult(old, pd.DataFrame(columns=GENERATION_COLUMNS))
    assert list(res.eval.columns) == EVAL_COLUMNS and res.eval["n"].isna().all()
    table = score_table(res.eval).set_index("metric")
    assert math.isnan(table.loc["loss", "n"]) and table.loc["loss", "base 95% interval"] == "[2.400, 2.600]"
    assert _shown(score_table(res.eval)).set_index("metric").loc["loss", "n"] == "—"


def test_figure_whiskers_follow_n():
    fig = eval_scores_figure(pd.concat([_rows(1, 40)], ignore_index=True), reference="base")
    by = {(t.name, t.xaxis): t for t in fig.data}
    base, tuned = by[("base", "x2")], by[("tuned", "x2")]  # the loss panel
    assert np.isnan(base.error_y.array).all() and np.isnan(base.error_y.arrayminus).all()
    assert tuned.error_y.array[0] == pytest.approx(0.05) and tuned.error_y.arrayminus[0] == pytest.approx(0.05)
    assert "n = 1: too few for an interval" in base.customdata[0]
    assert tuned.customdata[0].startswith("n = 40<br>95% interval [2.2, 2.3]")
    assert "none where n < 5" in fig.layout.title.text
    assert "none where" not in eval_scores_figure(_rows(40, 40)).layout.title.text

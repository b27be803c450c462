"""The Every analysis page lists `patching` from the registry, offers its readout's Record button, then draws it."""

from __future__ import annotations

import numpy as np
from test_layer_predictions import _tiny, app, press_record  # noqa: F401 - the fixture is used by name
from test_pages import figures, ok, trace, ys

from workbench.recipes.build import build


def test_every_analysis_page_records_then_draws_the_patching_curves():
    at = app("app_pages/analyses.py")
    at.selectbox(key="an_analysis").set_value("patching").run()
    at.number_input(key="an_patching_max_items").set_value(3).run()
    ok(at)
    assert not figures(at) and press_record(at) == 1  # nothing drawn (or computed) before the button
    ok(at)
    fig = figures(at)[0]
    built = build({"analysis": "patching", "model": {"source": "tiny:llama"}, "params": {"max_items": 3}})
    want = built.table[built.table["layer"].astype(str) != "unpatched"]["p_c1_in_target"].to_numpy()
    np.testing.assert_allclose(ys(trace(fig, "P(C1 in zh)")), want, rtol=1e-6)

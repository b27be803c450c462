"""The Layer predictions page, the Every analysis page and the Compare tab draw lens views from the store only,
offer a Record button otherwise (nothing records as a side effect of drawing), and show the registry's numbers."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_pages import app as open_app
from test_pages import figures, ok, trace, wait_warm_jobs, ys

from workbench import models
from workbench.config import CorpusSpec, ModelSpec
from workbench.finetune import jobs as finetune_jobs
from workbench.lenses.artifacts import list_lenses
from workbench.recipes.build import build
from workbench.recipes.settings import TINY_ENV, Settings
from workbench.store import Store

SETTINGS = Settings(model=ModelSpec(source="tiny:llama"), corpus=CorpusSpec(source="udhr", langs=("en", "fr"),
                                                                            limit=10))


@pytest.fixture(autouse=True)
def _tiny(monkeypatch):
    monkeypatch.setenv(TINY_ENV, "1")
    monkeypatch.setattr(models, "bundled_status", lambda name: "installed")


def app(page: str) -> AppTest:
    return open_app(page, SETTINGS, timeout=120)


def press_record(at: AppTest, prefix: str = "lens-rec-") -> int:
    buttons = [b for b in at.button if (b.key or "").startswith(prefix)]
    for b in buttons:
        b.click().run()
    wait_warm_jobs()
    at.run()
    return len(buttons)


def trace_y(fig, name):
    return ys(trace(fig, name))


def test_latent_curves_offer_recording_then_draw_the_registry_numbers():
    at = app("app_pages/layer_predictions.py")
    ok(at)
    assert not figures(at) and not list(Store().keys())  # drawing recorded nothing
    assert any("not have it yet" in i.value for i in at.info)
    assert press_record(at) == 1
    ok(at)
    (fig,) = figures(at)
    table = build({"analysis": "latent", "model": SETTINGS.model.to_dict(), "corpus": "udhr",
                   "params": {"source": "fr", "target": "zh"}}, stored_only=True).table
    np.testing.assert_array_equal(trace_y(fig, "P(en)"), table["p_en"].to_numpy())  # identical, from the store
    np.testing.assert_array_equal(trace_y(fig, "P(zh)"), table["p_target"].to_numpy())
    assert [m.label for m in at.metric][:2] == ["P(en) peaks at layer", "P(zh) overtakes P(en)"]
    assert "kept 128 of 128" in " ".join(c.value for c in at.caption)


def test_token_view_and_tuned_lens_tabs():
    at = app("app_pages/layer_predictions.py")
    at.session_state["lpred_tab"] = "Token view"
    at.run()
    assert not figures(at) and press_record(at) == 1
    ok(at)
    (fig,) = figures(at)
    assert fig.data[0].type == "heatmap" and len(fig.data[0].x) == 16  # the last 16 positions
    assert len(at.dataframe) == 1  # the decoded-language strip

    at.session_state["lpred_tab"] = "Tuned lens"
    at.run()
    at.number_input(key="lens_steps").set_value(2).run()
    assert list_lenses() == []
    at.button(key="lens-train").click().run()
    wait_warm_jobs()
    at.run()
    ok(at)
    (row,) = list_lenses()
    assert row["data"]["langs"] == ["en", "fr"] and row["steps"] == 2
    assert any(o.startswith(f"Tuned lens {row['id'][:8]}") for o in at.selectbox(key="lp_lens").options)
    at.selectbox(key="lp_lens").set_value(row["id"]).run()  # selectable as the lens of every view
    at.session_state["lpred_tab"] = "Token view"
    at.run()
    assert press_record(at) == 1  # another lens: another readout
    ok(at)
    assert "tuned lens" in figures(at)[0].layout.title.text


def test_every_analysis_page_offers_the_lens_readout():
    at = app("app_pages/analyses.py")
    at.selectbox(key="an_analysis").set_value("latent").run()
    at.number_input(key="an_latent_max_items").set_value(5).run()
    ok(at)
    assert not figures(at) and press_record(at) == 1
    ok(at)
    assert figures(at)


def test_compare_tab_draws_the_latent_curves_of_both_states(monkeypatch):
    other = ModelSpec(source="tiny:qwen2")
    fake = {"label": "stand-in tuned state", "source": other.source, "artifact": None, "method": "silp",
            "job_id": "silp-test-000001", "model": other.to_dict(), "languages": ["en", "fr"], "data": None,
            "pivot": "en", "created": ""}
    monkeypatch.setattr(finetune_jobs, "tuned_states", lambda: [fake])
    at = app("app_pages/compare.py")
    at.session_state["cmp_tab"] = "Layer predictions"
    at.run()
    at.number_input(key="cmp_lens_n").set_value(6).run()
    ok(at)
    assert not figures(at) and press_record(at) == 2  # one readout per state
    ok(at)
    (fig,) = figures(at)
    labels = [n for n in (t.name for t in fig.data) if n and n.startswith("P(en) · ") and "band" not in n]
    assert len(labels) == 2
    alone = build({"analysis": "latent", "model": other.to_dict(), "params": {"max_items": 6}}).table
    np.testing.assert_array_equal(trace_y(fig, labels[1]), alone["p_en"].to_numpy())

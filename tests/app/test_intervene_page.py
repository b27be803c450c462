"""The Intervene page: a preview of generations before and after from the warm worker, a kept state listed
on Compare, and an experiment view built in the worker and drawn with its table (tiny model)."""

from __future__ import annotations

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from test_pages import app as open_app
from test_pages import figures, ok, wait_warm_jobs

from workbench import models
from workbench.config import CorpusSpec, ModelSpec
from workbench.interventions import saved
from workbench.interventions.jobs import preview_prompts
from workbench.jobs.warm import WARM
from workbench.recipes.settings import TINY_ENV, Settings

SETTINGS = Settings(model=ModelSpec(source="tiny:llama"), corpus=CorpusSpec(source="udhr", langs=("en", "sw"),
                                                                            limit=8))


@pytest.fixture(autouse=True)
def _tiny(monkeypatch):
    monkeypatch.setenv(TINY_ENV, "1")
    monkeypatch.setattr(models, "bundled_status", lambda name: "installed")


def app(page: str) -> AppTest:
    return open_app(page, SETTINGS, timeout=120)


def test_preview_shows_generations_before_and_after_and_keeps_the_state_for_compare():
    at = app("app_pages/intervene.py")
    ok(at)
    at.radio(key="iv_kind").set_value("vector").run()
    at.selectbox(key="iv_src").set_value("en").run()
    at.selectbox(key="iv_tgt").set_value("sw").run()
    at.number_input(key="iv_alpha").set_value(8.0).run()
    ok(at)
    assert any("--intervention vector:src=en,tgt=sw,alpha=8" in c.value for c in at.caption)
    [button] = [b for b in at.button if b.label == "Preview"]
    button.click().run()
    [job] = WARM.jobs("intervene_preview")
    assert job.request()["lane"] == "quick"  # beside a long recording, not behind it
    wait_warm_jobs()
    at.run()
    ok(at)
    rows = at.dataframe[0].value
    assert list(rows["prompt"]) == preview_prompts(SETTINGS.corpus, "en")  # held out: after the Setup's limit
    assert {"before", "after", "before_lang", "after_lang"} <= set(rows.columns)
    assert (rows["before"] != rows["after"]).any()  # α = 8 on a random model changes what it says
    [keep] = [b for b in at.button if b.label == "Keep for Compare"]
    keep.click().run()
    kept = saved.kept_states()
    assert len(kept) == 1 and kept[0]["label"] == "vector en→sw α=8"
    spec = ModelSpec.from_dict(kept[0]["model"])
    assert spec.interventions and all(iv.resolved for iv in spec.interventions)
    assert models.fingerprint(spec) != models.fingerprint(SETTINGS.model)
    cmp = app("app_pages/compare.py")
    ok(cmp)
    assert "Intervened: vector en→sw α=8" in cmp.selectbox(key="cmp_b").options  # a Compare column
    assert "iv-vector en→sw α=8" in cmp.selectbox(key="cmp_eval_ref").options  # Scores: with its base


def test_an_experiment_is_built_in_the_worker_and_drawn_with_its_table():
    at = app("app_pages/intervene.py")
    at.radio(key="iv_view").set_value("Steering curve").run()
    ok(at)
    at.text_input(key="iv_steering_alphas").set_value("0, 4").run()  # a list of numbers, comma-separated
    at.number_input(key="iv_steering_eval_limit").set_value(2).run()
    at.number_input(key="iv_steering_max_new_tokens").set_value(4).run()
    ok(at)
    assert not figures(at)
    [button] = [b for b in at.button if b.label == "Compute"]
    button.click().run()
    assert [j.request()["kind"] for j in WARM.jobs()] == ["view"]
    wait_warm_jobs()
    at.run()
    ok(at)
    assert figures(at)
    table = at.dataframe[0].value if at.dataframe else None
    assert isinstance(table, pd.DataFrame) and set(table["metric"]) >= {"fidelity"}
    assert [b.label for b in at.button if b.label.startswith("Compute")] == ["Compute again"]


def test_the_every_analysis_page_sends_the_intervention_experiments_to_the_intervene_page():
    at = app("app_pages/analyses.py")
    at.selectbox(key="an_analysis").set_value("deactivation").run()
    ok(at)
    assert any("computed in the model worker on the Intervene page" in i.value for i in at.info)
    assert not figures(at) and not WARM.jobs()  # nothing evaluated in the page, nothing started

"""App test: the Setup page's "Record on NDIF" option, offline (issue 14, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from nnsight import CONFIG
from streamlit.testing.v1 import AppTest

from workbench import recordings
from workbench.config import CorpusSpec, ModelSpec
from workbench.jobs.warm import WARM
from workbench.models import checks
from workbench.recipes.settings import TINY_ENV, TINY_MODEL, Settings

APP = str(Path(__file__).resolve().parents[2] / "app.py")
HUB = Settings(model=ModelSpec(source="meta-llama/Llama-3.1-8B"),
                  corpus=CorpusSpec(source="udhr", langs=("en", "sw"), limit=3))


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv(TINY_ENV, "1")
    monkeypatch.setattr(checks, "check_model_source", lambda spec: checks.ModelCheck(True))  # no hub look-up
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    monkeypatch.setattr(CONFIG.API, "APIKEY", None)
    monkeypatch.setattr(CONFIG.API, "HOST", "https://127.0.0.1:9")  # nothing listens there


def setup_page(settings: Settings) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["wb_settings"] = settings.to_dict()
    at.run()
    at.switch_page("app_pages/setup.py").run()
    return at


def test_ndif_option_offline_says_what_is_missing_and_starts_nothing():
    at = setup_page(HUB)
    assert not at.exception
    box = at.checkbox(key="setup_remote")
    assert box.label == "Record on NDIF (remote)" and box.value is False
    local_key = recordings.job_key(HUB.model, HUB.corpus, HUB.record_spec())
    assert [b.key for b in at.button if b.key == f"rec-{local_key}"]  # recording here is offered
    box.check().run()
    assert not at.exception
    saved = Settings.from_dict(at.session_state["wb_settings"])
    assert saved.remote is True and at.query_params["remote"] == "1"
    errors = [e.value for e in at.error]
    assert len(errors) == 1
    assert errors[0].startswith("Cannot record on NDIF: no NDIF API key (set NDIF_API_KEY")
    assert "cannot reach NDIF at https://127.0.0.1:9" in errors[0]
    key = recordings.job_key(HUB.model, HUB.corpus, HUB.record_spec(), remote=True)
    assert key != local_key
    assert not [b for b in at.button if b.key and b.key.startswith("rec-")]  # no Record button
    assert WARM.get(key) is None and WARM.get(local_key) is None  # nothing started


def test_ndif_option_is_offered_for_hub_ids_only():
    at = setup_page(Settings(model=ModelSpec(source=TINY_MODEL), corpus=HUB.corpus))
    assert not at.exception
    assert not [c for c in at.checkbox if c.key == "setup_remote"]

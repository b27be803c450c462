"""The Fine-tune page offers a "Processes" field only when more than one GPU is visible."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from workbench import models, ranks
from workbench.config import CorpusSpec, ModelSpec
from workbench.recipes.settings import TINY_ENV, TINY_MODEL, Settings

APP = str(Path(__file__).resolve().parents[2] / "app.py")
SETTINGS = Settings(model=ModelSpec(source=TINY_MODEL),
                       corpus=CorpusSpec(source="udhr", langs=("en", "zh", "sw"), limit=6))


@pytest.mark.parametrize(("gpus", "shown"), [(0, False), (1, False), (4, True)])
def test_processes_field_only_with_several_gpus(monkeypatch, gpus, shown):
    monkeypatch.setenv(TINY_ENV, "1")
    monkeypatch.setattr(models, "bundled_status", lambda name: "installed")
    monkeypatch.setattr(ranks, "visible_devices", lambda: gpus)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["wb_settings"] = SETTINGS.to_dict()
    at.run()
    at.switch_page("app_pages/finetune.py").run()
    assert not at.exception, [e.value for e in at.exception]
    fields = [n for n in at.number_input if n.label == "Processes"]
    assert bool(fields) == shown
    if shown:
        assert fields[0].value == 1 and fields[0].max == gpus

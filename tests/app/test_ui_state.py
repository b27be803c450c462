"""The browser UI keeps its state (issue 13): URL settings, shared jobs, corpus switches, progress, labels.

Reload, a new tab and a bookmark are new Streamlit sessions that only have the URL: these
tests open pages with nothing but `at.query_params` (AppTest's URL) and check that the
Setup choices come back. Jobs live in the process-wide registry, so a second AppTest is a
second tab. The real browser (reload, a second tab) is tests/browser/test_browser.py.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
import test_pages
from streamlit.testing.v1 import AppTest
from test_pages import APP, LANGS, SETTINGS, VIEWS, figures, ok, title, trace

from workbench import recordings
from workbench import ui_support as ui
from workbench.config import CorpusSpec, ModelSpec
from workbench.jobs.progress import Snapshot
from workbench.jobs.threads import JOBS
from workbench.viz.theme import SERIES_COLOR, language_color

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pages` is a folder of the checkout, not an installed package
    sys.path.insert(0, str(ROOT))

from pages._ui import recording as ui_rec  # noqa: E402
from pages._ui import state as ui_state  # noqa: E402

# test_pages.py's fixtures: the tiny-model environment and the store recorded once per module.
_tiny_env = test_pages._tiny_env
_recorded_store = test_pages._recorded_store
recording = test_pages.recording
pair_recording = test_pages.pair_recording


def from_url(page: str | None, query: dict[str, str]) -> AppTest:
    """A fresh session (reload, new tab, bookmark) that has only the URL's parameters."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    if page:
        at.switch_page(page)  # opened directly: the first run of the session is this page's
    return at.run()


def setup_langs(at: AppTest):
    return next(m for m in at.multiselect if m.key.startswith("setup_langs"))


def sidebar_text(at: AppTest) -> list[str]:
    return [c.value for c in at.sidebar.caption]


# --------------------------------------------------------------------------- 1: settings in the URL


@pytest.mark.parametrize("settings", [
    SETTINGS,
    ui.Settings(ModelSpec(source="gemma-3-270m", dtype="float16", device="cpu"),
                CorpusSpec(source="tatoeba:sw", langs=("sw", "en")), max_length=128, pooling="last"),
    ui.Settings(ModelSpec(source="Qwen/Qwen2.5-0.5B", revision="main", artifact="/x/artifact"),
                CorpusSpec(source="udhr", langs=("en", "zh", "sw"), limit=12)),
])
def test_url_parameters_round_trip_the_settings(settings):
    query = ui_state._to_query(settings)
    assert all(isinstance(v, str) for v in query.values())
    assert ui_state._from_query(query) == settings
    assert "trust_remote_code" not in query  # a link must never switch on remote code


@pytest.mark.parametrize("query", [{"model": "tiny:llama", "corpus": "udhr", "langs": "en,zh", "pooling": "banana"},
                                   {"model": "tiny:llama", "corpus": "udhr", "langs": "en,zh", "limit": "many"},
                                   {"model": "tiny:llama", "corpus": "udhr"}])
def test_unreadable_url_parameters_fall_back_to_the_defaults(query):
    assert ui_state._from_query(query) is None
    at = from_url(None, query)
    assert not at.exception
    assert at.selectbox(key="setup_corpus").value == "udhr"


def test_setup_widgets_start_from_the_url():
    at = from_url(None, ui_state._to_query(SETTINGS))
    ok(at)
    assert at.radio(key="setup_model_kind").value == "Tiny test model"
    assert at.number_input(key="setup_limit").value == 6
    assert setup_langs(at).value == list(LANGS)
    assert ui.Settings.from_dict(at.session_state["wb_settings"]) == SETTINGS
    assert at.metric[1].value == "6"  # units per language: the limit, not the corpus's 50


@pytest.mark.parametrize("page", VIEWS)
def test_a_view_opened_from_the_url_shows_the_stored_recording(page, recording):
    at = from_url(page, ui_state._to_query(SETTINGS))
    ok(at)
    assert at.title[0].value != "Setup"
    assert not [b for b in at.button if b.label == "Record now"]  # no offer to record a larger run
    assert figures(at)
    assert ui.Settings.from_dict(at.session_state["wb_settings"]) == SETTINGS
    assert ui_state._from_query(at.query_params) == SETTINGS  # the URL still names the choice



"""The browser UI keeps its state (issue 13): URL settings, shared jobs, corpus switches, progress, labels.

Reload, a new tab and a bookmark are new Streamlit sessions that only have the URL: these
tests open pages with nothing but `at.query_params` (AppTest's URL) and check that the
Setup choices come back. Jobs live in the process-wide registry, so a second AppTest is a
second tab. The real browser (reload, a second tab) is tests/browser/test_browser.py.
"""

from __future__ import annotations

import fcntl
import sys
import time
from pathlib import Path

import pytest
import test_pages
from streamlit.testing.v1 import AppTest
from test_pages import APP, LANGS, SETTINGS, VIEWS, figures, ok, title, trace

from workbench import recordings
from workbench.analysis import retrieval
from workbench.config import CorpusSpec, ModelSpec
from workbench.fileio import atomic_write_json
from workbench.jobs import warm
from workbench.progress import Snapshot
from workbench.viz.theme import SERIES_COLOR, language_color

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pages` is a folder of the checkout, not an installed package
    sys.path.insert(0, str(ROOT))

from app_pages._ui import recording as ui_rec  # noqa: E402
from app_pages._ui import state as ui_state  # noqa: E402
from workbench.models import checks  # noqa: E402
from workbench.recipes.settings import Settings  # noqa: E402

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
    Settings(ModelSpec(source="gemma-3-270m", dtype="float16", device="cpu"),
                CorpusSpec(source="tatoeba:sw", langs=("sw", "en")), max_length=128, pooling="last"),
    Settings(ModelSpec(source="Qwen/Qwen2.5-0.5B", revision="main", artifact="/x/artifact"),
                CorpusSpec(source="udhr", langs=("en", "zh", "sw"), limit=12)),
])
def test_url_parameters_round_trip_the_settings(settings):
    query = ui_state._to_query(settings)
    assert all(isinstance(v, str) for v in query.values())
    assert ui_state._from_query(query) == settings
    assert "trust_remote_code" not in query  # a link must never switch on remote code


@pytest.mark.parametrize(("query", "bad"), [
    ({"pooling": "banana"}, "pooling=banana"),
    ({"limit": "many"}, "limit=many"),
    ({"limit": "-5"}, "limit=-5"),
    ({"device": "tpu"}, "device=tpu"),
    ({"corpus": "/etc/hosts.tsv"}, "corpus=/etc/hosts.tsv"),  # a path outside the data is never opened
    ({"maxlen": "1"}, "maxlen=1"),
    ({"preset": "nope"}, "preset=nope"),
])
def test_an_unusable_url_value_drops_that_choice_with_a_warning_and_keeps_the_others(query, bad):
    good = {"model": "tiny:llama", "corpus": "udhr", "langs": "en,zh", "limit": "6", "pooling": "last"}
    settings, dropped = ui_state._parse_query({**good, **query})
    assert len(dropped) == 1 and bad in dropped[0], dropped
    kept = Settings(ModelSpec(source="tiny:llama"), CorpusSpec("udhr", ("en", "zh"), 6), pooling="last")
    for field in ("model", "corpus", "pooling", "max_length", "preset"):  # everything but the bad value survives
        if field not in {"limit": "corpus", "device": "model", "corpus": "corpus", "maxlen": "max_length",
                         "pooling": "pooling", "preset": "preset"}[next(iter(query))]:
            assert getattr(settings, field) == getattr(kept, field), field
    at = from_url(None, {**good, **query})
    assert not at.exception
    warned = [w.value for w in at.warning if "could not be used and was dropped" in w.value]
    assert len(warned) == 1 and bad in warned[0], [w.value for w in at.warning]
    assert at.selectbox(key="setup_corpus").value == "udhr"
    assert setup_langs(at).value == ["en", "zh"]  # the other choices of the link are kept


def test_setup_widgets_start_from_the_url():
    at = from_url(None, ui_state._to_query(SETTINGS))
    ok(at)
    assert at.radio(key="setup_model_kind").value == "Tiny test model"
    assert at.number_input(key="setup_limit").value == 6
    assert setup_langs(at).value == list(LANGS)
    assert Settings.from_dict(at.session_state["wb_settings"]) == SETTINGS
    assert at.metric[1].value == "6"  # units per language: the limit, not the corpus's 50


@pytest.mark.parametrize("page", VIEWS)
def test_a_view_opened_from_the_url_shows_the_stored_recording(page, recording):
    at = from_url(page, ui_state._to_query(SETTINGS))
    ok(at)
    assert at.title[0].value != "Setup"
    assert not [b for b in at.button if b.label == "Record now"]  # no offer to record a larger run
    assert figures(at)
    assert Settings.from_dict(at.session_state["wb_settings"]) == SETTINGS
    assert ui_state._from_query(at.query_params) == SETTINGS  # the URL still names the choice




# --------------------------------------------------------------------------- 2: every tab sees the running job


@pytest.fixture
def gated_job():
    """A recording job of SETTINGS in the model worker's files, at 6 of 18 sentences, until the test finishes it.

    The test holds the worker's lock and writes the status as the worker would (the pages
    only ever read these files), so the job waits exactly where the test wants it.
    """
    root = warm.worker_root()
    key = recordings.job_key(SETTINGS.model, SETTINGS.corpus, SETTINGS.record_spec())
    label = "Recording · " + recordings.job_label(SETTINGS.model, SETTINGS.corpus)
    lock = open(root / "worker.lock", "a")  # noqa: SIM115 - held for the test, as the worker would
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    d = root / "jobs" / key
    d.mkdir(parents=True)
    atomic_write_json(d / "request.json", {"kind": "record", "label": label, "args": {}, "submitted": time.time()})
    started = time.time()
    atomic_write_json(d / "status.json", {"state": "running", "message": "recording en", "done": 6, "total": 18,
                                          "unit": "sentences", "started": started})

    def finish():
        atomic_write_json(d / "status.json", {"state": "done", "message": "done", "done": 18, "total": 18,
                                              "unit": "sentences", "started": started, "finished": time.time()})

    job = warm.WARM.get(key)
    yield job, finish
    lock.close()


def progress_texts(at: AppTest) -> list[str]:
    return [el.proto.text for el in at.get("progress")]


def test_a_second_tab_shows_the_running_job_and_then_its_outcome(gated_job):
    job, finish = gated_job
    query = ui_state._to_query(SETTINGS)
    tabs = [from_url(None, query), from_url("app_pages/neurons.py", query)]
    for at in tabs:
        ok(at)
        assert "Working in the background (the model worker)" in sidebar_text(at)
        assert any("recording en · 6/18 sentences" in t for t in progress_texts(at)), progress_texts(at)
        assert not [b for b in at.button if b.label in ("Record", "Record now")]  # joined, not offered again
    finish()
    assert job.wait(10)
    for at in tabs:
        at.run()
        assert not at.exception
        side = sidebar_text(at)
        assert "Working in the background (the model worker)" not in side  # not stale
        assert any("finished in" in c and job.label in c for c in side), side
        assert not any("6/18" in t for t in progress_texts(at))


# --------------------------------------------------------------------------- 3: corpus switch


def test_a_corpus_switch_keeps_the_languages_it_has_and_names_the_dropped_ones():
    at = from_url(None, ui_state._to_query(SETTINGS))
    at.selectbox(key="setup_corpus").set_value("tatoeba:sw").run()
    ok(at)
    assert setup_langs(at).value == ["en", "sw"]  # zh is not in tatoeba:sw
    said = [i.value for i in at.info if "dropped" in i.value]
    assert len(said) == 1 and "zh (Chinese)" in said[0] and "kept en, sw" in said[0], said
    saved = Settings.from_dict(at.session_state["wb_settings"])
    assert saved.corpus.source == "tatoeba:sw" and saved.corpus.langs == ("en", "sw")
    # The note stays while this corpus is chosen, through other changes.
    at.selectbox(key="setup_pooling").set_value("last").run()
    assert any("zh (Chinese)" in i.value for i in at.info)


def test_a_corpus_without_any_chosen_language_says_so_and_starts_from_its_defaults():
    chosen = Settings(SETTINGS.model, CorpusSpec(source="udhr", langs=("zh", "sw"), limit=6))
    at = from_url(None, ui_state._to_query(chosen))
    at.selectbox(key="setup_corpus").set_value("tatoeba:ar").run()
    ok(at)
    warned = [w.value for w in at.warning if "None of the languages" in w.value]
    assert len(warned) == 1 and "zh (Chinese)" in warned[0] and "sw (Swahili)" in warned[0], warned
    assert setup_langs(at).value == ["en", "ar"]
    assert "en, ar" in warned[0]


# --------------------------------------------------------------------------- 4: progress text


def snap(done: int, eta: float | None, *, state: str = "running", key: str = "eta-test") -> Snapshot:
    return Snapshot(key, "record", "label", state, "recording zh", done, 18, 30.0, 0.5 if eta else None, eta,
                    unit="sentences")


def test_eta_counts_down_between_reports_and_never_climbs_while_waiting():
    # The meter's estimate grows while a batch runs (no report, the windowed rate falls):
    # the shown ETA counts down from the estimate at the last report instead.
    assert "ETA 20 s" in ui_rec.progress_text(snap(6, 20.0), now=100.0)
    assert "ETA 15 s" in ui_rec.progress_text(snap(6, 26.0), now=105.0)
    assert "ETA: any moment" in ui_rec.progress_text(snap(6, 40.0), now=125.0)
    # A new report: the new estimate, counting down again.
    text = ui_rec.progress_text(snap(12, 12.0), now=126.0)
    assert "12/18 sentences" in text and "ETA 12 s" in text and "2.0 s per sentence" in text  # never "0.0 …/s"
    assert "ETA 10 s" in ui_rec.progress_text(snap(12, 30.0), now=128.0)
    # No rate yet: said, not a number.
    assert "ETA: estimating" in ui_rec.progress_text(snap(0, None, key="fresh"), now=1.0)
    # Finished: an outcome, never a running line.
    assert ui_rec.outcome_text(snap(18, None, state="done")) == "finished in 30 s"
    assert ui_rec.shown_eta(snap(18, None, state="done")) is None


def test_setup_says_languages_times_sentences_after_recording(tiny_state):
    from workbench.recordings import ensure_recording

    ensure_recording(SETTINGS.model, SETTINGS.corpus, SETTINGS.record_spec(), state=tiny_state)
    key = recordings.job_key(SETTINGS.model, SETTINGS.corpus, SETTINGS.record_spec())
    job = recordings.start_recording(SETTINGS.model, SETTINGS.corpus, SETTINGS.record_spec())  # the worker's run
    assert job.key == key and job.wait(300) and job.snapshot().state == "done", job.snapshot()
    at = from_url(None, ui_state._to_query(SETTINGS))
    ok(at)
    said = [x.value for x in at.success]
    assert any(x.startswith("Recorded 3 languages × 6 sentences in ") for x in said), said
    assert not any("units" in x for x in said)


# --------------------------------------------------------------------------- 5: labels, colours, model checks


def test_english_is_not_drawn_like_the_all_pairs_line(recording):
    at = test_pages.app("app_pages/layer_profile.py")
    at.selectbox(key="lp_pivot").set_value("zh").run()  # with pivot zh, en gets its own line
    ok(at)
    fig = figures(at)[0]
    en, allp, pivot = trace(fig, "en"), trace(fig, "all pairs"), trace(fig, "with pivot")
    assert en.line.color == language_color("en")
    assert allp.line.color == SERIES_COLOR
    assert en.line.color.lower() not in {SERIES_COLOR.lower(), pivot.line.color.lower()}
    assert allp.marker.symbol == "square" and en.marker.symbol == "circle"
    assert allp.line.width > en.line.width
    # No language at all gets a series colour.
    assert all(language_color(c) not in {SERIES_COLOR, pivot.line.color} for c in ("en", "eng", "qaa", "xx", "sw"))


def test_sensitivity_axis_has_a_readable_label(pair_recording):
    at = test_pages.app("app_pages/layer_profile.py")
    ok(at)
    fig = next(f for f in figures(at) if "Projection sensitivity" in title(f))
    assert fig.layout.yaxis.title.text == "sensitivity S<sub>l</sub>"
    assert "S_l" not in fig.to_json()


def test_method_is_a_radio_that_shows_every_label(recording):
    at = test_pages.app("app_pages/layer_profile.py")
    assert sorted(at.radio(key="lp_method").options) == sorted(retrieval.METHODS)  # margin-all too
    assert at.radio(key="lp_method").value == "margin"
    assert "lp_method" not in [b.key for b in at.get("button_group")]


class _Offline(OSError):
    pass


@pytest.mark.parametrize(("source", "said"), [
    ("nobody/no-such-model", "cannot be downloaded here"),
    ("/no/such/model-dir", "does not exist on this machine"),
    ("not a hub id!", "neither an existing path nor a valid Hugging Face hub id"),
])
def test_a_typed_hub_id_or_path_is_checked_at_once(source, said, monkeypatch):
    def offline(repo_id, revision):
        raise _Offline("Name or service not known")

    monkeypatch.setattr(checks, "hub_info", offline)
    at = from_url(None, ui_state._to_query(SETTINGS))
    at.radio(key="setup_model_kind").set_value("Hub id or local path").run()
    at.text_input(key="setup_model_path").input(source).run()
    assert not at.exception
    assert len(at.error) == 1 and said in at.error[0].value and source in at.error[0].value
    assert not [b for b in at.button if b.label == "Record"]  # nothing to fail later with a hub error
    # The choice is not saved: the views keep the last usable one.
    assert Settings.from_dict(at.session_state["wb_settings"]).model == SETTINGS.model


def test_a_hub_id_the_hub_knows_is_offered(monkeypatch):
    monkeypatch.setattr(checks, "hub_info", lambda repo_id, revision: {"id": repo_id})
    at = from_url(None, ui_state._to_query(SETTINGS))
    at.radio(key="setup_model_kind").set_value("Hub id or local path").run()
    at.text_input(key="setup_model_path").input("someone/some-model").run()
    ok(at)
    assert any("will be downloaded" in c.value for c in at.caption)
    assert Settings.from_dict(at.session_state["wb_settings"]).model.source == "someone/some-model"

"""App tests (streamlit.testing.v1.AppTest): every page, empty states, widgets, recording, uploads.

The tiny random-init model (``WORKBENCH_UI_TINY_MODEL=1``), UDHR with 6 units and 3 languages,
and a fresh store per test (tests/conftest.py sets WORKBENCH_CACHE). Recordings the views
need are made directly through the library in the fixtures, to keep the file fast.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from streamlit.testing.v1 import AppTest

from workbench import models, recordings
from workbench.analysis import overlap, retrieval, sensitivity, subspace
from workbench.config import CorpusSpec, ModelSpec
from workbench.corpus import load_corpus_spec, uploads
from workbench.jobs.threads import ThreadRegistry
from workbench.jobs.warm import WARM
from workbench.models import checks
from workbench.recipes.settings import TINY_ENV, TINY_MODEL, Settings
from workbench.recordings import ensure_recording
from workbench.store import Store

APP = str(Path(__file__).resolve().parents[2] / "app.py")
LANGS = ("en", "zh", "sw")
SETTINGS = Settings(model=ModelSpec(source=TINY_MODEL), corpus=CorpusSpec(source="udhr", langs=LANGS, limit=6))
VIEWS = ["app_pages/layer_profile.py", "app_pages/representation_map.py", "app_pages/language_subspaces.py",
         "app_pages/neurons.py"]


@pytest.fixture(autouse=True)
def _tiny_env(monkeypatch):
    monkeypatch.setenv(TINY_ENV, "1")
    # models.bundled_status() assembles a bundled GGUF (~250 MB) in the cache just to report
    # "installed"; every test has a fresh cache, so answer without touching the disk.

    monkeypatch.setattr(models, "bundled_status", lambda name: "installed")


@pytest.fixture(scope="module")
def _recorded_store(tiny_state, tmp_path_factory):
    """One store with the main recording and the en → zh SiLP pass, made once per module."""
    root = tmp_path_factory.mktemp("recorded")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(root))
        ensure_recording(SETTINGS.model, SETTINGS.corpus, SETTINGS.record_spec(), state=tiny_state)
        ensure_recording(SETTINGS.model, SETTINGS.pair_corpus("en", "zh"), SETTINGS.silp_spec(),
                         pairs=[("en", "zh")], state=tiny_state)
    return root / "store"


def _copy_units(src: Path, keys: list[str]) -> None:
    dst = Store().root
    for key in keys:
        shutil.copytree(src / key[:2] / key, dst / key[:2] / key)


@pytest.fixture
def recording(_recorded_store, tiny_state):
    """The main recording of SETTINGS in this test's store (copied: recorded once per module)."""

    corpus = load_corpus_spec(SETTINGS.corpus)
    keys = [recordings.unit_key(tiny_state.fingerprint, corpus, u, SETTINGS.record_spec()) for u in LANGS]
    _copy_units(_recorded_store, keys)
    return ensure_recording(SETTINGS.model, SETTINGS.corpus, SETTINGS.record_spec(), state=tiny_state)


@pytest.fixture
def pair_recording(_recorded_store, tiny_state, recording):
    """SiLP's pair-template pass for en → zh (the layer profile's default direction)."""

    corpus = load_corpus_spec(SETTINGS.pair_corpus("en", "zh"))
    _copy_units(_recorded_store, [recordings.unit_key(tiny_state.fingerprint, corpus, "en>zh", SETTINGS.silp_spec())])
    return ensure_recording(SETTINGS.model, SETTINGS.pair_corpus("en", "zh"), SETTINGS.silp_spec(),
                            pairs=[("en", "zh")], state=tiny_state)


def app(page: str | None = None, settings: Settings | None = SETTINGS, timeout: float = 60) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout)
    if settings is not None:
        at.session_state["wb_settings"] = settings.to_dict()
    at.run()
    if page:
        at.switch_page(page).run()
    return at


def wait_warm_jobs(timeout: float = 300) -> None:
    """Every job of the app's model worker finished, none failed."""
    for j in WARM.jobs():
        assert j.wait(timeout), j.snapshot()
        assert j.snapshot().state != "failed", j.snapshot().error


def ok(at: AppTest) -> None:
    """No exception and no error alert on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def figures(at: AppTest) -> list[go.Figure]:
    """The plotly figures on the page, decoded (arrays as numpy)."""
    return [pio.from_json(el.proto.spec, skip_invalid=True) for el in at.get("plotly_chart")]


def title(fig: go.Figure) -> str:
    return fig.layout.title.text or ""


def trace(fig: go.Figure, name: str):
    return next(t for t in fig.data if t.name == name)


def arr(v) -> np.ndarray:
    """A plotly array, decoded if it is in plotly's typed-array form ({"bdata", "dtype", "shape"})."""
    if isinstance(v, dict) and "bdata" in v:
        out = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return out.reshape([int(n) for n in str(v["shape"]).split(",")]) if "shape" in v else out
    return np.asarray(v)


def ys(t) -> np.ndarray:
    return arr(t.y).astype(float)


def xs(t) -> list:
    return arr(t.x).tolist()


# --------------------------------------------------------------------------- setup


def test_setup_defaults_to_bundled_gemma_and_udhr():
    at = app(settings=None)
    assert not at.exception
    assert at.radio(key="setup_model_kind").value == "Bundled model"
    assert "Tiny test model" in at.radio(key="setup_model_kind").options
    assert at.selectbox(key="setup_bundled").value == "gemma-3-270m"
    assert at.selectbox(key="setup_corpus").value == "udhr"
    langs = next(m for m in at.multiselect if m.key.startswith("setup_langs"))
    assert langs.value == ["en", "zh", "sw", "ar", "hi", "es", "fr", "ja"]


def test_setup_records_in_background_and_keeps_the_run():
    at = app()
    ok(at)
    assert at.radio(key="setup_model_kind").value == "Tiny test model"
    assert "0 / 3" in at.metric[0].value
    assert any(c.value.startswith("Not stored yet (3): en, zh, sw") for c in at.caption)
    at.button(key=f"rec-{recordings.job_key(SETTINGS.model, SETTINGS.corpus, SETTINGS.record_spec())}").click().run()
    ok(at)
    job = WARM.get(recordings.job_key(SETTINGS.model, SETTINGS.corpus, SETTINGS.record_spec()))
    assert job is not None and job.wait(300), "recording did not finish"
    snap = job.snapshot()
    assert snap.state == "done" and snap.done == snap.total == 18
    at.run()
    ok(at)
    assert any("Recorded 3 languages × 6 sentences" in s.value for s in at.success)
    assert at.metric[0].value == "3 / 3"
    stored = at.dataframe[0].value
    assert list(stored["unit"]) == ["en", "zh", "sw"] and not stored.isna().any().any()  # no "None" cells
    assert not any(c.value.startswith("Not stored yet") for c in at.caption)
    # Leave the page and come back: the same (finished) run is shown, nothing restarts.
    at.switch_page("app_pages/neurons.py").run()
    at.switch_page("app_pages/setup.py").run()
    ok(at)
    assert any("Recorded 3 languages × 6 sentences" in s.value for s in at.success)
    assert WARM.get(job.key).key == job.key and WARM.get(job.key).snapshot().state == "done"
    # A second session (another tab) asking for the same thing shares the run.
    other = app("app_pages/setup.py")
    assert any("Recorded 3 languages × 6 sentences" in s.value for s in other.success)


def test_setup_widgets_update_settings():
    at = app()
    at.number_input(key="setup_limit").set_value(4).run()
    at.selectbox(key="setup_pooling").set_value("last").run()
    ok(at)
    saved = Settings.from_dict(at.session_state["wb_settings"])
    assert saved.corpus.limit == 4 and saved.pooling == "last" and saved.model.source == TINY_MODEL
    langs = next(m for m in at.multiselect if m.key.startswith("setup_langs"))
    langs.set_value(["en"]).run()
    assert any("at least two languages" in w.value for w in at.warning)


def test_bad_upload_shows_corpus_error():
    at = app()
    at.selectbox(key="setup_corpus").set_value("__upload__").run()
    bad = "en\tsw\nHello\tJambo\nOnly English here\n".encode()
    at.file_uploader(key="setup_upload").set_value(("unaligned.tsv", bad, "text/tab-separated-values")).run()
    assert not at.exception
    messages = [e.value for e in at.error]
    assert len(messages) == 1
    assert "unaligned.tsv:3" in messages[0] and "expected 2 tab-separated columns" in messages[0]
    assert "no text for language 'sw'" in messages[0]


def test_good_upload_becomes_the_corpus():
    at = app()
    at.selectbox(key="setup_corpus").set_value("__upload__").run()
    good = "id\ten\tsw\n1\tHello\tJambo\n2\tThank you\tAsante\n3\tWater\tMaji\n".encode()
    at.file_uploader(key="setup_upload").set_value(("greetings.tsv", good, "text/tab-separated-values")).run()
    ok(at)
    saved = Settings.from_dict(at.session_state["wb_settings"])
    assert uploads.is_upload(saved.corpus.source) and saved.corpus.source.endswith("greetings.tsv")
    assert saved.corpus.langs == ("en", "sw")


# --------------------------------------------------------------------------- empty states


@pytest.mark.parametrize("page", VIEWS)
def test_views_without_a_recording_offer_to_record(page):
    at = app(page)
    ok(at)
    assert any("nothing complete is stored" in i.value for i in at.info)
    assert [b.label for b in at.button] == ["Record now"]
    assert not at.get("plotly_chart")


def test_a_language_missing_from_the_corpus_is_a_readable_error():
    bad = Settings(SETTINGS.model, CorpusSpec(source="udhr", langs=("en", "klingon"), limit=6))
    at = app("app_pages/layer_profile.py", settings=bad)
    assert not at.exception
    assert len(at.error) == 1
    assert "klingon" in at.error[0].value and "Setup page" in at.error[0].value


def test_a_missing_model_path_is_said_before_recording(tmp_path):
    missing = Settings(ModelSpec(source=str(tmp_path / "no-such-model")), SETTINGS.corpus)
    at = app("app_pages/neurons.py", settings=missing)
    assert not at.exception
    assert len(at.error) == 1 and "no-such-model" in at.error[0].value and "does not exist" in at.error[0].value
    assert "Setup page" in at.error[0].value
    assert not at.button  # no Record button for a model that cannot be had


def test_a_failed_recording_shows_what_went_wrong(tmp_path, monkeypatch):
    # Pretend the model check passed (say, the path vanished after it): the job fails, and says why.
    monkeypatch.setattr(checks, "check_model_source", lambda spec: checks.ModelCheck(True))
    missing = Settings(ModelSpec(source=str(tmp_path / "vanished-model")), SETTINGS.corpus)
    at = app("app_pages/neurons.py", settings=missing)
    ok(at)
    assert any("could not be checked" in i.value for i in at.info)
    at.button[0].click().run()
    job = WARM.get(recordings.job_key(missing.model, missing.corpus, missing.record_spec()))
    assert job is not None and job.wait(300)
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "does not exist" in at.error[0].value
    assert "Traceback" not in at.error[0].value
    assert [b.label for b in at.button] == ["Record now"]  # offered again


# --------------------------------------------------------------------------- views


@pytest.mark.parametrize("page", VIEWS)
def test_views_render_with_downloads(page, recording):
    at = app(page)
    ok(at)
    assert at.title[0].value
    figs = at.get("plotly_chart")
    assert figs
    html_buttons = [b for b in at.get("download_button") if b.proto.label == "Figure (HTML)"]
    assert len(html_buttons) == len(figs)


def test_layer_profile_numbers_follow_the_library_and_the_method(recording):
    at = app("app_pages/layer_profile.py")
    ok(at)
    vectors = recording.vectors("mean")
    for method in ("margin", "cosine", "mexa"):
        if method != "margin":
            at.radio(key="lp_method").set_value(method).run()
            ok(at)
        expected = retrieval.summarize_by_layer(retrieval.retrieval_by_layer(
            vectors, method=method, k=4, pivot="en", layer_labels=recording.layer_labels))
        shown = trace(figures(at)[0], "all pairs")
        want = expected[expected["series"] == "all_pairs"]
        assert xs(shown) == [str(x) for x in want["layer"]]
        np.testing.assert_allclose(ys(shown), want["accuracy"].to_numpy())
    at.radio(key="lp_method").set_value("margin").run()
    margin = ys(trace(figures(at)[0], "all pairs"))
    at.radio(key="lp_method").set_value("cosine").run()
    cosine = ys(trace(figures(at)[0], "all pairs"))
    assert not np.allclose(margin, cosine)
    # View choices survive a visit to another page.
    at.switch_page("app_pages/neurons.py").run()
    at.switch_page("app_pages/layer_profile.py").run()
    assert at.radio(key="lp_method").value == "cosine"
    np.testing.assert_allclose(ys(trace(figures(at)[0], "all pairs")), cosine)



def test_layer_profile_without_pair_pass_offers_it(recording):
    at = app("app_pages/layer_profile.py")
    ok(at)
    assert any("en → zh" in i.value for i in at.info)
    assert "Record en → zh pass" in [b.label for b in at.button]


def test_sensitivity_allocation_follows_k1_k2(pair_recording):
    at = app("app_pages/layer_profile.py")
    ok(at)
    fig = next(f for f in figures(at) if "Projection sensitivity" in title(f))
    scores = sensitivity.projection_sensitivity(np.asarray(pair_recording.entries["en>zh"]["ffn_layer_mean"]))
    split = sensitivity.default_split(len(scores))
    n2d, d2n = sensitivity.allocate_layers(scores, split=split, k1=min(4, split), k2=min(4, 3 - split))
    assert [int(x) for x in xs(trace(fig, "N2D layers"))] == n2d
    np.testing.assert_allclose(ys(trace(fig, "N2D layers")), scores[n2d], rtol=1e-6)
    at.number_input(key=f"lp_k1_{split}").set_value(1).run()
    ok(at)
    fig = next(f for f in figures(at) if "Projection sensitivity" in title(f))
    n2d1, _ = sensitivity.allocate_layers(scores, split=split, k1=1, k2=min(4, 3 - split))
    assert [int(x) for x in xs(trace(fig, "N2D layers"))] == n2d1 and len(n2d1) == 1



def test_map_layer_and_method_change_the_figures(recording):
    at = app("app_pages/representation_map.py")
    ok(at)
    before = figures(at)
    at.select_slider(key="map_layer").set_value("emb").run()
    ok(at)
    after = figures(at)
    assert "layer emb" in title(after[0])
    assert not np.allclose(ys(after[0].data[0]), ys(before[0].data[0]))
    matrix = retrieval.retrieval_matrix({u: v[0] for u, v in recording.vectors("mean").items()}, method="margin")
    np.testing.assert_allclose(arr(after[1].data[0].z).astype(float), matrix.to_numpy(), equal_nan=True)
    at.toggle(key="map_links").set_value(True).run()
    assert figures(at)[0].data[0].name == "translations"


def test_subspaces_match_the_library(recording):
    at = app("app_pages/language_subspaces.py")
    ok(at)
    sep = subspace.separation_by_layer(recording.vectors("mean"), central="en", holdout=True,
                                       layer_labels=recording.layer_labels)
    fig = figures(at)[1]
    np.testing.assert_allclose(ys(trace(fig, "specific projection")), sep["specific_ratio"], rtol=1e-6)
    at.number_input(key="sub_rank").set_value(1).run()
    ok(at)
    sep1 = subspace.separation_by_layer(recording.vectors("mean"), rank=1, central="en", holdout=True,
                                        layer_labels=recording.layer_labels)
    np.testing.assert_allclose(ys(trace(figures(at)[1], "specific projection")), sep1["specific_ratio"], rtol=1e-6)


def test_neurons_match_the_library(recording):
    at = app("app_pages/neurons.py")
    ok(at)
    probs = recording.activation_probs()
    want = overlap.overlap_by_layer(probs, "en", top_frac=0.05)
    np.testing.assert_allclose(ys(trace(figures(at)[0], "zh")), want[want["lang"] == "zh"]["jaccard"])
    at.slider(key="nr_top").set_value(30).run()
    ok(at)
    want = overlap.overlap_by_layer(probs, "en", top_frac=0.30)
    np.testing.assert_allclose(ys(trace(figures(at)[0], "zh")), want[want["lang"] == "zh"]["jaccard"])
    counts = overlap.count_specific(overlap.language_specific_neurons(probs))
    np.testing.assert_array_equal(ys(trace(figures(at)[1], "sw")), counts["sw"].to_numpy())


def test_pooling_setting_reaches_the_views(recording):
    at = app("app_pages/layer_profile.py", settings=Settings(SETTINGS.model, SETTINGS.corpus, pooling="last"))
    ok(at)
    want = retrieval.summarize_by_layer(retrieval.retrieval_by_layer(
        recording.vectors("last"), method="margin", k=4, pivot="en", layer_labels=recording.layer_labels))
    np.testing.assert_allclose(ys(trace(figures(at)[0], "all pairs")),
                               want[want["series"] == "all_pairs"]["accuracy"])


# --------------------------------------------------------------------------- the settings module (no UI)


def test_settings_do_not_import_streamlit():
    code = "import sys, workbench.recipes.settings; print(any(m.split('.')[0] == 'streamlit' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"



def test_registry_shares_a_running_job_and_replaces_a_failed_one():
    import threading

    reg = ThreadRegistry()
    gate = threading.Event()
    first = reg.submit("k", "label", lambda job: gate.wait(10) and "result")
    assert reg.submit("k", "label", lambda job: "other") is first
    gate.set()
    assert first.wait(10) and first.snapshot().result == "result"
    assert reg.submit("k", "label", lambda job: "other") is first  # done: reused
    again = reg.submit("k", "label", lambda job: "again", rerun_done=True)  # unless asked to rerun
    assert again is not first and again.wait(10) and again.snapshot().result == "again"

    def boom(job):
        raise FileNotFoundError(2, "No such file", "/nope.tsv")

    failed = reg.submit("bad", "label", boom)
    failed.wait(10)
    assert failed.snapshot().state == "failed" and "/nope.tsv" in failed.snapshot().error
    assert reg.submit("bad", "label", lambda job: 1) is not failed


def test_cancel_stops_at_the_next_progress_call():
    reg = ThreadRegistry()

    def work(job):
        job.cancel()
        job.progress(1, 10, "recording en")
        return "never"

    job = reg.submit("c", "label", work)
    assert job.wait(10) and job.snapshot().state == "cancelled"


def test_the_worker_memory_budget_is_a_setting_the_worker_reads():
    from workbench.jobs import warm

    at = app()
    ok(at)
    box = at.number_input(key="setup_worker_gb")
    assert box.value == warm.default_memory_gb() and "memory_gb" not in warm.read_settings()
    box.set_value(box.value / 4).run()
    ok(at)
    assert warm.read_settings()["memory_gb"] == pytest.approx(warm.default_memory_gb() / 4)
    assert warm.memory_budget_gb() == pytest.approx(warm.default_memory_gb() / 4)
    assert app().number_input(key="setup_worker_gb").value == pytest.approx(warm.default_memory_gb() / 4)

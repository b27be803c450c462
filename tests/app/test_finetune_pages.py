"""App tests of the Fine-tune and Compare pages (streamlit.testing.v1.AppTest, tiny model).

Jobs are real worker processes on `tiny:llama` (a couple of steps, seconds). The
tests of this module share one cache (jobs and store), so the job the Fine-tune test
starts is the tuned state the Compare test compares with its base.
"""

from __future__ import annotations

import base64
import dataclasses
import time
from pathlib import Path

import numpy as np
import plotly.io as pio
import pytest
from streamlit.testing.v1 import AppTest

from workbench import models
from workbench.config import CorpusSpec, ModelSpec
from workbench.finetune import jobs
from workbench.finetune import jobs as finetune_jobs
from workbench.jobs.warm import WARM
from workbench.recipes.settings import TINY_ENV, TINY_MODEL, Settings

APP = str(Path(__file__).resolve().parents[2] / "app.py")
SETTINGS = Settings(model=ModelSpec(source=TINY_MODEL),
                       corpus=CorpusSpec(source="udhr", langs=("en", "zh", "sw"), limit=6))
TIMEOUT = 120


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tune-cache")


@pytest.fixture(autouse=True)
def _env(_isolated_cache, cache, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(cache))
    monkeypatch.setenv(TINY_ENV, "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the workers: a tiny model on a shared machine
    from workbench import models

    monkeypatch.setattr(models, "bundled_status", lambda name: "installed")


def app(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["wb_settings"] = SETTINGS.to_dict()
    at.run()
    at.switch_page(page).run()
    return at


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def figures(at: AppTest) -> list:
    return [pio.from_json(el.proto.spec, skip_invalid=True) for el in at.get("plotly_chart")]


def arr(v) -> np.ndarray:
    if isinstance(v, dict) and "bdata" in v:
        out = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return out.reshape([int(n) for n in str(v["shape"]).split(",")]) if "shape" in v else out
    return np.asarray(v, dtype=float)


def wait(job_id: str) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        status = jobs.job_status(job_id)
        if status["state"] in jobs.FINAL_STATES:
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {jobs.job_status(job_id)}")


def record_missing(at: AppTest) -> None:
    """Click every 'Record state …' button and wait for the background recordings."""
    for _ in range(3):
        buttons = [b for b in at.button if b.key.startswith("cmp-rec-")]
        if not buttons:
            return
        buttons[0].click().run()
        for job in WARM.jobs():
            assert job.wait(300), "recording did not finish"
        at.run()


# --------------------------------------------------------------------------- fine-tune page


def test_finetune_page_shows_the_papers_defaults():
    at = app("app_pages/finetune.py")
    ok(at)
    assert at.radio(key="ft_method").value == "silp"
    assert at.number_input(key="ft_steps").value == 20
    assert at.number_input(key="ft_silp_lr").value == 2e-5
    assert at.selectbox(key="ft_silp_schedule").value == "cosine"
    assert (at.selectbox(key="ft_pivot").value, at.selectbox(key="ft_target").value) == ("en", "zh")
    assert at.radio(key="ft_source").value == "tatoeba:zh"
    assert any("No jobs yet" in c.value for c in at.caption)
    at.radio(key="ft_method").set_value("midalign").run()
    ok(at)
    assert at.number_input(key="ft_midalign_r").value == 8 and at.number_input(key="ft_midalign_tau").value == 0.1
    assert at.selectbox(key="ft_midalign_schedule").value == "inverse_sqrt"
    at.radio(key="ft_method").set_value("lens").run()
    ok(at)
    assert at.number_input(key="ft_lens_lr").value == 1e-5
    assert at.selectbox(key="ft_central").value == "en"
    at.switch_page("app_pages/compare.py").run()  # no job has finished yet: nothing to compare
    ok(at)
    assert any("No tuned or intervened model state yet" in i.value for i in at.info)


def test_silp_layers_are_prefilled_from_a_stored_pair_pass(tiny_state):
    from workbench.recipes import tables as views
    from workbench.recordings import ensure_recording

    rec = ensure_recording(SETTINGS.model, SETTINGS.pair_corpus("en", "zh"), SETTINGS.silp_spec(),
                           pairs=[("en", "zh")], state=tiny_state)
    scores = views.sensitivity_scores(rec, "en>zh")
    _, n2d, d2n, _ = views.allocation_table(scores)
    at = app("app_pages/finetune.py")
    ok(at)
    boxes = {b.key.split("_")[1]: b.value for b in at.text_input if b.key.startswith(("ft_n2d_", "ft_d2n_"))}
    assert boxes == {"n2d": ", ".join(map(str, n2d)), "d2n": ", ".join(map(str, d2n))}
    assert any("Pre-filled from the stored en → zh SiLP pass" in c.value for c in at.caption)
    at.number_input(key="ft_silp_k1").set_value(1).run()  # the allocation follows the knobs
    _, n2d1, _, _ = views.allocation_table(scores, k1=1)
    assert next(b.value for b in at.text_input if b.key.startswith("ft_n2d_")) == ", ".join(map(str, n2d1))


def test_bad_upload_and_bad_option_are_refused_before_start():
    at = app("app_pages/finetune.py")
    at.radio(key="ft_source").set_value("__upload__").run()
    bad = "en\tzh\nHello\t你好\nOnly English here\n".encode()
    at.file_uploader(key="ft_upload").set_value(("pairs.tsv", bad, "text/tab-separated-values")).run()
    assert not at.exception
    assert any("pairs.tsv:3" in e.value and "cannot be used" in e.value for e in at.error)
    assert at.button(key="ft_start").disabled
    at.radio(key="ft_source").set_value("udhr").run()
    at.number_input(key="ft_silp_lr").set_value(0.0).run()
    assert any("lr must be > 0" in e.value for e in at.error)
    assert at.button(key="ft_start").disabled


@pytest.fixture(scope="module")
def long_job(cache):
    """A job that would run for hours (started early, so its worker starts up alongside another test's)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(cache))
        mp.setenv("OMP_NUM_THREADS", "1")
        job_id = jobs.start_job("midalign", {"source": "tiny:llama"},
                                {"source": "udhr", "limit": 8, "max_length": 32},
                                {"align_batch_size": 4, "max_steps": 100000, "epochs": 10000.0}, evaluate=False)
        yield job_id
        jobs.cancel_job(job_id, grace_s=1.0)  # whatever happened in the test, leave no worker behind


def test_short_job_starts_is_listed_and_finishes(long_job):
    at = app("app_pages/finetune.py")
    at.radio(key="ft_source").set_value("udhr").run()
    at.number_input(key="ft_limit").set_value(16).run()
    at.number_input(key="ft_max_length").set_value(48).run()
    at.number_input(key="ft_steps").set_value(2).run()
    at.number_input(key="ft_silp_lr").set_value(1e-3).run()
    next(b for b in at.text_input if b.key.startswith("ft_n2d_")).set_value("1").run()
    next(b for b in at.text_input if b.key.startswith("ft_d2n_")).set_value("2").run()
    ok(at)
    at.button(key="ft_start").click().run()
    ok(at)
    job_id = at.session_state["ft_job"]
    config = jobs.job_status(job_id)["config"]
    assert config["model"]["source"] == "tiny:llama" and config["data"]["source"] == "udhr"
    assert config["spec"]["src"] == "zh" and config["spec"]["tgt"] == "en"  # SiLP: N = target, D = pivot
    assert (config["spec"]["max_steps"], config["spec"]["n2d_layers"], config["spec"]["d2n_layers"]) == (2, [1], [2])
    table = at.dataframe[0].value
    assert job_id in set(table["job"])
    status = wait(job_id)
    assert status["state"] == "done", status.get("reason")
    at.run()
    ok(at)
    row = at.dataframe[0].value.set_index("job").loc[job_id]
    assert row["state"] == "done" and row["steps"] == "4/4" and row["artifact"] == status["artifact"]
    assert any("Done" in x.value for x in at.success)
    loss = figures(at)[0]
    assert [t.name for t in loss.data] == ["n2d", "d2n"]
    assert job_id in [t["job_id"] for t in finetune_jobs.tuned_states()]


def test_running_job_shows_progress_and_can_be_cancelled(long_job):
    job_id = long_job
    deadline = time.monotonic() + TIMEOUT
    while (jobs.job_status(job_id).get("step") or 0) < 1:
        assert time.monotonic() < deadline and jobs.job_status(job_id)["state"] not in jobs.FINAL_STATES
        time.sleep(0.2)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["wb_settings"] = SETTINGS.to_dict()
    at.session_state["ft_job"] = job_id
    at.run()
    at.switch_page("app_pages/finetune.py").run()
    ok(at)
    assert [m.label for m in at.metric] == ["Step", "Loss", "Steps/s", "ETA"]
    assert at.metric[2].value != "—"  # steps/s once a step is done
    at.button(key=f"ft_cancel_{job_id}").click().run()
    assert not at.exception
    assert jobs.job_status(job_id)["state"] == "cancelled"
    assert any("Cancelled" in w.value for w in at.warning)


def test_failed_job_shows_its_reason_and_log(tmp_path):
    tft = tmp_path / "tft.jsonl"  # read by the worker only: the job fails there, with the reason
    tft.write_text("not json at all\n")
    job_id = jobs.start_job("silp", {"source": "tiny:llama"}, {"source": "udhr", "limit": 8},
                            {"src": "en", "tgt": "zh", "tft_file": str(tft), "max_steps": 2})
    assert wait(job_id)["state"] == "failed"
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["wb_settings"] = SETTINGS.to_dict()
    at.session_state["ft_job"] = job_id
    at.run()
    at.switch_page("app_pages/finetune.py").run()
    assert not at.exception
    assert at.selectbox(key="ft_job").value == job_id
    errors = [e.value for e in at.error]
    assert any("The job failed" in e and "tft.jsonl:1: not JSON" in e for e in errors), errors
    row = at.dataframe[0].value.set_index("job").loc[job_id]
    assert row["state"] == "failed" and "not JSON" in row["reason"]
    assert any("Traceback" in c.value for c in at.code)


# --------------------------------------------------------------------------- compare page


@pytest.fixture
def tuned_state() -> dict:
    """A finished tiny job (the Fine-tune test's, or one started here when run alone)."""
    states = finetune_jobs.tuned_states()
    if not states:
        job_id = jobs.start_job("silp", {"source": "tiny:llama"},
                                {"source": "udhr", "limit": 16, "max_length": 48},
                                {"src": "zh", "tgt": "en", "max_steps": 2, "n2d_layers": [1], "d2n_layers": [2],
                                 "lr": 1e-3})
        assert wait(job_id)["state"] == "done"
        states = finetune_jobs.tuned_states()
    return states[0]


def test_compare_base_with_the_tuned_state(tuned_state):
    at = app("app_pages/compare.py")
    ok(at)
    assert at.selectbox(key="cmp_a").value == "base"
    assert at.selectbox(key="cmp_b").value == tuned_state["job_id"]
    assert not [b for b in at.button if b.key.startswith("cmp-rec-")]  # the outcome tabs need no recording
    at.session_state["cmp_tab"] = "Retrieval"
    at.run()
    assert len([b for b in at.button if b.key.startswith("cmp-rec-")]) == 2  # neither state is recorded yet
    record_missing(at)
    ok(at)
    retrieval = figures(at)[0]
    assert [t.name for t in retrieval.data] == ["all pairs · A", "all pairs · B", "all pairs · B − A"]

    at.session_state["cmp_tab"] = "Subspaces"
    at.run()
    ok(at)
    sep = figures(at)[0]
    diffs = np.concatenate([arr(t.y) for t in sep.data if t.name.endswith("B − A")])
    assert np.nanmax(np.abs(diffs)) > 0, "the tuned state should differ from its base somewhere"
    for name in ("specific projection", "agnostic projection"):
        a, b, d = (arr(next(t for t in sep.data if t.name == f"{name} · {x}").y) for x in ("A", "B", "B − A"))
        np.testing.assert_array_equal(d, b - a)

    at.session_state["cmp_tab"] = "Scores"
    at.run()
    at.multiselect(key="cmp_eval_suites").set_value(["loss"]).run()
    ok(at)
    # Computed once: the job's own before/after evaluation is in the store, so the page serves
    # it at once (no Evaluate button, no job) and its numbers are the job's.
    assert "Evaluate" not in [b.label for b in at.button]
    metrics = jobs.job_status(tuned_state["job_id"])["metrics"]
    scores = at.dataframe[0].value.set_index(["suite", "direction", "metric"])
    base, tuned = "tiny:llama", f"silp-{tuned_state['job_id'][-6:]}"
    for d in ("en>zh", "zh>en"):
        assert scores.loc[("loss", d, "loss"), base] == pytest.approx(metrics["eval_before"][f"loss_{d}"], rel=1e-9)
        assert scores.loc[("loss", d, "loss"), tuned] == pytest.approx(metrics["eval_after"][f"loss_{d}"], rel=1e-9)
    assert scores.loc[("loss", "en", "ppl"), f"Δ {tuned}"] == pytest.approx(
        metrics["eval_after"]["ppl_en"] - metrics["eval_before"]["ppl_en"], rel=1e-6)

    for tab in ("Overlap", "Maps", "Sensitivity"):
        at.session_state["cmp_tab"] = tab
        at.run()
        record_missing(at)  # Sensitivity needs SiLP's pair pass of both states
        ok(at)
        assert figures(at), tab


def test_sensitivity_opens_on_the_direction_both_states_have_stored(tuned_state):
    """The tuned direction is the default; when only its reverse is stored, the tab opens on that one."""
    from workbench.recordings import ensure_recording

    settings = Settings(model=SETTINGS.model, corpus=dataclasses.replace(SETTINGS.corpus, limit=5))  # a fresh store
    default = tuple(tuned_state["languages"][:2])
    stored = (default[1], default[0])
    for model in (settings.model, ModelSpec.from_dict(tuned_state["model"])):
        ensure_recording(model, settings.corpus, settings.record_spec())  # what every representation tab reads
        ensure_recording(model, settings.pair_corpus(*stored), settings.silp_spec(), pairs=[stored])
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["wb_settings"] = settings.to_dict()
    at.run()
    at.switch_page("app_pages/compare.py").run()
    at.session_state["cmp_tab"] = "Sensitivity"
    at.run()
    ok(at)
    assert (at.selectbox(key="cmp_src").value, at.selectbox(key="cmp_tgt").value) == stored
    assert not [b for b in at.button if b.key.startswith("cmp-rec-")] and figures(at)
    at.selectbox(key="cmp_src").set_value(default[0]).run()  # the user's choice is kept, not re-picked
    at.selectbox(key="cmp_tgt").set_value(default[1]).run()
    assert (at.selectbox(key="cmp_src").value, at.selectbox(key="cmp_tgt").value) == default


def test_compare_scores_only_the_held_out_units_asked_for(tuned_state):
    """Issue 20: "Held-out units = 1" said "0/2000 sentences" and scored far more; now it scores 1 per direction."""
    at = app("app_pages/compare.py")
    at.session_state["cmp_tab"] = "Scores"
    at.run()
    at.multiselect(key="cmp_eval_suites").set_value(["translation"]).run()
    at.number_input(key="cmp_eval_limit").set_value(1).run()
    ok(at)
    evaluate = [b for b in at.button if b.label == "Evaluate"]
    assert len(evaluate) == 1
    evaluate[0].click().run()
    jobs_ = [j for j in WARM.jobs("evaluate") if j.snapshot().running or j.snapshot().state == "done"]
    assert len(jobs_) == 1
    job = jobs_[0]
    assert job.wait(300), job.snapshot()
    snap = job.snapshot()
    assert snap.state == "done", snap.error
    n_dirs = 2 * (len(tuned_state["languages"]) - 1)
    n_states = len(job.request()["args"]["states"])
    # the progress counted what was scored: one example per direction and state, nothing more
    assert (snap.unit, snap.done, snap.total) == ("examples", n_dirs * n_states, n_dirs * n_states)
    at.run()
    ok(at)
    table = at.dataframe[0].value
    scored = table[table["metric"] != "langid_accuracy"]  # that row validates the identifier on every reference
    assert set(scored["n"].dropna().astype(int)) == {1}  # every score is over the one unit asked for
    assert all("too few for an interval" in str(v) for c in scored.columns if "interval" in c for v in scored[c])


def test_setup_lists_the_tuned_state_and_it_gets_its_own_store_entries(tuned_state):
    at = app("app_pages/setup.py")
    ok(at)
    assert "Tuned state" in at.radio(key="setup_model_kind").options
    at.radio(key="setup_model_kind").set_value("Tuned state").run()
    ok(at)
    assert at.selectbox(key="setup_tuned").value == tuned_state["job_id"]
    spec = Settings.from_dict(at.session_state["wb_settings"]).model
    assert spec.artifact == tuned_state["artifact"]
    # the artifact is part of the fingerprint: the tuned state never reads its base's recordings
    base = models.fingerprint(type(spec)(source=spec.source), download=False)
    assert models.fingerprint(spec, download=False) != base


def test_cctuning_is_offered_and_its_views_show_on_compare():
    at = app("app_pages/finetune.py")
    assert "CC-Tuning" in at.radio(key="ft_method").options  # labels; values are method ids
    at.radio(key="ft_method").set_value("cctuning").run()
    assert not at.exception  # (an earlier test's failed job may legitimately show its error box here)
    assert any(e.label.startswith("CC-Tuning options") for e in at.expander)
    job_id = jobs.start_job("cctuning", {"source": "tiny:llama"},
                            {"source": "udhr", "limit": 16, "max_length": 48},
                            {"lang": "zh", "pivot": "en", "max_steps": 2, "batch_size": 4, "wt_pairs": 8,
                             "curve_points": 3, "eval_items": 4})
    assert wait(job_id)["state"] == "done", jobs.job_status(job_id)
    at = app("app_pages/compare.py")
    # the deterministic variant beside the default (options are shown by their labels)
    assert any(o.endswith("· Decision Maker argmax") for o in at.selectbox(key="cmp_b").options)
    at.selectbox(key="cmp_b").set_value(job_id).run()
    record_missing(at)
    at.session_state["cmp_tab"] = "CC-Tuning"
    at.run()
    ok(at)
    assert len(figures(at)) == 3  # only the open tab is computed: the three CC-Tuning views
    assert len(figures(at)[0].data) == 4  # Fig. 8 for both inference modes (Gumbel, argmax) x (English, W_T)
    captions = " ".join(c.value for c in at.caption)
    assert "Fig. 8" in captions and "Fig. 5" in captions and "|Δ|" in captions

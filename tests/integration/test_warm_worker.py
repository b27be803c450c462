"""The warm model worker: jobs run in one long-lived process that keeps its states loaded, reports honest
progress, survives its clients, is restarted when it dies (its job failed with the reason), and stops with
the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from workbench import models, recordings
from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.evaluation.jobs import start_evaluation
from workbench.examples import DataSpec
from workbench.jobs import warm
from workbench.recordings import store_status
from workbench.warm import NICE

MODEL = ModelSpec(source="tiny:llama")
SPEC = RecordSpec(poolings=("mean",), max_length=32)


@pytest.fixture(autouse=True)
def _stop_workers():
    yield
    warm.stop_workers()


def _wait(job, timeout=180):
    assert job.wait(timeout), job.snapshot()
    return job.snapshot()


def _record(langs, limit=4):
    return recordings.start_recording(MODEL, CorpusSpec("udhr", tuple(langs), limit), SPEC)


def test_a_recording_runs_in_the_worker_and_a_second_one_finds_the_state_loaded():
    first = _wait(_record(["en", "sw"]))
    assert first.state == "done", first.error
    assert (first.unit, first.done, first.total) == ("sentences", 8, 8)  # the sentences computed, no more
    assert first.result["was_loaded"] is False and first.result["fingerprint"] == models.fingerprint(MODEL)
    assert store_status(MODEL, CorpusSpec("udhr", ("en", "sw"), 4), SPEC).recording is not None
    second = _wait(_record(["en", "sw", "fr"]))  # en, sw are stored: only fr is computed
    assert second.state == "done" and second.result["was_loaded"] is True  # served without reloading
    assert (second.done, second.total) == (4, 4)
    state = warm.worker_state()
    assert state["pid"] != os.getpid() and [m["source"] for m in state["loaded"]] == ["tiny:llama"]
    # background work: the worker runs at a lower CPU priority than the app that started it
    assert os.getpriority(os.PRIO_PROCESS, state["pid"]) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICE)
    assert state["budget_bytes"] == int(warm.default_memory_gb() * 2**30)  # the default: half the machine
    warm.write_settings(memory_gb=0.25)  # the setting the app writes; read before each job
    assert _wait(_record(["de"])).state == "done"
    assert warm.worker_state()["budget_bytes"] == 2**28
    again = _record(["en", "sw"])  # done: the same job is returned, nothing is queued
    assert again.snapshot().state == "done"


def test_the_evaluation_counts_the_examples_it_scores():
    data = DataSpec(source="tatoeba:sw", max_length=48)
    job = start_evaluation({"base": MODEL}, ["loss"], data, directions=[("en", "sw"), ("sw", "en")], limit=1)
    snap = _wait(job)
    assert snap.state == "done", snap.error
    # limit 1: one example per direction and one perplexity text, not the held-out set
    assert (snap.unit, snap.done, snap.total) == ("examples", 3, 3) and snap.result["examples"] == 3
    rerun = start_evaluation({"base": MODEL}, ["loss"], data, directions=[("en", "sw"), ("sw", "en")], limit=1,
                             rerun_done=True)
    assert _wait(rerun).total == 0  # everything is in the store now: nothing to compute


def test_cancel_before_the_worker_starts_and_while_it_runs():
    slow = recordings.start_recording(MODEL, CorpusSpec("udhr", ("en", "sw", "fr", "de", "es"), None), SPEC)
    queued = _record(["zh"], limit=3)  # waits behind the first on the heavy lane
    queued.cancel()
    deadline = time.monotonic() + 120
    while slow.snapshot().state == "queued" and time.monotonic() < deadline:
        time.sleep(0.05)
    slow.cancel()
    assert _wait(slow).state == "cancelled"
    assert queued.snapshot().state == "cancelled"


def test_a_killed_worker_fails_its_job_with_the_reason_and_a_new_one_serves_the_queue():
    job = recordings.start_recording(MODEL, CorpusSpec("udhr", ("en", "sw", "fr", "de", "es", "zh"), None), SPEC)
    deadline = time.monotonic() + 120
    while job.snapshot().state != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    after = _record(["ar"], limit=2)
    pid = int((warm.worker_root() / "worker.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    snap = _wait(job, timeout=30)
    assert snap.state == "failed" and "worker process stopped" in snap.error
    assert _wait(after).state == "done"  # a new worker ran the queued job
    assert int((warm.worker_root() / "worker.pid").read_text()) != pid


def test_the_worker_stops_when_the_process_that_started_it_is_gone(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    root = tmp_path / "worker"
    (root / "jobs").mkdir(parents=True)
    worker = subprocess.Popen([sys.executable, "-m", "workbench.warm", str(root), "--parent", str(parent.pid)])
    try:
        deadline = time.monotonic() + 60
        while not warm.worker_alive(root) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert warm.worker_alive(root)
        parent.kill()
        parent.wait()
        assert worker.wait(timeout=20) == 0  # no orphan: it noticed its parent was gone
        assert not warm.worker_alive(root)
    finally:
        for p in (parent, worker):
            if p.poll() is None:
                p.kill()

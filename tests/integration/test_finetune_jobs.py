"""Job lifecycle with real worker processes on the tiny model: done with an artifact,
cancelled by the flag, cancelled by SIGTERM, failed with a reason, and listed after a
"restart" (a fresh `list_jobs`), including a job whose process died."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import fresh_tiny_state, wait_for_job

from workbench.cli.finetune import _follow, add_finetune_parser
from workbench.errors import WorkbenchError
from workbench.examples import DataSpec, build_split
from workbench.finetune import artifact_io, jobs
from workbench.finetune.silp import SiLPSpec, train_silp

TINY = {"source": "tiny:llama"}
DATA = {"limit": 16, "max_length": 48}
LONG = {"max_steps": 100000, "epochs": 10000.0}
TIMEOUT = 150


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench")
    add_finetune_parser(p.add_subparsers(dest="command", required=True))
    return p


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    args = _parser().parse_args(list(argv))
    rc = args.func(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def _wait_for(job_id: str, pred, timeout: float = TIMEOUT) -> dict:
    return wait_for_job(job_id, pred, timeout)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jobs-cache")


@pytest.fixture(autouse=True)
def _use_module_cache(_isolated_cache, cache, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(cache))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny model on a shared machine


@pytest.fixture(scope="module")
def started(cache):
    """Start every job at once (they run concurrently), by the CLI and by the API."""
    old = {k: os.environ.get(k) for k in ("WORKBENCH_CACHE", "OMP_NUM_THREADS")}
    os.environ.update(WORKBENCH_CACHE=str(cache), OMP_NUM_THREADS="1")
    try:
        args = _parser().parse_args(["finetune", "silp", "--model", "tiny:llama", "--pair", "en:sw",
                                     "--limit", "16", "--max-length", "48", "--steps", "2", "--n2d", "1",
                                     "--d2n", "2", "--lr", "1e-3"])
        assert args.func(args) == 0
        done = sorted(p.name for p in (cache / "jobs").iterdir())[0]
        ids = {
            "done": done,
            "cancel": jobs.start_job("midalign", TINY, DATA, {"align_batch_size": 4, **LONG}, evaluate=False),
            "sigterm": jobs.start_job("lens", TINY, DATA, {"samples_per_lang": 8, **LONG}, evaluate=False),
            # a TFT file that is not JSON is read by the worker only: the job fails with the reason
            "bad": jobs.start_job("silp", TINY, DATA, {"tft_file": str(_garbage_jsonl(cache)), "max_steps": 2}),
        }
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield ids
    # the workers are detached (they outlive the app by design): stop any a partial run left going
    os.environ["WORKBENCH_CACHE"] = str(cache)
    try:
        for job_id in ids.values():
            if jobs.job_status(job_id)["state"] not in jobs.FINAL_STATES:
                jobs.cancel_job(job_id, grace_s=10)
    finally:
        if old["WORKBENCH_CACHE"] is None:
            os.environ.pop("WORKBENCH_CACHE", None)
        else:
            os.environ["WORKBENCH_CACHE"] = old["WORKBENCH_CACHE"]


def test_cancel_flag_stops_a_running_job(started):
    job = started["cancel"]
    st = _wait_for(job, lambda s: (s.get("step") or 0) >= 2)
    assert st["state"] == "running", st
    st = jobs.cancel_job(job, grace_s=60)
    assert st["state"] == "cancelled", st
    assert "cancelled at step" in st["reason"]
    assert (Path(st["dir"]) / "cancel").exists() and not (Path(st["dir"]) / "artifact").exists()
    assert jobs.cancel_job(job)["state"] == "cancelled"  # a finished job stays as it is


def test_sigterm_ends_a_job_as_cancelled(started):
    job = started["sigterm"]
    st = _wait_for(job, lambda s: (s.get("step") or 0) >= 1)
    assert st["state"] == "running", st
    os.killpg(int(st["pid"]), signal.SIGTERM)
    st = _wait_for(job, lambda s: False)
    assert st["state"] == "cancelled" and "SIGTERM" in st["reason"], st


def _garbage_jsonl(root: Path) -> Path:
    path = root / "tft.jsonl"
    path.write_text('{"instruction": "ok", "output": "ok"}\nnot json at all\n')
    return path


def test_a_failure_in_the_worker_is_a_failed_job_with_a_clear_reason(started):
    st = _wait_for(started["bad"], lambda s: False)
    assert st["state"] == "failed"
    assert "tft.jsonl:2" in st["reason"] and "not JSON" in st["reason"], st["reason"]
    assert "Traceback" in (Path(st["dir"]) / "log.txt").read_text()


@pytest.mark.parametrize("spec, data, match", [
    ({"src": "xx", "tgt": "en"}, {}, "'xx'"),  # a language the data does not have
    ({"src": "en", "tgt": "fr"}, {}, "'fr'"),  # tatoeba:sw has en and sw only
    ({"n2d_layers": [99]}, {}, "n2d_layers 99 is out of range: tiny:llama has blocks 0…3"),
])
def test_bad_input_is_refused_before_any_job_starts(spec, data, match):
    before = set((jobs.jobs_root()).iterdir())
    with pytest.raises(WorkbenchError, match=match):
        jobs.start_job("silp", TINY, {**DATA, **data}, spec)
    assert set(jobs.jobs_root().iterdir()) == before  # nothing written, no process


def test_done_job_has_progress_and_a_reproducible_artifact(started):
    st = _wait_for(started["done"], lambda s: False)
    assert st["state"] == "done", st
    assert st["step"] == st["total"] == 4 and len(st["history"]) == 4
    assert [h["stage"] for h in st["history"]] == ["n2d", "n2d", "d2n", "d2n"]
    assert st["steps_per_s"] and st["eta_s"] == 0
    assert set(st["metrics"]["eval_before"]) == {"loss_en>sw", "loss_sw>en", "ppl_en"}
    path = Path(st["artifact"])
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["method"] == "silp" and manifest["seed"] == 0
    assert manifest["base_model"]["source"] == "tiny:llama"
    assert manifest["changed"] == sorted(f"model.layers.{i}.mlp.{m}.weight" for i in (1, 2)
                                         for m in ("gate_proj", "up_proj", "down_proj"))
    # the worker's result equals the same training run in this process, bit for bit
    state = fresh_tiny_state()
    assert manifest["base_fingerprint"] == state.fingerprint
    spec = SiLPSpec.from_dict(manifest["spec"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = train_silp(state, build_split(DataSpec.from_dict(manifest["data"]), ("sw", "en")), spec)
    finally:
        torch.set_num_threads(threads)
    tuned = dict(artifact_io.load_tuned(state, path).model.named_parameters())
    for n, p in local.model.named_parameters():
        assert torch.equal(tuned[n], p), n


def test_list_after_restart_shows_every_job_and_dead_workers(started, cache, capsys):
    for job in started.values():
        _wait_for(job, lambda s: False)
    # a job whose worker died without a final word: a real process that has exited
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    d = cache / "jobs" / "silp-00000000-000000-dead00"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"id": d.name, "method": "silp"}))
    (d / "status.json").write_text(json.dumps({"state": "running", "step": 3, "total": 9, "pid": dead.pid,
                                               "created": "2000-01-01T00:00:00+00:00"}))
    jobs._PROCS.clear()  # what a restarted app knows: only the files
    rows = {r["id"]: r for r in jobs.list_jobs()}
    assert {k: rows[v]["state"] for k, v in started.items()} == {
        "done": "done", "cancel": "cancelled", "sigterm": "cancelled", "bad": "failed"}
    assert rows[d.name]["state"] == "failed" and "process died" in rows[d.name]["reason"]
    assert json.loads((d / "status.json").read_text())["state"] == "failed"  # recorded, not only shown
    rc, out, _ = _cli(capsys, "jobs", "ls")
    assert rc == 0 and all(job in out for job in started.values()) and "process died" in out
    rc, out, _ = _cli(capsys, "jobs", "show", started["bad"], "--log", "3")
    assert rc == 0 and '"state": "failed"' in out and "log.txt" in out
    rc, out, _ = _cli(capsys, "jobs", "cancel", started["done"])
    assert rc == 0 and "done" in out
    # what `finetune ... --wait` ends with: the artifact path on stdout, or the reason
    assert _follow(started["done"]) == 0
    assert capsys.readouterr().out.strip() == jobs.job_status(started["done"])["artifact"]
    assert _follow(started["bad"]) == 1
    assert "tft.jsonl:2: not JSON" in capsys.readouterr().err


def test_unknown_job_and_bad_specs_are_refused():
    with pytest.raises(jobs.JobError):
        jobs.job_status("nope")
    with pytest.raises(ValueError, match="unknown field"):
        jobs.start_job("silp", TINY, DATA, {"learning_rate": 1.0})
    with pytest.raises(ValueError, match="unknown fine-tune method"):
        jobs.start_job("sft", TINY, DATA, {})

"""Job status files are checked on every read (issue 21): damage is reported, never rewritten into a false state.

- a done job whose status.json is garbage is `damaged`, its complete artifact named; a
  cancelled one (no artifact) likewise; the file keeps its bytes through `jobs show`,
  `jobs ls`, `wait_job` and `cancel_job`;
- wrong field types are one line in `jobs ls`, `jobs show` and `compare`, never a TypeError;
- `jobs cancel` answers with the state the request leads to: `cancelling` while the worker
  is still stopping, `cancelled` once it has.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from faults import fails_clearly

from workbench import cli, models
from workbench.config import ModelSpec
from workbench.finetune import artifact_io, jobs

CONFIG = {"method": "silp", "model": {"source": "tiny:llama"}, "data": {"source": "tatoeba:sw"}, "spec": {},
          "created": "2026-01-01T00:00:00+00:00"}


def _job(job_id: str, status: str, *, artifact: bool) -> tuple:
    """A job folder as a finished worker leaves it, with `status` as status.json's text."""
    d = jobs.jobs_root() / job_id
    d.mkdir(parents=True)
    if artifact:
        base = models.load("tiny:llama")
        model = copy.deepcopy(base.model)
        w = dict(model.named_parameters())["model.layers.1.mlp.down_proj.weight"]
        with torch.no_grad():
            w.add_(0.5 * torch.randn(w.shape, generator=torch.Generator().manual_seed(1)))
        artifact_io.write_artifact(d / "artifact", base, model, {
            "method": "silp", "spec": {"src": "sw", "tgt": "en"}, "languages": ["sw", "en"],
            "base_model": ModelSpec(source="tiny:llama").to_dict()})
    (d / "config.json").write_text(json.dumps({"id": job_id, **CONFIG}))
    (d / "status.json").write_text(status)
    (d / "pid").write_text("999999")  # a worker long gone
    return d, (d / "status.json").read_bytes()


@pytest.mark.parametrize("artifact", [True, False], ids=["done", "cancelled"])
def test_a_garbage_status_is_reported_damaged_and_never_rewritten(capsys, artifact):
    job_id = "silp-20260101-000000-aaaaaa"
    d, raw = _job(job_id, '{"state": "done", "step": 4', artifact=artifact)  # cut off: not JSON
    for _ in range(2):
        st = jobs.job_status(job_id)
        assert st["state"] == jobs.DAMAGED and "status.json is damaged (not JSON)" in st["reason"]
    if artifact:
        assert st["artifact"] == str(d / "artifact") and f"its artifact {d / 'artifact'} is complete" in st["reason"]
    else:
        assert st["artifact"] is None and "no worker is running and it left no complete artifact" in st["reason"]
    assert cli.main(["jobs", "show", job_id]) == 0
    assert json.loads(capsys.readouterr().out.split("\n-- log")[0])["state"] == "damaged"
    assert cli.main(["jobs", "ls"]) == 0
    assert "damaged" in capsys.readouterr().out
    assert jobs.wait_job(job_id, timeout_s=5)["state"] == jobs.DAMAGED  # returns: no worker will repair it
    assert cli.main(["jobs", "cancel", job_id]) == 0
    assert capsys.readouterr().out.startswith(f"{job_id}: damaged")
    assert (d / "status.json").read_bytes() == raw and not (d / "cancel").exists()
    tuned = [t["job_id"] for t in jobs.tuned_states()]
    assert tuned == ([job_id] if artifact else [])  # a complete artifact stays usable


WRONG = [
    '{"state": "done", "step": "x", "history": 5}',
    '{"state": 5}',
    '{"state": "finished"}',
    '{"state": "running", "history": [{"step": 1, "loss": "low"}]}',
    '{"state": "done", "total": [3], "eta_s": "soon", "artifact": 7}',
    '["done"]',
    '{"step": 3}',
]


@pytest.mark.parametrize("status", WRONG)
def test_wrong_field_types_are_one_line_in_jobs_ls_show_and_compare(capsys, status):
    job_id = "silp-20260101-000000-bbbbbb"
    d, raw = _job(job_id, status, artifact=True)
    assert cli.main(["jobs", "ls"]) == 0
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(job_id))
    assert "damaged" in row and "status.json is damaged (" in row
    assert cli.main(["jobs", "show", job_id]) == 0
    shown = json.loads(capsys.readouterr().out.split("\n-- log")[0])
    assert shown["state"] == "damaged" and "status.json is damaged (" in shown["reason"]
    argv = ["compare", "--model", "tiny:llama", "--corpus", "tatoeba:sw", "--pairs", "en:sw", "--limit", "2",
            "--suite", "loss", "--states", f"base,{job_id}"]
    code = cli.main([*argv, "--out", str(d.parent.parent / "out")])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err, err  # the complete artifact is compared
    assert (d / "status.json").read_bytes() == raw


def test_an_unknown_job_in_compare_is_one_line(capsys):
    _job("silp-20260101-000000-cccccc", '{"state": "done", "step": "x"}', artifact=False)
    fails_clearly(["compare", "--model", "tiny:llama", "--corpus", "tatoeba:sw", "--pairs", "en:sw",
                   "--states", "base,cccccc", "--out", str(jobs.jobs_root().parent / "out")], capsys,
                  "unknown state 'cccccc'")


WORKER = textwrap.dedent('''
    import fcntl, json, os, signal, sys, time
    d = sys.argv[1]
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a worker busy loading a model: slow to stop
    lock = open(os.path.join(d, "worker.lock"), "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    def status(**kw):
        with open(os.path.join(d, "status.tmp"), "w") as f:
            json.dump({"id": os.path.basename(d), "method": "silp", "pid": os.getpid(), **kw}, f)
        os.replace(os.path.join(d, "status.tmp"), os.path.join(d, "status.json"))
    status(state="running", step=1, total=100)
    while not os.path.exists(os.path.join(d, "stop-now")):
        time.sleep(0.02)
    status(state="cancelled", reason="cancelled at step 1", step=1, total=100)
''')


def test_jobs_cancel_answers_cancelling_then_cancelled(capsys, monkeypatch):
    job_id = "silp-20260101-000000-dddddd"
    d, _ = _job(job_id, '{"state": "queued"}', artifact=False)
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(d)], start_new_session=True)
    try:
        (d / "pid").write_text(str(proc.pid))
        deadline = time.monotonic() + 30
        while jobs.job_status(job_id).get("state") != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        monkeypatch.setattr(jobs, "CANCEL_GRACE_S", 0.2)
        monkeypatch.setattr(jobs, "CANCEL_TERM_S", 0.2)
        assert cli.main(["jobs", "cancel", job_id]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"{job_id}: cancelling (cancel requested"), out  # was: "running", rc 0
        assert (d / "cancel").exists() and jobs.job_status(job_id)["cancel_requested"] is True
        (d / "stop-now").touch()
        proc.wait(timeout=30)
        assert cli.main(["jobs", "cancel", job_id]) == 0
        assert capsys.readouterr().out.startswith(f"{job_id}: cancelled (cancelled at step 1)")
    finally:
        proc.kill()
        proc.wait()

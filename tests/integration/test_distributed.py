"""Data-parallel fine-tunes on CPU (gloo) with 2 processes on the tiny model.

- the parameters after the same steps equal one process with the same global batch and
  data order (SiLP, Mid-align, LENS), to 1e-5, while training moved them by far more;
- a 2-process job's status and artifact have the shape of a 1-process job's;
- a rank killed with SIGKILL fails the job with a reason that names the rank;
- CC-Tuning on 2 processes is refused before any process starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import wait_for_job

from workbench import ranks
from workbench.errors import ParamError
from workbench.finetune import artifact_io, distributed, jobs

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
TINY = {"source": "tiny:llama"}
DATA = {"limit": 16, "max_length": 48}
SPECS = {
    "silp": {"src": "sw", "tgt": "en", "n2d_layers": [1], "d2n_layers": [2], "max_steps": 3, "lr": 1e-4,
             "batch_size": 8},
    "midalign": {"src": "en", "tgt": "sw", "max_steps": 4, "lr": 1e-3, "dropout": 0.0, "batch_size": 8,
                 "align_batch_size": 8},
    "lens": {"languages": ["en", "sw"], "central": "en", "max_steps": 3, "lr": 1e-3, "batch_size": 8,
             "samples_per_lang": 16},
}


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _train(world: int, method: str, out: Path) -> dict:
    """Run ddp_train.py on `world` processes (torchrun's environment, set by hand)."""
    port = str(ranks.free_port())
    procs = []
    for rank in range(world):
        env = _env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=port) if world > 1 else _env()
        procs.append(subprocess.Popen([sys.executable, str(HERE / "ddp_train.py"), method,
                                       json.dumps(SPECS[method]), str(out)], env=env))
    assert [p.wait(timeout=300) for p in procs] == [0] * world
    return torch.load(out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp")
    return {(m, w): _train(w, m, d / f"{m}-{w}.pt") for m in ("silp", "midalign") for w in (1, 2)}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["silp", "midalign"])
def test_two_processes_equal_one_with_the_same_global_batch(trained, method):
    from workbench import models

    one, two = trained[(method, 1)], trained[(method, 2)]
    assert two["world"] == 2 and one["world"] == 1
    assert set(one["params"]) == set(two["params"]) and one["params"]
    diff = max((one["params"][k] - two["params"][k]).abs().max().item() for k in one["params"])
    assert diff < 1e-5
    # training moved the parameters far more than the difference (Mid-align: LoRA merged in)
    base = dict(models.load("tiny:llama").model.named_parameters())
    moved = max((one["params"][k] - base[k]).abs().max().item() for k in one["params"])
    assert moved > 100 * max(diff, 1e-7)
    # the logged losses are the global batch's, not rank 0's shard
    assert [h["step"] for h in one["history"]] == [h["step"] for h in two["history"]]
    for a, b in zip(one["history"], two["history"]):
        assert abs(a["loss"] - b["loss"]) < 1e-4


def test_shards_are_contiguous_and_balanced():
    assert distributed.shard_bounds(8, 2) == [(0, 4), (4, 8)]
    assert distributed.shard_bounds(5, 2) == [(0, 3), (3, 5)]
    assert distributed.shard_bounds(1, 2) == [(0, 1), (1, 1)]


def test_cctuning_is_refused_on_two_processes_before_any_job_starts():
    with pytest.raises(ParamError, match="cctuning cannot be split"):
        jobs.start_job("cctuning", TINY, DATA, {"pivot": "en", "lang": "sw"}, num_processes=2)
    with pytest.raises(ParamError, match="num-processes"):
        jobs.start_job("silp", TINY, DATA, {}, num_processes=0)
    assert not any(jobs.jobs_root().iterdir())


def _wait(job_id: str, pred, timeout: float = 240) -> dict:
    return wait_for_job(job_id, pred, timeout, poll=0.2)


@pytest.mark.slow
def test_a_two_process_job_has_the_status_and_artifact_of_a_one_process_job(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    spec = SPECS["silp"]
    ids = {n: jobs.start_job("silp", TINY, DATA, spec, num_processes=n) for n in (1, 2)}
    st = {n: _wait(j, lambda s: False) for n, j in ids.items()}
    assert st[1]["state"] == "done", st[1].get("reason")
    assert st[2]["state"] == "done", st[2].get("reason")
    assert set(st[1]) == set(st[2])
    assert st[2]["processes"] == 2 and st[1]["processes"] == 1
    assert st[1]["step"] == st[2]["step"] == st[2]["total"]
    assert [h["step"] for h in st[1]["history"]] == [h["step"] for h in st[2]["history"]]
    assert set(st[1]["metrics"]) == set(st[2]["metrics"])
    arts = {n: artifact_io.load_artifact(st[n]["artifact"]) for n in (1, 2)}
    files = {n: sorted(p.name for p in Path(st[n]["artifact"]).iterdir()) for n in (1, 2)}
    assert files[1] == files[2]
    assert set(arts[1].manifest) == set(arts[2].manifest)
    assert arts[2].manifest["processes"] == 2
    delta1, delta2 = arts[1].delta, arts[2].delta
    assert set(delta1) == set(delta2) and delta1
    assert max((delta1[k] - delta2[k]).abs().max().item() for k in delta1) < 1e-5
    assert sorted((Path(st[2]["dir"]) / "ranks").glob("*.json")) != []


@pytest.fixture(scope="module")
def long_jobs(tmp_path_factory):
    """Two long 2-process Mid-align jobs, started together (one to kill a rank of, one to cancel)."""
    old = {k: os.environ.get(k) for k in ("WORKBENCH_CACHE", "OMP_NUM_THREADS")}
    cache = str(tmp_path_factory.mktemp("long-jobs"))
    os.environ.update(WORKBENCH_CACHE=cache, OMP_NUM_THREADS="1")
    try:
        long = {**SPECS["midalign"], "max_steps": 100000, "epochs": 10000.0}
        ids = {k: jobs.start_job("midalign", TINY, DATA, long, evaluate=False, num_processes=2)
               for k in ("kill", "cancel")}
        yield {**ids, "cache": cache}
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.mark.slow
def test_killing_one_rank_fails_the_job_with_the_rank_named(long_jobs, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", long_jobs["cache"])
    job = long_jobs["kill"]
    st = _wait(job, lambda s: (s.get("step") or 0) >= 2)
    assert st["state"] == "running", st.get("reason")
    pid = int((Path(st["dir"]) / "ranks" / "1.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    st = _wait(job, lambda s: False, timeout=120)
    assert st["state"] == "failed"
    assert "rank 1 of 2 stopped without writing a final state" in st["reason"]


@pytest.mark.slow
def test_cancel_stops_every_rank_at_the_same_step(long_jobs, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", long_jobs["cache"])
    job = long_jobs["cancel"]
    st = _wait(job, lambda s: (s.get("step") or 0) >= 2)
    assert st["state"] == "running", st.get("reason")
    st = jobs.cancel_job(job)
    st = _wait(job, lambda s: False, timeout=120)
    assert st["state"] == "cancelled", st.get("reason")
    reports = [json.loads(p.read_text()) for p in sorted((Path(st["dir"]) / "ranks").glob("*.json"))]
    assert [r["state"] for r in reports] == ["cancelled", "cancelled"]
    assert reports[0]["reason"] == reports[1]["reason"] and reports[0]["reason"].startswith("cancelled at step")

"""`--num-processes` is bounded by the work and the machine, and ranks die with their launcher (issue 21).

`record --langs en,de --num-processes 64` started 64 ranks for 2 units on a 2-core box;
ranks were seen running with parent 1 after their launcher ended. Here: N above the units
or the machine is refused in one line before anything starts; a launcher killed with
SIGKILL leaves no rank (nor accelerate) alive, for `ranks.start` itself, a sharded
recording and a multi-process fine-tune; the killed recording's scratch folder goes with
the next `store gc`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults import fails_clearly

from workbench import ranks
from workbench.errors import ParamError
from workbench.finetune import jobs

HERE = Path(__file__).parent
TINY = ["--model", "tiny:llama"]


# ------------------------------------------------------------------ bounds


def test_more_processes_than_units_is_refused_with_the_reason(capsys):
    fails_clearly(["record", *TINY, "--langs", "en,de", "--limit", "4", "--num-processes", "64"], capsys,
                  "--num-processes 64 is more than the 2 units to record", "use at most 2")
    assert not (Path(os.environ["WORKBENCH_CACHE"]) / "shards").exists()  # nothing started


def test_more_processes_than_the_machine_runs_is_refused_unless_forced(capsys, monkeypatch):
    monkeypatch.setattr(ranks, "visible_devices", lambda: 0)
    monkeypatch.setattr(ranks, "_cores", lambda: 2)
    langs = ["--langs", "en,de,fr", "--limit", "4"]
    fails_clearly(["record", *TINY, *langs, "--num-processes", "3"], capsys,
                  "--num-processes 3 is more than this machine runs at once (2 CPU cores, no GPU)",
                  "use at most 2, or pass --force-processes")
    fails_clearly(["finetune", "silp", *TINY, "--num-processes", "3", "--steps", "2"], capsys,
                  "(2 CPU cores, no GPU)", "--force-processes")
    fails_clearly(["analyze", "retrieval", *TINY, *langs, "--num-processes", "3", "--out", "unused"], capsys,
                  "more than this machine runs at once")
    ranks.check_num_processes(3, 3, device="cpu", force=True)  # forced: the machine's bound is lifted
    with pytest.raises(ParamError, match="more than the 3 units"):
        ranks.check_num_processes(4, 3, force=True)  # never more than the work
    monkeypatch.setattr(ranks, "visible_devices", lambda: 4)
    assert ranks.machine_slots("auto") == (4, "4 visible GPUs")
    assert ranks.machine_slots("cpu") == (2, "2 CPU cores")


def test_num_processes_below_one_is_refused(capsys):
    fails_clearly(["record", *TINY, "--langs", "en,de", "--limit", "4", "--num-processes", "0"], capsys,
                  "--num-processes must be >= 1, got 0")


# ------------------------------------------------------------------ ranks die with their launcher


def _cmdlines() -> dict[int, str]:
    out = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                out[int(p.name)] = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie, dead and waiting to be reaped, is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _find(*needles: str, launcher: bool = False) -> list[int]:
    """Live processes whose command line holds every needle: ranks, or (`launcher`) accelerate itself."""
    return [pid for pid, cmd in _cmdlines().items() if all(n in cmd for n in needles) and _alive(pid)
            and ("accelerate.commands.launch" in cmd) == launcher]


def _wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _all_gone(pids: list[int], timeout: float = 45.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _kill_all(pids: list[int]) -> None:
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")

LAUNCHER = ("import sys\nfrom workbench import ranks\n"
            "p = ranks.start(ranks.launch_command(2, ['rank_sleeper', sys.argv[1]]))\np.wait()\n")


def test_ranks_started_by_ranks_start_die_when_the_launcher_is_killed(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(tmp_path)], env=env)
    survivors: list[int] = []
    try:
        pids = _wait_for(lambda: [int(f.read_text()) for f in sorted(tmp_path.glob("*.pid"))
                                  if f.read_text()] if len(list(tmp_path.glob("*.pid"))) == 2 else None,
                         180, "both ranks to start")
        accelerate = _find(str(tmp_path), launcher=True)
        assert len(accelerate) == 1 and all(_alive(p) for p in pids)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        survivors = _all_gone([*pids, *accelerate])
        assert survivors == [], f"alive after their launcher was killed: {survivors}"
    finally:
        launcher.kill()
        _kill_all(survivors + _find("rank_sleeper", str(tmp_path)))


def test_a_killed_sharded_recording_leaves_no_rank_and_gc_removes_its_scratch(tmp_path):
    """The ranks are stopped (SIGSTOP) once both have recorded a batch, so they cannot end by finishing."""
    cache = tmp_path / "cache"
    env = {**os.environ, "WORKBENCH_CACHE": str(cache)}
    argv = [sys.executable, "-m", "workbench.cli", "record", *TINY, "--langs", "en,de", "--num-processes", "2"]
    launcher = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rank_pids: list[int] = []
    try:
        _wait_for(lambda: len(list((cache / "shards").glob("*/progress-*.json"))) == 2, 240,
                  "both recording ranks to record a batch")
        rank_pids = _find("workbench.recordings.sharding", str(cache))
        accelerate = _find(str(cache), launcher=True)
        assert len(rank_pids) == 2 and len(accelerate) == 1
        for pid in rank_pids:
            os.kill(pid, signal.SIGSTOP)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        survivors = _all_gone([*rank_pids, *accelerate], timeout=90)  # accelerate waits 30 s for its ranks
        assert survivors == [], f"alive after their launcher was killed: {survivors}"
        assert [p for p in (cache / "shards").iterdir() if p.is_dir()]  # SIGKILL: the launcher could not clean up
    finally:
        launcher.kill()
        _kill_all(_find("workbench.recordings.sharding", str(cache)) + _find(str(cache), launcher=True))
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "store", "gc"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert [p for p in (cache / "shards").iterdir() if p.is_dir()] == []


def test_a_killed_multi_process_fine_tune_worker_leaves_no_rank(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    long = {"src": "en", "tgt": "sw", "max_steps": 100000, "epochs": 10000.0, "lr": 1e-3, "dropout": 0.0,
            "batch_size": 8, "align_batch_size": 8}
    job = jobs.start_job("midalign", {"source": "tiny:llama"}, {"limit": 16, "max_length": 48}, long, evaluate=False,
                         num_processes=2)
    d = jobs.job_dir(job)
    rank_pids: list[int] = []
    try:
        rank_pids = _wait_for(lambda: [int(f.read_text()) for f in sorted((d / "ranks").glob("*.pid"))]
                              if len(list((d / "ranks").glob("*.pid"))) == 2 else None, 240, "both ranks to start")
        worker = int(jobs.job_status(job)["pid"])
        accelerate = _find(str(d), launcher=True)
        os.kill(worker, signal.SIGKILL)
        survivors = _all_gone([*rank_pids, *accelerate])
        assert survivors == [], f"alive after their launcher was killed: {survivors}"
        assert jobs.job_status(job)["state"] == "failed"  # and the job says its process died
    finally:
        _kill_all(rank_pids + _find("workbench.finetune.worker", str(d)) + _find(str(d), launcher=True))

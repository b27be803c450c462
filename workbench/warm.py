"""The warm model worker, server side: `python -m workbench.warm <root> --parent PID`.

One process per cache root (it holds `<root>/worker.lock`), started by the app on its first
job (`jobs.warm.ensure_worker`). It runs the queued jobs of `<root>/jobs/` in submission
order, one "heavy" job (recordings, evaluations) at a time and "quick" ones (previews)
beside it, each through its kind in `KINDS`; the model states it loads stay loaded
(`models.load` is memoised) within the memory budget of `settings.json` (least recently
used first out), so the next job on the same state starts at once. It writes each job's
progress to its `status.json` and exits when the process that started it is gone.

To add a job kind: a function `kind(args: dict, job: Reporter) -> JSON-able result` in the
module that owns the work, and one line in `KINDS`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from workbench import models
from workbench.errors import Cancelled, user_message
from workbench.evaluation.jobs import evaluate_job
from workbench.fileio import atomic_write_json, read_json_or_none
from workbench.interventions.jobs import preview_job
from workbench.jobs import history
from workbench.jobs.warm import memory_budget_gb, read_settings
from workbench.progress import FINAL_STATES, RateMeter
from workbench.recipes.jobs import view_job
from workbench.recordings.ensure import record_job
from workbench.recordings.lens import lens_job
from workbench.recordings.tuned_lens import tuned_lens_job

log = logging.getLogger("workbench.warm")

__all__ = ["KINDS", "Reporter", "main", "serve"]

KINDS: dict[str, Callable[[Mapping[str, Any], Any], Any]] = {
    "record": record_job,
    "evaluate": evaluate_job,
    "lens": lens_job,
    "tuned_lens": tuned_lens_job,
    "intervene_preview": preview_job,
    "view": view_job,
}
"""Job kind -> the function that runs it (`args`, the job's `Reporter`) and returns a JSON-able result."""

NICE = 10
"""How much lower the worker's CPU priority is than the app's (`os.nice`): pages stay responsive while it works."""

_WRITE_EVERY_S = 0.25
_POLL_S = 0.1


class Reporter:
    """What a job's function reports through (the interface of `jobs.threads.ThreadJob`), written to status.json."""

    def __init__(self, d: Path, unit: str = "units") -> None:
        self.d = d
        self._lock = threading.Lock()
        self._st: dict[str, Any] = {"state": "running", "message": "starting", "phase": "", "done": 0, "total": 0,
                                    "unit": unit, "started": time.time()}
        self._meter = RateMeter()
        self._last = 0.0
        self._phase_t0, self._phase_done = time.monotonic(), 0
        self._load: str | None = None
        self.compute_s = 0.0  # seconds of the phases that computed units (the rate history's denominator)
        self.loads: dict[str, float] = {}  # model source -> seconds its load took
        self._write(force=True)

    def _close_phase(self) -> None:
        now = time.monotonic()
        if int(self._st["done"]) > self._phase_done:
            self.compute_s += now - self._phase_t0
        if self._load is not None:
            self.loads[self._load] = now - self._phase_t0
        self._phase_t0, self._phase_done, self._load = now, int(self._st["done"]), None

    def _write(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= _WRITE_EVERY_S:
            self._last = now
            atomic_write_json(self.d / "status.json", self._st)

    def status_doc(self) -> dict[str, Any]:
        """The status as written (a copy)."""
        with self._lock:
            return dict(self._st)

    def check(self) -> None:
        """Raise `Cancelled` once the user asked to cancel (between units of work)."""
        if (self.d / "cancel").exists():
            raise Cancelled("cancelled")

    def should_stop(self) -> bool:
        """True once cancelled (the `StopFn` form of `check`)."""
        return (self.d / "cancel").exists()

    def status(self, message: str) -> None:
        """A one-line phase message; raises `Cancelled` once cancelled."""
        self.check()
        with self._lock:
            self._st["message"] = message
            self._write(force=True)

    def phase(self, name: str, unit: str | None = None, *, load: str | None = None) -> None:
        """A named phase starts (loading, recording, evaluating, saving); rate and ETA count from its start.

        `load`: this phase loads that model source (its duration goes into the worker's history).
        """
        self.check()
        with self._lock:
            self._close_phase()
            self._load = load
            self._st.update(phase=name, message=name, **({"unit": unit} if unit else {}))
            self._meter.start()
            self._write(force=True)

    def computing(self) -> None:
        """The real work starts now (rate and ETA count from here)."""
        with self._lock:
            self._meter.start()

    def progress(self, done: int, total: int, message: str = "", metrics: Mapping[str, Any] | None = None) -> None:
        """The `Progress` callback; raises `Cancelled` once cancelled."""
        self.check()
        with self._lock:
            if message.endswith("from store") or message == "read from the store":
                self._meter.skip(done - int(self._st["done"]))
            self._meter.update(done)
            eta = self._meter.eta(done, total)
            rate = self._meter.rate()
            self._st.update(done=done, total=total, rate=rate, eta=eta, metrics=dict(metrics or {}),
                            **({"message": message} if message else {}))
            self._write(force=done >= total)

    def finish(self, state: str, *, result: Any = None, error: str | None = None) -> None:
        """Write the final state."""
        with self._lock:
            self._close_phase()
            self._st.update(state=state, result=result, error=error, finished=time.time(), rate=None, eta=None,
                            message=state)
            self._write(force=True)


def _apply_settings(root: Path) -> None:
    models.set_memory_budget(int(memory_budget_gb(read_settings(root)) * 2**30))


def run_one(root: Path, key: str) -> None:
    """Run the job `key` (its request's kind) and write its final state; never raises."""
    d = root / "jobs" / key
    req = read_json_or_none(d / "request.json") or {}
    kind = str(req.get("kind"))
    job = Reporter(d)
    if kind not in KINDS:
        job.finish("failed", error=f"unknown job kind {kind!r} (known: {', '.join(KINDS)})")
        return
    _apply_settings(root)
    try:
        args = dict(req.get("args") or {})
        result = KINDS[kind](args, job)
        history.note(root, kind, history.model_of(args), units=int(job.status_doc()["done"]), seconds=job.compute_s,
                     loads=job.loads)
    except Cancelled:
        job.finish("cancelled", error="cancelled; what was finished stays in the store")
    except Exception as e:  # noqa: BLE001 - every failure ends as a written state with its reason
        log.exception("job %s (%s) failed", key, kind)
        job.finish("failed", error=user_message(e))
    else:
        job.finish("done", result=result)
    atomic_write_json(root / "state.json", {"pid": os.getpid(), "loaded": [m.to_dict() for m in models.loaded_states()],
                                            "memory_bytes": models.memory_in_use(),
                                            "budget_bytes": int(memory_budget_gb(read_settings(root)) * 2**30),
                                            "updated": time.time()})


def _queued(root: Path, lane: str) -> list[str]:
    out = []
    for d in (root / "jobs").iterdir() if (root / "jobs").is_dir() else []:
        req = read_json_or_none(d / "request.json")
        if not isinstance(req, dict) or req.get("lane", "heavy") != lane:
            continue
        st = read_json_or_none(d / "status.json")
        if not isinstance(st, dict) or st.get("state", "queued") == "queued":
            out.append((float(req.get("submitted", 0)), int(req.get("seq", 0)), d.name))
    return [k for *_, k in sorted(out)]


def _lane(root: Path, lane: str, stop: threading.Event) -> None:
    while not stop.is_set():
        todo = _queued(root, lane)
        if not todo:
            stop.wait(_POLL_S)
            continue
        key = todo[0]
        if (root / "jobs" / key / "cancel").exists():
            atomic_write_json(root / "jobs" / key / "status.json", {"state": "cancelled", "finished": time.time()})
            continue
        run_one(root, key)


def _parent_gone(parent: int, start_ppid: int) -> bool:
    """The app is gone: this process was reparented, or `parent` exited (a zombie counts as exited)."""
    if os.getppid() != start_ppid:
        return True
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        return Path(f"/proc/{parent}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False


def serve(root: Path, parent: int | None = None, *, idle_s: float | None = None) -> int:
    """Serve the queue under `root` until the parent process is gone (or `idle_s` without work); 0 on exit."""
    lock = open(root / "worker.lock", "a")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another worker holds {root / 'worker.lock'}", file=sys.stderr)
        return 3
    (root / "worker.pid").write_text(str(os.getpid()))
    stop = threading.Event()
    lanes = [threading.Thread(target=_lane, args=(root, lane, stop), name=f"lane-{lane}", daemon=True)
             for lane in ("heavy", "quick")]
    for t in lanes:
        t.start()
    last_work, start_ppid = time.monotonic(), os.getppid()
    try:
        while not stop.is_set():
            time.sleep(0.5)
            if parent is not None and _parent_gone(parent, start_ppid):
                log.info("the app is gone: the worker stops")
                break
            if _queued(root, "heavy") or _queued(root, "quick") or _any_running(root):
                last_work = time.monotonic()
            elif idle_s is not None and time.monotonic() - last_work > idle_s:
                break
    finally:
        stop.set()
    return 0


def _any_running(root: Path) -> bool:
    for d in (root / "jobs").iterdir() if (root / "jobs").is_dir() else []:
        st = read_json_or_none(d / "status.json")
        if isinstance(st, dict) and st.get("state") == "running" and st.get("state") not in FINAL_STATES:
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m workbench.warm <root> [--parent PID] [--idle S]`."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m workbench.warm <worker root> [--parent PID] [--idle SECONDS]", file=sys.stderr)
        return 2
    root = Path(args[0])
    opts = dict(zip(args[1::2], args[2::2]))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    os.nice(NICE)  # background work: on a busy machine the app's own process answers first
    return serve(root, int(opts["--parent"]) if "--parent" in opts else None,
                 idle_s=float(opts["--idle"]) if "--idle" in opts else None)


if __name__ == "__main__":
    sys.exit(main())

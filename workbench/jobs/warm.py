"""The warm model worker, client side: submit a job, read its progress, cancel it (only files; no torch).

Recordings and evaluations the app starts run in one long-lived worker process
(`python -m workbench.warm`), which keeps the most recently used model states loaded
within a memory budget and serves job after job without reloading. This module is what
the Streamlit process uses: it writes a request, reads the status the worker writes, and
starts (or restarts) the worker. So the server process never computes a job, and its
pollers only read small JSON files.

Layout of `<cache>/worker/`:

- `worker.lock`: held (flock) by the live worker for its whole life; `worker.pid`; `log.txt`;
- `settings.json`: what the worker reads before each job (`memory_gb`: the model budget);
- `jobs/<key>/request.json`: `{kind, label, args, lane, submitted, seq}`;
- `jobs/<key>/status.json`: written by the worker: `state`, `message`, `phase`, `done`,
  `total`, `unit`, `rate`, `eta`, `elapsed`, `error`, `result`, `metrics`;
- `jobs/<key>/cancel`: present once a cancel was asked for.

A job whose worker died is reported failed with the reason (the worker's exit status and
the end of its log), and a new worker is started for the jobs still queued.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.fileio import atomic_write_json, read_json_or_none
from workbench.paths import cache_root
from workbench.progress import FINAL_STATES, STATES, Snapshot

log = logging.getLogger(__name__)

__all__ = ["WARM", "WarmJob", "WarmRegistry", "default_memory_gb", "ensure_worker", "memory_budget_gb", "read_settings",
           "stop_workers", "worker_alive", "worker_root", "worker_state", "write_settings"]

_SEQ = itertools.count()
_SPAWNED: dict[str, subprocess.Popen[bytes]] = {}


def worker_root() -> Path:
    """`<cache>/worker` (created)."""
    d = cache_root() / "worker"
    (d / "jobs").mkdir(parents=True, exist_ok=True)
    return d


def read_settings(root: Path | None = None) -> dict[str, Any]:
    """The worker's settings (`memory_gb`: budget of loaded model states; None = half the machine's memory)."""
    doc = read_json_or_none((root or worker_root()) / "settings.json")
    return doc if isinstance(doc, dict) else {}


def default_memory_gb() -> float:
    """The default budget of loaded model states: half of this machine's memory."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 / 2, 1)
    except (ValueError, OSError, AttributeError):
        return 8.0


def memory_budget_gb(settings: Mapping[str, Any] | None = None) -> float:
    """The budget in the settings (`memory_gb`), else `default_memory_gb`."""
    gb = (read_settings() if settings is None else settings).get("memory_gb")
    try:
        return float(gb) if gb not in (None, "") and float(gb) > 0 else default_memory_gb()
    except (TypeError, ValueError):
        return default_memory_gb()


def write_settings(**fields: Any) -> dict[str, Any]:
    """Merge `fields` into the worker's settings (read before each job; no restart needed)."""
    root = worker_root()
    settings = {**read_settings(root), **fields}
    atomic_write_json(root / "settings.json", settings)
    return settings


def worker_alive(root: Path | None = None) -> bool:
    """True while a worker holds `worker.lock` under `root`."""
    path = (root or worker_root()) / "worker.lock"
    if not path.exists():
        return False
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def _log_tail(root: Path, n: int = 3) -> str:
    try:
        lines = [x for x in (root / "log.txt").read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])[-400:]


class WarmJob:
    """One job of the worker, seen from the app: its snapshot, and cancel."""

    def __init__(self, root: Path, key: str) -> None:
        self.root, self.key = root, key
        self.dir = root / "jobs" / key

    @property
    def label(self) -> str:
        """The job's human label."""
        return str(self.request().get("label", self.key))

    @property
    def kind(self) -> str:
        """The job kind (record, evaluate, …)."""
        return str(self.request().get("kind", ""))

    def request(self) -> dict[str, Any]:
        """What was asked (kind, label, args)."""
        doc = read_json_or_none(self.dir / "request.json")
        return doc if isinstance(doc, dict) else {}

    def status(self) -> dict[str, Any]:
        """The worker's status file ({} before the worker picked the job up)."""
        doc = read_json_or_none(self.dir / "status.json")
        return doc if isinstance(doc, dict) else {}

    def snapshot(self) -> Snapshot:
        """The job's state now (a job whose worker died is failed, with the reason)."""
        req, st = self.request(), self.status()
        state = str(st.get("state") or "queued")
        if state not in FINAL_STATES and not worker_alive(self.root):
            state, st = self._orphaned(st)
        state = state if state in STATES else "failed"
        started = st.get("started")
        elapsed = (float(st.get("finished") or time.time()) - float(started)) if started else 0.0
        return Snapshot(self.key, str(req.get("kind", "")), str(req.get("label", self.key)), state,
                        str(st.get("message") or ("waiting for the worker" if state == "queued" else state)),
                        int(st.get("done") or 0), int(st.get("total") or 0), elapsed,
                        st.get("rate") if state == "running" else None, st.get("eta") if state == "running" else None,
                        st.get("error"), st.get("result"), dict(st.get("metrics") or {}),
                        unit=str(st.get("unit") or "units"), phase=str(st.get("phase") or ""))

    def _orphaned(self, st: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A queued job waits for a new worker; a running one died with its worker (failed, with the reason)."""
        if str(st.get("state") or "queued") == "queued":
            ensure_worker(self.root)
            return "queued", st
        st = read_json_or_none(self.dir / "status.json") or st  # it may have just finished
        if isinstance(st, dict) and st.get("state") in FINAL_STATES:
            return str(st["state"]), st
        why = f"the worker process stopped while this job ran ({_log_tail(self.root) or 'no log'})"
        st = {**(st if isinstance(st, dict) else {}), "state": "failed", "error": why, "finished": time.time()}
        atomic_write_json(self.dir / "status.json", st)
        ensure_worker(self.root)  # for the jobs still queued
        return "failed", st

    def cancel(self) -> None:
        """Ask the worker to stop this job at its next check (finished units stay in the store)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "cancel").write_text(str(time.time()))
        if str(self.status().get("state") or "queued") == "queued":  # never started: cancelled at once
            atomic_write_json(self.dir / "status.json", {"state": "cancelled", "message": "cancelled",
                                                         "finished": time.time()})

    def wait(self, timeout: float | None = None, poll: float = 0.1) -> bool:
        """Block until the job finished; True if it did within `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.snapshot().running:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(poll)
        return True


def ensure_worker(root: Path | None = None) -> None:
    """Start the worker for `root` unless one is alive (it exits with the process that started it)."""
    root = root or worker_root()
    if worker_alive(root):
        return
    proc = _SPAWNED.get(str(root))
    if proc is not None and proc.poll() is None:
        return  # started, taking its lock
    with open(root / "log.txt", "ab") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "workbench.warm", str(root), "--parent", str(os.getpid())],
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, close_fds=True,
                                env={**os.environ, "WORKBENCH_CACHE": str(root.parent)})
    _SPAWNED[str(root)] = proc
    log.info("started the model worker (pid %d) for %s", proc.pid, root)


def worker_state(root: Path | None = None) -> dict[str, Any]:
    """What the live worker reports after each job: pid, loaded model states, memory in use and budget."""
    doc = read_json_or_none((root or worker_root()) / "state.json")
    return doc if isinstance(doc, dict) and worker_alive(root) else {}


def stop_workers(timeout: float = 10.0) -> None:
    """Stop the workers this process started (SIGTERM, then SIGKILL after `timeout`): tests, and an app's reset."""
    for root, proc in list(_SPAWNED.items()):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _SPAWNED.pop(root, None)


class WarmRegistry:
    """The app's jobs, run by the worker: keyed by what they compute, shared by every tab and process.

    The same questions as `threads.ThreadRegistry` (`get`, `jobs`, `running`), with `submit`
    taking a job kind and JSON arguments instead of a function (the worker runs the kind).
    """

    def get(self, key: str) -> WarmJob | None:
        """The job of `key`, if any was submitted under this cache."""
        root = worker_root()
        return WarmJob(root, key) if (root / "jobs" / key / "request.json").is_file() else None

    def jobs(self, kind: str | None = None) -> list[WarmJob]:
        """Every known job (of one kind), oldest first."""
        root = worker_root()
        found = [(j.request(), j) for j in (WarmJob(root, d.name) for d in (root / "jobs").iterdir() if d.is_dir())]
        found = [(r, j) for r, j in found if r and (kind is None or r.get("kind") == kind)]
        return [j for r, j in sorted(found, key=lambda rj: (rj[0].get("submitted", 0), rj[0].get("seq", 0)))]

    def running(self, kind: str | None = None) -> list[WarmJob]:
        """The jobs still queued or running."""
        return [j for j in self.jobs(kind) if j.snapshot().running]

    def submit(self, key: str, label: str, kind: str, args: Mapping[str, Any], *, rerun_done: bool = False,
               lane: str = "heavy") -> WarmJob:
        """Queue `kind(args)` unless `key` is queued or running (or done, unless `rerun_done`); start the worker.

        Args:
            key: what the job computes (two tabs asking for the same thing share it).
            label: a short human label.
            kind: a job kind the worker knows (`workbench.warm.KINDS`).
            args: the kind's JSON arguments.
            rerun_done: run again even if a finished job of `key` exists.
            lane: "heavy" (recordings, evaluations: one at a time) or "quick" (previews: beside them).
        """
        root = worker_root()
        job = WarmJob(root, key)
        if job.request():
            state = job.snapshot().state
            if state in ("queued", "running") or (state == "done" and not rerun_done):
                ensure_worker(root)
                return job
            shutil.rmtree(job.dir, ignore_errors=True)  # a failed, cancelled or stale one: run again
        job.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(job.dir / "request.json", {"kind": kind, "label": label, "args": dict(args), "lane": lane,
                                                     "submitted": time.time(), "seq": next(_SEQ)})
        ensure_worker(root)
        return job


WARM = WarmRegistry()
"""The app's registry (one worker per cache root)."""

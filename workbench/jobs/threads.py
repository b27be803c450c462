"""In-process jobs: a computation in a daemon thread, shared by every caller that asks for it.

Recordings and evaluations run here (they share the process's loaded models); fine-tunes
run as processes (`processes.py`). Both report through `progress.Progress` and are seen
as `progress.Snapshot`s. A job is keyed by what it computes, so a page that is left and
revisited, or a second browser tab, joins the running job instead of starting another.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from workbench.errors import Cancelled, user_message
from workbench.progress import RateMeter, Snapshot

log = logging.getLogger(__name__)


class ThreadJob:
    """One background computation. The work calls `status`/`progress`; callers read `snapshot`."""

    def __init__(self, key: str, label: str, kind: str = "record") -> None:
        self.key, self.label, self.kind = key, label, kind
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._cancel = False
        self._state, self._message = "running", "starting"
        self._error: str | None = None
        self._done = self._total = 0
        self._phase, self._unit = "", "units"
        self._metrics: Mapping[str, Any] = {}
        self._meter = RateMeter()
        self._t0 = time.monotonic()
        self._t_end: float | None = None
        self._result: Any = None

    # -- called by the work
    def status(self, message: str) -> None:
        """A one-line phase message (loading, converting, ...); raises `Cancelled` once cancelled."""
        self.check()
        with self._lock:
            self._message = message

    def phase(self, name: str, unit: str | None = None, *, load: str | None = None) -> None:
        """A named phase starts (loading, recording, evaluating); rate and ETA count from its start."""
        self.check()
        with self._lock:
            self._phase = self._message = name
            self._unit = unit or self._unit
            self._meter.start()

    def computing(self) -> None:
        """Mark the start of the real work (rate and ETA count from here)."""
        with self._lock:
            self._meter.start()

    def progress(self, done: int, total: int, message: str = "", metrics: Mapping[str, Any] | None = None) -> None:
        """The `Progress` callback; raises `Cancelled` once cancelled."""
        self.check()
        with self._lock:
            if message.endswith("from store"):  # served, not computed: not part of the rate
                self._meter.skip(done - self._done)
            self._done, self._total = done, total
            self._message = message or self._message
            self._metrics = dict(metrics or {})
            self._meter.update(done)

    def check(self) -> None:
        """Raise `Cancelled` if the job was cancelled (call between units of work)."""
        if self._cancel:
            raise Cancelled("cancelled")

    def should_stop(self) -> bool:
        """True once cancelled (the `StopFn` form of `check`)."""
        return self._cancel

    def finish(self, result: Any = None, error: str | None = None, *, cancelled: bool = False) -> None:
        """Record the outcome and wake any waiters."""
        with self._lock:
            self._result, self._error = result, error
            self._state = "cancelled" if cancelled else ("failed" if error else "done")
            self._message = self._state
            self._t_end = time.monotonic()
        self._finished.set()

    # -- called by pages and the CLI
    def cancel(self) -> None:
        """Ask the work to stop at its next check (finished units stay in the store)."""
        self._cancel = True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job finished; True if it did within `timeout` seconds."""
        return self._finished.wait(timeout)

    def snapshot(self) -> Snapshot:
        """The job's state now."""
        with self._lock:
            now = self._t_end or time.monotonic()
            running = self._t_end is None
            return Snapshot(self.key, self.kind, self.label, self._state, self._message, self._done, self._total,
                            now - self._t0, self._meter.rate() if running else None,
                            self._meter.eta(self._done, self._total, now) if running else None,
                            self._error, self._result, self._metrics, unit=self._unit, phase=self._phase)


class ThreadRegistry:
    """Process-wide registry of thread jobs keyed by what they compute (thread-safe).

    Submitting a key that is running or done returns that job; a failed or cancelled job is
    replaced by a fresh run.
    """

    def __init__(self, keep: int = 64) -> None:
        self._jobs: dict[str, ThreadJob] = {}
        self._lock = threading.Lock()
        self._keep = keep

    def get(self, key: str) -> ThreadJob | None:
        """The job of `key`, if any."""
        with self._lock:
            return self._jobs.get(key)

    def jobs(self, kind: str | None = None) -> list[ThreadJob]:
        """All known jobs (of one kind), oldest first."""
        with self._lock:
            return [j for j in self._jobs.values() if kind is None or j.kind == kind]

    def running(self, kind: str | None = None) -> list[ThreadJob]:
        """The jobs still running."""
        return [j for j in self.jobs(kind) if j.snapshot().running]

    def submit(self, key: str, label: str, work: Callable[[ThreadJob], Any], *, kind: str = "record",
               rerun_done: bool = False) -> ThreadJob:
        """Start `work(job)` in a daemon thread unless `key` is running (or done, unless `rerun_done`)."""
        with self._lock:
            job = self._jobs.get(key)
            keep = ("running",) if rerun_done else ("running", "done")
            if job is not None and job.snapshot().state in keep:
                return job
            job = ThreadJob(key, label, kind)
            self._jobs[key] = job
            self._prune()
        threading.Thread(target=_run, args=(job, work), name=f"{kind}-{key[:8]}", daemon=True).start()
        return job

    def _prune(self) -> None:
        finished = [k for k, j in self._jobs.items() if not j.snapshot().running]
        for k in finished[: max(0, len(self._jobs) - self._keep)]:
            del self._jobs[k]


def _run(job: ThreadJob, work: Callable[[ThreadJob], Any]) -> None:
    try:
        job.finish(work(job))
    except Cancelled:
        log.info("%s %s cancelled", job.kind, job.label)
        job.finish(cancelled=True)
    except Exception as e:  # noqa: BLE001 - the page shows a message; the traceback goes to the log
        log.exception("%s %s failed", job.kind, job.label)
        job.finish(error=user_message(e))


JOBS = ThreadRegistry()
"""The registry of this process (the UI server's, a notebook's)."""

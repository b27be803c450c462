"""The one progress protocol of every long computation (recordings, evaluations, fine-tunes).

A computation reports `progress(done, total, message, metrics)`: units of work done so far
(sentences, examples, optimiser steps), the total, a one-line message, and optional
per-step numbers (losses). Phase messages without progress (loading, converting) go to
`status(message)`. A job runner turns these into a `Snapshot`, the one view of a job that
pages and the CLI show, with a rate and an ETA from `RateMeter`. Cancellation raises
`workbench.errors.Cancelled` inside the work (`StopFn` is the check).

One name per callback: `Progress`, `StatusFn`, `StopFn`, `Advance`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

FINAL_STATES = ("done", "failed", "cancelled")
STATES = ("queued", "running", *FINAL_STATES)


class Progress(Protocol):
    """progress(done, total, message="", metrics=None): called as work advances."""

    def __call__(self, done: int, total: int, message: str = "", metrics: Mapping[str, Any] | None = None) -> None:
        """Report `done` of `total` units, with a message and optional metrics."""


StatusFn = Callable[[str], None]
"""status(message): a phase message (loading the model, checking the store)."""

StopFn = Callable[[], bool]
"""should_stop(): True once the user asked to cancel (checked between units of work)."""

Advance = Callable[[int], None]
"""advance(n): `n` more units are done (batched loops report this; the caller turns it into `Progress`)."""


class RateMeter:
    """Units per second over a sliding window of recent reports, and the ETA it implies.

    Counts only units computed since `start()` (units served from a cache are excluded
    through `skip`); the rate is measured between reports (never up to "now", so it does
    not sink while one long unit is computed), and the ETA counts down from the last
    report's estimate.
    """

    def __init__(self, window_s: float = 30.0) -> None:
        self.window_s = window_s
        self._points: deque[tuple[float, int]] = deque()  # (time, units computed)
        self._skipped = 0
        self._computed = 0

    def start(self, now: float | None = None) -> None:
        """Work that counts starts now (a point with nothing computed yet)."""
        self._points.clear()
        self._points.append((time.monotonic() if now is None else now, self._computed))

    def skip(self, n: int) -> None:
        """`n` units were done without computing (served from the store)."""
        self._skipped += n

    def update(self, done: int, now: float | None = None) -> None:
        """Record that `done` units (skipped ones included) are finished."""
        now = time.monotonic() if now is None else now
        self._computed = max(0, done - self._skipped)
        if not self._points:
            self._points.append((now, self._computed))
            return
        self._points.append((now, self._computed))
        while len(self._points) > 2 and now - self._points[1][0] > self.window_s:
            self._points.popleft()

    def rate(self) -> float | None:
        """Computed units per second between the window's first and last report (None before two)."""
        if len(self._points) < 2:
            return None
        (t_a, c_a), (t_b, c_b) = self._points[0], self._points[-1]
        return (c_b - c_a) / (t_b - t_a) if t_b > t_a and c_b > c_a else None

    def eta(self, done: int, total: int, now: float | None = None) -> float | None:
        """Seconds left: the last report's estimate, minus the time since that report (never negative)."""
        r = self.rate()
        if not r:
            return None
        now = time.monotonic() if now is None else now
        return max(0.0, max(0, total - done) / r - (now - self._points[-1][0]))


@dataclass(frozen=True)
class Snapshot:
    """A consistent view of one job (thread or process) at one instant."""

    id: str
    kind: str  # "record" | "eval" | "finetune"
    label: str
    state: str  # one of STATES
    message: str = ""
    done: int = 0
    total: int = 0
    elapsed: float = 0.0
    rate: float | None = None  # units per second
    eta: float | None = None  # seconds
    error: str | None = None  # failed or cancelled: the reason
    result: Any = field(default=None, repr=False)  # the computation's return value (JSON from the worker)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    unit: str = "units"  # what `done`/`total` count: sentences, examples, steps
    phase: str = ""  # the named phase now (loading, recording, evaluating, training, saving)

    @property
    def running(self) -> bool:
        """True until the job reached a final state."""
        return self.state not in FINAL_STATES

    @property
    def fraction(self) -> float:
        """Progress in [0, 1]."""
        return min(1.0, self.done / self.total) if self.total else 0.0

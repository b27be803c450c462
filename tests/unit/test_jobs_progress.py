"""The one progress protocol: rate and ETA from the running rate, cancel, snapshots."""

import time

import pytest

from workbench.errors import Cancelled
from workbench.jobs.threads import ThreadRegistry
from workbench.progress import RateMeter


def test_rate_counts_computed_units_between_reports_and_eta_counts_down():
    m = RateMeter(window_s=100)
    m.skip(10)  # ten units came from the store
    m.update(10, now=0.0)
    m.start(now=0.0)
    assert m.rate() is None and m.eta(10, 50, now=0.0) is None
    m.update(20, now=5.0)  # 10 computed in 5 s
    assert m.rate() == pytest.approx(2.0)
    assert m.eta(20, 50, now=5.0) == pytest.approx(15.0)
    assert m.eta(20, 50, now=9.0) == pytest.approx(11.0)  # counts down while waiting, never climbs
    assert m.eta(20, 50, now=60.0) == 0.0
    m.update(30, now=10.0)  # still 2 units/s
    assert m.rate() == pytest.approx(2.0) and m.eta(30, 50, now=10.0) == pytest.approx(10.0)


def test_window_forgets_old_reports():
    m = RateMeter(window_s=10)
    m.start(now=0.0)
    m.update(100, now=1.0)  # a fast start...
    for t in range(2, 40):
        m.update(100 + (t - 1), now=float(t))  # ...then 1 unit/s
    assert m.rate() == pytest.approx(1.0, rel=0.05)


def test_thread_job_progress_cancel_and_snapshot():
    reg = ThreadRegistry()
    gate = []

    def work(job):
        job.computing()
        for i in range(1, 1000):
            job.progress(i, 1000, f"unit {i}")
            gate.append(i)
            time.sleep(0.005)
        return "never"

    job = reg.submit("k", "label", work, kind="eval")
    while len(gate) < 5:
        time.sleep(0.01)
    snap = job.snapshot()
    assert snap.running and snap.kind == "eval" and 0 < snap.done < 1000 and snap.message.startswith("unit")
    job.cancel()
    assert job.wait(5) and job.snapshot().state == "cancelled"
    assert reg.submit("k", "label", lambda j: "again").wait(5)  # a cancelled job is replaced by a fresh run
    assert reg.get("k").snapshot().result == "again"
    with pytest.raises(Cancelled):
        j2 = reg.submit("k2", "x", lambda j: None)
        j2.wait(5)
        j2.cancel()
        j2.check()

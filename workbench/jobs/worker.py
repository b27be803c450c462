"""The job worker: `python -m workbench.jobs.worker <job_dir>` (launched by `processes.start_job`).

Takes the job's lock, validates the config and the data before loading anything heavy
(so bad input fails in about a second), loads the model, runs `runner.finetune`, and
keeps `status.json` current. Every way out writes a final state: `done` (with the
artifact path), `cancelled` (cancel flag, SIGTERM or SIGINT) or `failed` (with the
exception as the reason; the traceback goes to log.txt).
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from workbench.config import ModelSpec
from workbench.errors import Cancelled
from workbench.finetune.data import build_split
from workbench.finetune.runner import finetune
from workbench.finetune.specs import DataSpec, languages_for, spec_for
from workbench.jobs.processes import _read_json, now, write_status
from workbench.jobs.progress import FINAL_STATES
from workbench.models import load

log = logging.getLogger("workbench.jobs.worker")

_WRITE_EVERY_S = 0.5


class _Cancelled(Exception):
    """Raised by the signal handler; converted to the training code's `Cancelled`."""


def _on_signal(signum: int, _frame: Any) -> None:
    raise _Cancelled(f"cancelled ({signal.Signals(signum).name})")


class _Progress:
    """Collects per-step metrics and writes status.json at most every 0.5 s (and at the end)."""

    def __init__(self, d: Path) -> None:
        self.d = d
        self.history: list[dict[str, Any]] = []
        self.t0: float | None = None
        self.last_write = 0.0

    def mark_start(self) -> None:
        """Training starts now (steps/s and ETA count from here)."""
        self.t0 = time.perf_counter()

    def __call__(self, step: int, total: int, message: str = "", metrics: dict[str, Any] | None = None) -> None:
        metrics = dict(metrics or {})
        t = time.perf_counter()
        if self.t0 is None:
            self.mark_start()
        t0 = self.t0 if self.t0 is not None else t
        row = {"step": step, **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}}
        self.history.append(row)
        if t - self.last_write >= _WRITE_EVERY_S or step >= total:
            rate = step / (t - t0) if t > t0 else None
            write_status(self.d, step=step, total=total, stage=metrics.get("stage"), history=self.history,
                         steps_per_s=round(rate, 4) if rate else None,
                         eta_s=round((total - step) / rate, 1) if rate else None)
            self.last_write = t


def _load_state(model: dict[str, Any]) -> Any:
    """The base ModelState through the one loader, in float32 (trainable precision)."""
    spec = ModelSpec.from_dict(model)
    if spec.dtype == "auto":
        # bf16 weights cannot take AdamW updates of ~1e-5 (they round away): train in fp32.
        spec = dataclasses.replace(spec, dtype="float32")
    return load(spec, progress=write_status_msg)


_DIR: Path | None = None


def write_status_msg(message: str) -> None:
    """Set the job's one-line status message."""
    if _DIR is not None:
        write_status(_DIR, message=message)
    log.info(message)


def run(d: Path) -> Path:
    """Run the job in `d`; return the artifact path. Raises on failure or cancellation."""
    config = _read_json(d / "config.json")
    if not config:
        raise ValueError(f"{d / 'config.json'} is missing or not JSON")
    method = config["method"]
    spec = spec_for(method, config.get("spec"))
    data = DataSpec.from_dict(config["data"])
    model_spec = ModelSpec.from_dict(config["model"]).to_dict()
    write_status_msg("checking the data")
    split = build_split(data, languages_for(method, spec))
    write_status_msg(f"data: {len(split.train)} training units, {len(split.heldout)} held out")
    cancel = d / "cancel"
    if cancel.exists():
        raise _Cancelled("cancelled before the model was loaded")
    write_status_msg(f"loading {model_spec['source']}")
    state = _load_state(model_spec)
    progress = _Progress(d)

    def status(message: str) -> None:
        if message == "training":
            progress.mark_start()
        write_status_msg(message)

    try:
        path, _ = finetune(method, state, data, spec, d / "artifact", model_spec=model_spec, progress=progress,
                           should_stop=cancel.exists, evaluate=bool(config.get("evaluate", True)),
                           status=status, split=split)
    except Cancelled as e:
        raise _Cancelled(str(e)) from None
    return path


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 done, 1 failed, 2 cancelled, 3 busy)."""
    global _DIR
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m workbench.jobs.worker <job_dir>", file=sys.stderr)
        return 1
    d = Path(args[0])
    lock = open(d / "worker.lock", "a")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another worker holds {d / 'worker.lock'}", file=sys.stderr)
        return 3
    _DIR = d
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if _read_json(d / "status.json").get("state") in FINAL_STATES:
        return 0
    write_status(d, state="running", pid=__import__("os").getpid(), started=now())
    try:
        path = run(d)
    except _Cancelled as e:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        write_status(d, state="cancelled", reason=str(e), finished=now(), message="cancelled")
        log.info("%s", e)
        return 2
    except BaseException as e:  # noqa: BLE001 - every failure must end as a written state
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        reason = f"{type(e).__name__}: {e}"
        traceback.print_exc()
        write_status(d, state="failed", reason=reason, finished=now(), message="failed")
        return 1
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    metrics = _read_json(path / "manifest.json").get("metrics", {})
    summary = {k: metrics.get(k) for k in ("steps", "seconds", "steps_per_s", "eval_before", "eval_after")}
    write_status(d, state="done", artifact=str(path), finished=now(), message="done", metrics=summary)
    log.info("done: %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

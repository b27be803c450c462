"""The job worker: `python -m workbench.finetune.worker <job_dir>` (launched by `processes.start_job`).

Takes the job's lock, validates the config and the data before loading anything heavy
(so bad input fails in about a second), loads the model, runs `runner.finetune`, and
keeps `status.json` current. Every way out writes a final state: `done` (with the
artifact path), `cancelled` (cancel flag, SIGTERM or SIGINT) or `failed` (with the
exception as the reason; the traceback goes to log.txt).

With `num_processes` N > 1 in the config, the worker is the job's supervisor: it keeps
the lock, launches N ranks with `accelerate launch … -m workbench.finetune.worker --rank
<job_dir>` (`ranks.py`) and writes the final state from what the ranks report. Every
rank runs the same `run` as the one-process worker; rank 0 writes the progress and the
artifact.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from workbench import ranks
from workbench.config import ModelSpec
from workbench.errors import Cancelled
from workbench.examples import DataSpec, build_split
from workbench.finetune import distributed
from workbench.finetune.jobs import now, read_job_file, write_status
from workbench.finetune.methods import languages_for, spec_for
from workbench.finetune.runner import finetune
from workbench.models import load
from workbench.progress import FINAL_STATES

log = logging.getLogger("workbench.finetune.worker")

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
        self.after_s = 0.0  # what the phases after training will take (the evaluation after: as long as before)

    def mark_start(self) -> None:
        """Training starts now (steps/s and ETA count from here)."""
        self.t0 = time.perf_counter()

    def __call__(self, done: int, total: int, message: str = "", metrics: Mapping[str, Any] | None = None) -> None:
        step, metrics = done, dict(metrics or {})
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
                         eta_s=round((total - step) / rate + self.after_s, 1) if rate else None, eta_at=time.time())
            self.last_write = t


def _load_state(model: dict[str, Any]) -> Any:
    """The base ModelState through the one loader, in float32 (trainable precision).

    A rank of a multi-process job on CUDA loads the whole model on its own GPU
    (`cuda:LOCAL_RANK`), not spread over every GPU.
    """
    spec = ModelSpec.from_dict(model)
    if spec.dtype == "auto":
        # bf16 weights cannot take AdamW updates of ~1e-5 (they round away): train in fp32.
        spec = dataclasses.replace(spec, dtype="float32")
    rank = distributed.current()
    if rank.world > 1 and spec.device in ("auto", "cuda") and torch.cuda.is_available():
        spec = dataclasses.replace(spec, device=f"cuda:{rank.local_rank}")
    return load(spec, progress=write_status_msg)


_DIR: Path | None = None


def write_status_msg(message: str) -> None:
    """Set the job's one-line status message and phase (rank 0 only)."""
    if _DIR is not None and distributed.current().main:
        write_status(_DIR, message=message, phase=message)
    log.info(message)


def run(d: Path) -> Path:
    """Run the job in `d`; return the artifact path. Raises on failure or cancellation."""
    config = read_job_file(d / "config.json")
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
    progress: _Progress | None = _Progress(d) if distributed.current().main else None

    phases: dict[str, float] = {}

    def status(message: str) -> None:
        """Each phase is named; the ETA covers the phases still to come (the evaluation after ≈ the one before)."""
        now = time.perf_counter()
        phases[message] = now
        before = phases.get("evaluating the base model")
        if message == "training" and progress is not None:
            progress.after_s = (now - before) if before is not None else 0.0
            progress.mark_start()
        write_status_msg(message)
        if distributed.current().main and message == "evaluating the tuned model" and progress is not None:
            write_status(d, eta_s=round(progress.after_s, 1) if progress.after_s else None, eta_at=time.time(),
                         phase=message)

    try:
        path, _ = finetune(method, state, data, spec, d / "artifact", model_spec=model_spec, progress=progress,
                           should_stop=cancel.exists, evaluate=bool(config.get("evaluate", True)),
                           status=status, split=split)
    except Cancelled as e:
        raise _Cancelled(str(e)) from None
    return path


def _start(d: Path) -> Any:
    """Take the job's lock (None if another worker holds it) and set up logging and signals."""
    global _DIR
    lock = open(d / "worker.lock", "a")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another worker holds {d / 'worker.lock'}", file=sys.stderr)
        return None
    _DIR = d
    _logging()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    return lock


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def outcome(d: Path) -> dict[str, Any]:
    """Run the job in this process; return its final state (never raises)."""
    try:
        path = run(d)
    except _Cancelled as e:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log.info("%s", e)
        return {"state": "cancelled", "reason": str(e)}
    except BaseException as e:  # noqa: BLE001 - every failure must end as a written state
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        traceback.print_exc()
        return {"state": "failed", "reason": f"{type(e).__name__}: {e}", "lost": _is_peer_loss(e)}
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return {"state": "done", "artifact": str(path)}


def finish(d: Path, result: dict[str, Any]) -> int:
    """Write the job's final state; return the exit status (0 done, 1 failed, 2 cancelled)."""
    if result["state"] == "done":
        path = Path(result["artifact"])
        metrics = read_job_file(path / "manifest.json").get("metrics", {})
        summary = {k: metrics.get(k) for k in ("steps", "seconds", "steps_per_s", "eval_before", "eval_after")}
        write_status(d, state="done", artifact=str(path), finished=now(), message="done", metrics=summary, eta_s=0)
        log.info("done: %s", path)
        return 0
    write_status(d, state=result["state"], reason=result["reason"], finished=now(), message=result["state"])
    return 2 if result["state"] == "cancelled" else 1


# --------------------------------------------------------------------------- N processes

_PEER_LOSS = ("connection closed", "connection reset", "broken pipe", "gloo", "nccl", "timed out")


def _is_peer_loss(e: BaseException) -> bool:
    """A failure that only says another rank went away (not this rank's own reason)."""
    return isinstance(e, torch.distributed.DistError) or any(s in str(e).lower() for s in _PEER_LOSS)


def rank_main(d: Path) -> int:
    """One rank of a multi-process job: join the group, run, report to `<d>/ranks/<rank>.json`."""
    global _DIR
    ranks.die_with_launcher()
    rank = distributed.current()
    try:
        rank = distributed.init_from_env()
    except Exception as e:  # noqa: BLE001 - reported like any rank failure
        result: dict[str, Any] = {"state": "failed", "reason": f"joining the process group: {e}", "lost": True}
    else:
        (d / "ranks").mkdir(exist_ok=True)
        (d / "ranks" / f"{rank.rank}.pid").write_text(str(os.getpid()))
        _DIR = d if rank.main else None
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        result = outcome(d)
    ranks.write_report(d, rank.rank, **result)
    if result["state"] == "done":
        distributed.shutdown()
    return 1 if result["state"] == "failed" else 0


def supervise(d: Path, n: int) -> dict[str, Any]:
    """Launch N ranks through `accelerate launch`, wait for them, and return the job's outcome."""
    for f in (d / "ranks").glob("*") if (d / "ranks").is_dir() else ():
        f.unlink()
    cmd = ranks.launch_command(n, ["workbench.finetune.worker", "--rank", str(d)])
    write_status(d, message=f"starting {n} processes")
    log.info("launching: %s", " ".join(cmd))
    sys.stdout.flush()
    sys.stderr.flush()
    proc = ranks.start(cmd, stdin=subprocess.DEVNULL)  # dies with this worker; its output goes to log.txt
    cancelled = False
    while True:
        try:
            rc = proc.wait()
            break
        except _Cancelled:  # SIGTERM to the group: the ranks got it too; wait for them to stop
            cancelled = True
    return ranks.summarize(ranks.read_reports(d, n), rc, cancelled=cancelled or (d / "cancel").exists())


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 done, 1 failed, 2 cancelled, 3 busy).

    `worker <dir>`: the job (one process, or the supervisor of N ranks);
    `worker --rank <dir>`: one rank of a multi-process job (launched by accelerate).
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--rank":
        _logging()
        return rank_main(Path(args[1]))
    if len(args) != 1:
        print("usage: python -m workbench.finetune.worker [--rank] <job_dir>", file=sys.stderr)
        return 1
    d = Path(args[0])
    lock = _start(d)
    if lock is None:
        return 3
    if read_job_file(d / "status.json").get("state") in FINAL_STATES:
        return 0
    n = int(read_job_file(d / "config.json").get("num_processes") or 1)
    write_status(d, state="running", pid=os.getpid(), started=now(), processes=n)
    result = supervise(d, n) if n > 1 else outcome(d)
    return finish(d, result)


if __name__ == "__main__":
    sys.exit(main())

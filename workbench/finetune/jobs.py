"""Process jobs (fine-tunes): separate worker processes, tracked through files in `<cache>/jobs/<id>/`.

A job directory holds:

- `config.json`: `{id, method, model (ModelSpec dict), data (DataSpec dict), spec, evaluate,
  num_processes}`;
- `status.json`: `state` (queued → running → done | failed | cancelled), `step`, `total`,
  `stage`, `message`, `history` (one `{step, loss, ...}` per step), `steps_per_s`,
  `eta_s`, `reason` (failed/cancelled), `artifact` (done), `pid`, timestamps;
- `log.txt`: the worker's log and stderr;
- `cancel`: present once a cancel was asked for (the worker checks it before each step);
- `worker.lock`: held (flock) by a live worker for its whole life;
- `ranks/<r>.json`, `ranks/<r>.pid` (N > 1 processes): each rank's final report and pid.

Everything is read back from disk, so a restarted app lists finished, failed and
cancelled jobs with their reasons; a job whose process died without writing a final
state (no lock holder, no live process) is reported, and recorded, as failed with
"process died".
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from workbench.config import ModelSpec, Spec
from workbench.errors import CACHE_REMEDY, JobError, WriteError
from workbench.examples import DataSpec
from workbench.fileio import atomic_write_json, atomic_write_text, ensure_dir, read_json_or_none, writing
from workbench.finetune.methods import METHODS, spec_for
from workbench.finetune.runner import validate
from workbench.paths import cache_root
from workbench.progress import FINAL_STATES, STATES, Snapshot

log = logging.getLogger(__name__)

__all__ = [
    "FINAL_STATES",
    "JobError",
    "cancel_job",
    "job_dir",
    "job_status",
    "jobs_root",
    "list_jobs",
    "start_job",
    "wait_job",
    "snapshot",
    "write_status",
]

_PROCS: dict[str, subprocess.Popen[bytes]] = {}


def now() -> str:
    """UTC time, ISO 8601, seconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def jobs_root() -> Path:
    """`<cache>/jobs` (created; `WriteError` in one line where the cache cannot take it)."""
    return ensure_dir(cache_root() / "jobs", CACHE_REMEDY)


def _jobs_folder() -> Path:
    """`<cache>/jobs`, not created (reading jobs writes nothing: a read-only cache lists its jobs)."""
    return cache_root() / "jobs"


def job_dir(job_id: str) -> Path:
    """The directory of a job.

    Raises:
        JobError: no such job.
    """
    d = _jobs_folder() / job_id
    if "/" in job_id or job_id.startswith(".") or not (d / "config.json").is_file():
        raise JobError(f"no job {job_id!r} in {_jobs_folder()}")
    return d


def read_job_file(path: Path) -> dict[str, Any]:
    """A job file's JSON object, or {} when it is missing or damaged (garbage, not an object)."""
    doc = read_json_or_none(path)
    if doc is None and path.exists():
        log.warning("job file %s is damaged (not JSON); treating it as empty", path)
    return doc if isinstance(doc, dict) else {}


def write_status(d: Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into `<d>/status.json` (atomically) and return the new status."""
    status = read_job_file(d / "status.json")
    status.update(fields, updated=now())
    atomic_write_json(d / "status.json", status, CACHE_REMEDY)
    return status


def _as_dict(x: Any) -> dict[str, Any]:
    return x.to_dict() if isinstance(x, Spec) else dict(x or {})


def start_job(method: str, model_spec: dict[str, Any] | ModelSpec, data_spec: dict[str, Any] | DataSpec,
              method_spec: dict[str, Any] | Any = None, *, evaluate: bool = True, num_processes: int = 1) -> str:
    """Write a job directory and launch `python -m workbench.finetune.worker <dir>`.

    With `num_processes` N > 1 the worker launches N data-parallel ranks through
    `accelerate launch` (DDP-style; gloo on CPU, NCCL on GPUs); status, progress, cancel
    and failures work as for one process (rank 0 reports; any rank's failure fails the job).

    Everything checkable is validated here, before any process starts (`runner.validate`:
    specs, the data and its languages, the layers against the model's config); only what
    needs the weights can still fail in the worker, as a failed job with the reason.

    Args:
        method: 'silp', 'midalign', 'lens' or 'cctuning'.
        model_spec: the base model (ModelSpec or its dict; `tiny:llama` for tests).
        data_spec: the DataSpec (or its dict).
        method_spec: the method's spec (or its dict; None = defaults).
        evaluate: held-out loss and perplexity before and after training.
        num_processes: training processes (the global batch is split over them).

    Returns:
        The job id (`<method>-<UTC time>-<random>`).
    """
    spec = spec_for(method, method_spec if method_spec is None or isinstance(method_spec, Spec)
                    else dict(method_spec))
    model = model_spec if isinstance(model_spec, ModelSpec) else ModelSpec.from_dict(_as_dict(model_spec))
    if model.artifact:
        raise JobError("fine-tuning on top of an artifact is not supported; use the base model")
    data = data_spec if isinstance(data_spec, DataSpec) else DataSpec.from_dict(_as_dict(data_spec))
    validate(method, model, data, spec, num_processes=num_processes)
    job_id = f"{method}-{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    d = jobs_root() / job_id
    config = {"id": job_id, "method": method, "model": model.to_dict(), "data": data.to_dict(),
              "spec": spec.to_dict(), "evaluate": evaluate, "num_processes": num_processes, "created": now()}
    with writing(d, CACHE_REMEDY):
        d.mkdir(parents=True)
        try:
            atomic_write_json(d / "status.json", {"id": job_id, "method": method, "state": "queued", "step": 0,
                                                  "total": None, "stage": None, "message": "starting the worker",
                                                  "history": [], "created": config["created"], "updated": now()},
                              CACHE_REMEDY)
            atomic_write_json(d / "config.json", config, CACHE_REMEDY)  # last: it makes the folder a job
            logf = open(d / "log.txt", "ab")  # noqa: SIM115 - closed below, once the worker has it
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)  # no half-made job left behind
            raise
    with logf:
        proc = subprocess.Popen([sys.executable, "-m", "workbench.finetune.worker", str(d)],
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, env=dict(os.environ))
    _PROCS[job_id] = proc
    # Not in status.json: the worker may already be writing it (no lost update that way).
    atomic_write_text(d / "pid", str(proc.pid), CACHE_REMEDY)
    log.info("started job %s (pid %d)", job_id, proc.pid)
    return job_id


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) counts as dead
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _lock_held(d: Path) -> bool:
    """True while a worker holds `<d>/worker.lock`."""
    path = d / "worker.lock"
    if not path.exists():
        return False
    with open(path, "rb") as f:  # read-only: flock needs no write access (a read-only cache)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def _reap() -> None:
    """Collect exited children of this process (so they are not zombies)."""
    for job_id, p in list(_PROCS.items()):
        if p.poll() is not None:
            del _PROCS[job_id]


def _job_pid(d: Path, status: dict[str, Any]) -> int | None:
    """The worker's pid: from status.json, else the launcher's `pid` file."""
    if status.get("pid"):
        return int(status["pid"])
    try:
        return int((d / "pid").read_text())
    except (OSError, ValueError):
        return None


def _check_alive(d: Path, status: dict[str, Any]) -> dict[str, Any]:
    """Mark a non-final job whose worker is gone as failed ('process died')."""
    if status.get("state") in FINAL_STATES or _lock_held(d):
        return status
    if status.get("state", "queued") == "queued":
        pid = _job_pid(d, status)
        if pid is None and time.time() - (d / "config.json").stat().st_mtime < 30:
            return status  # being launched right now
        if _pid_alive(pid):
            return status  # still starting up (the worker takes its lock first thing)
    status = read_job_file(d / "status.json")  # the worker may have just finished
    if status.get("state") in FINAL_STATES:
        return status
    died = {"state": "failed", "finished": now(), "reason": "process died (no final state was written; see log.txt)"}
    try:
        return write_status(d, **died)
    except WriteError as e:  # a full or read-only cache: report it all the same (listing jobs must work)
        log.warning("%s", e)
        return {**status, **died}


def job_status(job_id: str) -> dict[str, Any]:
    """The job's status.json (with `config`), after a liveness check.

    Raises:
        JobError: no such job.
    """
    _reap()
    d = job_dir(job_id)
    status = _check_alive(d, read_job_file(d / "status.json"))
    return {**status, "id": job_id, "dir": str(d), "config": read_job_file(d / "config.json")}


def list_jobs() -> list[dict[str, Any]]:
    """Every job on disk, newest first (the same dicts as `job_status`, without history)."""
    _reap()
    out = []
    root = _jobs_folder()
    for d in sorted(root.iterdir(), reverse=True) if root.is_dir() else []:
        if not (d / "config.json").is_file():
            continue
        raw = read_job_file(d / "status.json")
        if not raw:  # damaged or missing status: say so instead of guessing a state
            raw = {"state": "failed", "reason": f"{d / 'status.json'} is missing or damaged", "id": d.name}
        status = _check_alive(d, raw)
        row = {k: v for k, v in status.items() if k != "history"}
        last = (status.get("history") or [{}])[-1]
        out.append({**row, "id": d.name, "dir": str(d), "loss": last.get("loss")})
    return sorted(out, key=lambda r: (r.get("created") or "", r["id"]), reverse=True)


def cancel_job(job_id: str, *, grace_s: float = 5.0) -> dict[str, Any]:
    """Ask a job to stop: write the cancel flag, then SIGTERM its process group if needed.

    The worker checks the flag before every step and ends with state 'cancelled'. If the
    job has not reached a final state after `grace_s` seconds (e.g. it is still loading
    the model), its process group gets SIGTERM, which the worker also turns into a clean
    'cancelled'. A finished job is left as it is.

    Returns:
        The job's status after the request.
    """
    d = job_dir(job_id)
    status = job_status(job_id)
    if status.get("state") in FINAL_STATES:
        return status
    atomic_write_text(d / "cancel", now(), CACHE_REMEDY)
    pid = _job_pid(d, status)

    def settled(deadline: float) -> bool:
        while time.monotonic() < deadline:
            _reap()
            if read_job_file(d / "status.json").get("state") in FINAL_STATES:
                return True
            if not _lock_held(d) and not _pid_alive(pid):
                return False
            time.sleep(0.05)
        return False

    if not settled(time.monotonic() + grace_s) and pid and _pid_alive(pid):
        try:
            os.killpg(pid, signal.SIGTERM)  # the worker leads its own process group
        except ProcessLookupError:
            pass
        settled(time.monotonic() + 10.0)
    if read_job_file(d / "status.json").get("state") not in FINAL_STATES and not _pid_alive(pid):
        write_status(d, state="cancelled", finished=now(),
                     reason="cancelled (the worker stopped before writing a final state)")
    return job_status(job_id)


def wait_job(job_id: str, *, timeout_s: float | None = None, poll_s: float = 0.2,
             on_update: Any = None) -> dict[str, Any]:
    """Poll until the job reaches a final state (or `timeout_s`); return its status.

    Args:
        job_id: the job.
        timeout_s: give up after this long (returns the current, non-final status).
        poll_s: seconds between polls.
        on_update: called with each new status (e.g. to print progress).
    """
    start = time.monotonic()
    while True:
        status = job_status(job_id)
        if on_update is not None:
            on_update(status)
        if status.get("state") in FINAL_STATES:
            return status
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            return status
        time.sleep(poll_s)


def snapshot(status: dict[str, Any]) -> Snapshot:
    """A process job's status (`job_status`/`list_jobs` row) as the common `Snapshot`."""
    state = str(status.get("state") or "queued")
    history = status.get("history") or []
    return Snapshot(str(status.get("id", "")), "finetune", str(status.get("method", "")),
                    state if state in STATES else "failed", str(status.get("message") or ""),
                    int(status.get("step") or 0), int(status.get("total") or 0), 0.0,
                    status.get("steps_per_s"), status.get("eta_s") if state not in FINAL_STATES else None,
                    status.get("reason"), status.get("artifact"), history[-1] if history else {})


# --------------------------------------------------------------------------- the states jobs made


def job_model_spec(model: ModelSpec) -> ModelSpec:
    """The base a fine-tune job trains (jobs train a base model only).

    Raises:
        JobError: `model` is already a tuned state.
    """
    if model.artifact:
        raise JobError("a tuned state cannot be fine-tuned further; choose its base model")
    return model


def tuned_states() -> list[dict[str, Any]]:
    """The model states made by finished fine-tune jobs, newest first.

    Returns:
        One dict per job that is done and whose artifact is readable: ``label``,
        ``source`` (base model), ``artifact`` (path), ``method``, ``job_id``,
        ``model`` (the state's ModelSpec dict, artifact included), ``languages``,
        ``data`` (the job's DataSpec dict: its held-out split is what `eval_compare`
        scores), ``pivot``, ``created``.
    """
    out = []
    for job in list_jobs():
        if job.get("state") != "done" or not job.get("artifact"):
            continue
        path = Path(job["artifact"])
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            spec = ModelSpec.from_dict({**(manifest.get("base_model") or {}), "artifact": str(path)})
        except (OSError, ValueError, TypeError) as e:  # a deleted or foreign artifact: skip, say why
            log.warning("skipping job %s: unreadable artifact %s (%s)", job["id"], path, e)
            continue
        method = str(job.get("method") or manifest.get("method"))
        record = METHODS.get(method)
        langs = [str(x) for x in manifest.get("languages") or []]
        created = str(job.get("created") or manifest.get("created") or "")[:16].replace("T", " ")
        label = (f"{record.label if record else method} {'/'.join(langs)} on {Path(spec.source).name} "
                 f"· {created} · {job['id'][-6:]}")
        out.append({"label": label, "source": spec.source, "artifact": str(path), "method": method,
                    "job_id": job["id"], "model": spec.to_dict(), "languages": langs,
                    "data": manifest.get("data"),
                    "pivot": record.pivot_of(manifest.get("spec") or {}) if record else None,
                    "created": created})
    return out

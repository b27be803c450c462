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

`status.json` and `config.json` are checked against their schemas whenever they are read
(`read_job_file`). A status that is not JSON or has fields of the wrong type is reported
as state `damaged` with what is wrong and what is known (a running worker, a complete
artifact), and never rewritten into a guessed state.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
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
from workbench.errors import CACHE_REMEDY, ArtifactError, JobError, WriteError
from workbench.examples import DataSpec
from workbench.fileio import (
    ListOf,
    Obj,
    atomic_write_json,
    atomic_write_text,
    ensure_dir,
    read_json_or_none,
    schema_problems,
    writing,
)
from workbench.finetune.methods import METHODS, spec_for
from workbench.finetune.runner import validate
from workbench.models import artifacts
from workbench.paths import cache_root
from workbench.progress import FINAL_STATES, STATES, Snapshot

log = logging.getLogger(__name__)

__all__ = ["DAMAGED", "FINAL_STATES", "JobError", "cancel_job", "job_dir", "job_status", "jobs_root", "list_jobs",
           "snapshot", "start_job", "wait_job", "write_status"]

_PROCS: dict[str, subprocess.Popen[bytes]] = {}

DAMAGED = "damaged"
"""The state reported for a job whose status.json cannot be trusted (never written to the file)."""

_NONE = type(None)
_NUMBER = (float, _NONE)
STATUS_SCHEMA = Obj({
    "id": str, "method": str, "state": str, "step": (int, _NONE), "total": (int, _NONE), "stage": (str, int, _NONE),
    "message": (str, _NONE), "history": ListOf(Obj({"step": int, "loss": _NUMBER})), "steps_per_s": _NUMBER,
    "eta_s": _NUMBER, "reason": (str, _NONE), "artifact": (str, _NONE), "pid": (int, _NONE), "processes": int,
    "created": str, "updated": str, "started": str, "finished": str, "metrics": (dict, _NONE),
}, required=("state",))
"""What `status.json` holds (module docstring); checked on every read."""

CONFIG_SCHEMA = Obj({"id": str, "method": str, "model": dict, "data": dict, "spec": dict, "evaluate": bool,
                     "num_processes": int, "created": str}, required=("method", "model", "data"))
"""What `config.json` holds; checked on every read."""

_SCHEMAS = {"status.json": STATUS_SCHEMA, "config.json": CONFIG_SCHEMA}


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


def job_file_problem(path: Path) -> tuple[dict[str, Any], str | None]:
    """(a job file's JSON object, None), or ({}, one line saying what is wrong with it).

    A missing file is ({}, None). `status.json` and `config.json` are checked against
    `STATUS_SCHEMA` / `CONFIG_SCHEMA` (types and nesting; the state must be one of `STATES`).
    """
    if not path.exists():
        return {}, None
    doc = read_json_or_none(path)
    if doc is None:
        return {}, f"{path} is damaged (not JSON)"
    problems = schema_problems(doc, _SCHEMAS.get(path.name, Obj()))
    if not problems and path.name == "status.json" and doc["state"] not in STATES:
        problems = [f"state: {doc['state']!r} is not one of {', '.join(STATES)}"]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        return {}, f"{path} is damaged ({'; '.join(problems[:3])}{more})"
    return doc, None


def read_job_file(path: Path) -> dict[str, Any]:
    """A job file's JSON object, or {} when it is missing or damaged (not JSON, or against its schema)."""
    doc, problem = job_file_problem(path)
    if problem:
        log.warning("%s; treating it as empty", problem)
    return doc


def write_status(d: Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into `<d>/status.json` (atomically) and return the new status.

    Only the job's own processes (the worker; the launcher before it starts) and a check
    that found its worker gone write here: a damaged file is merged as empty.
    """
    status = read_job_file(d / "status.json")
    status.update(fields, updated=now())
    atomic_write_json(d / "status.json", status, CACHE_REMEDY)
    return status


def _as_dict(x: Any) -> dict[str, Any]:
    return x.to_dict() if isinstance(x, Spec) else dict(x or {})


def start_job(method: str, model_spec: dict[str, Any] | ModelSpec, data_spec: dict[str, Any] | DataSpec,
              method_spec: dict[str, Any] | Any = None, *, evaluate: bool = True, num_processes: int = 1,
              force_processes: bool = False) -> str:
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
        num_processes: training processes (the global batch is split over them): at most the
            training units and this machine's GPUs (else CPU cores).
        force_processes: allow more processes than this machine's GPUs or CPU cores.

    Returns:
        The job id (`<method>-<UTC time>-<random>`).
    """
    spec = spec_for(method, method_spec if method_spec is None or isinstance(method_spec, Spec)
                    else dict(method_spec))
    model = model_spec if isinstance(model_spec, ModelSpec) else ModelSpec.from_dict(_as_dict(model_spec))
    if model.artifact:
        raise JobError("fine-tuning on top of an artifact is not supported; use the base model")
    data = data_spec if isinstance(data_spec, DataSpec) else DataSpec.from_dict(_as_dict(data_spec))
    validate(method, model, data, spec, num_processes=num_processes, force_processes=force_processes)
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


def _launching(d: Path) -> bool:
    """The job was created moments ago or its worker process is starting (it has no status of its own yet)."""
    return time.time() - (d / "config.json").stat().st_mtime < 30 or _pid_alive(_job_pid(d, {}))


def _complete_artifact(d: Path) -> str | None:
    """The job's artifact path if it is complete (written atomically: a readable manifest), else None."""
    try:
        artifacts.read_manifest(d / "artifact")
    except ArtifactError:
        return None
    return str(d / "artifact")


def _damaged(d: Path, problem: str) -> dict[str, Any]:
    """The report of a job whose status.json cannot be trusted: what is wrong and what is known; nothing written."""
    running, artifact = _lock_held(d), _complete_artifact(d)
    if running:
        known = "its worker is running (it rewrites the file at its next step)"
    elif artifact:
        known = f"its artifact {artifact} is complete"
    else:
        known = "no worker is running and it left no complete artifact"
    return {"state": DAMAGED, "reason": f"{problem}; {known}", "artifact": artifact, "running": running}


def _status(d: Path) -> dict[str, Any]:
    """A job's status: its checked status.json after a liveness check, or a `damaged` report."""
    status, problem = job_file_problem(d / "status.json")
    if problem is None and not status and not _launching(d):
        problem = f"{d / 'status.json'} is missing"
    return _damaged(d, problem) if problem else _check_alive(d, status)


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
    status, problem = job_file_problem(d / "status.json")  # the worker may have just finished
    if problem:
        return _damaged(d, problem)
    if status.get("state") in FINAL_STATES:
        return status
    died = {"state": "failed", "finished": now(), "reason": "process died (no final state was written; see log.txt)"}
    try:
        return write_status(d, **died)
    except WriteError as e:  # a full or read-only cache: report it all the same (listing jobs must work)
        log.warning("%s", e)
        return {**status, **died}


def job_status(job_id: str) -> dict[str, Any]:
    """The job's status.json (with `config`), after a liveness check; state `damaged` if it cannot be trusted.

    Raises:
        JobError: no such job.
    """
    _reap()
    d = job_dir(job_id)
    status = _status(d)
    out = {**status, "id": job_id, "dir": str(d), "config": read_job_file(d / "config.json")}
    if status.get("state") not in FINAL_STATES and (d / "cancel").exists():
        out["cancel_requested"] = True
    return out


def list_jobs() -> list[dict[str, Any]]:
    """Every job on disk, newest first (the same dicts as `job_status`, without history)."""
    _reap()
    out = []
    root = _jobs_folder()
    for d in sorted(root.iterdir(), reverse=True) if root.is_dir() else []:
        if not (d / "config.json").is_file():
            continue
        status = _status(d)
        row = {k: v for k, v in status.items() if k != "history"}
        last = (status.get("history") or [{}])[-1]
        out.append({**row, "id": d.name, "dir": str(d), "loss": last.get("loss")})
    return sorted(out, key=lambda r: (r.get("created") or "", r["id"]), reverse=True)


def _settled(d: Path, pid: int | None, deadline: float) -> bool:
    """Wait until the job has a final state (True) or its worker is gone without one or time is up (False)."""
    while time.monotonic() < deadline:
        _reap()
        if read_job_file(d / "status.json").get("state") in FINAL_STATES:
            return True
        if not _lock_held(d) and not _pid_alive(pid):
            return False
        time.sleep(0.05)
    return False


CANCEL_GRACE_S = 5.0
"""How long `cancel_job` waits for the worker to stop at its next step before it sends SIGTERM."""
CANCEL_TERM_S = 10.0
"""How long `cancel_job` then waits for the worker to stop after SIGTERM."""


def cancel_job(job_id: str, *, grace_s: float | None = None) -> dict[str, Any]:
    """Ask a job to stop: write the cancel flag, then SIGTERM its process group if needed.

    The worker checks the flag before every step and ends with state 'cancelled'. If the
    job has not reached a final state after `grace_s` seconds (default `CANCEL_GRACE_S`;
    e.g. it is still loading the model), its process group gets SIGTERM, which the worker
    also turns into a clean 'cancelled'. A finished job is left as it is, and so is a damaged one without a worker.

    Returns:
        The job's status after the request: `cancelled` once it has stopped, `cancelling`
        (with the state it had as `previous_state`) while its worker is still stopping,
        or its final (or `damaged`) state when there was nothing to cancel.
    """
    d = job_dir(job_id)
    status = job_status(job_id)
    if status.get("state") in FINAL_STATES or (status.get("state") == DAMAGED and not status.get("running")):
        return status
    atomic_write_text(d / "cancel", now(), CACHE_REMEDY)
    pid = _job_pid(d, status)
    grace = CANCEL_GRACE_S if grace_s is None else grace_s
    if not _settled(d, pid, time.monotonic() + grace) and pid and _pid_alive(pid):
        try:
            os.killpg(pid, signal.SIGTERM)  # the worker leads its own process group
        except ProcessLookupError:
            pass
        _settled(d, pid, time.monotonic() + CANCEL_TERM_S)
    current, problem = job_file_problem(d / "status.json")
    if (not problem and current.get("state") not in FINAL_STATES and not _pid_alive(pid)
            and not _lock_held(d)):
        write_status(d, state="cancelled", finished=now(),
                     reason="cancelled (the worker stopped before writing a final state)")
    after = job_status(job_id)
    if after.get("state") in FINAL_STATES:
        return after
    return {**after, "state": "cancelling", "previous_state": after.get("state"),
            "reason": "cancel requested; the worker stops at its next step (`workbench jobs show` follows it)"}


def wait_job(job_id: str, *, timeout_s: float | None = None, poll_s: float = 0.2,
             on_update: Any = None) -> dict[str, Any]:
    """Poll until the job reaches a final state (or `timeout_s`, or damage no worker will repair); return its status.

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
        if status.get("state") in FINAL_STATES or (status.get("state") == DAMAGED and not status.get("running")):
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
        One dict per job that is done (or `damaged` with a complete artifact) and whose
        artifact is readable: ``label``, ``source`` (base model), ``artifact`` (path),
        ``method``, ``job_id``, ``model`` (the state's ModelSpec dict, artifact included;
        `trust_remote_code` is never taken from the artifact's manifest: off), ``languages``,
        ``data`` (the job's DataSpec dict: its held-out split is what `eval_compare`
        scores), ``pivot``, ``created``.
    """
    out = []
    for job in list_jobs():
        if job.get("state") not in ("done", DAMAGED) or not job.get("artifact"):  # damaged: a complete artifact
            continue
        path = Path(job["artifact"])
        try:
            manifest = artifacts.read_manifest(path)
            base = manifest.get("base_model") or {}
            # data, never authority: custom model code runs only when the user's own command allows it
            spec = ModelSpec.from_dict({**base, "artifact": str(path), "trust_remote_code": False})
        except (ArtifactError, OSError, ValueError, TypeError) as e:  # a deleted or foreign artifact: skip, say why
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

"""N processes on this machine: the one home of launching ranks and summarising how they ended.

Used by sharded recording (`recordings.sharding`) and by multi-process fine-tunes
(`finetune.worker`):

- `check_num_processes`: N is at least 1, at most the units of work, and at most what
  this machine runs at once (`machine_slots`: visible GPUs, else CPU cores) unless the
  user forces it (`--force-processes`); refused in one line with the reason.
- `launch_command`: `accelerate launch` of a module on N processes (`free_port` for the
  rendezvous), `visible_devices`: how many GPUs ranks can use.
- `start`: THE way to start the launcher: it and its ranks die with the process that
  started it (Linux's parent-death signal: `prctl(PR_SET_PDEATHSIG)` through ctypes, set
  in the launcher before it execs accelerate, and in each rank by `die_with_launcher`), so
  a launcher killed with SIGKILL or by the out-of-memory killer leaves no rank running.
- `write_report` / `read_reports`: each rank's final report, `<folder>/ranks/<rank>.json`
  (`state`: done | failed | cancelled, `reason`, `lost` = the failure only says a peer went
  away, `time`).
- `summarize`: the one line a user reads: a rank's own failure (identical reasons once),
  then a cancel, then ranks that stopped without a report (killed), then ranks that only
  lost their peers, then the launcher's exit status.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from workbench.errors import ParamError
from workbench.fileio import atomic_write_json, read_json_or_none

__all__ = ["FORCE_FLAG", "check_num_processes", "die_with_launcher", "free_port", "launch_command", "machine_slots",
           "read_reports", "report_path", "start", "summarize", "visible_devices", "write_report"]

FORCE_FLAG = "--force-processes"
"""The command-line flag that starts more ranks than this machine runs at once."""

LAUNCHER_PID = "WORKBENCH_LAUNCHER_PID"
"""Environment variable: the pid of the launcher (accelerate) a rank belongs to (set by `start`)."""

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# Runs in the child before accelerate: ask for SIGTERM when the starting process dies (accelerate then
# stops its ranks), give up if it is already gone, and name this pid for the ranks; then become accelerate.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "prctl = getattr(ctypes.CDLL(None), 'prctl', None)\n"
    "if prctl is not None:\n"
    "    prctl(1, int(signal.SIGTERM))\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(1)\n"
    f"os.environ[{LAUNCHER_PID!r}] = str(os.getpid())\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def visible_devices() -> int:
    """CUDA devices this process sees (0 without CUDA): how many ranks can have a GPU each."""
    import torch  # here, not at the top: `cli._args` imports this module on the help path, which loads no torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_slots(device: str = "auto") -> tuple[int, str]:
    """(how many ranks this machine runs at once, what that is in words) for a model on `device`.

    One GPU per rank where the ranks use CUDA (`auto` or `cuda…` with GPUs visible),
    else one CPU core per rank (those this process may run on).
    """
    gpus = visible_devices()
    if gpus and not device.startswith(("cpu", "mps")):
        return gpus, f"{gpus} visible GPU{'s' if gpus > 1 else ''}"
    cores = _cores()
    return cores, f"{cores} CPU core{'s' if cores > 1 else ''}" + ("" if gpus else ", no GPU")


def check_num_processes(n: int, units: int, *, unit_name: str = "units", device: str = "auto",
                        force: bool = False) -> None:
    """Refuse N ranks that the work or the machine cannot use, in one line with the reason.

    Args:
        n: the ranks asked for (`--num-processes`).
        units: the units of work to share out (recorded units, training units).
        unit_name: what they are, for the message.
        device: the model's device (which machine resource a rank takes).
        force: start more ranks than `machine_slots` (never more than `units`).

    Raises:
        ParamError: N < 1, N > units, or N > the machine's slots without `force`.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ParamError(f"--num-processes must be >= 1, got {n}")
    if n == 1:
        return
    if n > units:
        raise ParamError(f"--num-processes {n} is more than the {units} {unit_name}: each process needs at least "
                         f"one; use at most {units}")
    slots, what = machine_slots(device)
    if n > slots and not force:
        raise ParamError(f"--num-processes {n} is more than this machine runs at once ({what}); use at most "
                         f"{slots}, or pass {FORCE_FLAG} to start {n} anyway")


def start(cmd: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """Start a launcher command (`launch_command`) that dies with this process, and its ranks with it.

    The child sets its parent-death signal (SIGTERM, which accelerate passes on to its ranks)
    before it execs `cmd`; each rank calls `die_with_launcher`. `popen`: `subprocess.Popen`'s
    keywords (stdin, start_new_session, ...).
    """
    return subprocess.Popen([sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *cmd], **popen)


def die_with_launcher() -> None:
    """In a rank: SIGKILL this process when its launcher dies (and exit now if it already has).

    A no-op outside a launch by `start` (no `WORKBENCH_LAUNCHER_PID`) and where Linux's
    `prctl` is missing.
    """
    launcher = os.environ.get(LAUNCHER_PID)
    prctl = getattr(ctypes.CDLL(None), "prctl", None)
    if not launcher or prctl is None:
        return
    prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != int(launcher):  # the launcher died before the signal was asked for
        os._exit(1)


def free_port() -> int:
    """A TCP port that is free on this host right now (for the rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_command(num_processes: int, module_args: Sequence[str], *, port: int | None = None,
                   extra: Sequence[str] = ()) -> list[str]:
    """`python -m accelerate.commands.launch … -m <module_args>`: N processes on this machine.

    `--multi_gpu` is accelerate's torchrun launcher (it also runs on CPU: the processes
    then use gloo). `extra` goes before the module (e.g. `--config_file` for several nodes).
    """
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
            str(num_processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(port or free_port()), *extra, "-m", *module_args]


def report_path(folder: Path, rank: int) -> Path:
    """Where rank `rank` writes its final report."""
    return folder / "ranks" / f"{rank}.json"


def write_report(folder: Path, rank: int, state: str, reason: str | None = None, **extra: Any) -> None:
    """Rank `rank`'s final report (atomic): state, reason, and what else the launcher needs (e.g. `artifact`)."""
    (folder / "ranks").mkdir(parents=True, exist_ok=True)
    atomic_write_json(report_path(folder, rank), {"state": state, "reason": reason, "rank": rank,
                                                  "time": time.time(), **extra})


def read_reports(folder: Path, n: int) -> dict[int, dict[str, Any]]:
    """Every rank's report ({} for a rank that wrote none or a damaged one)."""
    out: dict[int, dict[str, Any]] = {}
    for r in range(n):
        doc = read_json_or_none(report_path(folder, r))
        out[r] = doc if isinstance(doc, dict) else {}
    return out


def _ranks(rs: Sequence[int]) -> str:
    return f"rank{'s' if len(rs) > 1 else ''} {', '.join(map(str, rs))}"


def summarize(reports: Mapping[int, Mapping[str, Any]], returncode: int | None, *,
              cancelled: bool = False) -> dict[str, Any]:
    """How N ranks ended, as `{"state": done | failed | cancelled, "reason": one line}` (+ rank 0's report).

    Args:
        reports: rank -> its report (`read_reports`).
        returncode: the launcher's exit status (None: unknown).
        cancelled: the user asked to cancel.
    """
    n = len(reports)
    own: dict[str, list[int]] = {}
    for r, rep in sorted(reports.items(), key=lambda kv: (kv[1].get("time", 0), kv[0])):
        if rep.get("state") == "failed" and not rep.get("lost"):
            own.setdefault(str(rep.get("reason")), []).append(r)
    if own:
        return {"state": "failed", "reason": "; ".join(f"{_ranks(sorted(rs))}: {why}" for why, rs in own.items())}
    if cancelled:
        why = next((rep["reason"] for rep in reports.values() if rep.get("state") == "cancelled"), "cancelled")
        return {"state": "cancelled", "reason": why}
    silent = [r for r, rep in reports.items() if not rep]
    if silent and len(silent) == n and returncode:
        return {"state": "failed", "reason": f"accelerate launch exited with status {returncode} before any rank "
                                             "reported; see the log"}
    if silent:
        return {"state": "failed", "reason": f"{_ranks(silent)} of {n} stopped without writing a final state "
                f"(killed by a signal, e.g. SIGKILL or the out-of-memory killer); accelerate launch exited with "
                f"status {returncode}; see the log"}
    lost = [r for r, rep in reports.items() if rep.get("state") == "failed"]
    if lost:
        return {"state": "failed", "reason": f"{_ranks(lost)}: {reports[lost[0]].get('reason')}"}
    if returncode == 0 and all(rep.get("state") == "done" for rep in reports.values()):
        return {**reports[0], "state": "done", "reason": None}
    return {"state": "failed", "reason": f"accelerate launch exited with status {returncode}; see the log"}

"""N processes on this machine: the one home of launching ranks and summarising how they ended.

Used by sharded recording (`recordings.sharding`) and by multi-process fine-tunes
(`finetune.worker`):

- `launch_command`: `accelerate launch` of a module on N processes (`free_port` for the
  rendezvous), `visible_devices`: how many GPUs ranks can use.
- `write_report` / `read_reports`: each rank's final report, `<folder>/ranks/<rank>.json`
  (`state`: done | failed | cancelled, `reason`, `lost` = the failure only says a peer went
  away, `time`).
- `summarize`: the one line a user reads: a rank's own failure (identical reasons once),
  then a cancel, then ranks that stopped without a report (killed), then ranks that only
  lost their peers, then the launcher's exit status.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from workbench.fileio import atomic_write_json, read_json_or_none

__all__ = ["free_port", "launch_command", "read_reports", "report_path", "summarize", "visible_devices",
           "write_report"]


def visible_devices() -> int:
    """CUDA devices this process sees (0 without CUDA): how many ranks can have a GPU each."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


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

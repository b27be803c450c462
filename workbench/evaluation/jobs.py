"""Evaluations as background jobs: the worker's `evaluate` kind, and starting one from the app.

A page asks for the evaluation of N states; the job evaluates each (every suite served
from the store when it is there, computed once otherwise) with progress, rate, ETA and
cancel. Its progress counts the examples that will really be scored (the suites the store
lacks, `run.planned_work`), across all states, and names each phase (loading a state,
evaluating it). Two tabs asking for the same thing share one job; the page reads the
results from the store once it is done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workbench import models
from workbench.config import ModelSpec, stable_hash
from workbench.evaluation.generate import DecodingSpec
from workbench.evaluation.run import evaluate, planned_work
from workbench.examples import DataSpec
from workbench.jobs.threads import ThreadRegistry
from workbench.jobs.warm import WARM
from workbench.paths import cache_root
from workbench.progress import StatusFn

__all__ = ["eval_job_args", "eval_job_key", "evaluate_job", "start_evaluation"]


def eval_job_key(states: Mapping[str, ModelSpec], suites: Sequence[str], data: Any,
                 directions: Sequence[tuple[str, str]] | None, limit: int | None, decoding: DecodingSpec) -> str:
    """Key of an evaluation job: everything it computes, and the store root."""
    data_d = data.to_dict() if hasattr(data, "to_dict") else str(data)
    return stable_hash({"states": {k: v.to_dict() for k, v in states.items()}, "suites": list(suites),
                        "data": data_d, "directions": [list(d) for d in directions or []], "limit": limit,
                        "decoding": decoding.to_dict(), "root": str(cache_root())}, n=20)


def eval_job_args(states: Mapping[str, ModelSpec], suites: Sequence[str], data: Any,
                  directions: Sequence[tuple[str, str]] | None, limit: int | None,
                  decoding: DecodingSpec) -> dict[str, Any]:
    """The JSON arguments of the `evaluate` job kind."""
    data_d = data.to_dict() if hasattr(data, "to_dict") else {"source": str(data)}
    return {"states": {k: v.to_dict() for k, v in states.items()}, "suites": list(suites), "data": data_d,
            "directions": [list(d) for d in directions or []], "limit": limit, "decoding": decoding.to_dict()}


def evaluate_job(args: Mapping[str, Any], job: Any) -> dict[str, Any]:
    """The `evaluate` job kind: every state of `args`, in order (`job`: the reporter of progress, phases, cancel).

    Returns:
        `{"states": labels, "examples": how many were scored}` (the results are in the store).
    """
    states = {k: ModelSpec.from_dict(dict(v)) for k, v in args["states"].items()}
    suites = list(args["suites"])
    data = DataSpec.from_dict(dict(args["data"]))
    dirs = [tuple(d) for d in args.get("directions") or []] or None
    limit = args.get("limit")
    decoding = DecodingSpec.from_dict(dict(args.get("decoding") or {}))
    job.phase("checking the store", unit="examples")
    plans = {label: planned_work(spec, suites, data, directions=dirs, limit=limit, decoding=decoding)
             for label, spec in states.items()}
    total = sum(units for _, units in plans.values())
    offset = 0
    for label, spec in states.items():
        todo, units = plans[label]
        if not todo:
            continue
        if models.normalize(spec) not in models.loaded_states():
            job.phase(f"loading {label}", load=spec.source)
            models.load(spec, progress=job.status)  # kept loaded by the worker for the next job
        job.phase(f"evaluating {label}: {', '.join(todo)}", unit="examples")

        evaluate(spec, suites, data, directions=dirs, limit=limit, decoding=decoding, label=label,
                 progress=_OffsetProgress(job, label, offset, total), should_stop=job.should_stop,
                 status=_labelled_status(job, label))
        offset += units
    return {"states": list(states), "examples": offset}


class _OffsetProgress:
    """One state's progress, counted on from the states before it (the job's bar covers them all)."""

    def __init__(self, job: Any, label: str, offset: int, total: int) -> None:
        self.job, self.label, self.offset, self.total = job, label, offset, total

    def __call__(self, done: int, total: int, message: str = "", metrics: Mapping[str, Any] | None = None) -> None:
        """Forward `done` of this state's `total` as a share of the whole job."""
        self.job.progress(self.offset + min(done, total), max(self.total, self.offset + total),
                          f"evaluating {self.label}: {message.split(': ')[-1]}")


def _labelled_status(job: Any, label: str) -> StatusFn:
    """One state's phase messages, named after it."""
    return lambda message: job.status(f"{label}: {message}")


def start_evaluation(states: Mapping[str, ModelSpec], suites: Sequence[str], data: Any, *,
                     directions: Sequence[tuple[str, str]] | None = None, limit: int | None = None,
                     decoding: DecodingSpec | None = None, registry: ThreadRegistry | None = None,
                     rerun_done: bool = False) -> Any:
    """Evaluate every state (label → ModelSpec) in the background; returns the (possibly shared) job.

    By default the app's warm worker runs it (`jobs.warm.WARM`); a `ThreadRegistry` runs it
    in a thread of this process instead (notebooks, tests).
    """
    decoding = decoding or DecodingSpec()
    key = eval_job_key(states, suites, data, directions, limit, decoding)
    label = f"Evaluation of {', '.join(states)} · {', '.join(suites)}" + (f" · first {limit} units" if limit else "")
    args = eval_job_args(states, suites, data, directions, limit, decoding)
    if registry is not None:
        return registry.submit(key, label, lambda job: evaluate_job(args, job), kind="eval", rerun_done=rerun_done)
    return WARM.submit(key, label, "evaluate", args, rerun_done=rerun_done)

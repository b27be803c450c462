"""Evaluations as background jobs of the one job system (`workbench.jobs.threads`).

A page asks for the evaluation of N states; the job evaluates each (every suite served
from the store when it is there, computed once otherwise) with progress, rate, ETA and
cancel, and its result is the combined `EvalResult`. Two tabs asking for the same thing
share one job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workbench.config import ModelSpec, stable_hash
from workbench.evaluation.generate import DecodingSpec
from workbench.evaluation.run import EvalResult, evaluate
from workbench.evaluation.tables import combine
from workbench.jobs.threads import JOBS, ThreadJob, ThreadRegistry
from workbench.paths import cache_root


def eval_job_key(states: Mapping[str, ModelSpec], suites: Sequence[str], data: Any,
                 directions: Sequence[tuple[str, str]] | None, limit: int | None, decoding: DecodingSpec) -> str:
    """Key of an evaluation job: everything it computes, and the store root."""
    data_d = data.to_dict() if hasattr(data, "to_dict") else str(data)
    return stable_hash({"states": {k: v.to_dict() for k, v in states.items()}, "suites": list(suites),
                        "data": data_d, "directions": [list(d) for d in directions or []], "limit": limit,
                        "decoding": decoding.to_dict(), "root": str(cache_root())}, n=20)


def start_evaluation(states: Mapping[str, ModelSpec], suites: Sequence[str], data: Any, *,
                     directions: Sequence[tuple[str, str]] | None = None, limit: int | None = None,
                     decoding: DecodingSpec | None = None, registry: ThreadRegistry | None = None,
                     rerun_done: bool = False) -> ThreadJob:
    """Evaluate every state (label → ModelSpec) in the background; returns the (possibly shared) job.

    Progress is reported per batch across all states; the result is `combine` of each
    state's `EvalResult`.
    """
    decoding = decoding or DecodingSpec()
    labels = list(states)

    def work(job: ThreadJob) -> EvalResult:
        parts = []
        for i, (label, spec) in enumerate(states.items()):
            def progress(done: int, total: int, message: str = "", metrics: Any = None, *, _i: int = i) -> None:
                # one bar over all states: each state's share is 1/N of it
                job.progress(_i * 1000 + int(1000 * done / max(total, 1)), 1000 * len(labels),
                             f"{label}: {message}")

            job.status(f"evaluating {label}")
            if i == 0:
                job.computing()
            parts.append(evaluate(spec, suites, data, directions=directions, limit=limit, decoding=decoding,
                                  label=label, progress=progress, should_stop=job.should_stop))
        return combine(parts)

    key = eval_job_key(states, suites, data, directions, limit, decoding)
    label = f"evaluate {', '.join(labels)} · {', '.join(suites)}"
    return (registry or JOBS).submit(key, label, work, kind="eval", rerun_done=rerun_done)

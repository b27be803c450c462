"""N-state comparisons of evaluation results: one column per state, differences to a reference.

Pure functions over the tables of `EvalResult` (no model, no store).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from workbench.evaluation.run import EVAL_COLUMNS, GENERATION_COLUMNS, EvalResult, evaluate

__all__ = ["combine", "compare_scores", "evaluate_many", "filter_generations", "side_by_side"]

_KEY = ["suite", "direction", "metric"]


def combine(results: Sequence[EvalResult]) -> EvalResult:
    """Concatenate the tables (and manifests) of several states' results."""
    ev = pd.concat([r.eval for r in results], ignore_index=True) if results else pd.DataFrame(columns=EVAL_COLUMNS)
    gen = (pd.concat([r.generations for r in results], ignore_index=True) if results
           else pd.DataFrame(columns=GENERATION_COLUMNS))
    manifest: dict[str, Any] = {}
    for r in results:
        manifest.update(r.manifest)
    return EvalResult(ev[EVAL_COLUMNS], gen[GENERATION_COLUMNS], manifest)


def _states(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["state"]))


def compare_scores(eval_df: pd.DataFrame, *, reference: str | None = None, intervals: bool = False) -> pd.DataFrame:
    """Scores with one column per state (in first-seen order), rows (suite, direction, metric).

    Args:
        eval_df: an `EvalResult.eval` table of one or more states.
        reference: a state; adds one column `Δ <state>` (state − reference) per other state.
        intervals: also add `<state> low` / `<state> high` columns.
    """
    states = _states(eval_df)
    if reference is not None and reference not in states:
        raise KeyError(f"reference state {reference!r} is not in the table (states: {', '.join(states)})")
    rows = pd.MultiIndex.from_frame(eval_df[_KEY].drop_duplicates())

    def wide(col: str) -> pd.DataFrame:
        return eval_df.pivot(index=_KEY, columns="state", values=col).reindex(index=rows, columns=states)

    out = wide("value")
    if intervals:
        for col, name in (("ci_low", "low"), ("ci_high", "high")):
            w = wide(col)
            for s in states:
                out[f"{s} {name}"] = w[s]
    if reference is not None:
        for s in states:
            if s != reference:
                out[f"Δ {s}"] = out[s] - out[reference]
    out.columns.name = None
    return out


def side_by_side(gen_df: pd.DataFrame) -> pd.DataFrame:
    """Generations with one block of columns per state: `<state>: output`, `: output_lang`, `: chrf`.

    Rows: (direction, id) with the source and reference once.
    """
    states = _states(gen_df)
    base = gen_df.drop_duplicates(["direction", "id"])[["direction", "id", "source", "reference"]]
    out = base.set_index(["direction", "id"])
    for s in states:
        part = gen_df[gen_df["state"] == s].set_index(["direction", "id"])
        for col in ("output", "output_lang", "chrf"):
            out[f"{s}: {col}"] = part[col]
    return out.reset_index()


def filter_generations(wide: pd.DataFrame, *, direction: str | None = None, only_disagreements: bool = False,
                       only_off_target: bool = False, targets: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Rows of a `side_by_side` table: one direction, only where states' outputs differ, only off-target.

    `only_off_target` keeps rows where some state's output language is not the direction's
    target (`targets` maps direction → target; default: the part after `>`).
    """
    out = wide if direction is None else wide[wide["direction"] == direction]
    outputs = [c for c in out.columns if c.endswith(": output")]
    if only_disagreements and outputs:
        out = out[out[outputs].nunique(axis=1) > 1]
    if only_off_target:
        langs = [c for c in out.columns if c.endswith(": output_lang")]
        tgt = out["direction"].map(lambda d: (targets or {}).get(d, d.split(">")[-1]))
        out = out[out[langs].ne(tgt, axis=0).any(axis=1)] if langs else out
    return out


def evaluate_many(states: Mapping[str, Any], suites: Sequence[str], data: Any, **kw: Any) -> EvalResult:
    """`evaluate` each state (label → ModelState or ModelSpec) with the same arguments; one combined result.

    A state whose suites are stored is served without loading it (specs) or running it.
    """
    return combine([evaluate(s, suites, data, label=label, **kw) for label, s in states.items()])

"""N-state comparisons of evaluation results: one column per state, differences to a reference.

Pure functions over the tables of `EvalResult` (no model, no store). Every score table has
an `n` column (the sentences a row is computed from); an interval is reported only from
`MIN_N_INTERVAL` sentences on, and :func:`score_table` (the display form) says why not below.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from workbench.analysis.intervals import MIN_N_INTERVAL, interval_note
from workbench.evaluation.run import EVAL_COLUMNS, GENERATION_COLUMNS, EvalResult, evaluate

__all__ = ["MIN_N_INTERVAL", "combine", "compare_scores", "evaluate_many", "filter_generations", "format_change",
           "interval_note", "score_formats", "score_table", "side_by_side"]

_KEY = ["suite", "direction", "metric"]
EMPTY = "—"
"""What a display cell shows for a missing value (never "None" or "nan")."""


def _decimals(value: float) -> int:
    """Decimals to show: 4 significant digits, at most 4 decimals, none from 1000 on."""
    if not math.isfinite(value) or value == 0:
        return 2
    return int(min(4, max(0, 3 - math.floor(math.log10(abs(value))))))


def _number(value: Any, decimals: int | None = None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return EMPTY
    v = float(value)
    d = _decimals(v) if decimals is None else decimals
    return f"{0.0 if abs(v) < 0.5 * 10 ** -d else v:.{d}f}"


def format_change(delta: Any, decimals: int = 2, *, percent: bool = False) -> str:
    """A signed difference for display: ``+1.23``, ``−0.50``, ``0.00`` (never ``−0.00``).

    A change smaller than half the last shown digit is shown as zero without a sign, so
    rounding noise never reads as a loss (the "−0.0% vs A" with a down arrow).

    Args:
        delta: the difference (None/NaN: "—").
        decimals: digits after the point.
        percent: `delta` is a fraction shown as a percentage (``0.012`` → ``+1.20%``).
    """
    if delta is None or (isinstance(delta, float) and not math.isfinite(delta)):
        return EMPTY
    v = float(delta) * (100 if percent else 1)
    unit = "%" if percent else ""
    if abs(v) < 0.5 * 10 ** -decimals:
        return f"{0:.{decimals}f}{unit}"
    return f"{'+' if v > 0 else '−'}{abs(v):.{decimals}f}{unit}"


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


def _with_n(eval_df: pd.DataFrame) -> pd.DataFrame:
    return eval_df if "n" in eval_df.columns else eval_df.assign(n=np.nan)


def _n_column(n: pd.DataFrame) -> pd.Series | None:
    """One `n` per row when every state has the same (the usual case: one data, one limit), else None."""
    agree = n.nunique(axis=1, dropna=False) <= 1
    return n.iloc[:, 0] if bool(agree.all()) else None


def compare_scores(eval_df: pd.DataFrame, *, reference: str | None = None, intervals: bool = False) -> pd.DataFrame:
    """Scores with one column per state (in first-seen order), rows (suite, direction, metric).

    Args:
        eval_df: an `EvalResult.eval` table of one or more states.
        reference: a state; adds one column `Δ <state>` (state − reference) per other state.
        intervals: also add `<state> low` / `<state> high` columns; empty (NaN) where the row
            has fewer than `MIN_N_INTERVAL` sentences (:func:`interval_note` says why).

    Returns:
        The wide table; its first column `n` (the sentences of each row; NaN: unknown), or
        one `<state> n` column per state where the states were scored on different numbers.
    """
    eval_df = _with_n(eval_df)
    states = _states(eval_df)
    if reference is not None and reference not in states:
        raise KeyError(f"reference state {reference!r} is not in the table (states: {', '.join(states)})")
    rows = pd.MultiIndex.from_frame(eval_df[_KEY].drop_duplicates())

    def wide(col: str) -> pd.DataFrame:
        return eval_df.pivot(index=_KEY, columns="state", values=col).reindex(index=rows, columns=states)

    n = wide("n").astype(float)
    out = wide("value")
    if intervals:
        few = n < MIN_N_INTERVAL
        for col, name in (("ci_low", "low"), ("ci_high", "high")):
            w = wide(col).mask(few)
            for s in states:
                out[f"{s} {name}"] = w[s]
    if reference is not None:
        for s in states:
            if s != reference:
                out[f"Δ {s}"] = out[s] - out[reference]
    _insert_n(out, n)
    out.columns.name = None
    return out


def _insert_n(out: pd.DataFrame, n: pd.DataFrame) -> None:
    """`n` first (one column, or one per state when the states differ)."""
    common = _n_column(n)
    if common is not None:
        out.insert(0, "n", common)
        return
    for i, s in enumerate(n.columns):
        out.insert(i, f"{s} n", n[s])


def _interval_text(low: float, high: float, n: float, decimals: int) -> str:
    """``"[28.40, 31.95]"``, or why there is none (``"n = 1: too few for an interval"``, "—")."""
    note = interval_note(n, low, high)
    if note == "no interval":
        return EMPTY
    return note or f"[{_number(low, decimals)}, {_number(high, decimals)}]"


def score_table(eval_df: pd.DataFrame, *, reference: str | None = None) -> pd.DataFrame:
    """The Scores table as shown: numbers, n, and per state its interval as text (or why it has none).

    Columns: suite, direction, metric, n (sentences; NaN: unknown; "a / b" text when the
    states differ), then per state its value and ``<state> 95% interval`` (``[low, high]``,
    or ``n = 1: too few for an interval`` below `MIN_N_INTERVAL`), then ``Δ <state>``
    (state − reference). Values stay numbers (sortable, exact); :func:`score_formats` gives
    their display ("—" for missing, never "None"; a rounding-level change as ``0.00``).
    """
    eval_df = _with_n(eval_df)
    wide = compare_scores(eval_df, reference=reference, intervals=True)
    states = _states(eval_df)
    n = eval_df.pivot(index=_KEY, columns="state", values="n").reindex(index=wide.index, columns=states).astype(float)
    common = _n_column(n)
    deltas = [c for c in wide.columns if str(c).startswith("Δ ")]
    rows = []
    for (key, w), (_, nr) in zip(wide.iterrows(), n.iterrows()):
        values = w[states].to_numpy(dtype=float)
        d = _decimals(float(np.abs(values[np.isfinite(values)]).max(initial=0.0)))
        row: dict[str, Any] = dict(zip(_KEY, key))
        row["n"] = common[key] if common is not None else " / ".join(_count(x) for x in nr)
        for s in states:
            row[s] = w[s]
            row[f"{s} 95% interval"] = _interval_text(w[f"{s} low"], w[f"{s} high"], nr[s], d)
        row.update({c: w[c] for c in deltas})
        rows.append(row)
    cols = [*_KEY, "n", *(x for s in states for x in (s, f"{s} 95% interval")), *deltas]
    return pd.DataFrame(rows, columns=cols)


def score_formats(table: pd.DataFrame) -> dict[str, Callable[[Any], str]]:
    """Display formatters of a :func:`score_table` (for ``table.style.format``): column → function."""
    out: dict[str, Callable[[Any], str]] = {}
    for col in table.columns:
        if col == "n":
            out[col] = lambda x: _count(float(x)) if isinstance(x, int | float | np.number) else str(x)
        elif str(col).startswith("Δ "):
            out[col] = lambda x: format_change(x, _decimals(float(x)) if _finite(x) else 2)
        elif pd.api.types.is_numeric_dtype(table[col]):
            out[col] = _number
    return out


def _finite(x: Any) -> bool:
    return isinstance(x, int | float | np.number) and math.isfinite(float(x))


def _count(x: float) -> str:
    return str(int(x)) if math.isfinite(x) else EMPTY


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

"""SiLP projection sensitivity and its N2D/D2N layer allocation (SiLP §3.1–3.2), one translation direction.

Reads SiLP's translation-prompt pass of the direction (`tables.silp_record_spec`), not the
main recording; its two-state form is `compare_sensitivity`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.config import CorpusSpec, spec_field
from workbench.recipes import tables
from workbench.recipes.analysis import Analysis, Compare, Need, Report, main_recording, sparkline
from workbench.recipes.compare import side_by_side
from workbench.recipes.context import Ctx
from workbench.recipes.params import CompareParams, Direction
from workbench.viz import compare_figures as cfig
from workbench.viz import figures

__all__ = ["ANALYSES", "SensitivityParams", "sensitivity_compare"]


@dataclass(frozen=True)
class SensitivityParams(Direction):
    """SiLP projection sensitivity and N2D/D2N layer allocation (SiLP §3.1–3.2)."""

    split: int | None = spec_field("split layer k; None = round(0.625·L)", None)
    k1: int | None = spec_field("N2D layers: the top-k1 of layers 1…k; None = min(4, candidates) (the paper's 4)",
                                None)
    k2: int | None = spec_field("D2N layers: the top-k2 of layers k+1…L-1; None = min(4, candidates)", None)


@dataclass(frozen=True)
class CompareSensitivityParams(Direction, CompareParams):
    """SiLP projection sensitivity of one direction for two states."""


def _needs(canon: Mapping[str, Any]) -> list[Need]:
    """SiLP's translation-prompt pass of the direction src → tgt."""
    p = canon["params"]
    main = main_recording(canon)[0]
    corpus = CorpusSpec(source=main.corpus.source, langs=(p["src"], p["tgt"]), limit=main.corpus.limit)
    return [dataclasses.replace(main, corpus=corpus, record=tables.silp_record_spec(base=main.record),
                                pairs=((p["src"], p["tgt"]),))]


def _sensitivity(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    rec = c.record()
    unit = next(iter(rec.entries))
    scores = tables.sensitivity_scores(rec, unit, p["variant"])
    table, n2d, d2n, split = tables.allocation_table(scores, split=p["split"], k1=p["k1"], k2=p["k2"])
    c.facts["split"] = split
    title = c.spec["title"] or f"Projection sensitivity {unit.replace('>', '→')} ({p['variant']})"
    return figures.sensitivity_figure(scores, n2d, d2n, split=split, title=title), table


def _report(built: Any, rebuild: Callable[..., Any]) -> Report:
    p, table, split = built.info["params"], built.table, built.info["split"]
    scores = table["score"].to_numpy()
    n2d = [int(x) for x in table.loc[table.allocation == "N2D", "layer"]]
    d2n = [int(x) for x in table.loc[table.allocation == "D2N", "layer"]]
    return Report([f"projection sensitivity {p['src']}>{p['tgt']} ({p['variant']} variant), split k={split}",
                   "scores by layer: " + sparkline(pd.Series(scores), list(range(len(scores)))),
                   "  " + ", ".join(f"{i}:{s:.4g}" for i, s in enumerate(scores) if not np.isnan(s)),
                   f"N2D layers (top-{p['k1']} of 1…{split}): {n2d}",
                   f"D2N layers (top-{p['k2']} of {split + 1}…{len(scores) - 1}): {d2n}"], {"": table})


def sensitivity_compare(pair_a: Any, pair_b: Any, unit: str, variant: str = "paper") -> pd.DataFrame:
    """SiLP projection sensitivity of one direction (`tables.sensitivity_scores`): layer, measure, a, b, diff."""
    scores = (tables.sensitivity_scores(pair_a, unit, variant), tables.sensitivity_scores(pair_b, unit, variant))
    frames = [pd.DataFrame({"layer": range(len(s)), "sensitivity": np.asarray(s, np.float64)}) for s in scores]
    out = side_by_side(frames[0], frames[1], ["layer"], ["sensitivity"])
    out.attrs.update(unit=unit, variant=variant)
    return out


def _compare(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    table = sensitivity_compare(c.record("a"), c.record("b"), f"{p['src']}>{p['tgt']}", p["variant"])
    title = c.spec["title"] or f"Projection sensitivity, {p['src']} → {p['tgt']} ({p['variant']})"
    return cfig.compare_by_layer_figure(table, line="measure", labels=c.labels(), y_title="projection sensitivity",
                                        title=title), table


ANALYSES = (
    Analysis("sensitivity", "SiLP projection sensitivity and N2D/D2N layer allocation", SensitivityParams,
             _sensitivity, needs=_needs, report=_report, compare=Compare(CompareSensitivityParams, _compare)),
)

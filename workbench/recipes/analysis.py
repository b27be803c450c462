"""The `Analysis` record: one view, whichever door the user comes in by (LIT's component with its config spec).

An analysis module (`recipes.retrieval`, `recipes.sensitivity`, …) declares its frozen
`Params` (`recipes.params`), the recordings a spec reads (`needs`), how it builds its
figure and table (`build`), its command-line summary (`report`) and, optionally, its
two-state form (`Compare`: A, B and B − A), and `recipes.registry` registers it. The CLI
(`workbench analyze <name>`, flags from `Params`), the pages (widget defaults), `export`,
`report`, figure sets and manifests read only the registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.recipes.params import CompareParams, Params

__all__ = ["Analysis", "Compare", "LensNeed", "Need", "Report", "main_recording", "model_b", "record_spec", "sparkline"]


@dataclass(frozen=True)
class Need:
    """One recording a figure reads: its role ('main', 'a', 'b') and its specs."""

    role: str
    model: ModelSpec
    corpus: CorpusSpec
    record: RecordSpec
    pairs: tuple[tuple[str, str], ...] | None = None
    remote: bool = False  # recorded on NDIF (`ensure_recording(remote=True)`)


@dataclass(frozen=True)
class LensNeed:
    """One lens readout a figure reads (`recordings.lens.LensRequest`'s fields, light: no torch here).

    `role` names the state (``"main"`` or its label); `spec` holds `lenses.LensSpec`'s fields;
    `lens` is ``"logit"`` or a tuned-lens id; `about` says how the prompts were made (it is
    part of the store key, with everything else here and the model state's fingerprint).
    `patch` (a `lenses.PatchSpec`'s fields) makes it a patching readout: the prompts are the
    target runs (`recipes.patching`).
    """

    role: str
    model: ModelSpec
    prompts: tuple[str, ...]
    token_sets: tuple[tuple[str, tuple[int, ...]], ...]
    spec: Mapping[str, Any]
    lens: str = "logit"
    about: Mapping[str, Any] = field(default_factory=dict)
    patch: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Report:
    """What `workbench analyze` prints and writes: summary lines and tables (suffix '' = `<name>.csv`)."""

    lines: list[str]
    tables: dict[str, pd.DataFrame]


def record_spec(canon: Mapping[str, Any], **override: Any) -> RecordSpec:
    """The RecordSpec of a canonical figure spec, with `override` fields."""
    return RecordSpec.from_dict({**RecordSpec().to_dict(), **canon["record"], **override})


def main_recording(canon: Mapping[str, Any]) -> list[Need]:
    """The default need: the spec's model on its corpus and languages with its recording options."""
    corpus = CorpusSpec(source=canon["corpus"], langs=tuple(canon["langs"]), limit=canon["limit"])
    return [Need("main", ModelSpec.from_dict(canon["model"]), corpus, record_spec(canon),
                 remote=bool(canon.get("remote")))]


def model_b(canon: Mapping[str, Any]) -> ModelSpec:
    """State B of a two-state spec: `params.state_b`, its missing fields taken from the spec's model."""
    b = dict(canon["params"]["state_b"])
    base = dict(canon["model"]) if "source" not in b else {}
    return ModelSpec.from_dict({**base, **b})


def sparkline(values: Any, labels: list[Any]) -> str:
    """A one-line sparkline of a per-layer curve (the CLI's summaries)."""
    bars = "▁▂▃▄▅▆▇█"
    v = np.asarray(values, dtype=float)
    lo, hi = np.nanmin(v), np.nanmax(v)
    scaled = [" " if np.isnan(x) else bars[int((x - lo) / (hi - lo + 1e-12) * 7)] for x in v]
    return f"{labels[0]} {''.join(scaled)} {labels[-1]}  (min {lo:.3f}, max {hi:.3f})"


def _default_report(built: Any, rebuild: Callable[..., Any]) -> Report:
    t = built.table
    head = f"{built.info['analysis']}: {len(t)} rows × {len(t.columns)} columns ({', '.join(map(str, t.columns))})"
    return Report([head, t.head(12).to_string(index=False)], {"": t, **built.extra})


@dataclass(frozen=True)
class Compare:
    """The two-state form of an analysis, registered as `compare_<name>`: A = the spec's model, B = `state_b`.

    `params` is the form's parameter class (the analysis's fields plus `CompareParams`'s
    `state_b` and `labels`, and whatever the form draws); `build(ctx)` reads the
    recordings of roles 'a' and 'b' (the base analysis's needs for each state).
    """

    params: type[CompareParams]
    build: Callable[[Any], tuple[Any, pd.DataFrame]]
    help: str = ""


@dataclass(frozen=True)
class Analysis:
    """One analysis: its parameters, what it reads, how it is built and reported.

    `build(ctx) -> (figure, table)` (`recipes.context.Ctx`: the canonical spec, its
    recordings, side tables and resolved facts). `needs(canon) -> [Need]` names every
    recording a canonical spec reads (`build` records them; pages only look them up).
    `report(built, rebuild)`: the CLI's summary and files (`rebuild(spec)` builds another
    spec from the same store, e.g. a second table). `lens_needs(ctx) -> [LensNeed]` names
    the lens readouts a lens view reads (prompts and token sets need the tokenizer, which
    the context hands over; `build` reads them, pages look them up and offer to record).
    """

    name: str
    help: str
    params: type[Params]
    build: Callable[[Any], tuple[Any, pd.DataFrame]]
    needs: Callable[[Mapping[str, Any]], list[Need]] = main_recording
    report: Callable[[Any, Callable[..., Any]], Report] = _default_report
    compare: Compare | None = None
    base: str | None = None  # a compare form: the analysis it compares
    extras: tuple[str, ...] = field(default=())  # side tables `build` puts in `ctx.extra` (CLI files)
    lens_needs: Callable[[Any], list[LensNeed]] | None = None  # the lens readouts it reads (lens views)

    def defaults(self) -> dict[str, Any]:
        """Parameter name -> default."""
        return {f.name: f.default for f in dataclasses.fields(self.params)}

    def compare_form(self) -> Analysis | None:
        """The `compare_<name>` analysis of the two-state form (None without one)."""
        if self.compare is None:
            return None
        base_needs = self.needs

        def needs(canon: Mapping[str, Any]) -> list[Need]:
            one = base_needs(canon)
            b = model_b(canon)
            return ([dataclasses.replace(n, role="a") for n in one]
                    + [dataclasses.replace(n, role="b", model=b) for n in one])

        return Analysis(name=f"compare_{self.name}", help=self.compare.help or f"{self.help}: two states, B − A",
                        params=self.compare.params, build=self.compare.build, needs=needs, base=self.name)

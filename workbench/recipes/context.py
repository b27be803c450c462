"""The build context an analysis's `build(ctx)` gets: the canonical spec, its recordings, side tables, facts.

The context is handed what it fetches with (`fetch(need) -> Recording`, `evaluate(...)`)
by `recipes.build`, so the analysis modules import no recorder, no store and no model:
they stay light enough for `workbench analyze --help` and the pages' first paint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from workbench.corpus import ParallelCorpus, load_corpus
from workbench.errors import ExportError
from workbench.progress import Progress, StatusFn
from workbench.recipes import tables
from workbench.recipes.analysis import LensNeed, Need

__all__ = ["Ctx"]


@dataclass
class Ctx:
    """What one figure build needs: the spec, the recordings it reads, and callbacks for long work."""

    spec: dict[str, Any]
    needs: list[Need]
    fetch: Callable[[Need], Any]  # the recording of a need (recorded, or from the store only)
    evaluate: Callable[..., Any] | None = None  # evaluate N states -> (EvalResult, scores table) (outcomes)
    status: StatusFn | None = None
    progress: Progress | None = None
    recordings: list[tuple[str, Any]] = field(default_factory=list)
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)  # side tables (CLI files), not in manifests
    facts: dict[str, Any] = field(default_factory=dict)  # numbers the build resolved (e.g. SiLP's split)
    lens: Callable[[LensNeed], Any] | None = None  # the stored lens readout of a need (read, or store only)
    tokenizer: Callable[[Any], Any] | None = None  # a ModelSpec's tokenizer, without its weights
    lens_reads: list[tuple[LensNeed, Any]] = field(default_factory=list)
    experiments: Any = None  # `workbench.interventions.experiments` (the intervention views), handed over by build

    @property
    def p(self) -> dict[str, Any]:
        """The spec's (canonical) parameters."""
        return self.spec["params"]

    def record(self, role: str = "main") -> Any:
        """The recording `needs` names for `role` (recording whatever the store lacks, unless store-only)."""
        n = next(x for x in self.needs if x.role == role)
        rec = self.fetch(n)
        self.recordings.append((role, rec))
        return rec

    def lens_readout(self, need: LensNeed) -> Any:
        """The readout of a lens need (`recordings.lens.StoredLens`: `.readout`, `.key`), kept for provenance."""
        if self.lens is None:
            raise ExportError("this build has no lens reader (lens views need `recipes.build`)")
        got = self.lens(need)
        self.lens_reads.append((need, got))
        return got

    def tokenizer_of(self, model: Any) -> Any:
        """The tokenizer of a ModelSpec (prompts and token sets are built with it)."""
        if self.tokenizer is None:
            raise ExportError("this build has no tokenizer loader (lens views need `recipes.build`)")
        return self.tokenizer(model)

    def corpus(self, rec: Any) -> ParallelCorpus:
        """The spec's corpus, subset to the recording's languages and the limit."""
        return load_corpus(self.spec["corpus"]).subset(list(rec.entries), limit=self.spec["limit"])

    def central(self, rec: Any, key: str) -> str:
        """The language parameter `key` if recorded, else the first recorded language."""
        return self.p[key] if self.p[key] in rec.entries else next(iter(rec.entries))

    def layer(self, rec: Any) -> Any:
        """The spec's layer, resolving ``"best"`` (written back into the spec)."""
        if self.p["layer"] == "best":
            self.p["layer"] = tables.best_layer_of(rec, self.p.get("pooling", "mean"),
                                                   pivot=self.central(rec, "central") if "central" in self.p else None)
        rec.layer_index(self.p["layer"])  # a clear error for a layer that was not recorded
        return self.p["layer"]

    def labels(self) -> tuple[str, str]:
        """The two states' names of a compare form."""
        a, b = self.p["labels"]
        return str(a), str(b)

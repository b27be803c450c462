"""What a figure build reads: the recordings a spec needs (`needs`), and the build context.

`needs` is THE definition of which recordings a figure spec reads; `build` records them
(`ensure_recording`), the pages only look them up (`stored_recordings`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.corpus import ParallelCorpus, load_corpus
from workbench.errors import ExportError
from workbench.progress import Progress, StatusFn
from workbench.recipes import tables
from workbench.recipes.spec import record_spec
from workbench.recordings import Recording, ensure_recording, store_status


@dataclass(frozen=True)
class Need:
    """One recording a figure reads: its role ('main', 'before', 'after') and its specs."""

    role: str
    model: ModelSpec
    corpus: CorpusSpec
    record: RecordSpec
    pairs: tuple[tuple[str, str], ...] | None = None
    remote: bool = False  # recorded on NDIF (`ensure_recording(remote=True)`)


def needs(canon: Mapping[str, Any]) -> list[Need]:
    """THE recordings a canonical figure spec reads (`build` records them; pages only look them up)."""
    p, analysis = canon["params"], canon["analysis"]
    if analysis == "eval_scores":  # reads evaluations from the store, no recordings
        return []
    model = ModelSpec.from_dict(canon["model"])
    rspec = record_spec(dict(canon))
    langs: list[str] = list(canon["langs"])
    pairs = None
    if analysis in ("sensitivity", "compare_sensitivity"):  # SiLP's translation-prompt pass of one direction
        langs, pairs = [p["src"], p["tgt"]], ((p["src"], p["tgt"]),)
        rspec = tables.silp_record_spec(base=rspec)
    elif analysis in ("overlap", "compare_overlap"):
        langs = [p["pivot"], *[x for x in langs if x != p["pivot"]]]
    states = [("main", model)]
    if analysis == "retrieval_compare":
        states = [("before", model), ("after", dataclasses.replace(model, artifact=str(p["artifact"])))]
    elif analysis.startswith("compare_"):
        states = [("a", model), ("b", ModelSpec.from_dict(dict(p["state_b"])))]
    corpus = CorpusSpec(source=canon["corpus"], langs=tuple(langs), limit=canon["limit"])
    remote = bool(canon.get("remote"))
    return [Need(role, m, corpus, rspec, pairs, remote) for role, m in states]


def stored_recordings(canon: Mapping[str, Any]) -> list[tuple[str, Recording]]:
    """The (role, recording) pairs a spec reads, from the store only (never records or loads a model).

    Raises:
        ExportError: a recording is not in the store.
    """
    return [(n.role, _stored(n)) for n in needs(canon)]


def _stored(n: Need) -> Recording:
    status = store_status(n.model, n.corpus, n.record, n.pairs, remote=n.remote)
    if status.recording is None:
        why = status.unknown or f"{', '.join(status.missing) or 'some units'} not in the store"
        raise ExportError(f"the recording behind this figure ({n.role}: {n.model.source}) cannot be found "
                          f"({why}); record it first")
    return status.recording


@dataclass
class Ctx:
    """What one figure build needs: the spec, and callbacks for long recordings."""

    spec: dict[str, Any]
    status: StatusFn | None = None
    progress: Progress | None = None
    recordings: list[tuple[str, Any]] = field(default_factory=list)
    stored_only: bool = False  # look recordings up in the store, never record (pages)
    num_processes: int = 1  # record what is missing on N processes (never changes the bytes)
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)  # side tables (CLI files), not in manifests
    facts: dict[str, Any] = field(default_factory=dict)  # numbers the build resolved (e.g. SiLP's split)

    @property
    def p(self) -> dict[str, Any]:
        """The spec's (canonical) parameters."""
        return self.spec["params"]

    def record(self, role: str = "main") -> Recording:
        """The recording `needs(spec)` names for `role`, recording whatever the store lacks."""
        n = next(x for x in needs(self.spec) if x.role == role)
        if self.stored_only:
            rec = _stored(n)
        else:
            rec = ensure_recording(n.model, n.corpus, n.record, pairs=n.pairs, progress=self.progress,
                                   status=self.status, num_processes=self.num_processes, remote=n.remote)
        self.recordings.append((role, rec))
        return rec

    def corpus(self, rec: Recording) -> ParallelCorpus:
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

"""Build a view: a figure spec in, (figure, table, provenance) out, through the analysis registry.

A *figure spec* is a plain dict, the same in Python, a YAML figure set, a manifest, a page
and the CLI::

    {"analysis": "map", "model": "gemma-3-270m", "corpus": "udhr", "langs": ["en", "zh", "sw"],
     "limit": 10, "record": {"max_length": 128}, "params": {"layer": "best", "method": "tsne"}}

`build_figure` records what the store lacks (`recordings.ensure_recording`) for the
recordings the analysis `needs`, calls its `build` (`recipes.registry`), and returns the
provenance that `export.export_figure` writes into the manifest: the canonical spec with
every default filled in and ``layer: "best"`` resolved, so a manifest rebuilds exactly the
same table. This is the one place that hands the analyses a recorder and an evaluator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from workbench import models
from workbench.config import CorpusSpec, ModelSpec
from workbench.errors import ExportError
from workbench.evaluation import evaluate
from workbench.evaluation.run import both_directions
from workbench.evaluation.tables import combine, compare_scores
from workbench.examples import DataSpec
from workbench.interventions import experiments
from workbench.interventions.resolve import resolve_spec
from workbench.progress import Progress, StatusFn
from workbench.recipes import lens_fetch
from workbench.recipes.analysis import LensNeed, Need, record_spec
from workbench.recipes.commands import analyze_command
from workbench.recipes.context import Ctx
from workbench.recipes.registry import get_analysis
from workbench.recipes.spec import normalize_spec
from workbench.recordings import Recording, ensure_recording, store_status

__all__ = ["Built", "build", "build_figure", "lens_needs", "needs", "provenance", "stored_recordings"]


def needs(canon: Mapping[str, Any]) -> list[Need]:
    """THE recordings a canonical figure spec reads (`build` records them; pages only look them up)."""
    return get_analysis(canon["analysis"]).needs(canon)


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


def _evaluate_states(states: Mapping[str, ModelSpec], suites: Sequence[str], data: Any, *, pairs: Sequence[str],
                     limit: int | None, reference: str, progress: Progress | None = None) -> tuple[Any, pd.DataFrame]:
    """Every state's evaluation (from the store where it is there) and the scores table against `reference`.

    `data`: the DataSpec (or its dict) whose held-out part is scored.
    """
    data = data if isinstance(data, DataSpec) else DataSpec.from_dict(dict(data))
    result = combine([evaluate(s, list(suites), data, directions=both_directions(list(pairs)), limit=limit,
                               label=label, progress=progress) for label, s in states.items()])
    return result, compare_scores(result.eval, reference=reference).reset_index()


def _context(canon: dict[str, Any], *, status: StatusFn | None, progress: Progress | None, stored_only: bool,
             num_processes: int, recordings: Sequence[tuple[str, Any]] = (), force_processes: bool = False) -> Ctx:
    def fetch(n: Need) -> Recording:
        if stored_only:
            return _stored(n)
        return ensure_recording(n.model, n.corpus, n.record, pairs=n.pairs, progress=progress, status=status,
                                num_processes=num_processes, remote=n.remote, force_processes=force_processes)

    def lens(n: LensNeed) -> Any:
        return lens_fetch.fetch_lens(n, stored_only=stored_only, status=status, progress=progress)

    def tokenizer(model: ModelSpec) -> Any:
        return lens_fetch.tokenizer(model, stored_only=stored_only)

    return Ctx(canon, needs(canon), fetch, _evaluate_states, status=status, progress=progress,
               recordings=list(recordings), lens=lens, tokenizer=tokenizer, experiments=experiments)


def resolve_interventions(canon: dict[str, Any], *, stored_only: bool = False, status: StatusFn | None = None,
                          progress: Progress | None = None) -> dict[str, Any]:
    """The canonical spec with its states' interventions concrete (`interventions.resolve_spec` on its corpus).

    A request such as "LAPE neurons of sw" is resolved on the spec's own corpus, languages and
    recording options (recorded once, store first), so the manifest names the tensors' hash.

    Raises:
        ExportError: `stored_only` (a page) and an intervention not resolved yet.
    """
    corpus = CorpusSpec(source=canon["corpus"], langs=tuple(canon["langs"]), limit=canon["limit"])

    fields = {f.name for f in dataclasses.fields(ModelSpec)}

    def resolved(d: Mapping[str, Any]) -> dict[str, Any]:
        own = {k: v for k, v in d.items() if k in fields}  # a state of `others` may carry view keys (its `lens`)
        if not own.get("interventions"):
            return dict(d)
        model = ModelSpec.from_dict({**canon["model"], **own} if "source" not in own else own)
        if all(iv.resolved for iv in model.interventions):
            return dict(d)
        if stored_only:
            raise ExportError("this view's model has an intervention that is not resolved yet; resolve it first "
                              "(workbench.interventions.resolve_spec)")
        model = resolve_spec(model, corpus=corpus, record=record_spec(canon), status=status, progress=progress)
        return {**d, **model.to_dict()}

    p = dict(canon["params"])
    if p.get("others"):  # the outcomes view's other states
        p["others"] = [resolved(o) for o in p["others"]]
    if isinstance(p.get("state_b"), Mapping) and "interventions" in p["state_b"]:  # a compare form's state B
        p["state_b"] = resolved(p["state_b"])
    return {**canon, "model": resolved(canon["model"]), "params": p}


def lens_needs(spec: Mapping[str, Any], *, stored_only: bool = True) -> list[LensNeed]:
    """THE lens readouts a figure spec reads ([] for views of recordings); builds prompts, reads nothing.

    `stored_only`: the tokenizer is never downloaded or converted for it (the pages' look).
    """
    canon = normalize_spec(spec)
    analysis = get_analysis(canon["analysis"])
    if analysis.lens_needs is None:
        return []
    return analysis.lens_needs(_context(canon, status=None, progress=None, stored_only=stored_only, num_processes=1))


def provenance(spec: dict[str, Any], recordings: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Model, corpus and store facts of the recordings (role, Recording) a figure used.

    `spec` is a canonical figure spec (`normalize_spec`). This is what a manifest records
    about its inputs, for the CLI's exports and the UI's alike.
    """
    return _provenance(_context(spec, status=None, progress=None, stored_only=True, num_processes=1,
                                recordings=recordings))


def _provenance(c: Ctx) -> dict[str, Any]:
    """Model, corpus and store facts of the recordings a figure used."""
    states = []
    for role, rec in c.recordings:
        entries = rec.entries
        first = next(iter(entries.values())).manifest
        states.append({
            "role": role, "model_name": rec.model_name, "fingerprint": rec.fingerprint,
            "corpus_name": rec.corpus_name, "units": list(entries),
            "corpus_hash": {u: e.manifest.get("corpus_hash") for u, e in entries.items()},
            "store_keys": {u: e.key for u, e in entries.items()},
            "record_spec": rec.spec.to_dict(), "layer_labels": list(first.get("layer_labels", rec.layer_labels)),
        })
    if not states:  # an outcomes view reads evaluations, not recordings
        return {"model": {"source": c.spec["model"]["source"], "artifact": c.spec["model"]["artifact"],
                          "fingerprint": models.fingerprint(ModelSpec.from_dict(c.spec["model"]))},
                "corpus": {"source": c.spec["corpus"], "limit": c.spec["limit"]}, "languages": list(c.spec["langs"]),
                "recordings": []}
    main = states[0]
    return {
        "model": {"source": c.spec["model"]["source"], "artifact": c.spec["model"]["artifact"],
                  "name": main["model_name"], "fingerprint": main["fingerprint"],
                  **({"compare_fingerprint": states[-1]["fingerprint"]} if len(states) > 1 else {})},
        "corpus": {"source": c.spec["corpus"], "name": main["corpus_name"], "limit": c.spec["limit"],
                   "hash": main["corpus_hash"]},
        "languages": main["units"],
        "record_spec": main["record_spec"],
        "recordings": states,
    }


@dataclass(frozen=True)
class Built:
    """One built view: its figure, its table, provenance for the manifest, and side tables."""

    figure: go.Figure
    table: pd.DataFrame
    info: dict[str, Any]
    extra: dict[str, pd.DataFrame]


def build(spec: Mapping[str, Any], *, status: StatusFn | None = None, progress: Progress | None = None,
          stored_only: bool = False, num_processes: int = 1, force_processes: bool = False) -> Built:
    """`build_figure`, plus the side tables a builder made on the way (e.g. retrieval's per-pair table).

    With `stored_only`, recordings are only looked up in the store (the pages: they never
    record as a side effect of drawing); a missing one raises ExportError. `num_processes`:
    record what is missing on N processes (`recordings.sharding`; same bytes; bounded by
    `ranks.check_num_processes`, the machine's bound lifted by `force_processes`).
    """
    canon = resolve_interventions(normalize_spec(spec), stored_only=stored_only, status=status, progress=progress)
    ctx = _context(canon, status=status, progress=progress, stored_only=stored_only, num_processes=num_processes,
                   force_processes=force_processes)
    fig, data = get_analysis(canon["analysis"]).build(ctx)
    info = {"analysis": canon["analysis"], "params": dict(canon["params"]), "spec": canon, **_provenance(ctx),
            "commands": {"analyze": analyze_command(canon)}, **ctx.facts}
    if ctx.lens_reads:
        info["lens_readouts"] = lens_fetch.lens_provenance(ctx.lens_reads)
    return Built(fig, data.reset_index(drop=True), info, ctx.extra)


def build_figure(spec: Mapping[str, Any], *, status: StatusFn | None = None,
                 progress: Progress | None = None) -> tuple[go.Figure, pd.DataFrame, dict]:
    """Build one figure from a spec, recording whatever the store lacks.

    Args:
        spec: a figure spec (see the module docstring and :func:`normalize_spec`).
        status: one-line messages (loading, converting, found in store).
        progress: progress(done, total, message) while recording.

    Returns:
        ``(figure, data, info)``: the interactive figure, the table it shows (what
        ``export_figure`` writes as CSV), and provenance for the manifest: ``analysis``,
        ``params`` (resolved), ``spec`` (canonical, resolved), ``model``, ``corpus``,
        ``languages``, ``record_spec``, ``recordings`` and ``commands.analyze`` (the
        ``workbench analyze`` command computing the same numbers).

    Raises:
        ExportError: bad spec. Recording errors (unknown language, layer) pass through.
    """
    b = build(spec, status=status, progress=progress)
    return b.figure, b.table, b.info



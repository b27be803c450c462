"""The registry of analyses: a figure spec in, (figure, table, provenance) out.

A *figure spec* is a plain dict, the same in Python, a YAML figure set, a manifest, a page
and the CLI::

    {"analysis": "map", "model": "gemma-3-270m", "corpus": "udhr", "langs": ["en", "zh", "sw"],
     "limit": 10, "record": {"max_length": 128}, "params": {"layer": "best", "method": "tsne"}}

`build_figure` records what the store lacks (`recordings.ensure_recording`), computes the
table with `recipes.tables`, draws it with `workbench.viz` and returns the provenance that
`export.export_figure` writes into the manifest: the canonical spec with every default
filled in and ``layer: "best"`` resolved, so a manifest rebuilds exactly the same table.
To add an analysis: a Params dataclass in `params.py`, a builder here, one line in
`BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from workbench import models
from workbench.config import ModelSpec
from workbench.jobs.progress import Progress, StatusFn
from workbench.recipes import tables
from workbench.recipes.commands import analyze_command
from workbench.recipes.compare_views import COMPARE_BUILDERS
from workbench.recipes.context import Ctx
from workbench.recipes.eval_views import EVAL_BUILDERS
from workbench.recipes.spec import normalize_spec
from workbench.viz import figures
from workbench.viz.compare_figures import comparison_figure


def _retrieval(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    rec = c.record()
    p = c.p
    c.extra["pairs"], summary = tables.retrieval_tables(rec, p["pooling"], method=p["method"], k=p["k"],
                                        pivot=c.central(rec, "pivot"), center=p["center"])
    return figures.retrieval_by_layer_figure(summary, per_language=p["per_language"], title=c.spec["title"]), summary


def _retrieval_heatmap(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    rec = c.record()
    layer = c.layer(rec)
    m = tables.retrieval_matrix_at(rec, c.p["pooling"], layer, method=c.p["method"], k=c.p["k"])
    title = c.spec["title"] or f"Translation retrieval at layer {layer} ({c.p['method']})"
    data = m.rename_axis(index="source").reset_index()
    data.columns = [str(x) for x in data.columns]
    return figures.retrieval_heatmap(m, title=title), data


def _sensitivity(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    rec = c.record()
    unit = next(iter(rec.entries))
    scores = tables.sensitivity_scores(rec, unit, p["variant"])
    table, n2d, d2n, split = tables.allocation_table(scores, split=p["split"], k1=p["k1"], k2=p["k2"])
    c.facts["split"] = split
    title = c.spec["title"] or f"Projection sensitivity {unit.replace('>', '→')} ({p['variant']})"
    return figures.sensitivity_figure(scores, n2d, d2n, split=split, title=title), table


def _overlap(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    rec = c.record()
    units = list(rec.entries)
    table = tables.overlap_table(rec, units[0], units[1:], top_frac=p["top_frac"])
    return figures.overlap_figure(table, p["measure"], title=c.spec["title"]), table


def _specific(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    rec = c.record()
    counts = tables.specific_counts(rec, list(rec.entries), entropy_quantile=c.p["entropy_quantile"],
                                   prob_quantile=c.p["prob_quantile"])
    data = counts.reset_index()
    data.columns = [str(x) for x in data.columns]
    return figures.specific_neurons_figure(counts, title=c.spec["title"]), data


_METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def _map(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    rec = c.record()
    layer = c.layer(rec)
    pts = tables.map_points(rec, c.corpus(rec), p["pooling"], layer, method=p["method"], random_state=p["seed"])
    fig = figures.map_figure(pts[["x", "y"]].to_numpy(), list(pts["lang"]), list(pts["text"]),
                             pair_ids=list(pts["unit"]), show_links=p["links"], method=p["method"],
                             explained_variance=pts.attrs.get("explained_variance"),
                             title=c.spec["title"] or f"{_METHOD_NAMES.get(p['method'], p['method'])} of layer {layer}")
    return fig, pts


def _subspace(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    rec = c.record()
    layer = c.layer(rec)
    points, c.extra["norms"], strips = tables.subspace_view(rec, c.corpus(rec), p["pooling"], layer, rank=p["rank"],
                                                            central=c.central(rec, "central"))
    fig = figures.subspace_figure(points[["x_agnostic", "y_agnostic"]].to_numpy(),
                                  points[["x_specific", "y_specific"]].to_numpy(), list(points["lang"]),
                                  list(points["text"]), strips=strips,
                                  title=c.spec["title"] or f"Language subspaces at layer {layer}")
    return fig, points


def _separation(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    rec = c.record()
    sep = tables.separation_table(rec, p["pooling"], rank=p["rank"], central=c.central(rec, "central"),
                                 holdout=p["holdout"])
    return figures.separation_figure(sep, title=c.spec["title"]), sep


def _retrieval_compare(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    parts = []
    for role in ("before", "after"):
        rec = c.record(role)
        _, summary = tables.retrieval_tables(rec, p["pooling"], method=p["method"], k=p["k"],
                                             pivot=c.central(rec, "pivot"), center=p["center"])
        parts.append(summary.set_index(["layer", "series"])["accuracy"].rename(role))
    data = pd.concat(parts, axis=1).reset_index()
    data["difference"] = data["after"] - data["before"]
    title = c.spec["title"] or f"Retrieval before/after {Path(str(p['artifact'])).name} ({p['method']})"
    return comparison_figure(data, title=title), data


BUILDERS: dict[str, Callable[[Ctx], tuple[go.Figure, pd.DataFrame]]] = {
    "retrieval": _retrieval,
    "retrieval_heatmap": _retrieval_heatmap,
    "sensitivity": _sensitivity,
    "overlap": _overlap,
    "specific_neurons": _specific,
    "map": _map,
    "subspace": _subspace,
    "separation": _separation,
    "retrieval_compare": _retrieval_compare,
    **COMPARE_BUILDERS,
    **EVAL_BUILDERS,
}


def provenance(spec: dict[str, Any], recordings: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Model, corpus and store facts of the recordings (role, Recording) a figure used.

    `spec` is a canonical figure spec (`normalize_spec`). This is what a manifest records
    about its inputs, for the CLI's exports and the UI's alike.
    """
    return _provenance(Ctx(spec, recordings=list(recordings)))


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
          stored_only: bool = False, num_processes: int = 1) -> Built:
    """`build_figure`, plus the side tables a builder made on the way (e.g. retrieval's per-pair table).

    With `stored_only`, recordings are only looked up in the store (the pages: they never
    record as a side effect of drawing); a missing one raises ExportError. `num_processes`:
    record what is missing on N processes (`sharding.record_sharded`; same bytes).
    """
    canon = normalize_spec(spec)
    ctx = Ctx(canon, status=status, progress=progress, stored_only=stored_only, num_processes=num_processes)
    fig, data = BUILDERS[canon["analysis"]](ctx)
    info = {"analysis": canon["analysis"], "params": dict(canon["params"]), "spec": canon, **_provenance(ctx),
            "commands": {"analyze": analyze_command(canon)}, **ctx.facts}
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
        ``workbench analyze`` command computing the same numbers, or None).

    Raises:
        ExportError: bad spec. Recording errors (unknown language, layer) pass through.
    """
    b = build(spec, status=status, progress=progress)
    return b.figure, b.table, b.info



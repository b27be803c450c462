"""Figure specs → (figure, data, provenance), figure sets, and the one-file HTML report.

A *figure spec* is a plain dict, the same in Python, a YAML figure set and a manifest::

    {"analysis": "map", "model": "gemma-3-270m", "corpus": "udhr", "langs": ["en", "zh", "sw"],
     "limit": 10, "record": {"max_length": 128}, "params": {"layer": "best", "method": "tsne"}}

:func:`build_figure` records what the store lacks (``session.ensure_recording``, the same
recordings ``workbench analyze`` makes), computes the tables with :mod:`workbench.views`
and draws them with :mod:`workbench.viz.figures`. Its third result is the provenance that
:func:`workbench.export.export_figure` writes into the manifest, including the canonical
spec with every default filled in and ``layer: "best"`` resolved, so a manifest rebuilds
exactly the same table. Every computation is seeded, so the CSV is byte-identical.

Analyses and their parameters (defaults in :data:`ANALYSES`): ``retrieval``,
``retrieval_heatmap``, ``sensitivity``, ``overlap``, ``specific_neurons``, ``map``,
``subspace``, ``separation`` and ``retrieval_compare`` (before/after a fine-tune artifact).

:func:`render_figure_set` renders a YAML list of specs; :func:`build_report` writes one
self-contained HTML page (plotly.js inlined) plus a folder of PDFs with their data and
manifests.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import logging
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.config import SILP_TEMPLATE, CorpusSpec, ModelSpec, RecordSpec
from workbench.export import ExportError, OverwriteError, export_figure, library_versions, safe_name

log = logging.getLogger(__name__)

__all__ = [
    "ANALYSES",
    "DEFAULT_LANGS",
    "EXPORT_KEYS",
    "Section",
    "analyze_command",
    "build_figure",
    "build_report",
    "comparison_figure",
    "load_figure_set",
    "normalize_spec",
    "render_figure_set",
]

DEFAULT_LANGS = ("en", "zh", "sw", "ar", "hi", "es", "fr", "ja")
"""Languages when a spec names none (those of ``workbench analyze``)."""

ANALYSES: dict[str, dict[str, Any]] = {
    "retrieval": {"pooling": "mean", "method": "margin", "k": 4, "pivot": "en", "center": False,
                  "per_language": True},
    "retrieval_heatmap": {"pooling": "mean", "layer": "best", "method": "margin", "k": 4},
    "sensitivity": {"src": "en", "tgt": "sw", "split": None, "k1": 4, "k2": 4, "variant": "paper"},
    "overlap": {"pivot": "en", "top_frac": 0.05, "measure": "jaccard"},
    "specific_neurons": {"entropy_quantile": 0.01, "prob_quantile": 0.95},
    "map": {"pooling": "mean", "layer": "best", "method": "pca", "seed": 0, "links": False},
    "subspace": {"pooling": "mean", "layer": "best", "rank": None, "central": "en"},
    "separation": {"pooling": "mean", "rank": None, "central": "en", "holdout": True},
    "retrieval_compare": {"artifact": None, "pooling": "mean", "method": "margin", "k": 4, "pivot": "en",
                          "center": False},
}
"""Analysis name -> its parameters and their defaults. ``layer: "best"`` is the block with
the highest all-pairs margin retrieval accuracy (``"emb"`` excluded)."""

SPEC_KEYS = ("analysis", "model", "artifact", "corpus", "langs", "limit", "record", "params", "title")
EXPORT_KEYS = ("name", "width", "width_in", "height_in", "formats", "dpi", "caption")
"""Keys of a figure-set entry that are export options, not part of the figure spec."""


# --------------------------------------------------------------------------- specs


def _langs(value: Any) -> list[str]:
    if value is None:
        return list(DEFAULT_LANGS)
    if isinstance(value, str):
        value = [x for x in (s.strip() for s in value.split(",")) if x]
    langs = [str(x) for x in value]
    if not langs:
        raise ExportError("a figure spec needs at least one language in 'langs'")
    return langs


def _layer(value: Any) -> Any:
    if value in ("best", "emb") or value is None:
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    raise ExportError(f"layer must be a block index, 'emb' or 'best', got {value!r}")


def _model_dict(model: Any, artifact: Any) -> dict[str, Any]:
    d = {"source": model} if isinstance(model, str) else dict(model or {})
    if artifact is not None:
        d["artifact"] = str(artifact)
    try:
        return ModelSpec.from_dict(d).to_dict()
    except (TypeError, ValueError) as e:
        raise ExportError(f"bad 'model' in figure spec: {e}") from None


def _params(analysis: str, given: Mapping[str, Any]) -> dict[str, Any]:
    known = ANALYSES[analysis]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ExportError(f"unknown parameter(s) {unknown} for analysis {analysis!r}; known: {sorted(known)}")
    params = {**known, **given}
    if "layer" in params:
        params["layer"] = _layer(params["layer"])
    if analysis == "retrieval_compare" and not params["artifact"]:
        raise ExportError("analysis 'retrieval_compare' needs params.artifact (a fine-tune artifact directory)")
    return params


def normalize_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical form of a figure spec: every default filled in, unknown keys refused.

    Analysis parameters may be given under ``params`` or at the top level.

    Raises:
        ExportError: unknown analysis, key or parameter; bad model or layer.
    """
    s = dict(spec)
    analysis = s.pop("analysis", None)
    if analysis not in ANALYSES:
        raise ExportError(f"figure spec needs 'analysis', one of {sorted(ANALYSES)}; got {analysis!r}")
    given = dict(s.pop("params", None) or {})
    for key in [k for k in s if k in ANALYSES[analysis] and k not in SPEC_KEYS]:
        given[key] = s.pop(key)
    unknown = sorted(set(s) - set(SPEC_KEYS))
    if unknown:
        raise ExportError(f"unknown key(s) {unknown} in figure spec; spec keys: {list(SPEC_KEYS)}, "
                          f"parameters of {analysis!r}: {sorted(ANALYSES[analysis])}")
    record = dict(s.get("record") or {})
    bad = sorted(set(record) - set(RecordSpec.help()))
    if bad:
        raise ExportError(f"unknown record option(s) {bad}; known: {sorted(RecordSpec.help())}")
    limit = s.get("limit")
    return {
        "analysis": analysis,
        "model": _model_dict(s.get("model", "gemma-3-270m"), s.get("artifact")),
        "corpus": str(s.get("corpus", "udhr")),
        "langs": _langs(s.get("langs")),
        "limit": None if limit is None else int(limit),
        "record": {k: record[k] for k in sorted(record)},
        "params": _params(analysis, given),
        "title": s.get("title"),
    }


def _record_spec(spec: dict[str, Any], **override: Any) -> RecordSpec:
    d = {**RecordSpec().to_dict(), **spec["record"], **override}
    return RecordSpec.from_dict(d)


# --------------------------------------------------------------------------- building


@dataclass
class _Ctx:
    """What one figure build needs: the spec, and callbacks for long recordings."""

    spec: dict[str, Any]
    status: Callable[[str], None] | None = None
    progress: Callable[[int, int, str], None] | None = None
    recordings: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def p(self) -> dict[str, Any]:
        return self.spec["params"]

    def record(self, langs: Sequence[str] | None = None, *, model: dict[str, Any] | None = None,
               pairs: Sequence[tuple[str, str]] | None = None, role: str = "main", **override: Any) -> Any:
        from workbench.recordings import ensure_recording

        s = self.spec
        rec = ensure_recording(ModelSpec.from_dict(model or s["model"]),
                               CorpusSpec(source=s["corpus"], langs=tuple(langs or s["langs"]), limit=s["limit"]),
                               _record_spec(s, **override), pairs=pairs, progress=self.progress, status=self.status)
        self.recordings.append((role, rec))
        return rec

    def corpus(self, rec: Any) -> Any:
        from workbench.corpus import load_corpus

        return load_corpus(self.spec["corpus"]).subset(list(rec.entries), limit=self.spec["limit"])

    def central(self, rec: Any, key: str) -> str:
        return self.p[key] if self.p[key] in rec.entries else next(iter(rec.entries))

    def layer(self, rec: Any) -> Any:
        """The spec's layer, resolving ``"best"`` (written back into the spec)."""
        if self.p["layer"] == "best":
            self.p["layer"] = best_layer(rec, self.p.get("pooling", "mean"), pivot=self.central(rec, "central")
                                         if "central" in self.p else next(iter(rec.entries)))
        rec.layer_index(self.p["layer"])  # a clear error for a layer that was not recorded
        return self.p["layer"]


def best_layer(rec: Any, pooling: str = "mean", *, pivot: str | None = None) -> Any:
    """The block with the highest all-pairs margin retrieval accuracy (ties: the lower block)."""
    from workbench import views

    pivot_: str = pivot if pivot is not None and pivot in rec.entries else next(iter(rec.entries))
    _, summary = views.retrieval_tables(rec, pooling, method="margin", k=4, pivot=pivot_)
    allp = summary[summary.series == "all_pairs"]
    blocks = allp[[isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in allp["layer"]]]
    if blocks.empty:
        raise ExportError("no decoder block was recorded, so there is no best layer; give params.layer")
    return int(blocks.loc[blocks["accuracy"].idxmax(), "layer"])


def _retrieval(c: _Ctx) -> tuple[go.Figure, pd.DataFrame]:
    from workbench import views
    from workbench.viz import figures

    rec = c.record()
    p = c.p
    _, summary = views.retrieval_tables(rec, p["pooling"], method=p["method"], k=p["k"],
                                        pivot=c.central(rec, "pivot"), center=p["center"])
    return figures.retrieval_by_layer_figure(summary, per_language=p["per_language"], title=c.spec["title"]), summary


def _retrieval_heatmap(c: _Ctx) -> tuple[go.Figure, pd.DataFrame]:
    from workbench import views
    from workbench.viz import figures

    rec = c.record()
    layer = c.layer(rec)
    m = views.retrieval_matrix_at(rec, c.p["pooling"], layer, method=c.p["method"], k=c.p["k"])
    title = c.spec["title"] or f"Translation retrieval at layer {layer} ({c.p['method']})"
    data = m.rename_axis(index="source").reset_index()
    data.columns = [str(x) for x in data.columns]
    return figures.retrieval_heatmap(m, title=title), data


def _sensitivity(c: _Ctx) -> tuple[go.Figure, pd.DataFrame]:
    from workbench import views
    from workbench.analysis import sensitivity
    from workbench.viz import figures

    p = c.p
    rec = c.record([p["src"], p["tgt"]], pairs=[(p["src"], p["tgt"])], template=SILP_TEMPLATE, poolings=("mean",),
                   embeddings=False, ffn_stats=True)
    unit = next(iter(rec.entries))
    scores = views.sensitivity_scores(rec, unit, p["variant"])
    n2d, d2n = sensitivity.allocate_layers(scores, split=p["split"], k1=p["k1"], k2=p["k2"])
    split = p["split"] or sensitivity.default_split(len(scores))
    table = pd.DataFrame({"layer": range(len(scores)), "score": scores,
                          "allocation": ["N2D" if i in n2d else "D2N" if i in d2n else "" for i in range(len(scores))]})
    title = c.spec["title"] or f"Projection sensitivity {unit.replace('>', '→')} ({p['variant']})"
    return figures.sensitivity_figure(scores, n2d, d2n, split=split, title=title), table


def _overlap(c: _Ctx) -> tuple[go.Figure, pd.DataFrame]:
    from workbench import views
    from workbench.viz import figures

    p = c.p
    rec = c.record([p["pivot"], *[x for x in c.spec["langs"] if x != p["pivot"]]])
    units = list(rec.entries)
    table = views.overlap_table(rec, units[0], units[1:], top_frac=p["top_frac"])
    return figures.overlap_figure(table, p["measure"], title=c.spec["title"]), table


def _specific(c: _Ctx) -> tuple[go.Figure, pd.DataFrame]:
    from workbench import views
    from workbench.viz import figures

    rec = c.record()
    counts = views.specific_counts(rec, list(rec.entries), entropy_quantile=c.p["entropy_quantile"],
                                   prob_quantile=c.p["prob_quantile"])
    data = counts.reset_index()
    data.columns = [str(x) for x in data.columns]
    return figures.specific_neurons_figure(counts, title=c.spec["title"]), data


_METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def _map(c: _Ctx) -> tuple[go.Figure, pd.DataFrame]:
    from workbench import views
    from workbench.viz import figures

    p = c.p
    rec = c.record()
    layer = c.layer(rec)
    pts = views.map_points(rec, c.corpus(rec), p["pooling"], layer, method=p["method"], random_state=p["seed"])
    fig = figures.map_figure(pts[["x", "y"]].to_numpy(), list(pts["lang"]), list(pts["text"]),
                             pair_ids=list(pts["unit"]), show_links=p["links"],
                             title=c.spec["title"] or f"{_METHOD_NAMES.get(p['method'], p['method'])} of layer {layer}")
    return fig, pts


def _subspace(c: _Ctx) -> tuple[go.Figure, pd.DataFrame]:
    from workbench import views
    from workbench.viz import figures

    p = c.p
    rec = c.record()
    layer = c.layer(rec)
    points, _, strips = views.subspace_view(rec, c.corpus(rec), p["pooling"], layer, rank=p["rank"],
                                            central=c.central(rec, "central"))
    fig = figures.subspace_figure(points[["x_agnostic", "y_agnostic"]].to_numpy(),
                                  points[["x_specific", "y_specific"]].to_numpy(), list(points["lang"]),
                                  list(points["text"]), strips=strips,
                                  title=c.spec["title"] or f"Language subspaces at layer {layer}")
    return fig, points


def _separation(c: _Ctx) -> tuple[go.Figure, pd.DataFrame]:
    from workbench import views
    from workbench.viz import figures

    p = c.p
    rec = c.record()
    sep = views.separation_table(rec, p["pooling"], rank=p["rank"], central=c.central(rec, "central"),
                                 holdout=p["holdout"])
    return figures.separation_figure(sep, title=c.spec["title"]), sep


def _retrieval_compare(c: _Ctx) -> tuple[go.Figure, pd.DataFrame]:
    from workbench import views

    p = c.p
    tables = []
    for role, model in (("before", c.spec["model"]), ("after", {**c.spec["model"], "artifact": str(p["artifact"])})):
        rec = c.record(model=model, role=role)
        _, summary = views.retrieval_tables(rec, p["pooling"], method=p["method"], k=p["k"],
                                            pivot=c.central(rec, "pivot"), center=p["center"])
        tables.append(summary.set_index(["layer", "series"])["accuracy"].rename(role))
    data = pd.concat(tables, axis=1).reset_index()
    data["difference"] = data["after"] - data["before"]
    title = c.spec["title"] or f"Retrieval before/after {Path(str(p['artifact'])).name} ({p['method']})"
    return comparison_figure(data, title=title), data


_BUILDERS: dict[str, Callable[[_Ctx], tuple[go.Figure, pd.DataFrame]]] = {
    "retrieval": _retrieval,
    "retrieval_heatmap": _retrieval_heatmap,
    "sensitivity": _sensitivity,
    "overlap": _overlap,
    "specific_neurons": _specific,
    "map": _map,
    "subspace": _subspace,
    "separation": _separation,
    "retrieval_compare": _retrieval_compare,
}


def comparison_figure(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Before/after retrieval per layer (left) and the difference (right).

    Args:
        table: columns ``layer, series, before, after, difference`` (one row per layer and
            series, as :func:`build_figure` makes for ``retrieval_compare``).
        title: figure title.

    Returns:
        Two-panel figure: all-pairs and with-pivot accuracy of both states; bars of
        ``after − before`` for all pairs.
    """
    from plotly.subplots import make_subplots

    from workbench.viz.theme import D2N_COLOR, N2D_COLOR, TEMPLATE

    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy by layer", "after − before (all pairs)"),
                        horizontal_spacing=0.14)
    layers = [str(x) for x in pd.unique(table["layer"])]
    for series, dash in (("all_pairs", "solid"), ("pivot", "dash")):
        rows = table[table["series"] == series]
        for state, color in (("before", "#777777"), ("after", N2D_COLOR)):
            fig.add_trace(go.Scatter(x=[str(x) for x in rows["layer"]], y=rows[state], mode="lines+markers",
                                     name=f"{state}, {series.replace('_', ' ')}", marker={"size": 4},
                                     line={"color": color, "dash": dash}), row=1, col=1)
    allp = table[table["series"] == "all_pairs"]
    fig.add_trace(go.Bar(x=[str(x) for x in allp["layer"]], y=allp["difference"], name="difference",
                         marker_color=[N2D_COLOR if d >= 0 else D2N_COLOR for d in allp["difference"]]), row=1, col=2)
    axis = {"title": {"text": "layer"}, "type": "category", "categoryorder": "array", "categoryarray": layers}
    for col in (1, 2):
        fig.update_xaxes(axis, row=1, col=col)
    fig.update_yaxes(title_text="retrieval accuracy", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="Δ accuracy", zeroline=True, zerolinecolor="#444444", row=1, col=2)
    fig.update_layout(template=TEMPLATE, title={"text": title or "Retrieval before/after fine-tuning"},
                      showlegend=True)
    return fig


def provenance(spec: dict[str, Any], recordings: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Model, corpus and store facts of the recordings (role, Recording) a figure used.

    `spec` is a canonical figure spec (`normalize_spec`). This is what a manifest records
    about its inputs, for the CLI's exports and the UI's alike.
    """
    return _provenance(_Ctx(spec, recordings=list(recordings)))


def _provenance(c: _Ctx) -> dict[str, Any]:
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


def build_figure(spec: Mapping[str, Any], *, status: Callable[[str], None] | None = None,
                 progress: Callable[[int, int, str], None] | None = None) -> tuple[go.Figure, pd.DataFrame, dict]:
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
    canon = normalize_spec(spec)
    ctx = _Ctx(canon, status=status, progress=progress)
    fig, data = _BUILDERS[canon["analysis"]](ctx)
    data = data.reset_index(drop=True)
    info = {"analysis": canon["analysis"], "params": dict(canon["params"]), "spec": canon, **_provenance(ctx),
            "commands": {"analyze": analyze_command(canon)}}
    return fig, data, info


# --------------------------------------------------------------------------- equivalent analyze command

_RECORD_FLAGS = {"poolings": "--poolings", "max_length": "--max-length", "layers": "--layers",
                 "template": "--template", "token_span": "--token-span", "batch_tokens": "--batch-tokens"}
_PARAM_FLAGS = {
    "retrieval": ("retrieval", {"pooling": "--pooling", "method": "--method", "k": "--k", "pivot": "--pivot"}),
    "sensitivity": ("sensitivity", {"src": "--src", "tgt": "--tgt", "split": "--split", "k1": "--k1", "k2": "--k2",
                                    "variant": "--variant"}),
    "overlap": ("overlap", {"pivot": "--pivot", "top_frac": "--top-frac"}),
    "subspace": ("subspace", {"pooling": "--pooling", "layer": "--layer", "rank": "--rank", "central": "--central"}),
    "separation": ("subspace", {"pooling": "--pooling", "rank": "--rank", "central": "--central"}),
    "map": ("map", {"pooling": "--pooling", "layer": "--layer", "method": "--method", "seed": "--seed"}),
}


def _flag_value(v: Any) -> str:
    return ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v)


def _model_flags(m: Mapping[str, Any]) -> list[str]:
    argv = ["--model", str(m["source"])]
    for key, flag in (("artifact", "--artifact"), ("device", "--device"), ("dtype", "--dtype")):
        if m.get(key) not in (None, "auto"):
            argv += [flag, str(m[key])]
    return argv + (["--trust-remote-code"] if m.get("trust_remote_code") else [])


def _record_flags(rec: Mapping[str, Any]) -> list[str]:
    argv: list[str] = []
    for key, flag in _RECORD_FLAGS.items():
        if rec.get(key) is not None:
            argv += [flag, "silp" if rec[key] == SILP_TEMPLATE else _flag_value(rec[key])]
    argv += ["--chat-template"] if rec.get("chat_template") else []
    return argv + (["--no-ffn"] if rec.get("ffn_stats") is False else [])


def analyze_command(spec: Mapping[str, Any], out: str | None = None) -> str | None:
    """The ``workbench analyze …`` command computing the same table, or None if there is none.

    ``separation`` maps to ``analyze subspace`` (its ``subspace.csv`` is the separation
    table, held-out variant); ``retrieval_heatmap``, ``specific_neurons`` and
    ``retrieval_compare`` have no ``analyze`` command.
    """
    s = normalize_spec(spec)
    if s["analysis"] not in _PARAM_FLAGS or (s["analysis"] == "separation" and not s["params"]["holdout"]):
        return None
    sub, flags = _PARAM_FLAGS[s["analysis"]]
    p = s["params"]
    langs = [p["src"], p["tgt"]] if sub == "sensitivity" else s["langs"]
    argv = ["workbench", "analyze", sub, *_model_flags(s["model"]), "--corpus", s["corpus"], "--langs", ",".join(langs)]
    if s["limit"] is not None:
        argv += ["--limit", str(s["limit"])]
    argv += _record_flags(s["record"])
    for key, flag in flags.items():
        if p.get(key) is not None and p[key] != "best":
            argv += [flag, str(p[key])]
    if sub == "subspace" and s["analysis"] == "separation":
        argv += ["--layer", "0"]  # any recorded layer: the separation table covers all of them
    argv += ["--center"] if p.get("center") else []
    argv += ["--links"] if p.get("links") else []
    argv += ["--out", out or f"out/{sub}"]
    return shlex.join(argv)


# --------------------------------------------------------------------------- figure sets


def load_figure_set(path: str | Path) -> dict[str, Any]:
    """Read a YAML figure set: ``{"defaults": {...}, "figures": [{...}, ...]}``.

    A bare name (``example``) means a set bundled in ``workbench/data/figure_sets``.

    Raises:
        ExportError: unreadable YAML, or no ``figures`` list.
        FileNotFoundError: no such file or bundled set.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        bundled = Path(__file__).parent / "data" / "figure_sets" / f"{safe_name(str(path))}.yaml"
        if not bundled.is_file():
            raise FileNotFoundError(f"no figure set {path} (and no bundled set of that name)")
        p = bundled
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ExportError(f"{p} is not valid YAML: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("figures"), list):
        raise ExportError(f"{p}: a figure set is a mapping with a 'figures' list (and optional 'defaults')")
    doc["path"] = str(p)
    return doc


_VAR = re.compile(r"\$\{(\w+)\}")


class _MissingVar(Exception):
    pass


def _substitute(value: Any, variables: Mapping[str, str]) -> Any:
    """Replace ``${name}`` in strings; an unset variable raises `_MissingVar`."""
    if isinstance(value, str):
        missing = [v for v in _VAR.findall(value) if v not in variables]
        if missing:
            raise _MissingVar(missing[0])
        return _VAR.sub(lambda m: str(variables[m.group(1)]), value)
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, variables) for k, v in value.items()}
    return value


def render_figure_set(path: str | Path, out_dir: str | Path, *, overrides: Mapping[str, Any] | None = None,
                      variables: Mapping[str, str] | None = None, only: Sequence[str] | None = None,
                      overwrite: bool = False, status: Callable[[str], None] | None = None,
                      progress: Callable[[int, int, str], None] | None = None) -> list[Path]:
    """Render every figure of a figure set into ``out_dir``; return the paths written.

    Args:
        path: YAML file or bundled set name.
        out_dir: output folder.
        overrides: spec keys forced on every figure (e.g. ``{"model": dir, "limit": 5}``).
        variables: values of ``${name}`` placeholders; an entry using an unset one is
            skipped (so a set can hold before/after figures that need ``artifact``).
        only: render just these figure names.
        overwrite: replace existing files.
        status: one-line messages.
        progress: recording progress.

    Raises:
        ExportError: bad entry (named by its position and name); OverwriteError before any
            figure is rendered if a target exists.
    """
    doc = load_figure_set(path)
    defaults = dict(doc.get("defaults") or {})
    names = [safe_name(str(e.get("name") or f"figure_{i}")) for i, e in enumerate(doc["figures"], 1)
             if isinstance(e, dict)]
    if len(names) != len(doc["figures"]):
        raise ExportError(f"{doc['path']}: every entry of 'figures' must be a mapping")
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise ExportError(f"no figure named {unknown} in {doc['path']}; it has {names}")
    jobs = []
    for i, entry in enumerate(doc["figures"], 1):
        merged = {**defaults, **dict(entry), **dict(overrides or {})}
        name = safe_name(str(merged.get("name") or f"figure_{i}"))
        if only and name not in only:
            continue
        try:
            merged = _substitute(merged, variables or {})
        except _MissingVar as e:
            (status or log.info)(f"skipped {name}: needs --var {e.args[0]}=…")
            continue
        export = {k: merged.pop(k) for k in EXPORT_KEYS if k in merged}
        try:
            normalize_spec(merged)
        except ExportError as e:
            raise ExportError(f"{doc['path']}, figure {i} ({name}): {e}") from None
        jobs.append((name, merged, export))
    _check_free(out_dir, [(n, e.get("formats", ("pdf", "svg", "png"))) for n, _, e in jobs], overwrite)
    written: list[Path] = []
    for name, spec, export in jobs:
        if status:
            status(f"figure {name} ({spec['analysis']})")
        fig, data, info = build_figure(spec, status=status, progress=progress)
        if export.get("caption"):
            info["caption"] = export["caption"]
        written += export_figure(fig, data, out_dir, name, formats=export.get("formats", ("pdf", "svg", "png")),
                                 width_in=export.get("width_in", export.get("width", 3.3)),
                                 height_in=export.get("height_in"), dpi=int(export.get("dpi", 300)),
                                 manifest=info, overwrite=overwrite)
    return written


def _check_free(out_dir: str | Path, items: Sequence[tuple[str, Sequence[str]]], overwrite: bool) -> None:
    """Fail before any work if a file to be written exists (and names must be distinct)."""
    from workbench.export import target_paths

    names = [n for n, _ in items]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ExportError(f"figure names must be distinct; repeated: {dup}")
    if overwrite:
        return
    for name, formats in items:
        for p in target_paths(out_dir, name, formats).values():
            if p.exists():
                raise OverwriteError(f"{p} exists; pass --overwrite or choose another --out")


# --------------------------------------------------------------------------- the report


@dataclass
class Section:
    """One report section: heading, a one-paragraph intro and its figures (spec, caption)."""

    id: str
    heading: str
    intro: str
    figures: list[tuple[str, dict[str, Any], str]]
    """(name, spec, caption)"""


def _report_sections(base: dict[str, Any], langs: list[str], layer: Any, artifact: str | None) -> list[Section]:
    src = "en" if "en" in langs else langs[0]
    tgt = next((x for x in langs if x != src), src)
    pivot = src

    def spec(analysis: str, **params: Any) -> dict[str, Any]:
        return {**base, "analysis": analysis, "params": params}

    sections = [
        Section("layer-profile", "Layer profile",
                "How cross-lingual alignment, SiLP sensitivity and shared neurons change with depth.", [
                    ("retrieval_by_layer", spec("retrieval", pivot=pivot),
                     "Translation-retrieval accuracy per layer (margin method), all pairs and per language."),
                    (f"sensitivity_{src}_{tgt}", spec("sensitivity", src=src, tgt=tgt),
                     f"SiLP projection sensitivity per layer for {src}→{tgt}, with the N2D/D2N allocation."),
                    ("overlap_by_layer", spec("overlap", pivot=pivot),
                     f"Activated-neuron overlap (Jaccard, top 5%) of each language with {pivot}, per layer."),
                ]),
        Section("maps", f"Maps at layer {layer}",
                f"Layer {layer} has the best all-pairs retrieval accuracy; sentences coloured by language.", [
                    ("pca_best_layer", spec("map", layer=layer, method="pca", links=True),
                     f"PCA of mean-pooled sentence vectors at layer {layer}; grey lines join translations."),
                    ("tsne_best_layer", spec("map", layer=layer, method="tsne"),
                     f"t-SNE (seed 0) of mean-pooled sentence vectors at layer {layer}."),
                ]),
        Section("subspaces", f"Language subspaces at layer {layer}",
                "LENS: the language-agnostic and language-specific subspaces of the language means.", [
                    ("lens_subspaces", spec("subspace", layer=layer, central=pivot),
                     f"PCA of the agnostic and specific projections at layer {layer} (central language {pivot})."),
                    ("separation_by_layer", spec("separation", central=pivot),
                     "Between/within-language variance ratio of both projections (held-out sentences) and "
                     "language-direction norms, per layer."),
                ]),
        Section("neurons", "Neurons",
                "Language-specific neurons found by activation-probability entropy (LAPE).", [
                    ("specific_neurons", spec("specific_neurons"),
                     "Number of language-specific neurons per layer and language (entropy 1%, bar at p95)."),
                ]),
    ]
    if artifact:
        sections.append(Section("comparison", "Before / after fine-tuning",
                                f"The base model against the model with artifact {Path(artifact).name}.", [
                                    ("retrieval_before_after", spec("retrieval_compare", artifact=artifact,
                                                                    pivot=pivot),
                                     "Retrieval accuracy per layer of both states (left) and the difference (right)."),
                                ]))
    return sections


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;max-width:1000px;
margin:2em auto;padding:0 1.2em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:2.2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
nav{background:#f6f6f6;padding:.6em 1.2em;border-radius:6px}nav ol{margin:.3em 0}
table.meta{border-collapse:collapse;font-size:.9em}table.meta td{padding:.15em .8em .15em 0;vertical-align:top}
table.meta td:first-child{color:#666;white-space:nowrap}
figure{margin:1.5em 0}figcaption{font-size:.92em;margin-top:.3em}
code,.params{font:.85em/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#555}
.files a{margin-right:.8em}
"""


def _meta_rows(rows: Sequence[tuple[str, str]]) -> str:
    return "<table class=meta>" + "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in rows) + \
        "</table>"


def _params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items() if v is not None and k != "artifact") or "defaults"


def _figure_html(n: int, name: str, fig: go.Figure, caption: str, info: dict[str, Any], files: list[Path],
                 root: Path) -> str:
    import plotly.io as pio

    div = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"fig-{name}",
                      config={"displaylogo": False, "responsive": True}, default_height=460)
    links = " ".join(f'<a href="{html.escape(p.relative_to(root).as_posix())}">{p.suffix[1:].upper()}</a>'
                     for p in files if p.suffix in (".pdf", ".csv"))
    params = html.escape(f"{info['analysis']}: {_params_text(info['params'])}")
    return (f'<figure id="{name}">{div}<figcaption><b>Figure {n}.</b> {html.escape(caption)}<br>'
            f'<span class=params>{params}</span> <span class=files>{links}</span></figcaption></figure>')


def build_report(model: str | Mapping[str, Any], corpus: str, langs: Sequence[str], out_dir: str | Path, *,
                 artifact: str | None = None, limit: int | None = None, record: Mapping[str, Any] | None = None,
                 formats: Sequence[str] = ("pdf",), overwrite: bool = False, command: str | None = None,
                 status: Callable[[str], None] | None = None,
                 progress: Callable[[int, int, str], None] | None = None) -> Path:
    """Write ``<out_dir>/report.html`` (self-contained, offline) and ``<out_dir>/figures/``.

    Sections: layer profile (retrieval, sensitivity ``en→`` first other language, overlap),
    PCA and t-SNE maps and LENS subspaces at the best-retrieval layer, language-specific
    neurons, and with ``artifact`` a before/after retrieval comparison. Every figure is
    also exported (``formats``, CSV, Parquet, manifest) under ``figures/``.

    Args:
        model: model source (or a ModelSpec dict) of the base state.
        corpus: corpus source.
        langs: language codes (at least 2).
        out_dir: output folder.
        artifact: fine-tune artifact directory to compare with the base.
        limit: first N units per language.
        record: RecordSpec overrides.
        formats: figure formats written to ``figures/``.
        overwrite: replace an existing report.
        command: the command line to print in the report (for reproduction).
        status: one-line messages.
        progress: recording progress.

    Returns:
        Path of ``report.html``.

    Raises:
        OverwriteError: ``report.html`` or a figure file exists and ``overwrite`` is False.
        ExportError: fewer than 2 languages or a bad option.
    """
    import plotly.offline

    langs = _langs(langs)
    if len(langs) < 2:
        raise ExportError("a report compares languages: give at least 2 in --langs")
    out = Path(out_dir)
    page = out / "report.html"
    for p in (page, out / "report.json"):
        if p.exists() and not overwrite:
            raise OverwriteError(f"{p} exists; pass --overwrite or choose another --out")
    base = {"model": model, "corpus": corpus, "langs": list(langs), "limit": limit, "record": dict(record or {})}
    say = status or log.info
    say("finding the best-retrieval layer")
    fig0, data0, info0 = build_figure({**base, "analysis": "retrieval",
                                       "params": {"pivot": "en" if "en" in langs else langs[0]}},
                                      status=status, progress=progress)
    rec = info0["recordings"][0]
    layer = _best_from_summary(data0)
    sections = _report_sections(base, langs, layer, artifact)
    _check_free(out / "figures", [(n, formats) for s in sections for n, _, _ in s.figures], overwrite)
    body, n = [], 0
    for sec in sections:
        body.append(f'<section id="{sec.id}"><h2>{html.escape(sec.heading)}</h2><p>{html.escape(sec.intro)}</p>')
        for name, spec, caption in sec.figures:
            n += 1
            say(f"report figure {n}: {name}")
            fig, data, info = (fig0, data0, info0) if name == "retrieval_by_layer" else \
                build_figure(spec, status=status, progress=progress)
            info["caption"] = caption
            files = export_figure(fig, data, out / "figures", name, formats=formats,
                                  width_in="double" if name in ("lens_subspaces", "separation_by_layer",
                                                                "retrieval_before_after") else "single",
                                  manifest=info, overwrite=overwrite)
            body.append(_figure_html(n, name, fig, caption, info, files, out))
        body.append("</section>")
    toc = "".join(f'<li><a href="#{s.id}">{html.escape(s.heading)}</a></li>' for s in sections)
    versions = library_versions()
    meta = _meta_rows([
        ("model", f"<code>{html.escape(info0['model']['source'])}</code> ({html.escape(info0['model']['name'])}, "
                  f"fingerprint <code>{html.escape(info0['model']['fingerprint'])}</code>)"),
        *([("compared with", f"<code>{html.escape(str(artifact))}</code>")] if artifact else []),
        ("corpus", f"{html.escape(rec['corpus_name'])} (<code>{html.escape(corpus)}</code>), "
                   f"{'first ' + str(limit) + ' units' if limit else 'all units'}"),
        ("languages", html.escape(", ".join(rec["units"]))),
        ("best layer", f"{layer} (all-pairs margin retrieval)"),
        ("generated", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")),
        ("versions", html.escape(", ".join(f"{k} {v}" for k, v in versions.items() if v))),
        *([("command", f"<code>{html.escape(command)}</code>")] if command else []),
    ])
    title = f"Multilingual representation report: {Path(str(info0['model']['source'])).name}"
    doc = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
           f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{_CSS}</style>"
           f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head><body>'
           f"<h1>{html.escape(title)}</h1>{meta}<nav><b>Contents</b><ol>{toc}</ol></nav>{''.join(body)}"
           f"<p class=params>PDF, CSV, Parquet and a manifest per figure are in <code>figures/</code>; "
           f"<code>workbench export --manifest figures/NAME.manifest.json --out DIR</code> rebuilds one.</p>"
           f"</body></html>\n")
    out.mkdir(parents=True, exist_ok=True)
    page.write_text(doc, encoding="utf-8")
    (out / "report.json").write_text(json.dumps({"model": info0["model"], "corpus": info0["corpus"],
                                                 "languages": rec["units"], "best_layer": layer,
                                                 "artifact": artifact, "versions": versions,
                                                 "command": command}, indent=1) + "\n", encoding="utf-8")
    return page


def _best_from_summary(summary: pd.DataFrame) -> Any:
    allp = summary[summary["series"] == "all_pairs"]
    blocks = allp[[isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in allp["layer"]]]
    if blocks.empty:
        return allp["layer"].iloc[-1]
    return int(blocks.loc[blocks["accuracy"].idxmax(), "layer"])

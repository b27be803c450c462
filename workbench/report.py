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
``subspace``, ``separation`` and ``compare_retrieval`` (before/after a fine-tune artifact).

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
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import yaml

from workbench.errors import OUTPUT_REMEDY
from workbench.export import ExportError, OverwriteError, export_figure, library_versions, safe_name, target_paths
from workbench.fileio import atomic_write_files, writable_dir
from workbench.latent import load_words
from workbench.latent.tokens import first_char_is_latin
from workbench.progress import Progress
from workbench.recipes import EXPORT_KEYS, best_layer, normalize_spec
from workbench.recipes.build import build_figure
from workbench.recipes.spec import langs_of, refuse_code_switches

log = logging.getLogger(__name__)

__all__ = ["Section", "build_report", "load_figure_set", "render_figure_set"]

# --------------------------------------------------------------------------- figure sets


def load_figure_set(path: str | Path) -> dict[str, Any]:
    """Read a YAML figure set: ``{"defaults": {...}, "figures": [{...}, ...]}``.

    A bare name (``example``) means a set bundled in ``workbench/data/figure_sets``.

    Raises:
        ExportError: unreadable YAML, or no ``figures`` list.
        FileNotFoundError: no such file or bundled set.
    """
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
                      progress: Progress | None = None, allow: Collection[str] = ()) -> list[Path]:
    """Render every figure of a figure set into ``out_dir``; return the paths written.

    A set is data, never authority: a figure whose spec asks to run the model's own code
    or to reach the network (`recipes.spec.CODE_SWITCHES`) is refused unless `allow`
    (the user's command line) names that switch.

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
        allow: the switches the command line allows (``"trust_remote_code"``, ``"remote"``).

    Raises:
        ExportError: bad entry (named by its position and name), or a switch `allow` does
            not name; OverwriteError before any figure is rendered if a target exists.
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
        refuse_code_switches(merged, source=f"{doc['path']}, figure {i} ({name})", allow=allow)
        try:
            normalize_spec(merged)
        except ExportError as e:
            raise ExportError(f"{doc['path']}, figure {i} ({name}): {e}") from None
        jobs.append((name, merged, export))
    _check_free(out_dir, [(n, e.get("formats", ("pdf", "svg", "png"))) for n, _, e in jobs], overwrite)
    writable_dir(out_dir, OUTPUT_REMEDY)  # before any recording
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
    lens = _lens_section(spec, langs)
    if lens is not None:
        sections.append(lens)
    if artifact:
        sections.append(Section("comparison", "Before / after fine-tuning",
                                f"The base model against the model with artifact {Path(artifact).name}.", [
                                    ("retrieval_before_after", spec("compare_retrieval", pivot=pivot,
                                                                    state_b={"artifact": str(artifact)},
                                                                    labels=["before", "after"],
                                                                    series=["all_pairs", "pivot"]),
                                     "Retrieval accuracy per layer of both states (left) and the difference (right)."),
                                ]))
    return sections


def lens_pair(langs: Sequence[str]) -> tuple[str, str] | None:
    """The (source, target) of the report's lens section, or None when the lens views do not apply.

    They apply when the bundled word list has a non-English target among the languages (one
    in a non-Latin script first, as in Wendler et al.'s pairs) and a source: another of them,
    English only when no other is there.
    """
    words = load_words()
    have = [x for x in langs if x in words.langs]
    others = [x for x in have if x != "en"]
    if not others:
        return None
    target = next((x for x in others if not first_char_is_latin(words.word(words.concepts[0], x)[0])), others[0])
    sources = [x for x in others if x != target] or [x for x in have if x == "en"]
    return (sources[0], target) if sources else None


def _lens_section(spec: Callable[..., dict[str, Any]], langs: Sequence[str]) -> Section | None:
    pair = lens_pair(langs)
    if pair is None:
        return None
    src, tgt = pair
    return Section("layer-predictions", "Layer predictions",
                   "What each layer is about to say (logit lens): on Wendler et al.'s word-translation prompts "
                   "over the bundled word list, the probability that the next token starts the answer in each "
                   "language, per layer.", [
                       (f"latent_{src}_{tgt}", spec("latent", source=src, target=tgt),
                        f"Latent-language curves {src}→{tgt}: P({tgt}), P(en) and P({src}) per layer with 95% "
                        "bootstrap bands, and the entropy; dropped items are counted in the title."),
                       (f"tokens_{src}_{tgt}", spec("tokens", source=src, target=tgt),
                        f"Token view of the first {src}→{tgt} prompt: the top-1 token of every layer at its last "
                        "16 positions (colour: its probability) and the language it starts, per layer."),
                   ])


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
                 progress: Progress | None = None) -> Path:
    """Write ``<out_dir>/report.html`` (self-contained, offline) and ``<out_dir>/figures/``.

    Sections: layer profile (retrieval, sensitivity ``en→`` first other language, overlap),
    PCA and t-SNE maps and LENS subspaces at the best-retrieval layer, language-specific
    neurons, layer predictions when the lens views apply (`lens_pair`: latent-language curves
    and a token view), and with ``artifact`` a before/after retrieval comparison. Every figure is
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

    langs = langs_of(langs)
    if len(langs) < 2:
        raise ExportError("a report compares languages: give at least 2 in --langs")
    out = Path(out_dir)
    page = out / "report.html"
    for p in (page, out / "report.json"):
        if p.exists() and not overwrite:
            raise OverwriteError(f"{p} exists; pass --overwrite or choose another --out")
    writable_dir(out / "figures", OUTPUT_REMEDY)  # before any recording
    base = {"model": model, "corpus": corpus, "langs": list(langs), "limit": limit, "record": dict(record or {})}
    say = status or log.info
    say("finding the best-retrieval layer")
    fig0, data0, info0 = build_figure({**base, "analysis": "retrieval",
                                       "params": {"pivot": "en" if "en" in langs else langs[0]}},
                                      status=status, progress=progress)
    rec = info0["recordings"][0]
    layer = best_layer(data0)
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
                                                                "retrieval_before_after") or name.startswith(
                                      "tokens_") else "single",
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
    summary = json.dumps({"model": info0["model"], "corpus": info0["corpus"], "languages": rec["units"],
                          "best_layer": layer, "artifact": artifact, "versions": versions, "command": command},
                         indent=1) + "\n"
    atomic_write_files({page: doc.encode("utf-8"), out / "report.json": summary.encode("utf-8")}, OUTPUT_REMEDY)
    return page


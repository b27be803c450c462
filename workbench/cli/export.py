"""`workbench export | report | figures`: print-ready figures, their data and manifests, headless.

    workbench export --manifest out/fig/retrieval.manifest.json [--out DIR] [--overwrite]
    workbench export --analysis map --model M --langs en,zh,sw --set layer=best --set method=tsne \
        [--name NAME] [--formats pdf,svg,png] [--width single|double|INCHES] [--dpi 300] [--out DIR]
    workbench report --model M --corpus udhr --langs en,zh,sw [--artifact DIR] [--limit N] [--out DIR]
    workbench figures SET.yaml [--out DIR] [--model M] [--limit N] [--var artifact=DIR] [--only NAME]

`export --manifest` rebuilds a figure from the spec in its manifest (same CSV bytes, same
pictures); the default output folder is the manifest's own, so there it needs
`--overwrite`. `figures example` renders the bundled example set.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from workbench.cli._args import ProgressBar as _Progress
from workbench.cli._args import add_model_args, add_record_args, model_spec, record_spec
from workbench.cli._args import csv_list as _csv
from workbench.cli._args import key_value as _kv
from workbench.config import RecordSpec
from workbench.errors import OUTPUT_REMEDY
from workbench.export import OverwriteError, export_figure, read_manifest, target_paths
from workbench.fileio import writable_dir
from workbench.recipes import ANALYSES
from workbench.recipes.build import build_figure
from workbench.recipes.spec import CODE_SWITCHES
from workbench.report import build_report, render_figure_set


def _status(msg: str) -> None:
    print(msg, file=sys.stderr)


def _record_overrides(a: argparse.Namespace) -> dict[str, Any]:
    """RecordSpec fields the user changed from the defaults (so specs stay short)."""
    given = record_spec(a).to_dict()
    default = RecordSpec().to_dict()
    return {k: v for k, v in given.items() if v != default[k]}


def _print_written(paths: list[Path]) -> None:
    for p in paths:
        print(p)


def _allowed(a: argparse.Namespace) -> set[str]:
    """The code-running and network switches this command line allows a manifest or figure set to use."""
    return {k for k in CODE_SWITCHES if getattr(a, k, False)}  # --trust-remote-code, --remote


def _refuse_existing(out: Path, name: str, formats: Any) -> None:

    for p in target_paths(out, name, formats).values():
        if p.exists():
            raise OverwriteError(f"{p} exists; pass --overwrite or choose another --name or --out")


def cmd_export(a: argparse.Namespace) -> int:
    """Export one figure, from a manifest or from an analysis and options."""
    bar = _Progress(a.progress)
    try:
        if a.manifest:
            m = read_manifest(a.manifest, allow=_allowed(a))
            spec, ex = m["spec"], m.get("export", {})
            out = Path(a.out) if a.out else Path(a.manifest).parent
            name = m.get("name") or Path(a.manifest).name.split(".")[0]
            opts = {"formats": ex.get("formats", ["pdf", "svg", "png"]), "width_in": ex.get("width_in", 3.3),
                    "height_in": ex.get("height_in"), "dpi": ex.get("dpi", 300), "title": ex.get("title", True)}
            caption = m.get("caption")
        else:
            spec = {"analysis": a.analysis, "model": model_spec(a).to_dict(), "corpus": a.corpus, "langs": a.langs,
                    "limit": a.limit, "record": _record_overrides(a), "params": dict(a.set or []),
                    "preset": getattr(a, "preset", None)}
            out = Path(a.out or "out/export")
            name = a.name or a.analysis
            opts = {"formats": a.formats, "width_in": a.width, "height_in": a.height, "dpi": a.dpi,
                    "title": not a.no_title}
            caption = None
        if not a.overwrite:  # fail before recording, not after
            _refuse_existing(out, name, opts["formats"])
        writable_dir(out, OUTPUT_REMEDY)
        fig, data, info = build_figure(spec, status=_status, progress=bar)
    finally:
        bar.close()
    if caption:
        info["caption"] = caption
    paths = export_figure(fig, data, out, name, manifest=info, overwrite=a.overwrite, **opts)
    _print_written(paths)
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    """Write the HTML report and its folder of PDFs."""
    model = {"source": a.model, "device": a.device, "dtype": a.dtype, "trust_remote_code": a.trust_remote_code}
    bar = _Progress(a.progress)
    try:
        page = build_report(model, a.corpus, a.langs, a.out, artifact=a.artifact, limit=a.limit,
                            record=_record_overrides(a), formats=a.formats, overwrite=a.overwrite,
                            command=shlex.join(["workbench", *sys.argv[1:]]) if sys.argv[1:2] == ["report"]
                            else None, status=_status, progress=bar)
    finally:
        bar.close()
    print(page)
    print(Path(a.out) / "figures")
    return 0


def cmd_figures(a: argparse.Namespace) -> int:
    """Render every figure of a YAML figure set."""
    overrides: dict[str, Any] = {}
    for key in ("model", "corpus", "limit"):
        if getattr(a, key) is not None:
            overrides[key] = getattr(a, key)
    if a.langs is not None:
        overrides["langs"] = a.langs
    out = a.out or str(Path("out") / "figures" / Path(a.set).stem)
    bar = _Progress(a.progress)
    try:
        paths = render_figure_set(a.set, out, overrides=overrides, variables=dict(a.var or []), only=a.only,
                                  overwrite=a.overwrite, status=_status, progress=bar, allow=_allowed(a))
    finally:
        bar.close()
    _print_written(paths)
    return 0


def _figure_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("figure files")
    g.add_argument("--name", default=None, help="file stem (sanitised; default: the analysis)")
    g.add_argument("--formats", type=_csv, default=["pdf", "svg", "png"], help="any of pdf,svg,png,html")
    g.add_argument("--width", default="single", help="single (3.3 in), double (6.9 in) or inches")
    g.add_argument("--height", type=float, default=None, help="inches (default from the width)")
    g.add_argument("--dpi", type=int, default=300, help="PNG resolution (PNG width = width × dpi)")
    g.add_argument("--no-title", action="store_true", help="leave the title out of the static files")


def add_export_parser(sub: Any) -> None:
    """Add `workbench export`, `workbench report` and `workbench figures` to the CLI's subparsers."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    e = sub.add_parser("export", formatter_class=fmt,
                       help="one figure as PDF/SVG/PNG + CSV/Parquet + manifest (or rebuild one from a manifest)")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", default=None, help="rebuild the figure described by this manifest")
    src.add_argument("--analysis", choices=sorted(ANALYSES), default=None, help="analysis to draw")
    add_model_args(e)
    add_record_args(e)
    e.add_argument("--set", type=_kv, action="append", metavar="KEY=VALUE",
                   help="analysis parameter, repeatable (e.g. layer=best, method=tsne, pivot=en)")
    _figure_options(e)
    e.add_argument("--out", default=None, help="output folder (default: the manifest's folder, or out/export)")
    e.add_argument("--overwrite", action="store_true", help="replace existing files")
    e.set_defaults(func=cmd_export)

    r = sub.add_parser("report", formatter_class=fmt,
                       help="one self-contained HTML report (and a folder of PDFs) for a model and languages")
    r.add_argument("--model", default="gemma-3-270m", help="bundled name, hub id, local dir or .gguf")
    r.add_argument("--artifact", default=None, help="fine-tune artifact to compare with the base (before/after)")
    r.add_argument("--device", default="auto")
    r.add_argument("--dtype", default="auto")
    r.add_argument("--trust-remote-code", action="store_true")
    add_record_args(r, langs_default="en,zh,sw,ar,hi,es")
    r.add_argument("--formats", type=_csv, default=["pdf"], help="formats written to <out>/figures")
    r.add_argument("--out", default="out/report", help="output folder")
    r.add_argument("--overwrite", action="store_true", help="replace an existing report")
    r.set_defaults(func=cmd_report)

    f = sub.add_parser("figures", formatter_class=fmt, help="render every figure of a YAML figure set")
    f.add_argument("set", help="YAML file, or the name of a bundled set (example)")
    f.add_argument("--out", default=None, help="output folder (default: out/figures/<set name>)")
    f.add_argument("--model", default=None, help="use this model for every figure")
    f.add_argument("--corpus", default=None, help="use this corpus for every figure")
    f.add_argument("--langs", type=_csv, default=None, help="use these languages for every figure")
    f.add_argument("--limit", type=int, default=None, help="use the first N units for every figure")
    f.add_argument("--var", type=_kv, action="append", metavar="NAME=VALUE",
                   help="value of ${NAME} in the set (e.g. artifact=DIR); figures needing an unset one are skipped")
    f.add_argument("--only", type=_csv, default=None, help="render only these figure names")
    f.add_argument("--overwrite", action="store_true", help="replace existing files")
    f.add_argument("--progress", action="store_true", help="show a progress bar while recording")
    f.add_argument("--trust-remote-code", action="store_true",
                   help="allow the set's models to run their own code (a set cannot allow it itself)")
    f.add_argument("--remote", action="store_true",
                   help="allow the set's figures to record on NDIF (a set cannot ask for it itself)")
    f.set_defaults(func=cmd_figures)

"""`workbench analyze <analysis>`: record what is missing, compute one analysis, write CSV + HTML + a summary.

    workbench analyze retrieval   --langs en,zh,sw,... [--method margin] [--pivot en]
    workbench analyze sensitivity --src en --tgt sw [--split K --k1 4 --k2 4] [--variant paper]
    workbench analyze overlap     --pivot en --langs ... [--top-frac 0.05]
    workbench analyze subspace    --langs ... [--layer L|best] [--rank R] [--central en]
    workbench analyze map         --langs ... [--layer L|best] --method tsne
    workbench analyze compare_retrieval --langs ... --state-b '{"artifact": "cache/jobs/<ID>/artifact"}'

One sub-command per registered analysis (`workbench.recipes.registry`), its flags
generated from the analysis's `Params`; each builds a figure spec and calls the registry
(`recipes.build`), the same code path as the pages, `export`, `report` and figure sets.
Writes `<out>/<analysis>.csv` (and the analysis's side tables as `<analysis>_<name>.csv`),
`<out>/<analysis>.html` (self-contained, offline) and prints a one-screen summary.
Existing files are never overwritten without `--overwrite`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.cli._args import (
    ProgressBar,
    add_model_args,
    add_params_args,
    add_record_args,
    figure_spec,
    params_from_args,
)
from workbench.errors import OUTPUT_REMEDY, OverwriteError
from workbench.fileio import atomic_write_files, writable_dir
from workbench.recipes.registry import REGISTRY, get_analysis

__all__ = ["add_analyze_parser", "cmd_analyze"]


def cmd_analyze(a: argparse.Namespace) -> int:
    """Build one registered analysis (recording what is missing), print its summary, write its files."""
    from workbench.recipes.build import build  # start-up: the build imports the recorder and the evaluator

    analysis = get_analysis(a.analysis)
    out = Path(a.out)
    first = [out / f"{a.analysis}.csv", out / f"{a.analysis}.html", *(out / f"{a.analysis}_{x}.csv"
                                                                      for x in analysis.extras)]
    taken = [str(f) for f in first if f.exists()]
    if taken and not a.overwrite:
        raise OverwriteError(f"{taken[0]} exists (and {len(taken) - 1} more); pass --overwrite or another --out")
    writable_dir(out, OUTPUT_REMEDY)  # before any recording
    bar = ProgressBar(getattr(a, "progress", False))
    try:
        built = build(figure_spec(a, a.analysis, params_from_args(a, analysis.params)), progress=bar,
                      status=lambda m: print(m, file=sys.stderr), num_processes=getattr(a, "num_processes", 1),
                      force_processes=getattr(a, "force_processes", False))
    finally:
        bar.close()
    report = analysis.report(built, build)
    print("\n".join(report.lines))
    files = {out / (f"{a.analysis}.csv" if not suffix else f"{a.analysis}_{suffix}.csv"):
             table.to_csv(index=False).encode("utf-8") for suffix, table in report.tables.items()}
    page = out / f"{a.analysis}.html"
    files[page] = built.figure.to_html(include_plotlyjs=True).encode("utf-8")
    atomic_write_files(files, OUTPUT_REMEDY)
    print(f"\nwrote {', '.join(str(f) for f in files if f != page)} and {page}")
    return 0


def add_analyze_parser(sub: Any) -> None:
    """Add `workbench analyze <analysis>` for every registered analysis; flags come from its Params."""
    p = sub.add_parser("analyze", help="compute an analysis (records what is missing); writes CSV, HTML, summary")
    asub = p.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")
    for name, analysis in REGISTRY.items():
        q = asub.add_parser(name, help=analysis.help.replace("%", "%%"), description=analysis.params.__doc__,
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        add_model_args(q)
        add_record_args(q)
        add_params_args(q, analysis.params)
        q.add_argument("--out", default=f"out/{name}", help="output directory")
        q.add_argument("--overwrite", action="store_true", help="replace existing output files")
        q.set_defaults(func=cmd_analyze)

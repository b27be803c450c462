"""`workbench analyze …`: record what is missing, compute one analysis, write CSV + HTML + summary.

    workbench analyze retrieval   --langs en,zh,sw,... [--method margin] [--pivot en]
    workbench analyze sensitivity --src en --tgt sw [--split K --k1 4 --k2 4] [--variant paper]
    workbench analyze overlap     --pivot en --langs ... [--top-frac 0.05]
    workbench analyze subspace    --langs ... [--layer L|best] [--rank R] [--central en]
    workbench analyze map         --langs ... [--layer L|best] --method tsne

Each command builds a figure spec and calls the registry (`workbench.recipes.build_figure`),
the same code path as the pages, `export`, `report` and figure sets; its flags are generated
from the analysis's Params dataclass. Writes `<out>/<analysis>.csv`, `<out>/<analysis>.html`
(self-contained, offline) and prints a one-screen summary. Existing files are never
overwritten without `--overwrite`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.analysis.retrieval import mexa_summary, mid_align_score
from workbench.cli._args import (
    ProgressBar,
    add_model_args,
    add_params_args,
    add_record_args,
    figure_spec,
    params_from_args,
)
from workbench.errors import OverwriteError
from workbench.recipes import PARAMS, tables
from workbench.recipes.build import Built, build

log = logging.getLogger(__name__)


def _build(a: argparse.Namespace, analysis: str, langs: list[str] | None = None) -> tuple[Any, pd.DataFrame, dict]:
    """Check the outputs are free, then build the figure through the registry (recording what is missing)."""
    out = Path(a.out)
    files = [out / f"{a.analysis}.csv", out / f"{a.analysis}.html", *[out / f for f in _EXTRA.get(a.analysis, ())]]
    taken = [str(f) for f in files if f.exists()]
    if taken and not a.overwrite:
        raise OverwriteError(f"{taken[0]} exists (and {len(taken) - 1} more); pass --overwrite or another --out")
    out.mkdir(parents=True, exist_ok=True)
    bar = ProgressBar(getattr(a, "progress", False))
    try:
        b: Built = build(figure_spec(a, analysis, params_from_args(a, PARAMS[analysis]), langs),
                         progress=bar, status=lambda m: print(m, file=sys.stderr),
                         num_processes=getattr(a, "num_processes", 1))
    finally:
        bar.close()
    return b.figure, b.table, {**b.info, "tables": b.extra}


_EXTRA = {"retrieval": ("retrieval_pairs.csv",), "subspace": ("subspace_points.csv",)}


def _write(out: Path, name: str, table: pd.DataFrame, fig: Any) -> None:
    table.to_csv(out / f"{name}.csv", index=False)
    fig.write_html(out / f"{name}.html", include_plotlyjs=True)
    print(f"\nwrote {out / f'{name}.csv'} and {out / f'{name}.html'}")


def _curve(values: pd.Series, labels: list[Any]) -> str:
    """A one-line sparkline of a per-layer curve."""
    bars = "▁▂▃▄▅▆▇█"
    v = np.asarray(values, dtype=float)
    lo, hi = np.nanmin(v), np.nanmax(v)
    scaled = [" " if np.isnan(x) else bars[int((x - lo) / (hi - lo + 1e-12) * 7)] for x in v]
    return f"{labels[0]} {''.join(scaled)} {labels[-1]}  (min {lo:.3f}, max {hi:.3f})"


def cmd_retrieval(a: argparse.Namespace) -> int:
    """Per-layer translation-retrieval accuracy."""
    fig, summary, info = _build(a, "retrieval")
    p, langs = info["params"], info["languages"]
    allp = summary[summary.series == "all_pairs"].set_index("layer")["accuracy"]
    best = tables.best_layer(summary)
    print(f"retrieval ({p['method']}{', centred' if p['center'] else ''}, {p['pooling']} pooling), "
          f"{len(langs)} languages")
    print("all pairs by layer:", _curve(allp, list(allp.index)))
    print("\n".join(f"  layer {layer!s:>3}: {acc:.3f}" for layer, acc in allp.items()))
    print(f"best layer: {best} (all-pairs accuracy {allp[best]:.3f})")
    at_best = summary[(summary.layer == best) & ~summary.series.isin(["all_pairs", "pivot"])]
    print(f"per language vs {p['pivot']} at layer {best}: " +
          ", ".join(f"{r.series} {r.accuracy:.2f}" for r in at_best.itertuples()))
    print(f"Mid-align score (mean over its even layers m = 2, 4, …, our blocks 1, 3, …): "
          f"{mid_align_score(summary):.3f}")
    if p["method"] == "mexa":
        mexa = mexa_summary(summary, p["pivot"])
        print(f"MEXA (vs {p['pivot']}): mean over layers {mexa['mean']:.3f}, max {mexa['max']:.3f}")
    _write(Path(a.out), "retrieval", summary, fig)
    info["tables"]["pairs"].to_csv(Path(a.out) / "retrieval_pairs.csv", index=False)
    return 0


def cmd_sensitivity(a: argparse.Namespace) -> int:
    """SiLP projection sensitivity and layer allocation for one translation direction."""
    fig, table, info = _build(a, "sensitivity", langs=[a.src, a.tgt])
    p, scores = info["params"], table["score"].to_numpy()
    n2d = [int(x) for x in table.loc[table.allocation == "N2D", "layer"]]
    d2n = [int(x) for x in table.loc[table.allocation == "D2N", "layer"]]
    split = info["split"]
    print(f"projection sensitivity {p['src']}>{p['tgt']} ({p['variant']} variant), split k={split}")
    print("scores by layer:", _curve(pd.Series(scores), list(range(len(scores)))))
    print("  " + ", ".join(f"{i}:{s:.4g}" for i, s in enumerate(scores) if not np.isnan(s)))
    print(f"N2D layers (top-{p['k1']} of 1…{split}): {n2d}")
    print(f"D2N layers (top-{p['k2']} of {split + 1}…{len(scores) - 1}): {d2n}")
    _write(Path(a.out), "sensitivity", table, fig)
    return 0


def cmd_overlap(a: argparse.Namespace) -> int:
    """Activated-neuron overlap with the pivot, per layer."""
    fig, table, info = _build(a, "overlap")
    print(f"neuron overlap (Jaccard of top-{info['params']['top_frac']:.0%} activated sets) with "
          f"{info['languages'][0]} by layer:")
    for lang, g in table.groupby("lang", sort=False):
        print(f"  {lang:>6}: {_curve(g['jaccard'], list(g['layer']))}")
    _write(Path(a.out), "overlap", table, fig)
    return 0


def cmd_subspace(a: argparse.Namespace) -> int:
    """LENS language-agnostic / language-specific subspaces at one layer, separation per layer."""
    fig, points, info = _build(a, "subspace")
    p = info["params"]
    sep = build({**info["spec"], "analysis": "separation", "title": None,  # the same recording, from the store
                 "params": {k: p[k] for k in ("pooling", "rank", "central")}}).table
    print(f"LENS subspaces at layer {p['layer']} (central {p['central']}); direction norms:")
    print(info["tables"]["norms"].to_string(index=False))
    print("\nper-layer between/within variance ratio (held-out sentences):")
    print(sep[["layer", "agnostic_ratio", "specific_ratio"]].to_string(index=False, float_format="%.3f"))
    _write(Path(a.out), "subspace", sep, fig)
    points.to_csv(Path(a.out) / "subspace_points.csv", index=False)
    return 0


def cmd_map(a: argparse.Namespace) -> int:
    """PCA / t-SNE / UMAP map of one layer."""
    fig, pts, info = _build(a, "map")
    p = info["params"]
    print(f"{p['method']} map of layer {p['layer']}: {len(pts)} points, {pts['lang'].nunique()} languages, "
          f"seed {p['seed']}")
    _write(Path(a.out), "map", pts, fig)
    return 0


_COMMANDS = {
    "retrieval": ("per-layer translation-retrieval accuracy", cmd_retrieval, ()),
    "sensitivity": ("SiLP projection sensitivity and N2D/D2N layer allocation", cmd_sensitivity, ()),
    "overlap": ("activated-neuron overlap with the pivot", cmd_overlap, ("measure",)),
    "subspace": ("LENS language subspaces at one layer", cmd_subspace, ()),
    "map": ("PCA / t-SNE / UMAP of one layer", cmd_map, ()),
}


def add_analyze_parser(sub: Any) -> None:
    """Add `workbench analyze <analysis>` to the CLI's subparsers; flags come from the Params dataclasses."""
    p = sub.add_parser("analyze", help="compute an analysis (records what is missing); writes CSV, HTML, summary")
    asub = p.add_subparsers(dest="analysis", required=True)
    for name, (help_, func, skip) in _COMMANDS.items():
        q = asub.add_parser(name, help=help_, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        add_model_args(q)
        add_record_args(q)
        add_params_args(q, PARAMS[name], skip=skip)
        q.add_argument("--out", default=f"out/{name}", help="output directory")
        q.add_argument("--overwrite", action="store_true", help="replace existing output files")
        q.set_defaults(func=func)

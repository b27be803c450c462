"""`workbench analyze …`: record what is missing, compute one analysis, write CSV + HTML + summary.

    workbench analyze retrieval   --langs en,zh,sw,... [--method margin] [--pivot en]
    workbench analyze sensitivity --src en --tgt sw [--split K --k1 4 --k2 4] [--variant paper]
    workbench analyze overlap     --pivot en --langs ... [--top-frac 0.05]
    workbench analyze subspace    --langs ... --layer L [--rank R] [--central en]
    workbench analyze map         --langs ... --layer L --method tsne

Each writes `<out>/<analysis>.csv`, `<out>/<analysis>.html` (self-contained, works offline)
and prints a one-screen summary. The tables come from `workbench.views`, the same functions
the UI calls.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.config import SILP_TEMPLATE

log = logging.getLogger(__name__)


def _layer(s: str) -> Any:
    return "emb" if s == "emb" else int(s)


def _write(out: Path, name: str, table: pd.DataFrame, fig: Any) -> None:
    out.mkdir(parents=True, exist_ok=True)
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
    from workbench import views
    from workbench.cli import get_recording
    from workbench.viz import figures

    rec = get_recording(a)
    langs = list(rec.entries)
    pivot = a.pivot if a.pivot in langs else langs[0]
    df, summary = views.retrieval_tables(rec, a.pooling, method=a.method, k=a.k, pivot=pivot, center=a.center)
    allp = summary[summary.series == "all_pairs"].set_index("layer")["accuracy"]
    blocks = allp[[isinstance(x, (int, np.integer)) for x in allp.index]]
    best = blocks.idxmax()
    n = len(rec.entries[langs[0]]["n_tokens"])
    print(f"retrieval ({a.method}{', centred' if a.center else ''}, {a.pooling} pooling), "
          f"{len(langs)} languages × {n} units, chance {1 / n:.3f}")
    print("all pairs by layer:", _curve(allp, list(allp.index)))
    print("\n".join(f"  layer {layer!s:>3}: {acc:.3f}" for layer, acc in allp.items()))
    print(f"best layer: {best} (all-pairs accuracy {blocks[best]:.3f})")
    at_best = summary[(summary.layer == best) & ~summary.series.isin(["all_pairs", "pivot"])]
    print(f"per language vs {pivot} at layer {best}: " +
          ", ".join(f"{r.series} {r.accuracy:.2f}" for r in at_best.itertuples()))
    from workbench.analysis.retrieval import mid_align_score

    print(f"Mid-align score (mean over even layers): {mid_align_score(summary):.3f}")
    _write(Path(a.out), "retrieval", summary, figures.retrieval_by_layer_figure(summary))
    df.to_csv(Path(a.out) / "retrieval_pairs.csv", index=False)
    return 0


def cmd_sensitivity(a: argparse.Namespace) -> int:
    """SiLP projection sensitivity and layer allocation for one translation direction."""
    from workbench import views
    from workbench.analysis import sensitivity
    from workbench.cli import get_recording
    from workbench.viz import figures

    rec = get_recording(a, langs=[a.src, a.tgt], pairs=[(a.src, a.tgt)], template=SILP_TEMPLATE,
                        poolings=("mean",), embeddings=False, ffn_stats=True)
    unit = next(iter(rec.entries))
    scores = views.sensitivity_scores(rec, unit, a.variant)
    n2d, d2n = sensitivity.allocate_layers(scores, split=a.split, k1=a.k1, k2=a.k2)
    split = a.split or sensitivity.default_split(len(scores))
    print(f"projection sensitivity {unit} ({a.variant} variant), split k={split}")
    print("scores by layer:", _curve(pd.Series(scores), list(range(len(scores)))))
    print("  " + ", ".join(f"{i}:{s:.4g}" for i, s in enumerate(scores) if not np.isnan(s)))
    print(f"N2D layers (top-{a.k1} of 1…{split}): {n2d}")
    print(f"D2N layers (top-{a.k2} of {split + 1}…{len(scores) - 1}): {d2n}")
    table = pd.DataFrame({"layer": range(len(scores)), "score": scores,
                          "allocation": ["N2D" if i in n2d else "D2N" if i in d2n else "" for i in range(len(scores))]})
    _write(Path(a.out), "sensitivity", table, figures.sensitivity_figure(scores, n2d, d2n, split=split))
    return 0


def cmd_overlap(a: argparse.Namespace) -> int:
    """Activated-neuron overlap with the pivot, per layer."""
    from workbench import views
    from workbench.cli import get_recording
    from workbench.viz import figures

    langs = [a.pivot, *[x for x in a.langs if x != a.pivot]]
    rec = get_recording(a, langs=langs)
    units = list(rec.entries)
    table = views.overlap_table(rec, units[0], units[1:], top_frac=a.top_frac)
    print(f"neuron overlap (Jaccard of top-{a.top_frac:.0%} activated sets) with {units[0]} by layer:")
    for lang, g in table.groupby("lang", sort=False):
        print(f"  {lang:>6}: {_curve(g['jaccard'], list(g['layer']))}")
    _write(Path(a.out), "overlap", table, figures.overlap_figure(table))
    return 0


def cmd_subspace(a: argparse.Namespace) -> int:
    """LENS language-agnostic / language-specific subspaces at one layer, separation per layer."""
    from workbench import views
    from workbench.cli import get_recording
    from workbench.corpus import load_corpus
    from workbench.viz import figures

    rec = get_recording(a)
    corpus = load_corpus(a.corpus).subset(list(rec.entries), limit=a.limit)
    central = a.central if a.central in rec.entries else next(iter(rec.entries))
    points, norms, strips = views.subspace_view(rec, corpus, a.pooling, a.layer, rank=a.rank, central=central)
    sep = views.separation_table(rec, a.pooling, rank=a.rank, central=central, holdout=True)
    print(f"LENS subspaces at layer {a.layer} (central {central}); direction norms:")
    print(norms.to_string(index=False))
    print("\nper-layer between/within variance ratio (held-out sentences):")
    print(sep[["layer", "agnostic_ratio", "specific_ratio"]].to_string(index=False, float_format="%.3f"))
    fig = figures.subspace_figure(points[["x_agnostic", "y_agnostic"]].to_numpy(),
                                  points[["x_specific", "y_specific"]].to_numpy(), list(points["lang"]),
                                  list(points["text"]), strips=strips)
    _write(Path(a.out), "subspace", sep, fig)
    points.to_csv(Path(a.out) / "subspace_points.csv", index=False)
    return 0


def cmd_map(a: argparse.Namespace) -> int:
    """PCA / t-SNE / UMAP map of one layer."""
    from workbench import views
    from workbench.cli import get_recording
    from workbench.corpus import load_corpus
    from workbench.viz import figures

    rec = get_recording(a)
    corpus = load_corpus(a.corpus).subset(list(rec.entries), limit=a.limit)
    pts = views.map_points(rec, corpus, a.pooling, a.layer, method=a.method, random_state=a.seed)
    fig = figures.map_figure(pts[["x", "y"]].to_numpy(), list(pts["lang"]), list(pts["text"]),
                             pair_ids=list(pts["unit"]), show_links=a.links,
                             title=f"{a.method.upper()} of layer {a.layer}")
    print(f"{a.method} map of layer {a.layer}: {len(pts)} points, {pts['lang'].nunique()} languages, seed {a.seed}")
    _write(Path(a.out), "map", pts, fig)
    return 0


def add_analyze_parser(sub: Any) -> None:
    """Add `workbench analyze <analysis>` to the CLI's subparsers."""
    from workbench.cli import add_model_args, add_record_args

    p = sub.add_parser("analyze", help="compute an analysis (records what is missing); writes CSV, HTML, summary")
    asub = p.add_subparsers(dest="analysis", required=True)

    def common(name: str, help_: str, func: Any) -> argparse.ArgumentParser:
        q = asub.add_parser(name, help=help_, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        add_model_args(q)
        add_record_args(q)
        q.add_argument("--pooling", default="mean", choices=["mean", "last", "weighted"])
        q.add_argument("--out", default=f"out/{name}", help="output directory")
        q.set_defaults(func=func)
        return q

    r = common("retrieval", "per-layer translation-retrieval accuracy", cmd_retrieval)
    r.add_argument("--method", default="margin", choices=["cosine", "margin", "mexa"])
    r.add_argument("--k", type=int, default=4, help="neighbourhood size of the margin method")
    r.add_argument("--pivot", default="en")
    r.add_argument("--center", action="store_true", help="variant: subtract each language's mean first")

    s = common("sensitivity", "SiLP projection sensitivity and N2D/D2N layer allocation", cmd_sensitivity)
    s.add_argument("--src", default="en")
    s.add_argument("--tgt", default="sw")
    s.add_argument("--split", type=int, default=None, help="split layer k (default round(0.625 L))")
    s.add_argument("--k1", type=int, default=4)
    s.add_argument("--k2", type=int, default=4)
    s.add_argument("--variant", default="paper", choices=["paper", "abs"])

    o = common("overlap", "activated-neuron overlap with the pivot", cmd_overlap)
    o.add_argument("--pivot", default="en")
    o.add_argument("--top-frac", type=float, default=0.05)

    b = common("subspace", "LENS language subspaces at one layer", cmd_subspace)
    b.add_argument("--layer", type=_layer, required=True)
    b.add_argument("--rank", type=int, default=None)
    b.add_argument("--central", default="en")

    m = common("map", "PCA / t-SNE / UMAP of one layer", cmd_map)
    m.add_argument("--layer", type=_layer, required=True)
    m.add_argument("--method", default="pca", choices=["pca", "tsne", "umap"])
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--links", action="store_true", help="draw lines between translations")

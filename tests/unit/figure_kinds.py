"""Every figure kind the product exports, built from synthetic tables (no model, no store).

Shared by `test_paper_figures.py` (rendered geometry) and `test_palette.py` (colours). The
tables have the shapes the recipes hand the builders: 8 languages (the report's set) or 12,
19 layers (``emb``, 0–17) like a real Gemma-3-270M recording.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.viz import cctuning_figures as CC
from workbench.viz import compare_figures as CF
from workbench.viz import eval_figures as EF
from workbench.viz import figures as F

LANGS8 = ["en", "zh", "sw", "ar", "hi", "es", "fr", "ja"]
LANGS12 = [*LANGS8, "de", "ru", "ko", "id"]
LAYERS = ["emb", *range(18)]


def _curve(i: int, j: int, rng: np.random.Generator) -> float:
    return float(np.clip(0.2 + 0.6 * np.sin(i / 6) + 0.04 * j + 0.02 * rng.normal(), 0, 1))


def retrieval(langs: list[str] = LANGS8) -> go.Figure:
    """Retrieval by layer: all pairs, with pivot and one line per non-pivot language."""
    rng = np.random.default_rng(0)
    rows = [{"layer": layer, "series": s, "accuracy": _curve(i, j, rng), "center": False}
            for i, layer in enumerate(LAYERS) for j, s in enumerate(["all_pairs", "pivot", *langs[1:]])]
    df = pd.DataFrame(rows)
    df.attrs.update(method="margin", pivot=langs[0])
    return F.retrieval_by_layer_figure(df)


def heatmap(langs: list[str] = LANGS8) -> go.Figure:
    """Language × language retrieval heatmap."""
    rng = np.random.default_rng(1)
    return F.retrieval_heatmap(pd.DataFrame(rng.uniform(0.3, 1, (len(langs),) * 2), index=langs, columns=langs))


def sensitivity() -> go.Figure:
    """SiLP projection sensitivity of 18 layers with N2D/D2N layers and the split."""
    scores = np.r_[np.nan, np.random.default_rng(2).uniform(0.05, 0.6, 17)]
    return F.sensitivity_figure(scores, [2, 3, 4, 5], [12, 13, 14, 15], split=8)


def overlap(langs: list[str] = LANGS8) -> go.Figure:
    """Neuron overlap with the pivot, one line per language."""
    rng = np.random.default_rng(3)
    rows = [{"layer": layer, "lang": lang, "jaccard": _curve(i, j, rng) / 2, "pivot_frac": _curve(i, j, rng)}
            for j, lang in enumerate(langs[1:]) for i, layer in enumerate(LAYERS[1:])]
    df = pd.DataFrame(rows)
    df.attrs["pivot"] = langs[0]
    return F.overlap_figure(df)


def specific(langs: list[str] = LANGS8) -> go.Figure:
    """Stacked LAPE counts per layer and language."""
    rng = np.random.default_rng(4)
    return F.specific_neurons_figure(pd.DataFrame(rng.integers(0, 40, (18, len(langs))), columns=langs,
                                                  index=pd.Index(range(18), name="layer")))


def _points(langs: list[str], per: int = 10, seed: int = 5) -> tuple[np.ndarray, list[str], list[str], list[int]]:
    rng = np.random.default_rng(seed)
    coords = np.concatenate([rng.normal(loc=(i % 4, i // 4), scale=0.4, size=(per, 2)) for i in range(len(langs))])
    return coords, [x for x in langs for _ in range(per)], [f"sentence {k}" for k in range(per * len(langs))], \
        [k for _ in langs for k in range(per)]


def map_pca(langs: list[str] = LANGS8) -> go.Figure:
    """PCA map with translation links and explained variance on the axes."""
    xy, lg, texts, units = _points(langs)
    return F.map_figure(xy, lg, texts, pair_ids=units, show_links=True, method="pca",
                        explained_variance=(0.234, 0.118))


def subspace(langs: list[str] = LANGS8) -> go.Figure:
    """LENS agnostic / specific panels."""
    xy, lg, texts, _ = _points(langs)
    return F.subspace_figure(xy, xy[::-1].copy(), lg, texts, strips={"agnostic": True})


def separation(langs: list[str] = LANGS8) -> go.Figure:
    """Variance ratios (left) and direction norms per language (right)."""
    rng = np.random.default_rng(6)
    df = pd.DataFrame({"layer": LAYERS[1:], "agnostic_ratio": rng.uniform(0, 0.1, 18),
                       "specific_ratio": rng.uniform(0.5, 2, 18),
                       **{f"direction_norm_{x}": rng.uniform(1, 5, 18) for x in langs[1:]}})
    df.attrs["central"] = langs[0]
    return F.separation_figure(df)


def _compare_table(line: str, names: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = []
    for j, name in enumerate(names):
        for i, layer in enumerate(LAYERS):
            a = _curve(i, j, rng)
            b = min(1.0, a + 0.05 * rng.random())
            rows.append({"layer": layer, line: name, "a": a, "b": b, "diff": b - a})
    return pd.DataFrame(rows)


def compare_retrieval() -> go.Figure:
    """Before/after retrieval: all pairs and with pivot."""
    return CF.compare_by_layer_figure(_compare_table("series", ["all_pairs", "pivot"]), line="series",
                                      labels=("base", "silp-3f2a1c"), y_title="retrieval accuracy")


def compare_overlap(langs: list[str] = LANGS8) -> go.Figure:
    """Before/after overlap, one line per language."""
    return CF.compare_by_layer_figure(_compare_table("lang", langs[1:]), line="lang", labels=("base", "lens-9c1"),
                                      y_title="overlap")


def compare_separation() -> go.Figure:
    """Before/after separation measures (ratios and language direction norms)."""
    return CF.compare_by_layer_figure(
        _compare_table("measure", ["agnostic_ratio", "specific_ratio", "direction_norm_sw", "direction_norm_zh"]))


def compare_maps(langs: list[str] = LANGS8) -> go.Figure:
    """Two states' maps side by side."""
    xy, lg, texts, _ = _points(langs)
    pts = pd.concat([pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "lang": lg, "text": texts, "state": s})
                     for s in ("a", "b")], ignore_index=True)
    return CF.compare_maps_figure(pts, labels=("base", "tuned"))


def difference_heatmap(langs: list[str] = LANGS8) -> go.Figure:
    """B − A retrieval matrix."""
    rng = np.random.default_rng(8)
    return CF.difference_heatmap(pd.DataFrame(rng.normal(0, 0.1, (len(langs),) * 2), index=langs, columns=langs))


def comparison() -> go.Figure:
    """Retrieval before/after a fine-tune artifact (`retrieval_compare`)."""
    rng = np.random.default_rng(9)
    rows = [{"layer": layer, "series": s, "before": (b := _curve(i, j, rng)), "after": min(1, b + 0.03),
             "difference": 0.03 - 0.06 * (i % 3 == 0)} for i, layer in enumerate(LAYERS)
            for j, s in enumerate(["all_pairs", "pivot"])]
    return CF.comparison_figure(pd.DataFrame(rows))


def eval_compare() -> go.Figure:
    """Held-out loss and perplexity of two states."""
    return CF.eval_compare_figure(pd.DataFrame({"kind": ["translation loss"] * 2 + ["perplexity"],
                                                "what": ["en → sw", "sw → en", "en"], "a": [2.1, 2.4, 30.0],
                                                "b": [1.9, 2.3, 31.0]}), labels=("base", "silp"))


def eval_rows(n: int = 40, states: tuple[str, ...] = ("base", "silp-3f2a1c", "lens-9c1d")) -> pd.DataFrame:
    """An `EvalResult.eval` table: 3 states × 2 directions × chrF++/BLEU/fidelity, and the loss suite."""
    rows = []
    for k, s in enumerate(states):
        for d in ("en>sw", "sw>en"):
            for m, v in (("chrf++", 30 + k), ("bleu", 8 + k), ("fidelity", 0.8 + 0.05 * k),
                         ("langid_accuracy", 0.99)):
                ci = (float("nan"),) * 2 if m == "langid_accuracy" else (v * 0.9, v * 1.1)
                rows.append([s, "translation", d, m, v, *ci, 200 if m == "langid_accuracy" else n])
            rows.append([s, "loss", d, "loss", 2.0 - 0.1 * k, 1.9 - 0.1 * k, 2.1 - 0.1 * k, n])
        rows.append([s, "loss", "en", "ppl", 30 - k, 28 - k, 32 - k, n])
    return pd.DataFrame(rows, columns=["state", "suite", "direction", "metric", "value", "ci_low", "ci_high", "n"])


def eval_scores() -> go.Figure:
    """Outcomes of three states (chrF++, BLEU, fidelity, loss, perplexity)."""
    return EF.eval_scores_figure(eval_rows(), reference="base")


def training_loss() -> go.Figure:
    """SiLP's two stages of training loss."""
    hist = [{"step": s, "loss": 3 / (1 + s / 10), "stage": "n2d" if s < 20 else "d2n"} for s in range(40)]
    return CF.training_loss_figure(hist)


def cc_layer_selection() -> go.Figure:
    """CC-Tuning Fig. 8: layers selected by the Decision Maker."""
    rows = [{"source": src, "layer": layer, "count": c, "fraction": c / 100}
            for src in ("English input", "Transform Matrix") for layer, c in enumerate(np.linspace(1, 12, 18))]
    return CC.layer_selection_figure(rows)


def cc_transform_fit() -> go.Figure:
    """CC-Tuning Fig. 5: fit error against parallel pairs (log–log)."""
    n = np.array([8, 16, 32, 64, 128, 256])
    return CC.transform_fit_figure(pd.DataFrame({"n_pairs": n, "n_rows": n * 4, "fit_mse": 1 / n,
                                                 "heldout_mse": 2 / np.sqrt(n), "identity_mse": np.full(6, 1.5)}),
                                   d_model=64)


def cc_parallel_gap() -> go.Figure:
    """CC-Tuning Table 2's |Δ|: loss and accuracy per way of getting F^en."""
    return CC.parallel_gap_figure({"loss_vanilla": 2.3, "acc_vanilla": 0.41, "loss_english": 2.0,
                                   "acc_english": 0.45, "loss_transform": 2.05, "acc_transform": 0.44,
                                   "delta_loss": 0.05, "delta_acc": 0.01})


KINDS: dict[str, Callable[[], go.Figure]] = {
    "retrieval": retrieval,
    "retrieval_12": lambda: retrieval(LANGS12),
    "heatmap": heatmap,
    "heatmap_12": lambda: heatmap(LANGS12),
    "sensitivity": sensitivity,
    "overlap": overlap,
    "overlap_12": lambda: overlap(LANGS12),
    "specific_neurons": specific,
    "map": map_pca,
    "map_12": lambda: map_pca(LANGS12),
    "subspace": subspace,
    "separation": separation,
    "compare_retrieval": compare_retrieval,
    "compare_overlap": compare_overlap,
    "compare_separation": compare_separation,
    "compare_maps": compare_maps,
    "difference_heatmap": difference_heatmap,
    "retrieval_compare": comparison,
    "eval_compare": eval_compare,
    "eval_scores": eval_scores,
    "training_loss": training_loss,
    "cc_layer_selection": cc_layer_selection,
    "cc_transform_fit": cc_transform_fit,
    "cc_parallel_gap": cc_parallel_gap,
}
"""Name → builder of every exported figure kind (the 8- and 12-language variants where languages vary)."""

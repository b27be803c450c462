"""Intervention experiments as views: the deactivation matrix and the steering curve (METHODS §10).

Both read the spec's main recording (LAPE's counts, the language means) and evaluate
intervened states through `ctx.experiments` (`workbench.interventions.experiments`, handed
over by `recipes.build`, so this module stays light for `workbench analyze --help`). The
spec's model is the base: its own interventions stay on in every row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from workbench.config import spec_field
from workbench.corpus import load_corpus
from workbench.errors import ExportError, ParamError
from workbench.recipes.analysis import Analysis, Report, main_recording
from workbench.recipes.context import Ctx
from workbench.recipes.params import Params, choice
from workbench.viz.intervention_figures import deactivation_figure, steering_figure

__all__ = ["ANALYSES", "DeactivationParams", "SteeringParams"]


@dataclass(frozen=True)
class DeactivationParams(Params):
    """ΔPPL[neurons of language i off, text of language j] with intervals, a random control, the language shift."""

    eval_limit: int = spec_field("held-out sentences per language", 50)
    heldout: str = spec_field("where they come from: after-limit (the corpus's units after --limit) or tatoeba "
                              "(the first of tatoeba:<lang>; English from tatoeba:sw)", "after-limit",
                              choices=("after-limit", "tatoeba"))
    entropy_quantile: float = spec_field("LAPE: keep neurons in the lowest entropy quantile", 0.01)
    prob_quantile: float = spec_field("LAPE: whose top activation probability is above this quantile", 0.95)
    mode: str = spec_field("zero (Tang et al.), mean (the language's mean activation) or scale", "zero",
                           choices=("zero", "mean", "scale"))
    control_seed: int | None = spec_field("seed of the random-neuron control row (None: no control)", 0)
    n_gen: int = spec_field("continuations per language for the language shift (0: none)", 5)
    max_new_tokens: int = spec_field("tokens per continuation", 24)
    max_length: int = spec_field("truncate held-out sentences to this many tokens", 128)
    n_boot: int = spec_field("bootstrap resamples of every interval", 1000)

    def __post_init__(self) -> None:
        super().__post_init__()
        choice("mode", self.mode, ("zero", "mean", "scale"))
        choice("heldout", self.heldout, ("after-limit", "tatoeba"))
        if self.eval_limit < 2:
            raise ParamError(f"eval_limit must be at least 2 sentences, got {self.eval_limit}")


@dataclass(frozen=True)
class SteeringParams(Params):
    """Fidelity and chrF++ of held-out translation prompts against the strength α of a language vector."""

    src: str = spec_field("language steered away from (v_src)", "en")
    tgt: str = spec_field("language steered towards (v_tgt)", "sw")
    direction: str = spec_field("translation direction scored, SRC:TGT", "en:sw")
    alphas: tuple[float, ...] = spec_field("strengths α (β = α)", (0.0, 1.0, 2.0, 4.0, 8.0))
    layers: tuple[int, ...] | None = spec_field("blocks steered (None: every recorded block)", None)
    positions: str = spec_field("all, last, or from:K", "all")
    norm: bool = spec_field("restore the norm of h after the update", False)
    data: dict[str, Any] | None = spec_field("the DataSpec whose held-out part is scored (default: the corpus)", None)
    eval_limit: int | None = spec_field("score the first N held-out units only", 20)
    max_new_tokens: int = spec_field("tokens per translation", 64)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(str(self.direction).split(":")) != 2:
            raise ParamError(f"direction must be SRC:TGT, got {self.direction!r}")
        if not self.alphas:
            raise ParamError("alphas is empty: give at least one strength")


def _experiments(c: Ctx) -> Any:
    if c.experiments is None:
        raise ExportError("this build has no intervention runner (it needs `recipes.build`)")
    return c.experiments


def _deactivation(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    need = main_recording(c.spec)[0]
    c.record()  # the LAPE counts (recorded once, store first), kept for provenance
    texts = _heldout(c.spec, p, need.corpus.langs)
    matrix, shift = _experiments(c).deactivation_matrix(
        need.model, need.corpus, need.record, texts, entropy_quantile=p["entropy_quantile"],
        prob_quantile=p["prob_quantile"], mode=p["mode"], control_seed=p["control_seed"], n_gen=p["n_gen"],
        max_new_tokens=p["max_new_tokens"], max_length=p["max_length"], n_boot=p["n_boot"], status=c.status)
    c.extra["shift"] = shift
    return deactivation_figure(matrix, shift, title=c.spec["title"]), matrix


def _heldout(spec: dict[str, Any], p: dict[str, Any], langs: tuple[str, ...]) -> dict[str, list[str]]:
    """Language -> its held-out sentences (never the units LAPE's neurons were chosen on)."""
    n = p["eval_limit"]
    if p["heldout"] == "tatoeba":
        return {j: load_corpus("tatoeba:sw" if j == "en" else f"tatoeba:{j}").texts(j)[:n] for j in langs}
    start = spec["limit"]
    if start is None:
        raise ParamError("deactivation needs --limit N: LAPE's neurons come from the first N units, the held-out "
                         "sentences are the next eval_limit (or --heldout tatoeba)")
    corpus = load_corpus(spec["corpus"])
    texts = {j: corpus.texts(j)[start:start + n] for j in langs}
    short = [j for j, t in texts.items() if len(t) < 2]
    if short:
        raise ParamError(f"the corpus has fewer than 2 units after the first {start} in {short}: lower --limit")
    return texts


def _steering(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    need = main_recording(c.spec)[0]
    c.record()
    a, b = str(p["direction"]).split(":")
    data = dict(p["data"]) if p["data"] else {"source": c.spec["corpus"]}  # a DataSpec dict
    curve, gens = _experiments(c).steering_curve(
        need.model, need.corpus, need.record, data, src=p["src"], tgt=p["tgt"], direction=(a, b),
        alphas=tuple(p["alphas"]), layers=tuple(p["layers"]) if p["layers"] else None, positions=p["positions"],
        norm=p["norm"], limit=p["eval_limit"], max_new_tokens=p["max_new_tokens"], status=c.status)
    c.extra["generations"] = gens
    return steering_figure(curve, title=c.spec["title"]), curve


def _deactivation_report(built: Any, rebuild: Callable[..., Any]) -> Report:
    t = built.table
    own = t[(t["row"] == t["lang"])]
    other = t[(t["row"] != t["lang"]) & (t["row"] != "random")]
    ctrl = t[t["row"] == "random"]
    lines = ["deactivation matrix (ΔPPL, 95% bootstrap intervals over sentences):",
             f"  diagonal mean ΔPPL {own['delta'].mean():+.3f}, off-diagonal {other['delta'].mean():+.3f}"
             + (f", random control {ctrl['delta'].mean():+.3f}" if len(ctrl) else "")]
    lines += [f"  {r['row']:>7} → {r['lang']:<4} {r['delta']:+9.3f}  [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
              for r in t.to_dict("records")]
    return Report(lines, {"": t, "shift": built.extra.get("shift", pd.DataFrame())})


def _steering_report(built: Any, rebuild: Callable[..., Any]) -> Report:
    t = built.table
    lines = ["steering curve (95% intervals):"]
    lines += [f"  α={r['alpha']:<5g} {r['metric']:>8} {r['value']:.3f}  [{r['ci_low']:.3f}, {r['ci_high']:.3f}]  "
              f"n={r['n']}" for r in t.to_dict("records")]
    return Report(lines, {"": t, "generations": built.extra.get("generations", pd.DataFrame())})


ANALYSES = (
    Analysis("deactivation", "perplexity change with a language's (LAPE) neurons off, a random control, the "
             "generation language shift", DeactivationParams, _deactivation, report=_deactivation_report,
             extras=("shift",)),
    Analysis("steering", "output-language fidelity and chrF++ against the strength of a language vector",
             SteeringParams, _steering, report=_steering_report, extras=("generations",)),
)

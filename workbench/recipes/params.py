"""Each analysis's parameters as one frozen dataclass: the single declaration of its knobs.

The fields (type, default, one-line help) generate the `workbench analyze` flags, fill a
figure spec's defaults, and give the pages their widgets' defaults and help, so a
parameter is declared once whichever door the user came in by.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from workbench.analysis import retrieval
from workbench.config import POOLINGS, Spec, spec_field
from workbench.errors import ParamError

RETRIEVAL_METHODS = ("margin", *(m for m in retrieval.METHODS if m != "margin"))  # margin (xsim) first
EMBED_METHODS = ("pca", "tsne", "umap")

Layer = Any  # a block index, "emb", or "best" (resolved to `tables.best_layer`)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ParamError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


@dataclass(frozen=True)
class _Params(Spec):
    """Common checks of analysis parameters."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "pooling":
                _choice("pooling", v, POOLINGS)
            if f.name in ("k", "k1", "k2", "split") and v is not None and (not isinstance(v, int) or v < 0):
                raise ParamError(f"{f.name} must be a non-negative integer; got {v!r}")


# Field groups shared by several analyses (declared once; dataclass inheritance orders them first).


@dataclass(frozen=True)
class _Pooled(_Params):
    pooling: str = spec_field("sentence pooling: mean, last or weighted", "mean")


@dataclass(frozen=True)
class _Matching(_Pooled):
    method: str = spec_field("margin (LASER xsim: the k cosine-nearest candidates), margin-all (every target), "
                        "cosine, or mexa (strict, both directions)", "margin")
    k: int = spec_field("neighbourhood size of the margin method", 4)

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice("method", self.method, RETRIEVAL_METHODS)


@dataclass(frozen=True)
class _PivotRetrieval(_Matching):
    pivot: str = spec_field("pivot language of the 'with pivot' series", "en")
    center: bool = spec_field("variant: subtract each language's mean vector first", False)


@dataclass(frozen=True)
class _AtLayer(_Matching):
    layer: Layer = spec_field("block index, 'emb', or 'best' (highest all-pairs accuracy)", "best")


@dataclass(frozen=True)
class RetrievalParams(_PivotRetrieval):
    """Per-layer translation-retrieval accuracy (Mid-align §2, SiLP §5.3)."""

    per_language: bool = spec_field("draw one line per language against the pivot", True)


@dataclass(frozen=True)
class HeatmapParams(_AtLayer):
    """Language × language retrieval accuracy at one layer."""


@dataclass(frozen=True)
class _Direction(_Params):
    src: str = spec_field("source language (the non-dominant one, N)", "en")
    tgt: str = spec_field("target language (the dominant one, D)", "sw")
    variant: str = spec_field("paper (|Σ Δ|, as printed) or abs (Σ |Δ|)", "paper")

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice("variant", self.variant, ("paper", "abs"))
        if self.src == self.tgt:
            raise ParamError(f"sensitivity needs two different languages; got src = tgt = {self.src!r}")


@dataclass(frozen=True)
class _PivotOverlap(_Params):
    pivot: str = spec_field("pivot language", "en")
    top_frac: float = spec_field("activated set: the top fraction of neurons by activation probability", 0.05)
    measure: str = spec_field("jaccard or pivot_frac (|∩| / |pivot set|)", "jaccard")

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice("measure", self.measure, ("jaccard", "pivot_frac"))
        if not 0 < self.top_frac <= 1:
            raise ParamError(f"top_frac must be in (0, 1]; got {self.top_frac!r}")


@dataclass(frozen=True)
class SensitivityParams(_Direction):
    """SiLP projection sensitivity and N2D/D2N layer allocation (SiLP §3.1–3.2)."""

    split: int | None = spec_field("split layer k; None = round(0.625·L)", None)
    k1: int | None = spec_field("N2D layers: the top-k1 of layers 1…k; None = min(4, candidates) (the paper's 4)", None)
    k2: int | None = spec_field("D2N layers: the top-k2 of layers k+1…L-1; None = min(4, candidates)", None)


@dataclass(frozen=True)
class OverlapParams(_PivotOverlap):
    """Activated-neuron overlap with the pivot per layer (SiLP §5.4)."""


@dataclass(frozen=True)
class SpecificParams(_Params):
    """Language-specific (LAPE) neurons per layer and language."""

    entropy_quantile: float = spec_field("keep neurons in the lowest entropy quantile", 0.01)
    prob_quantile: float = spec_field("whose top activation probability is above this quantile", 0.95)


@dataclass(frozen=True)
class MapParams(_Pooled):
    """PCA / t-SNE / UMAP of one layer (SiLP Fig. 1, LENS Fig. 6)."""

    layer: Layer = spec_field("block index, 'emb', or 'best'", "best")
    method: str = spec_field("pca, tsne or umap", "pca")
    seed: int = spec_field("random state (t-SNE, UMAP)", 0)
    links: bool = spec_field("draw lines between translations", False)

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice("method", self.method, EMBED_METHODS)


@dataclass(frozen=True)
class SubspaceParams(_Pooled):
    """LENS language-agnostic and language-specific subspaces at one layer (LENS §3.2)."""

    layer: Layer = spec_field("block index, 'emb', or 'best'", "best")
    rank: int | None = spec_field("rank r of the specific subspace; None = languages − 1", None)
    central: str = spec_field("central language of the direction norms", "en")


@dataclass(frozen=True)
class SeparationParams(_Pooled):
    """Per-layer between/within-language variance in each projection."""

    rank: int | None = spec_field("rank r of the specific subspace; None = languages − 1", None)
    central: str = spec_field("central language", "en")
    holdout: bool = spec_field("fit on half the sentences, measure on the other half", True)


@dataclass(frozen=True)
class RetrievalCompareParams(_PivotRetrieval):
    """Retrieval before and after a fine-tune artifact."""

    artifact: str | None = spec_field("the fine-tune artifact directory (the 'after' state)", None)


@dataclass(frozen=True)
class _CompareParams(_Params):  # mixed in last: its fields come first
    """Two model states: A is the spec's model, B is `state_b`; tables are long (a, b, diff = b − a)."""

    state_b: dict[str, Any] | None = spec_field("state B as a ModelSpec dict (source, artifact, ...)", None)
    labels: tuple[str, ...] = spec_field("names of the two states in the figure", ("A", "B"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.state_b, dict) or "source" not in self.state_b:
            raise ParamError("a comparison needs state_b, the other model state ({'source': ..., 'artifact': ...})")
        if len(self.labels) != 2:
            raise ParamError(f"labels must name two states; got {self.labels!r}")


@dataclass(frozen=True)
class CompareRetrievalParams(_PivotRetrieval, _CompareParams):
    """Translation retrieval by layer for two states."""

    series: tuple[str, ...] = spec_field("lines to draw: all_pairs, pivot, or languages", ("all_pairs",))


@dataclass(frozen=True)
class CompareSensitivityParams(_Direction, _CompareParams):
    """SiLP projection sensitivity of one direction for two states."""


@dataclass(frozen=True)
class CompareOverlapParams(_PivotOverlap, _CompareParams):
    """Activated-neuron overlap with the pivot for two states."""

    shown: tuple[str, ...] = spec_field("languages to draw (empty: all)", ())


@dataclass(frozen=True)
class CompareSeparationParams(_Pooled, _CompareParams):
    """Subspace separation by layer for two states."""

    rank: int | None = spec_field("rank r; None = languages − 1", None)
    central: str = spec_field("central language", "en")
    holdout: bool = spec_field("fit on half the sentences, measure on the other half", True)
    measures: tuple[str, ...] = spec_field("measures to draw (empty: all)", ("agnostic_ratio", "specific_ratio"))


@dataclass(frozen=True)
class CompareMapParams(_Pooled, _CompareParams):
    """2-D maps of one layer for two states, side by side."""

    layer: Layer = spec_field("block index, 'emb', or 'best'", "best")
    method: str = spec_field("pca, tsne or umap", "pca")
    seed: int = spec_field("random state", 0)


@dataclass(frozen=True)
class CompareMatrixParams(_AtLayer, _CompareParams):
    """Language × language retrieval at one layer: B − A."""


@dataclass(frozen=True)
class EvalScoresParams(_Params):
    """Outcomes of N model states (the spec's model is the first): scores with intervals."""

    others: tuple[dict[str, Any], ...] = spec_field("the other states as ModelSpec dicts", ())
    labels: tuple[str, ...] = spec_field("a name per state (the spec's model first)", ())
    suites: tuple[str, ...] = spec_field("translation, loss, lm-eval:TASK", ("translation", "loss"))
    data: dict[str, Any] | None = spec_field("the DataSpec whose held-out part is scored (a fine-tune's own)", None)
    directions: tuple[str, ...] = spec_field("src:tgt directions scored", ("en:sw", "sw:en"))
    limit: int | None = spec_field("score the first N held-out units only", None)
    reference: str | None = spec_field("the state differences are taken against (default: the first)", None)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.labels and len(self.labels) != len(self.others) + 1:
            raise ParamError(f"labels must name every state ({len(self.others) + 1}), got {len(self.labels)}")


PARAMS: dict[str, type[_Params]] = {
    "retrieval": RetrievalParams,
    "retrieval_heatmap": HeatmapParams,
    "sensitivity": SensitivityParams,
    "overlap": OverlapParams,
    "specific_neurons": SpecificParams,
    "map": MapParams,
    "subspace": SubspaceParams,
    "separation": SeparationParams,
    "retrieval_compare": RetrievalCompareParams,
    "compare_retrieval": CompareRetrievalParams,
    "compare_sensitivity": CompareSensitivityParams,
    "compare_overlap": CompareOverlapParams,
    "compare_separation": CompareSeparationParams,
    "compare_map": CompareMapParams,
    "compare_retrieval_matrix": CompareMatrixParams,
    "eval_scores": EvalScoresParams,
}
"""Analysis name -> its parameter dataclass (the registry's parameter half)."""

ANALYSES: dict[str, dict[str, Any]] = {name: {f.name: f.default for f in dataclasses.fields(cls)}
                                       for name, cls in PARAMS.items()}
"""Analysis name -> default parameters (derived from `PARAMS`)."""


def params_for(analysis: str, given: dict[str, Any]) -> _Params:
    """The validated parameters of `analysis` (defaults filled in).

    Raises:
        ParamError: unknown analysis, unknown parameter, or a bad value.
    """
    if analysis not in PARAMS:
        raise ParamError(f"unknown analysis {analysis!r}; choose one of {', '.join(PARAMS)}")
    cls = PARAMS[analysis]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ParamError(f"unknown parameter(s) {unknown} for analysis {analysis!r}; known: {sorted(known)}")
    try:
        return cls(**given)
    except TypeError as e:
        raise ParamError(f"bad parameters for {analysis!r}: {e}") from None

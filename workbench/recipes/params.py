"""Field groups that analyses' parameter dataclasses share, and their common checks.

Each analysis declares its own frozen `Params` dataclass in its module (built from these
groups); the fields (type, default, one-line help, choices) generate the `workbench
analyze` flags, fill a figure spec's defaults and give the pages their widgets' defaults
and help, so a parameter is declared once whichever door the user came in by.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from workbench.analysis import retrieval
from workbench.config import POOLINGS, Spec, check_field_values, spec_field
from workbench.errors import ParamError

__all__ = ["AtLayer", "CompareParams", "Direction", "EMBED_METHODS", "Layer", "Matching", "Params", "PivotOverlap",
           "PivotRetrieval", "Pooled", "RETRIEVAL_METHODS", "choice", "params_for"]

RETRIEVAL_METHODS = ("margin", *(m for m in retrieval.METHODS if m != "margin"))  # margin (xsim) first
EMBED_METHODS = ("pca", "tsne", "umap")

Layer = Any  # a block index, "emb", or "best" (resolved to `tables.best_layer`)


def choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raise `ParamError` unless `value` is one of `choices`."""
    if value not in choices:
        raise ParamError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


@dataclass(frozen=True)
class Params(Spec):
    """Common checks of analysis parameters."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "pooling":
                choice("pooling", v, POOLINGS)
            if f.name in ("k", "k1", "k2", "split") and v is not None and (not isinstance(v, int) or v < 0):
                raise ParamError(f"{f.name} must be a non-negative integer; got {v!r}")


# Field groups shared by several analyses (declared once; dataclass inheritance orders them first).


@dataclass(frozen=True)
class Pooled(Params):
    """Analyses of pooled sentence vectors."""

    pooling: str = spec_field("sentence pooling: mean, last or weighted", "mean")


@dataclass(frozen=True)
class Matching(Pooled):
    """Translation matching (retrieval) settings."""

    method: str = spec_field("margin (LASER xsim: the k cosine-nearest candidates), margin-all (every target), "
                        "cosine, or mexa (strict, both directions)", "margin")
    k: int = spec_field("neighbourhood size of the margin method", 4)

    def __post_init__(self) -> None:
        super().__post_init__()
        choice("method", self.method, RETRIEVAL_METHODS)


@dataclass(frozen=True)
class PivotRetrieval(Matching):
    """Retrieval with a pivot language."""

    pivot: str = spec_field("pivot language of the 'with pivot' series", "en")
    center: bool = spec_field("variant: subtract each language's mean vector first", False)


@dataclass(frozen=True)
class AtLayer(Matching):
    """Retrieval at one layer."""

    layer: Layer = spec_field("block index, 'emb', or 'best' (highest all-pairs accuracy)", "best")


@dataclass(frozen=True)
class Direction(Params):
    """One translation direction (SiLP's pair pass)."""

    src: str = spec_field("source language (the non-dominant one, N)", "en")
    tgt: str = spec_field("target language (the dominant one, D)", "sw")
    variant: str = spec_field("paper (|Σ Δ|, as printed) or abs (Σ |Δ|)", "paper")

    def __post_init__(self) -> None:
        super().__post_init__()
        choice("variant", self.variant, ("paper", "abs"))
        if self.src == self.tgt:
            raise ParamError(f"sensitivity needs two different languages; got src = tgt = {self.src!r}")


@dataclass(frozen=True)
class PivotOverlap(Params):
    """Neuron overlap with a pivot language."""

    pivot: str = spec_field("pivot language", "en")
    top_frac: float = spec_field("activated set: the top fraction of neurons by activation probability", 0.05)
    measure: str = spec_field("jaccard or pivot_frac (|∩| / |pivot set|)", "jaccard")

    def __post_init__(self) -> None:
        super().__post_init__()
        choice("measure", self.measure, ("jaccard", "pivot_frac"))
        if not 0 < self.top_frac <= 1:
            raise ParamError(f"top_frac must be in (0, 1]; got {self.top_frac!r}")


@dataclass(frozen=True)
class CompareParams(Params):  # mixed in last: its fields come first
    """Two model states: A is the spec's model, B is `state_b`; tables are long (a, b, diff = b − a)."""

    state_b: dict[str, Any] | None = spec_field("state B as a ModelSpec dict (source, artifact, ...)", None)
    labels: tuple[str, ...] = spec_field("names of the two states in the figure", ("A", "B"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.state_b, dict) or not self.state_b:
            raise ParamError("a comparison needs state_b, the other model state ({'source': ..., 'artifact': ...}; "
                             "without 'source': the spec's model with the other fields, e.g. an artifact)")
        if len(self.labels) != 2:
            raise ParamError(f"labels must name two states; got {self.labels!r}")


def params_for(cls: type[Params], given: dict[str, Any], name: str = "") -> Params:
    """`cls` from `given` (defaults filled in).

    Raises:
        ParamError: unknown parameter, or a bad value.
    """
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ParamError(f"unknown parameter(s) {unknown} for analysis {name!r}; known: {sorted(known)}")
    check_field_values(cls, given)
    try:
        return cls(**given)
    except TypeError as e:
        raise ParamError(f"bad parameters for {name!r}: {e}") from None

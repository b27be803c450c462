"""The registry of analyses: one `register_analysis` per analysis (its two-state form comes with it).

To add an analysis: a module with its frozen `Params`, its `build(ctx)` (and, if it reads
something other than the main recording, its `needs`), and one entry in `BUILTIN` below
(or `register_analysis(...)` from your own code). `workbench analyze <name>` (a flag per
parameter), the pages' defaults, `export`, `report`, figure sets and manifests read the
registry; nothing else needs editing. An analysis in another package registers through the
entry-point group `workbench.analyses` (its value: an `Analysis`, or a list of them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from workbench import plugins
from workbench.errors import ParamError
from workbench.recipes import (
    interventions,
    latent,
    maps,
    neurons,
    outcomes,
    patching,
    retrieval,
    sensitivity,
    subspace,
    tokens,
)
from workbench.recipes.analysis import Analysis
from workbench.recipes.params import Params

__all__ = ["ALIASES", "ANALYSES", "BUILTIN", "PARAMS", "REGISTRY", "get_analysis", "load_plugins", "register_analysis",
           "unregister_analysis"]

BUILTIN: tuple[Analysis, ...] = (*retrieval.ANALYSES, *sensitivity.ANALYSES, *neurons.ANALYSES, *maps.ANALYSES,
                                 *subspace.ANALYSES, *outcomes.ANALYSES, *latent.ANALYSES, *tokens.ANALYSES,
                                 *interventions.ANALYSES, *patching.ANALYSES)

ALIASES = {"compare_retrieval_matrix": "compare_retrieval_heatmap"}
"""Old analysis names still read from specs and manifests (`retrieval_compare`: `recipes.spec`)."""

REGISTRY: dict[str, Analysis] = {}
"""name -> Analysis, in registration order (compare forms right after their analysis)."""


def register_analysis(analysis: Analysis) -> Analysis:
    """Add an analysis (and its `compare_<name>` form, if it has one).

    Raises:
        ParamError: a name is registered already.
    """
    new = [analysis, *([f] if (f := analysis.compare_form()) is not None else [])]
    taken = [a.name for a in new if a.name in REGISTRY or a.name in ALIASES]
    if taken:
        raise ParamError(f"an analysis named {taken[0]!r} is registered already")
    for a in new:
        REGISTRY[a.name] = a
    return analysis


def unregister_analysis(name: str) -> None:
    """Remove an analysis and its compare form (tests that register a toy one)."""
    REGISTRY.pop(name, None)
    REGISTRY.pop(f"compare_{name}", None)


def get_analysis(name: str) -> Analysis:
    """The registered analysis `name` (old names through `ALIASES`).

    Raises:
        ParamError: unknown analysis (the message lists the registered ones).
    """
    name = ALIASES.get(name, name)
    if name not in REGISTRY:
        raise ParamError(f"unknown analysis {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


class _View(Mapping[str, Any]):
    """A read-only, always current view of the registry (`PARAMS`, `ANALYSES`)."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def __getitem__(self, name: str) -> Any:
        if name not in REGISTRY:
            raise KeyError(name)
        return self._value(REGISTRY[name])

    def __iter__(self) -> Iterator[str]:
        return iter(list(REGISTRY))

    def __len__(self) -> int:
        return len(REGISTRY)


PARAMS: Mapping[str, type[Params]] = _View(lambda a: a.params)
"""Analysis name -> its parameter dataclass."""

ANALYSES: Mapping[str, dict[str, Any]] = _View(lambda a: a.defaults())
"""Analysis name -> default parameters."""

def load_plugins(group: str = "workbench.analyses") -> list[str]:
    """Register the records installed packages declare in the entry-point group (`workbench.plugins`)."""
    return plugins.load_plugins(group, register_analysis)


for _a in BUILTIN:
    register_analysis(_a)
load_plugins()

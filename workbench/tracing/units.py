"""The layer axis and the units of a recording (pure functions of the corpus and the spec)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.config import RecordSpec
from workbench.errors import RecordError

__all__ = ["FINAL", "layer_labels", "units_for"]

#: The layer label of the post-final-norm output of the last block (`RecordSpec.final_norm`).
FINAL = "final"


def layer_labels(n_layers: int, spec: RecordSpec) -> list[Any]:
    """Labels of the layer axis: 'emb' if recorded, the recorded blocks, 'final' if recorded."""
    layers = list(range(n_layers)) if spec.layers is None else sorted(set(spec.layers))
    return ((["emb"] if spec.embeddings else []) + layers
            + ([FINAL] if getattr(spec, "final_norm", False) else []))


def units_for(corpus: Any, langs: Sequence[str], spec: RecordSpec,
              pairs: Sequence[tuple[str, str]] | None) -> list[str]:
    """The units to record: languages, or `src>tgt` directions for a pair template."""
    known = corpus.check_langs(list(langs) + [x for p in pairs or [] for x in p])
    if spec.is_pair_template:
        if not pairs:
            raise RecordError("a pair template needs language pairs (e.g. --pairs en:sw)")
        return [f"{corpus.check_langs([s])[0]}>{corpus.check_langs([t])[0]}" for s, t in pairs]
    return known[: len(langs)] if langs else known

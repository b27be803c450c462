"""A `Recording`: everything recorded for one model state, corpus and spec, its arrays read from the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.config import RecordSpec
from workbench.errors import RecordError
from workbench.store import Entry

__all__ = ["Recording"]


@dataclass
class Recording:
    """Everything recorded for one model state, corpus and spec; arrays read from the store."""

    model_name: str
    fingerprint: str
    corpus_name: str
    spec: RecordSpec
    entries: dict[str, Entry]
    layer_labels: list[Any]

    def vectors(self, pooling: str = "mean") -> dict[str, np.ndarray]:
        """Unit -> `(n_layers, n, d)` pooled vectors (memory-mapped)."""
        if pooling not in self.spec.poolings:
            raise RecordError(f"pooling {pooling!r} was not recorded; recorded: {list(self.spec.poolings)}")
        return {u: e[f"pooled_{pooling}"] for u, e in self.entries.items()}

    def activation_probs(self) -> dict[str, np.ndarray]:
        """Unit -> `(L_ffn, M)` probability that a neuron is active (A > 0) on a counted token."""
        return {u: np.asarray(e["ffn_pos_counts"], np.float64) / float(e["ffn_tokens"][0])
                for u, e in self.entries.items()}

    def layer_index(self, layer: Any) -> int:
        """Position of a layer label (block index, 'emb' or 'final') on the layer axis."""
        try:
            return self.layer_labels.index(layer)
        except ValueError:
            raise RecordError(f"layer {layer!r} not recorded; recorded: {self.layer_labels}") from None

"""The Setup page's choices as plain specs (`Settings`), and what the UI offers (this module never imports Streamlit).

`Settings.to_dict()` is what pages keep in session state and what their data caches are
keyed by; `figure_spec` turns a choice plus a view's parameters into the registry's
figure spec.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.models import TINY_DEFAULT
from workbench.models.sources import is_hub_id
from workbench.presets import apply_preset, get_preset
from workbench.recipes.registry import ANALYSES
from workbench.recipes.tables import silp_record_spec

__all__ = ["TINY_ENV", "TINY_MODEL", "Settings", "tiny_model_enabled"]

TINY_MODEL = TINY_DEFAULT
"""Model source of the tiny random-init test model the UI offers in test mode."""
TINY_ENV = "WORKBENCH_UI_TINY_MODEL"


@dataclass(frozen=True)
class Settings:
    """What the Setup page chose; every view reads its recording through these specs."""

    model: ModelSpec = field(default_factory=ModelSpec)
    corpus: CorpusSpec = field(default_factory=CorpusSpec)
    max_length: int = 256
    pooling: str = "mean"  # which recorded pooling the views use (all three are recorded)
    preset: str | None = None  # a paper's pipeline (workbench.presets): its recording fields
    remote: bool = False  # record on NDIF (hub ids only): recordings.ensure_recording(remote=True)

    def __post_init__(self) -> None:
        if self.preset is not None:
            pools = get_preset(self.preset).record.get("poolings")
            if pools and self.pooling not in pools:  # the views must use a pooling the preset records
                object.__setattr__(self, "pooling", pools[0])
        if self.remote and (self.model.artifact or not is_hub_id(self.model.source)):
            object.__setattr__(self, "remote", False)  # NDIF runs hub models only (e.g. a stale URL)

    def record_spec(self) -> RecordSpec:
        """The main recording: every pooling, embeddings and FFN statistics (or a paper preset's fields)."""
        spec = RecordSpec(max_length=self.max_length, batch_tokens=max(4096, self.max_length))
        return apply_preset(self.preset, spec) if self.preset else spec

    def silp_spec(self) -> RecordSpec:
        """SiLP's pair-template pass (FFN statistics of translation prompts): `tables.silp_record_spec`."""
        return silp_record_spec(self.record_spec())

    def pair_corpus(self, src: str, tgt: str) -> CorpusSpec:
        """The corpus spec of a SiLP pass for one translation direction."""
        return CorpusSpec(source=self.corpus.source, langs=(src, tgt), limit=self.corpus.limit)

    def figure_spec(self, analysis: str, params: Mapping[str, Any], *, langs: Sequence[str] | None = None,
                    title: str | None = None, model: ModelSpec | None = None) -> dict[str, Any]:
        """The registry's figure spec of a view: this choice plus the view's parameters.

        `pooling` is filled in from the choice for analyses that take one; `langs` defaults
        to the chosen languages, `model` to the chosen model. `recipes.build_figure` rebuilds
        the view from it.
        """
        default = RecordSpec().to_dict()
        record = {k: v for k, v in self.record_spec().to_dict().items() if v != default[k]}
        p = dict(params)
        if "pooling" in ANALYSES.get(analysis, {}):
            p.setdefault("pooling", self.pooling)
        return {"analysis": analysis, "model": (model or self.model).to_dict(), "corpus": self.corpus.source,
                "langs": list(langs if langs is not None else self.corpus.langs), "limit": self.corpus.limit,
                "record": record, "params": p, "title": title, "preset": self.preset,
                **({"remote": True} if self.remote else {})}

    @property
    def pivot(self) -> str:
        """Default pivot language: English if chosen, else the first language."""
        return "en" if "en" in self.corpus.langs else self.corpus.langs[0]

    def to_dict(self) -> dict[str, Any]:
        """Plain, hashable-by-value dict (for session state and cache keys)."""
        return {"model": self.model.to_dict(), "corpus": self.corpus.to_dict(),
                "max_length": self.max_length, "pooling": self.pooling, "preset": self.preset,
                **({"remote": True} if self.remote else {})}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Settings:
        """Inverse of `to_dict`."""
        return cls(ModelSpec.from_dict(d["model"]), CorpusSpec.from_dict(d["corpus"]),
                   int(d["max_length"]), str(d["pooling"]), d.get("preset") or None, bool(d.get("remote", False)))


def tiny_model_enabled() -> bool:
    """True when the UI offers the tiny test model `tiny:llama` (``WORKBENCH_UI_TINY_MODEL=1``)."""
    return os.environ.get(TINY_ENV, "").strip().lower() in ("1", "true", "yes")

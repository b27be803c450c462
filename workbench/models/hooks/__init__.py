"""Inference-time changes of a model state: one module per kind, one registration each.

A state = base + optional artifact (+ later, interventions); what it does differently at
inference is its `Inference` (`base.py`): `Plain`, or a registered kind. An artifact
names its kind in its manifest (`"inference": "cctuning"`, written from the fine-tune
method's record), and `inference_for_artifact` builds it when `models.load` applies the
artifact, so evaluation, lm-eval and generation never name a method.

To add a kind: a module with an `Inference` subclass and a `from_artifact` constructor,
and one line in `KINDS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.errors import ArtifactError
from workbench.models.hooks import cctuning
from workbench.models.hooks.base import Inference, Plain

__all__ = ["KINDS", "Inference", "Plain", "inference_for_artifact"]

KINDS: dict[str, Any] = {
    "cctuning": cctuning.CCTuningInference,
}
"""kind -> its `Inference` class (with `from_artifact(path, manifest, state)`)."""

_LEGACY = {"cctuning": "cctuning"}
"""Manifests written before the `inference` field: method -> kind."""


def inference_for_artifact(path: Path, manifest: dict[str, Any], state: Any) -> Inference:
    """The inference an artifact's manifest names (`Plain` if none).

    Raises:
        ArtifactError: a kind this version does not know.
    """
    kind = manifest.get("inference", _LEGACY.get(str(manifest.get("method"))))
    if not kind:
        return Plain()
    if kind not in KINDS:
        raise ArtifactError(f"artifact {path.name} needs the inference kind {kind!r}, which this version does not "
                            f"know (known: {', '.join(KINDS)})")
    return KINDS[kind].from_artifact(path, manifest, state)

"""Inference-time changes of a model state: one module per kind, one registration each.

A state = base + optional artifact (+ interventions: forward hooks on a parameter-sharing
copy, `models.interventions`, which every door runs unchanged); what an artifact makes it do
differently at inference is its `Inference` (`base.py`): `Plain`, or a registered kind. An artifact
names its kind in its manifest (`"inference": "cctuning"`, written from the fine-tune
method's record), and `inference_for_artifact` builds it when `models.load` applies the
artifact, so evaluation, lm-eval and generation never name a method.

To add a kind: a module with an `Inference` subclass and a `from_artifact` constructor,
and one line in `KINDS`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workbench.errors import ArtifactError
from workbench.models.artifacts import read_manifest
from workbench.models.hooks import cctuning
from workbench.models.hooks.base import Inference, Plain

__all__ = ["KINDS", "Inference", "Plain", "describe_inference", "inference_for_artifact", "inference_kind"]

KINDS: dict[str, Any] = {
    "cctuning": cctuning.CCTuningInference,
}
"""kind -> its `Inference` class (with `from_artifact(path, manifest, state)`)."""

_LEGACY = {"cctuning": "cctuning"}
"""Manifests written before the `inference` field: method -> kind."""


def _kind(path: Path, manifest: dict[str, Any]) -> type[Inference]:
    kind = manifest.get("inference", _LEGACY.get(str(manifest.get("method"))))
    if not kind:
        return Plain
    if kind not in KINDS:
        raise ArtifactError(f"artifact {path.name} needs the inference kind {kind!r}, which this version does not "
                            f"know (known: {', '.join(KINDS)})")
    return KINDS[kind]  # type: ignore[no-any-return]  # the table's values are Inference classes


def inference_kind(artifact: str | Path | None) -> str:
    """The inference kind a state with this artifact runs ('plain' without one), from its manifest.

    Raises:
        ArtifactError: an unreadable manifest, or a kind this version does not know.
    """
    return "plain" if artifact is None else _kind(Path(artifact), read_manifest(artifact)).kind


def inference_for_artifact(path: Path, manifest: dict[str, Any], state: Any,
                           options: Iterable[tuple[str, Any]] = ()) -> Inference:
    """The inference an artifact's manifest names (`Plain` if none), with `options` (`ModelSpec.inference`).

    Raises:
        ArtifactError: a kind this version does not know.
        ParamError: an option the kind does not take, or a bad value.
    """
    cls = _kind(path, manifest)
    opts = dict(options)
    if cls is Plain:
        Plain.resolve(manifest, opts)
        return Plain()
    return cls.from_artifact(path, manifest, state, opts)  # type: ignore[attr-defined, no-any-return]


def describe_inference(artifact: str | Path | None, options: Iterable[tuple[str, Any]] = ()) -> dict[str, Any]:
    """What `describe()` of the state's inference will say, from the artifact's manifest alone (no weights).

    Raises:
        ArtifactError / ParamError: as `inference_for_artifact`.
    """
    opts = dict(options)
    if artifact is None:
        return {"kind": "plain", **Plain.resolve({}, opts)}
    manifest = read_manifest(artifact)
    cls = _kind(Path(artifact), manifest)
    return {"kind": cls.kind, **cls.resolve(manifest, opts)}

"""Fine-tune artifacts: only what changed, applied on top of a base model.

An artifact directory holds `manifest.json` and either `delta.safetensors` (the changed
tensors, by parameter name) or a peft adapter (`adapter_config.json` + weights).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.config import stable_hash


class ArtifactError(RuntimeError):
    """An artifact is missing, incomplete or does not fit the base model."""


def apply_artifact(model: Any, path: Path, *, base_fingerprint: str) -> str:
    """Apply the artifact in `path` to `model` in place; return the new state's fingerprint.

    Raises:
        ArtifactError: no manifest, unknown parameter names, shape mismatch, or an artifact
            made for another base model.
    """
    from safetensors.torch import load_file

    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise ArtifactError(f"{path} is not a fine-tune artifact (no manifest.json)")
    manifest = json.loads(manifest_path.read_text())
    want = manifest.get("base_fingerprint")
    if want and not base_fingerprint.startswith(str(want).split("-")[0]):
        raise ArtifactError(f"artifact {path.name} was made for base {want}, not {base_fingerprint}")
    delta = path / "delta.safetensors"
    if not delta.is_file():
        raise ArtifactError(f"{path} has no delta.safetensors")
    tensors = load_file(str(delta))
    params = dict(model.named_parameters())
    for name, t in tensors.items():
        if name not in params:
            raise ArtifactError(f"artifact tensor {name!r} is not a parameter of the base model")
        if tuple(params[name].shape) != tuple(t.shape):
            raise ArtifactError(f"artifact tensor {name!r} has shape {tuple(t.shape)}, model has {tuple(params[name].shape)}")
        params[name].data.copy_(t.to(params[name].dtype))
    return f"{base_fingerprint.split('-')[0]}+{stable_hash(manifest.get('delta_sha256', manifest), 12)}"

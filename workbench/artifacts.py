"""Fine-tune artifacts: only what changed, applied on top of a base model.

An artifact directory holds `manifest.json` and either `delta.safetensors` (the changed
tensors, by parameter name) or a peft adapter (`adapter_config.json` + weights).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from workbench.errors import ArtifactError




def _manifest(path: Path) -> dict[str, Any]:
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise ArtifactError(f"{path} is not a fine-tune artifact (no manifest.json)")
    return json.loads(manifest_path.read_text())


def artifact_fingerprint(path: Path, base_fingerprint: str) -> str:
    """Fingerprint of base + artifact (from the artifact's manifest and file hashes)."""
    from workbench.models import hash_files

    _manifest(path)
    files = [p for p in path.rglob("*") if p.is_file()]
    return f"{base_fingerprint}+{hash_files(files, path)[:12]}"


def apply_artifact(model: Any, path: Path, *, base_fingerprint: str) -> None:
    """Apply the artifact in `path` to `model` in place.

    Raises:
        ArtifactError: no manifest, unknown parameter names, shape mismatch, or an artifact
            made for another base model.
    """
    from safetensors.torch import load_file

    manifest = _manifest(path)
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
            raise ArtifactError(f"artifact tensor {name!r} has shape {tuple(t.shape)}, "
                                f"model has {tuple(params[name].shape)}")
        params[name].data.copy_(t.to(params[name].dtype))

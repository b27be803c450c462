"""Fine-tune artifacts: only what changed, applied on top of a base model.

An artifact directory holds `manifest.json` and either `delta.safetensors` (the changed
tensors, by parameter name) or a peft adapter (`adapter_config.json` + weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file

from workbench.errors import ArtifactError
from workbench.fileio import file_identity, read_json_or_none
from workbench.models.integrity import hash_files


def _manifest(path: Path) -> dict[str, Any]:
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise ArtifactError(f"{path} is not a fine-tune artifact (no manifest.json)")
    manifest = read_json_or_none(manifest_path)
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{manifest_path} is damaged (not a JSON object)")
    return manifest


_MEMO: dict[tuple[Any, ...], str] = {}


def artifact_fingerprint(path: Path, base_fingerprint: str) -> str:
    """Fingerprint of base + artifact: a hash of the files that change the tuned state's behaviour.

    Every file but `manifest.json` (tensors, adapter, CC-Tuning's matrices): the manifest's
    metrics and history describe the state without changing it, so evaluations added to
    it after training keep the state's identity. Hashing reads every byte (a merged LoRA
    delta is most of a model), so the result is memoised per process on the identity of
    each file (size, mtime_ns, inode, ctime_ns): pages ask on every rerun, and any rewrite
    of a file is hashed again.
    """
    _manifest(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != "manifest.json")
    key = (str(path.resolve()), tuple((str(f.relative_to(path)), *file_identity(f)) for f in files))
    if key not in _MEMO:
        _MEMO[key] = hash_files(files, path)[:12]
    return f"{base_fingerprint}+{_MEMO[key]}"


def apply_artifact(model: Any, path: Path, *, base_fingerprint: str) -> None:
    """Apply the artifact in `path` to `model` in place.

    Raises:
        ArtifactError: no manifest, unknown parameter names, shape mismatch, or an artifact
            made for another base model.
    """
    manifest = _manifest(path)
    want = manifest.get("base_fingerprint")
    if want and not base_fingerprint.startswith(str(want).split("-")[0]):
        raise ArtifactError(f"artifact {path.name} was made for base {want}, not {base_fingerprint}")
    delta = path / "delta.safetensors"
    if not delta.is_file():
        raise ArtifactError(f"{path} has no delta.safetensors")
    try:
        tensors = load_file(str(delta))
    except (SafetensorError, OSError, ValueError) as e:
        raise ArtifactError(f"{delta} is damaged or incomplete ({e}); run the fine-tune again") from e
    params = dict(model.named_parameters())
    for name, t in tensors.items():
        if name not in params:
            raise ArtifactError(f"artifact tensor {name!r} is not a parameter of the base model")
        if tuple(params[name].shape) != tuple(t.shape):
            raise ArtifactError(f"artifact tensor {name!r} has shape {tuple(t.shape)}, "
                                f"model has {tuple(params[name].shape)}")
        params[name].data.copy_(t.to(params[name].dtype))

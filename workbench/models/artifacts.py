"""Fine-tune artifacts: THE layout, its manifest, and applying one on top of a base model.

Layout of an artifact directory (only this module reads or writes it)::

    manifest.json            method, spec, data hash, base model and fingerprint, seed, versions,
                             metrics, wall time, the changed tensor names, `inference` (the
                             `models.hooks` kind the state runs at inference, if any)
    delta.safetensors        the NEW values of the changed parameters, by parameter name
    adapter/                 LoRA methods only: the raw peft adapter, unmerged
      adapter_config.json
      adapter_model.safetensors
    <name>.safetensors       extra tensors a method keeps (CC-Tuning's `W_DM`, `W_T`)

For LoRA methods the delta holds the merged weights, so base + delta reproduces the tuned
model bit-exactly for every method and loading needs no adapter support.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from workbench.errors import ArtifactError
from workbench.fileio import atomic_write_json, file_identity, read_json_or_none, writing
from workbench.models.integrity import hash_files

__all__ = ["ADAPTER_DIR", "ARTIFACT_FORMAT", "DELTA", "MANIFEST", "apply_artifact", "artifact_fingerprint",
           "delta_names", "is_artifact", "read_adapter", "read_delta", "read_manifest", "read_tensors",
           "update_manifest", "write_artifact_dir"]

ARTIFACT_FORMAT = 1
MANIFEST = "manifest.json"
DELTA = "delta.safetensors"
ADAPTER_DIR = "adapter"


def is_artifact(path: str | Path) -> bool:
    """True if `path` is a directory with an artifact manifest."""
    return (Path(path) / MANIFEST).is_file()


def read_manifest(path: str | Path) -> dict[str, Any]:
    """An artifact's manifest.

    Raises:
        ArtifactError: no manifest, or a damaged one (not a JSON object).
    """
    manifest_path = Path(path) / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"{path} is not a fine-tune artifact (no {MANIFEST})")
    manifest = read_json_or_none(manifest_path)
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{manifest_path} is damaged (not a JSON object)")
    return manifest


def update_manifest(path: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into an artifact's manifest (atomically).

    The manifest is not part of the state's fingerprint (`artifact_fingerprint`), so this
    keeps the state's identity (the job's after-evaluation is added this way).
    """
    manifest = {**read_manifest(path), **fields}
    atomic_write_json(Path(path) / MANIFEST, manifest)
    return manifest


def _save(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    try:
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(path),
                  metadata={"format": "pt"})
    except SafetensorError as e:  # its I/O errors as the OSError they are (a full disk: "os error 28")
        code = re.search(r"os error (\d+)", str(e))
        if code is None:
            raise
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from e


def write_artifact_dir(out_dir: str | Path, manifest: Mapping[str, Any], delta: Mapping[str, torch.Tensor], *,
                       adapter: Mapping[str, torch.Tensor] | None = None,
                       adapter_config: Mapping[str, Any] | None = None,
                       files: Mapping[str, Mapping[str, torch.Tensor]] | None = None) -> Path:
    """Write an artifact directory atomically (a temporary sibling renamed into place).

    Raises:
        FileExistsError: `out_dir` exists.
        WriteError: it cannot be written (a full or read-only disk); the temporary folder is removed.
    """
    out = Path(out_dir)
    if out.exists():
        raise FileExistsError(f"artifact directory {out} already exists")
    with writing(out):
        return _write_artifact_dir(out, manifest, delta, adapter, adapter_config, files)


def _write_artifact_dir(out: Path, manifest: Mapping[str, Any], delta: Mapping[str, torch.Tensor],
                        adapter: Mapping[str, torch.Tensor] | None, adapter_config: Mapping[str, Any] | None,
                        files: Mapping[str, Mapping[str, torch.Tensor]] | None) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        _save(delta, tmp / DELTA)
        if adapter is not None:
            (tmp / ADAPTER_DIR).mkdir()
            _save(adapter, tmp / ADAPTER_DIR / "adapter_model.safetensors")
            (tmp / ADAPTER_DIR / "adapter_config.json").write_text(
                json.dumps(dict(adapter_config or {}), indent=1, sort_keys=True, default=str))
        for name, tensors in (files or {}).items():
            _save(tensors, tmp / name)
        (tmp / MANIFEST).write_text(json.dumps(dict(manifest), indent=1, sort_keys=True, default=str))
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def read_tensors(path: str | Path, name: str) -> dict[str, torch.Tensor]:
    """The tensors of one safetensors file of the artifact (`delta.safetensors`, a method's extra file).

    Raises:
        ArtifactError: the file is missing, damaged or incomplete.
    """
    f = Path(path) / name
    if not f.is_file():
        raise ArtifactError(f"{path} has no {name}")
    try:
        return load_file(str(f))
    except (SafetensorError, OSError, ValueError) as e:
        raise ArtifactError(f"{f} is damaged or incomplete ({e}); run the fine-tune again") from e


def read_delta(path: str | Path) -> dict[str, torch.Tensor]:
    """The changed parameters (name -> new value)."""
    return read_tensors(path, DELTA)


def delta_names(path: str | Path) -> list[str]:
    """The names of the parameters the artifact changes (read from the delta's header, not its data).

    Raises:
        ArtifactError: no delta, or a damaged one.
    """
    f = Path(path) / DELTA
    if not f.is_file():
        raise ArtifactError(f"{path} has no {DELTA}")
    try:
        with safe_open(str(f), framework="pt") as h:
            return list(h.keys())
    except (SafetensorError, OSError, ValueError) as e:
        raise ArtifactError(f"{f} is damaged or incomplete ({e}); run the fine-tune again") from e


def read_adapter(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The raw LoRA adapter (tensors, peft config dict), or None for a method without one."""
    d = Path(path) / ADAPTER_DIR
    if not (d / "adapter_model.safetensors").is_file() or not (d / "adapter_config.json").is_file():
        return None
    config = read_json_or_none(d / "adapter_config.json")
    if not isinstance(config, dict):
        raise ArtifactError(f"{d / 'adapter_config.json'} is damaged (not a JSON object)")
    return read_tensors(d, "adapter_model.safetensors"), config


_MEMO: dict[tuple[Any, ...], str] = {}


def artifact_fingerprint(path: Path, base_fingerprint: str) -> str:
    """Fingerprint of base + artifact: a hash of the files that change the tuned state's behaviour.

    Every file but the manifest (tensors, adapter, CC-Tuning's matrices): the manifest's
    metrics and history describe the state without changing it, so evaluations added to
    it after training keep the state's identity. Hashing reads every byte (a merged LoRA
    delta is most of a model), so the result is memoised per process on the identity of
    each file (size, mtime_ns, inode, ctime_ns): pages ask on every rerun, and any rewrite
    of a file is hashed again.
    """
    read_manifest(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != MANIFEST)
    key = (str(path.resolve()), tuple((str(f.relative_to(path)), *file_identity(f)) for f in files))
    if key not in _MEMO:
        _MEMO[key] = hash_files(files, path)[:12]
    return f"{base_fingerprint}+{_MEMO[key]}"


def apply_artifact(model: Any, path: Path, *, base_fingerprint: str) -> dict[str, Any]:
    """Apply the artifact in `path` to `model` in place; return its manifest.

    Raises:
        ArtifactError: no manifest, unknown parameter names, shape mismatch, or an artifact
            made for another base model.
    """
    manifest = read_manifest(path)
    want = manifest.get("base_fingerprint")
    if want and not base_fingerprint.startswith(str(want).split("-")[0]):
        raise ArtifactError(f"artifact {path.name} was made for base {want}, not {base_fingerprint}")
    params = dict(model.named_parameters())
    for name, t in read_delta(path).items():
        if name not in params:
            raise ArtifactError(f"artifact tensor {name!r} is not a parameter of the base model")
        if tuple(params[name].shape) != tuple(t.shape):
            raise ArtifactError(f"artifact tensor {name!r} has shape {tuple(t.shape)}, "
                                f"model has {tuple(params[name].shape)}")
        params[name].data.copy_(t.to(params[name].dtype))
    return manifest

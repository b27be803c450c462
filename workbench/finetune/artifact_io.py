"""Write and read fine-tune artifacts: only what changed, plus a manifest.

Layout of an artifact directory (what `workbench.models.artifacts.apply_artifact` reads)::

    manifest.json            method, spec, data hash, base model and fingerprint, seed,
                             versions, metrics, wall time, the changed tensor names
    delta.safetensors        the NEW values of the changed parameters, by parameter name
    adapter/                 LoRA methods only: the raw peft adapter, unmerged
      adapter_config.json
      adapter_model.safetensors

For LoRA methods the delta holds the merged weights, so base + delta reproduces the tuned
model bit-exactly for every method and `models.load(ModelSpec(artifact=...))` needs no
adapter support; the adapter is kept for merging experiments (Mid-align §6.3).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file, save_file

import workbench
from workbench.errors import ArtifactError
from workbench.fileio import atomic_write_json
from workbench.models.state import state_from_model, tuned_fingerprint, with_artifact

__all__ = [
    "ARTIFACT_FORMAT",
    "ArtifactContents",
    "apply_adapter",
    "changed_tensors",
    "load_artifact",
    "load_tuned",
    "save_adapter",
    "save_delta",
    "versions",
    "write_artifact",
]

ARTIFACT_FORMAT = 1
DELTA = "delta.safetensors"
ADAPTER_DIR = "adapter"


def versions() -> dict[str, str]:
    """Versions of what made the bytes: python, torch, transformers, peft, workbench."""
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__, "workbench": workbench.__version__}


def changed_tensors(base_model: Any, tuned_model: Any) -> dict[str, torch.Tensor]:
    """Parameters of `tuned_model` that differ (bitwise) from `base_model`'s, by name.

    Raises:
        ValueError: the two models do not have the same parameter names and shapes.
    """
    base = dict(base_model.named_parameters())
    tuned = dict(tuned_model.named_parameters())
    if base.keys() != tuned.keys():
        diff = sorted(set(base) ^ set(tuned))[:5]
        raise ValueError(f"models have different parameters (e.g. {diff})")
    out = {}
    for name, t in tuned.items():
        b = base[name]
        if b.shape != t.shape:
            raise ValueError(f"parameter {name}: shapes {tuple(b.shape)} and {tuple(t.shape)} differ")
        if not torch.equal(b.detach().to(t.device), t.detach()):
            out[name] = t.detach()
    return out


def save_delta(directory: str | Path, tensors: dict[str, torch.Tensor]) -> Path:
    """Write `tensors` (parameter name -> new value) as `<directory>/delta.safetensors`."""
    path = Path(directory) / DELTA
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(path),
              metadata={"format": "pt"})
    return path


def save_adapter(directory: str | Path, adapter: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """Write a LoRA adapter in peft's layout under `<directory>/adapter/`."""
    d = Path(directory) / ADAPTER_DIR
    d.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in adapter.items()},
              str(d / "adapter_model.safetensors"), metadata={"format": "pt"})
    (d / "adapter_config.json").write_text(json.dumps(config, indent=1, sort_keys=True, default=str))
    return d


def write_artifact(out_dir: str | Path, base_state: Any, tuned_model: Any, manifest: dict[str, Any], *,
                   adapter: dict[str, torch.Tensor] | None = None, adapter_config: dict[str, Any] | None = None,
                   allowed: list[str] | None = None, files: dict[str, dict[str, torch.Tensor]] | None = None) -> Path:
    """Write an artifact for `tuned_model` relative to `base_state.model`, atomically.

    Args:
        out_dir: the artifact directory to create (must not exist).
        base_state: the base ModelState (its `fingerprint` goes into the manifest).
        tuned_model: the trained plain HF model.
        manifest: method, spec, data, metrics, ...; format, base fingerprint, changed names,
            versions and creation time are added.
        adapter: raw LoRA tensors (peft names), kept beside the merged delta.
        adapter_config: the adapter's peft config dict.
        allowed: if given, the names the method may change; any other change is an error.
        files: extra safetensors files beside the delta, by file name (CC-Tuning's `W_DM`, `W_T`).

    Raises:
        FileExistsError: `out_dir` exists.
        RuntimeError: a parameter outside `allowed` changed (a bug in the method).
    """
    out = Path(out_dir)
    if out.exists():
        raise FileExistsError(f"artifact directory {out} already exists")
    delta = changed_tensors(base_state.model, tuned_model)
    if allowed is not None:
        extra = sorted(set(delta) - set(allowed))
        if extra:
            raise RuntimeError(f"parameters outside the method's set changed: {extra[:5]}")
    full = {**manifest, "format": ARTIFACT_FORMAT, "base_fingerprint": base_state.fingerprint,
            "changed": sorted(delta), "n_changed_values": int(sum(t.numel() for t in delta.values())),
            "has_adapter": adapter is not None, "versions": versions(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        save_delta(tmp, delta)
        if adapter is not None:
            save_adapter(tmp, adapter, adapter_config or {})
        for name, tensors in (files or {}).items():
            save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(tmp / name),
                      metadata={"format": "pt"})
        (tmp / "manifest.json").write_text(json.dumps(full, indent=1, sort_keys=True, default=str))
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


@dataclass
class ArtifactContents:
    """An artifact read back: manifest, delta tensors and (LoRA methods) the raw adapter."""

    path: Path
    manifest: dict[str, Any]
    delta: dict[str, torch.Tensor]
    adapter: dict[str, torch.Tensor] | None
    adapter_config: dict[str, Any] | None


def load_artifact(path: str | Path) -> ArtifactContents:
    """Read an artifact directory.

    Raises:
        ArtifactError: no manifest or no delta.
    """
    p = Path(path)
    if not (p / "manifest.json").is_file():
        raise ArtifactError(f"{p} is not a fine-tune artifact (no manifest.json)")
    if not (p / DELTA).is_file():
        raise ArtifactError(f"{p} has no {DELTA}")
    manifest = json.loads((p / "manifest.json").read_text())
    ad = p / ADAPTER_DIR
    adapter = load_file(str(ad / "adapter_model.safetensors")) if (ad / "adapter_model.safetensors").is_file() else None
    cfg = json.loads((ad / "adapter_config.json").read_text()) if (ad / "adapter_config.json").is_file() else None
    return ArtifactContents(p, manifest, load_file(str(p / DELTA)), adapter, cfg)


def apply_adapter(model: Any, adapter: dict[str, torch.Tensor], config: dict[str, Any]) -> Any:
    """Merge a LoRA (peft `config` dict, `adapter` tensors) into `model`; return the plain model."""
    known = set(LoraConfig.__dataclass_fields__)
    cfg = LoraConfig(**{k: v for k, v in config.items() if k in known and k != "peft_type"})
    peft_model = get_peft_model(model, cfg)
    result = set_peft_model_state_dict(peft_model, adapter)
    unexpected = list(getattr(result, "unexpected_keys", None) or [])
    if unexpected:
        raise ValueError(f"adapter tensors not in the model: {unexpected[:5]}")
    return peft_model.merge_and_unload()


def update_manifest(path: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into an artifact's manifest.json (atomically).

    The manifest is not part of the state's fingerprint (`models.artifacts.artifact_fingerprint`),
    so this keeps the state's identity.
    """
    p = Path(path) / "manifest.json"
    manifest = {**json.loads(p.read_text(encoding="utf-8")), **fields}
    atomic_write_json(p, manifest)
    return manifest


def load_tuned(base_state: Any, path: str | Path, *, via: str = "delta") -> Any:
    """A new ModelState: a copy of `base_state.model` with the artifact applied.

    Args:
        base_state: the base ModelState (left untouched).
        path: the artifact directory.
        via: 'delta' (the stored changed tensors; bit-exact) or 'adapter' (re-merge the raw
            LoRA adapter; LoRA artifacts only).
    """
    p = Path(path)
    if via == "delta":
        return with_artifact(base_state, p)
    model = copy.deepcopy(base_state.model)
    if via == "adapter":
        art = load_artifact(p)
        if art.adapter is None or art.adapter_config is None:
            raise ArtifactError(f"{p} holds no adapter")
        model = apply_adapter(model, art.adapter, art.adapter_config)
    else:
        raise ValueError(f"via must be 'delta' or 'adapter', got {via!r}")
    return state_from_model(model, base_state.tokenizer, name=f"{base_state.name}+{p.name}",
                            spec=dataclasses.replace(base_state.spec, artifact=str(p)),
                            fingerprint=f"{tuned_fingerprint(base_state.fingerprint, p)}~adapter")

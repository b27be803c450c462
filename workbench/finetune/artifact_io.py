"""Write and read fine-tune artifacts from models: the changed tensors, the manifest, the raw adapter.

The layout and every read or write of an artifact directory are `workbench.models.artifacts`;
this module computes what goes in (the delta of a tuned model against its base, the
versions) and reads an artifact back as a tuned state (`load_tuned`: from the delta,
bit-exact, or by re-merging the raw LoRA adapter).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import importlib.metadata
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers

import workbench
from workbench.errors import ArtifactError
from workbench.finetune.lora import apply_adapter
from workbench.models import artifacts
from workbench.models.artifacts import ARTIFACT_FORMAT
from workbench.models.state import state_from_model, tuned_fingerprint, with_artifact

__all__ = ["ARTIFACT_FORMAT", "ArtifactContents", "changed_tensors", "load_artifact", "load_tuned", "versions",
           "write_artifact"]


def versions() -> dict[str, str]:
    """Versions of what made the bytes: python, torch, transformers, peft, workbench."""
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": importlib.metadata.version("peft"),
            "workbench": workbench.__version__}


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
    return artifacts.write_artifact_dir(out, full, delta, adapter=adapter, adapter_config=adapter_config,
                                        files=files)


@dataclass
class ArtifactContents:
    """An artifact read back: manifest, delta tensors and (LoRA methods) the raw adapter."""

    path: Path
    manifest: dict[str, Any]
    delta: dict[str, torch.Tensor]
    adapter: dict[str, torch.Tensor] | None
    adapter_config: dict[str, Any] | None


def load_artifact(path: str | Path) -> ArtifactContents:
    """Read an artifact directory (`models.artifacts`).

    Raises:
        ArtifactError: no manifest or no delta.
    """
    p = Path(path)
    manifest = artifacts.read_manifest(p)
    adapter = artifacts.read_adapter(p)
    return ArtifactContents(p, manifest, artifacts.read_delta(p), adapter[0] if adapter else None,
                            adapter[1] if adapter else None)


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
        adapter = artifacts.read_adapter(p)
        if adapter is None:
            raise ArtifactError(f"{p} holds no adapter")
        model = apply_adapter(model, *adapter)
    else:
        raise ValueError(f"via must be 'delta' or 'adapter', got {via!r}")
    return state_from_model(model, base_state.tokenizer, name=f"{base_state.name}+{p.name}",
                            spec=dataclasses.replace(base_state.spec, artifact=str(p)),
                            fingerprint=f"{tuned_fingerprint(base_state.fingerprint, p)}~adapter")

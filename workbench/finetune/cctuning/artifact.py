"""CC-Tuning artifacts: `W_DM` and `W_T` in their own safetensors file beside the delta (`models.hooks.cctuning`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workbench.errors import ArtifactError
from workbench.finetune import artifact_io
from workbench.finetune.cctuning.spec import CCTuningSpec
from workbench.models import artifacts
from workbench.models.hooks.cctuning import CC_FILE, CCOutput, CCTuningInference, cctuning_forward

__all__ = ["CC_FILE", "CCTuned", "load_cctuning", "write_artifact_with_files"]


def write_artifact_with_files(out_dir: str | Path, base_state: Any, tuned_model: Any, manifest: dict[str, Any],
                              files: dict[str, dict[str, torch.Tensor]], **kw: Any) -> Path:
    """`artifact_io.write_artifact` with CC-Tuning's extra tensor files (one atomic write)."""
    manifest = {"inference": CCTuningInference.kind, **manifest}
    return artifact_io.write_artifact(out_dir, base_state, tuned_model, manifest, files=files, **kw)


@dataclass
class CCTuned:
    """A CC-Tuning artifact loaded: the tuned state, `w_dm` `(d, L)`, `w_t` `(d, d)`, its spec and manifest."""

    state: Any
    w_dm: torch.Tensor
    w_t: torch.Tensor
    spec: CCTuningSpec
    manifest: dict[str, Any]

    def forward(self, batch: Mapping[str, torch.Tensor], **kw: Any) -> CCOutput:
        """`cctuning_forward` with this artifact's matrices and `embed` choice."""
        return cctuning_forward(self.state, self.w_dm, self.w_t, batch, embed=self.spec.embed, **kw)


def load_cctuning(base_state: Any, path: str | Path, *, via: str = "delta") -> CCTuned:
    """Base + artifact (delta, or re-merged adapter) and the artifact's `W_DM`, `W_T`.

    Raises:
        ArtifactError: not a CC-Tuning artifact (no `CC_FILE`), or it does not fit the base.
    """
    p = Path(path)
    if not (p / CC_FILE).is_file():
        raise ArtifactError(f"{p} is not a CC-Tuning artifact (no {CC_FILE})")
    state = artifact_io.load_tuned(base_state, p, via=via)
    manifest = artifacts.read_manifest(p)
    inf = state.inference if isinstance(state.inference, CCTuningInference) else \
        CCTuningInference.from_artifact(p, manifest, state)
    state = dataclasses.replace(state, inference=inf)
    return CCTuned(state, inf.w_dm, inf.w_t, CCTuningSpec.from_dict(manifest["spec"]), manifest)

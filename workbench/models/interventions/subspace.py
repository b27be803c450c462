"""Subspace removal or swap (METHODS §10, LENS §3) on a decoder block's output.

With the language-specific basis `S` (`(d, r)`, orthonormal columns; `analysis.subspace`)
of a layer, at strength s: `remove`: `h ← h − s S Sᵀ (h − μ)`; `swap`: `h ← h − s (S Sᵀ h −
S Sᵀ v_tgt)` (s = 1: METHODS' `h − S Sᵀ h + S Sᵀ v_tgt`, the target language's component).
s = 0 installs no hook. File: `layer.<l>.basis` `(d, r)`, `layer.<l>.mean` μ `(d,)`,
`layer.<l>.target` v_tgt `(d,)` (swap).
"""

from __future__ import annotations

from typing import Any

import torch

from workbench.config import InterventionSpec
from workbench.errors import ModelError, ParamError
from workbench.models.architectures import get_path
from workbench.models.interventions.base import Positions, Site, layer_tensors, on_device, select, where

MODES = ("remove", "swap")


def check(iv: InterventionSpec) -> None:
    """Raise ParamError on an option this kind does not take or a bad value."""
    opts = dict(iv.options)
    bad = sorted(set(opts) - {"mode"})
    if bad:
        raise ParamError(f"subspace intervention: unknown option(s) {bad}; it takes mode")
    if opts.get("mode", "remove") not in MODES:
        raise ParamError(f"subspace intervention: mode must be one of {', '.join(MODES)}, got {opts['mode']!r}")


def _fn(t: dict[str, torch.Tensor], mode: str, s: float, positions: str, pos: Positions) -> Any:
    def fn(h: torch.Tensor) -> torch.Tensor:
        basis = on_device(t["basis"], h)
        if mode == "remove":
            centred = h - on_device(t["mean"], h) if "mean" in t else h
            change = (centred @ basis) @ basis.T
        else:
            change = (h - on_device(t["target"], h)) @ basis @ basis.T
        return where(select(positions, pos, h.shape[-2], h.device), h - s * change, h)
    return fn


def sites(iv: InterventionSpec, tensors: dict[str, torch.Tensor], model: Any, arch: Any, pos: Positions) -> list[Site]:
    """The hooks on the chosen blocks' outputs (none at s = 0)."""
    check(iv)
    if iv.strength == 0.0:
        return []
    mode = iv.option("mode", "remove")
    blocks = get_path(model, arch.layers)
    out = []
    for layer, t in layer_tensors(iv, tensors, len(blocks)).items():
        if "basis" not in t or (mode == "swap" and "target" not in t):
            raise ModelError(f"subspace intervention ({mode}): its file lacks the basis or target of block {layer}")
        out.append(Site(blocks[layer], _fn(t, mode, iv.strength, iv.positions, pos)))
    return out

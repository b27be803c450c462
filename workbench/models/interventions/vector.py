"""Language-vector steering (METHODS §10; ReCoVeR / Jain et al. style).

On a decoder block's output `h` (layer l = the residual after block l) at the chosen
positions: `h ← h − α v_src + β v_tgt`, α = the strength, β = option `beta` (default α);
with `norm=true` the result is rescaled to the norm `‖h‖` it had (per position). α = β = 0
installs no hook. File: `layer.<l>.src` and/or `layer.<l>.tgt` (`(d,)`; a missing one is 0).
"""

from __future__ import annotations

from typing import Any

import torch

from workbench.config import InterventionSpec
from workbench.errors import ParamError
from workbench.models.architectures import get_path
from workbench.models.interventions.base import Positions, Site, layer_tensors, on_device, select, where

OPTIONS = ("beta", "norm")


def check(iv: InterventionSpec) -> None:
    """Raise ParamError on an option this kind does not take or a bad value."""
    opts = dict(iv.options)
    bad = sorted(set(opts) - set(OPTIONS))
    if bad:
        raise ParamError(f"vector intervention: unknown option(s) {bad}; it takes {', '.join(OPTIONS)}")
    beta = opts.get("beta", 0.0)
    if isinstance(beta, bool) or not isinstance(beta, int | float):
        raise ParamError(f"vector intervention: beta must be a number, got {beta!r}")
    if not isinstance(opts.get("norm", False), bool):
        raise ParamError(f"vector intervention: norm must be true or false, got {opts['norm']!r}")


def beta_of(iv: InterventionSpec) -> float:
    """β: option `beta`, else the strength α."""
    return float(iv.option("beta", iv.strength))


def _fn(src: torch.Tensor | None, tgt: torch.Tensor | None, alpha: float, beta: float, norm: bool, positions: str,
        pos: Positions) -> Any:
    def fn(h: torch.Tensor) -> torch.Tensor:
        new = h
        if src is not None and alpha:
            new = new - alpha * on_device(src, h)
        if tgt is not None and beta:
            new = new + beta * on_device(tgt, h)
        if norm:
            new = new * (h.norm(dim=-1, keepdim=True) / new.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        return where(select(positions, pos, h.shape[-2], h.device), new, h)
    return fn


def sites(iv: InterventionSpec, tensors: dict[str, torch.Tensor], model: Any, arch: Any, pos: Positions) -> list[Site]:
    """The hooks on the chosen blocks' outputs (none at α = β = 0)."""
    check(iv)
    alpha, beta = iv.strength, beta_of(iv)
    if alpha == 0.0 and beta == 0.0:
        return []
    blocks = get_path(model, arch.layers)
    return [Site(blocks[layer], _fn(t.get("src"), t.get("tgt"), alpha, beta, bool(iv.option("norm", False)),
                                    iv.positions, pos))
            for layer, t in layer_tensors(iv, tensors, len(blocks)).items()]

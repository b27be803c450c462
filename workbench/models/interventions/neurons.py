"""Neuron interventions (METHODS §10; Tang et al. 2024, RUCAIBox `ppl.py` / `generation.py`).

On the output of the block's `act` module — the neuron activation `A = act(gate(x))`,
before it multiplies `up(x)` in gated MLPs: the site LAPE counts — the chosen neurons `i`
of each layer move towards a target by the strength `s`:
`A[i] ← A[i] + s (target[i] − A[i])` with target 0 (`mode=zero`, RUCAIBox's
`index_fill_(-1, idx, 0)` at s = 1), the language's mean activation (`mode=mean`, from the
file's `value`) or `factor · A[i]` (`mode=scale`). At s = 1 the target is written exactly;
s = 0 or an empty set installs no hook (the base's outputs, bitwise).

File: `layer.<l>.index` (LongTensor of neuron indices) and, for `mode=mean`,
`layer.<l>.value` (their mean activations, same length).
"""

from __future__ import annotations

from typing import Any

import torch

from workbench.config import InterventionSpec
from workbench.errors import ModelError, ParamError
from workbench.models.architectures import get_path
from workbench.models.interventions.base import Positions, Site, layer_tensors, on_device, select, where

MODES = ("zero", "mean", "scale")
OPTIONS = {"mode": MODES, "factor": None}


def check(iv: InterventionSpec) -> None:
    """Raise ParamError on an option this kind does not take or a bad value."""
    opts = dict(iv.options)
    bad = sorted(set(opts) - set(OPTIONS))
    if bad:
        raise ParamError(f"neurons intervention: unknown option(s) {bad}; it takes {', '.join(OPTIONS)}")
    if opts.get("mode", "zero") not in MODES:
        raise ParamError(f"neurons intervention: mode must be one of {', '.join(MODES)}, got {opts['mode']!r}")
    factor = opts.get("factor", 0.0)
    if isinstance(factor, bool) or not isinstance(factor, int | float):
        raise ParamError(f"neurons intervention: factor must be a number, got {factor!r}")


def _fn(idx: torch.Tensor, value: torch.Tensor | None, mode: str, s: float, factor: float, positions: str,
        pos: Positions) -> Any:
    def fn(a: torch.Tensor) -> torch.Tensor:
        i = on_device(idx, a)
        if mode == "zero" and s == 1.0 and positions == "all":  # RUCAIBox's index_fill_; in place off the graph
            return a.index_fill_(-1, i, 0.0) if not a.requires_grad else a.index_fill(-1, i, 0.0)
        old = a.index_select(-1, i)
        if mode == "zero":
            target = torch.zeros_like(old)
        elif mode == "mean":
            target = on_device(value, a).expand_as(old)  # type: ignore[arg-type]  # mode mean checked to have values
        else:
            target = old * factor
        new = target if s == 1.0 else old + s * (target - old)
        new = where(select(positions, pos, a.shape[-2], a.device), new, old)
        return a.index_copy(-1, i, new.to(a.dtype))
    return fn


def sites(iv: InterventionSpec, tensors: dict[str, torch.Tensor], model: Any, arch: Any, pos: Positions) -> list[Site]:
    """The hooks on the `act` modules of the chosen layers (none where the set is empty or s = 0)."""
    check(iv)
    mode, factor = iv.option("mode", "zero"), float(iv.option("factor", 0.0))
    if iv.strength == 0.0 or (mode == "scale" and factor == 1.0):
        return []
    blocks = get_path(model, arch.layers)
    out, seen = [], set()
    for layer, t in layer_tensors(iv, tensors, len(blocks)).items():
        idx = t["index"].long()
        if idx.numel() == 0:
            continue
        if mode == "mean" and "value" not in t:
            raise ModelError(f"neurons intervention (mode=mean): its file has no mean activations for block {layer}")
        module = get_path(blocks[layer], arch.act)
        if id(module) in seen:
            raise ModelError("neurons intervention: blocks share one activation module; cannot hook one layer")
        seen.add(id(module))
        out.append(Site(module, _fn(idx, t.get("value"), mode, iv.strength, factor, iv.positions, pos)))
    return out

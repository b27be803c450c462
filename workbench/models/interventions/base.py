"""What every intervention kind shares: its tensor file (content-addressed), the positions it acts at, the hooks.

A kind's tensors live in ONE safetensors file `<cache>/interventions/<hash>.safetensors`,
named by the sha256 of its bytes (`save_tensors` writes it, `load_tensors` reads and checks
it), so an `InterventionSpec` names its tensors by content and the state's fingerprint
changes exactly when they do. Names in a file: `layer.<l>.<what>` (e.g. `layer.3.index`).

Positions: a pre-hook on the model's body records the call's `position_ids` (or, where the
caller passes none, how many positions the KV cache already holds), so a block's hook knows
the absolute index of each position it sees, generation with the cache included. `all`:
every position; `last`: the last position of each forward call (a left-padded prompt's last
token, then each new token); `from:K`: absolute position >= K (HF's position ids: with
left padding, as `generate` makes them, the pads do not count).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from workbench.config import InterventionSpec
from workbench.errors import ModelError
from workbench.fileio import atomic_write_bytes
from workbench.paths import cache_root

__all__ = ["Positions", "Site", "load_tensors", "save_tensors", "tensor_path", "layer_tensors", "select"]


def tensor_dir() -> Path:
    """`<cache>/interventions`: the content-addressed tensor files."""
    return cache_root() / "interventions"


def tensor_path(digest: str) -> Path:
    """The file of a content hash."""
    return tensor_dir() / f"{digest}.safetensors"


def save_tensors(tensors: dict[str, torch.Tensor]) -> str:
    """Write `tensors` content-addressed (CPU, contiguous) and return their hash (the file's name)."""
    data = st_save({k: v.detach().to("cpu").contiguous() for k, v in sorted(tensors.items())})
    digest = hashlib.sha256(data).hexdigest()[:24]
    path = tensor_path(digest)
    if not path.is_file():
        atomic_write_bytes(path, data)
    return digest


def load_tensors(digest: str) -> dict[str, torch.Tensor]:
    """The tensors of a content hash, checked against it.

    Raises:
        ModelError: the file is missing or its bytes do not match the hash (one line, what to do).
    """
    path = tensor_path(digest)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelError(f"intervention tensors {digest} not found at {path} ({e.strerror}); resolve the "
                         "intervention again (workbench.interventions.resolve_spec / --intervention)") from None
    if hashlib.sha256(data).hexdigest()[:24] != digest:
        raise ModelError(f"intervention tensors {path} are damaged (their hash is not {digest}); delete the file "
                         "and resolve the intervention again")
    try:
        return st_load(data)
    except SafetensorError as e:
        raise ModelError(f"intervention tensors {path} cannot be read: {e}") from None


def layer_tensors(iv: InterventionSpec, tensors: dict[str, torch.Tensor], n_layers: int) -> dict[int, dict[str, Any]]:
    """Block -> {what: tensor} of the layers the spec acts on (`iv.layers`, default: all in the file).

    Raises:
        ModelError: a requested layer the file has nothing for, or a layer past the model's blocks.
    """
    per: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        _, layer, what = name.split(".", 2)
        per.setdefault(int(layer), {})[what] = t
    layers = list(iv.layers) if iv.layers is not None else sorted(per)
    missing = [x for x in layers if x not in per]
    if missing:
        raise ModelError(f"{iv.kind} intervention: its tensors have nothing for block(s) {missing} "
                         f"(they cover {sorted(per)})")
    past = [x for x in layers if x >= n_layers]
    if past:
        raise ModelError(f"{iv.kind} intervention: block(s) {past} past the model's {n_layers} blocks")
    return {x: per[x] for x in layers}


@dataclass
class Positions:
    """The absolute position offset of the current forward call (set by a pre-hook on the model body)."""

    past: int = 0
    ids: torch.Tensor | None = None  # (B, T) position ids of the call, when the caller gave them

    def pre_hook(self, _module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Record the call's position ids, or how many positions the KV cache holds before it."""
        ids = kwargs.get("position_ids")
        self.ids = ids if isinstance(ids, torch.Tensor) else None
        cache = kwargs.get("past_key_values", kwargs.get("cache"))
        self.past = int(cache.get_seq_length()) if cache is not None and hasattr(cache, "get_seq_length") else 0


def select(spec: str, positions: Positions, t: int, device: Any) -> torch.Tensor | None:
    """`(T,)` or `(B, T)` bool mask of the positions `spec` acts at in a call of `t` positions (None: all)."""
    if spec == "all":
        return None
    if spec == "last":
        mask = torch.zeros(t, dtype=torch.bool, device=device)
        mask[-1] = True
        return mask
    start = int(spec.split(":", 1)[1])
    if positions.ids is not None and positions.ids.shape[-1] == t:
        return positions.ids.to(device) >= start  # (1 or B, T)
    return (torch.arange(t, device=device) + positions.past) >= start


def where(mask: torch.Tensor | None, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """`new` at the masked positions (`(T,)` or `(B, T)` over dims 0-1 of `(B, T, ·)`), `old` elsewhere."""
    return new if mask is None else torch.where(mask[..., None], new, old)


@dataclass
class Site:
    """One hook to install: the module (a block, or a block's `act`), its function `f(output) -> output`."""

    module: Any
    fn: Callable[[torch.Tensor], torch.Tensor]
    on_tuple: bool = True  # the module may return (hidden, ...) (decoder blocks)
    cache: dict[str, Any] = field(default_factory=dict)

    def hook(self, _module: Any, _args: Any, out: Any) -> Any:
        """The forward hook: `fn` on the output tensor (the first element of a tuple)."""
        if isinstance(out, tuple):
            return (self.fn(out[0]), *out[1:])
        return self.fn(out)


def on_device(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`t` in `like`'s dtype and device (floats) or device (indices)."""
    if t.is_floating_point():
        return t.to(device=like.device, dtype=like.dtype)
    return t.to(device=like.device)

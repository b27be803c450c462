"""Forward-time interventions of a model state (METHODS §10): one module per kind, one registration each.

A state = base + optional artifact + interventions. `install(model, arch, specs)` puts each
concrete `InterventionSpec`'s PyTorch forward hooks on `model` (a copy that shares every
parameter with the loaded state: `models.state.with_interventions`), so every door —
nnsight recording, the analyses, generation with the KV cache, losses, lm-eval — runs the
intervened forward without naming it. `digest(specs)` is the fingerprint part: the hash of
everything that changes the outputs (kind, layers, positions, strength, options and the
tensor file's content hash; not `source`, which is provenance only).

This layer only reads tensor files by hash (`base.load_tensors`); where they come from
(LAPE neurons of a recording, language means, LENS's basis, a `.neuron.pth`) is resolved
above it, in `workbench.interventions`.

To add a kind: a module with `check(iv)` and `sites(iv, tensors, model, arch, positions)
-> [Site]`, one line in `KINDS` and its name in `config.INTERVENTION_KINDS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.config import INTERVENTION_KINDS, InterventionSpec, stable_hash
from workbench.errors import ModelError
from workbench.models.architectures import ArchEntry, get_path
from workbench.models.interventions import neurons, subspace, vector
from workbench.models.interventions.base import Positions, load_tensors, save_tensors, tensor_path

__all__ = ["KINDS", "check_specs", "digest", "install", "load_tensors", "save_tensors", "tensor_path"]

KINDS: dict[str, Any] = {"neurons": neurons, "vector": vector, "subspace": subspace}
"""kind -> its module (`check`, `sites`)."""

assert set(KINDS) == set(INTERVENTION_KINDS), "config.INTERVENTION_KINDS and KINDS must name the same kinds"


def check_specs(specs: Sequence[InterventionSpec]) -> None:
    """Raise a one-line error for an unresolved spec or a bad option (no weights, no files read).

    Raises:
        ModelError: an intervention without its tensor file (resolve it first).
        ParamError: an option its kind does not take.
    """
    for iv in specs:
        if not iv.resolved:
            what = ", ".join(f"{k}={v}" for k, v in iv.source) or iv.kind
            raise ModelError(f"the {iv.kind} intervention ({what}) is not resolved to tensors yet; resolve it with "
                             "workbench.interventions.resolve_spec (the CLI's --intervention does)")
        KINDS[iv.kind].check(iv)


def digest(specs: Sequence[InterventionSpec]) -> str:
    """The fingerprint part of the interventions: a hash of what changes the outputs (never `source`).

    Raises:
        ModelError / ParamError: as `check_specs`.
    """
    check_specs(specs)
    return stable_hash([{k: v for k, v in iv.to_dict().items() if k != "source"} for iv in specs], 12)


def install(model: Any, arch: ArchEntry, specs: Sequence[InterventionSpec]) -> list[Any]:
    """Register every spec's forward hooks on `model` (in order); returns the hook handles (`.remove()`).

    Raises:
        ModelError: a missing or damaged tensor file, a layer the file or the model lacks.
    """
    check_specs(specs)
    positions = Positions()
    body = get_path(model, arch.base)
    handles = [body.register_forward_pre_hook(positions.pre_hook, with_kwargs=True)]
    sites = []
    for iv in specs:
        try:
            sites += KINDS[iv.kind].sites(iv, load_tensors(str(iv.file)), model, arch, positions)
        except (KeyError, ValueError) as e:  # a file of another kind (names it lacks, a malformed name)
            raise ModelError(f"{iv.kind} intervention: its tensor file {iv.file} is not a {iv.kind} file ({e})") from e
    # Ours run before any hook already there (transformers' output-capturing hooks, copied with the model), so
    # `output_hidden_states` and every recorder see the intervened output; prepended in reverse: spec order kept.
    handles += [s.module.register_forward_hook(s.hook, prepend=True) for s in reversed(sites)]
    return handles

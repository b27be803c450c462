"""Weightless model states for NDIF: what the recorder needs of a hub model it never downloads.

`remote_state(spec)` reads a hub id's config and tokenizer (small files), builds the
architecture on PyTorch's meta device (shapes and module paths, no weights) and names the
state `ndif:<hub id>@<commit sha>`. The fingerprint is part of every store key, so
recordings computed on NDIF never mix with local ones (a local state's fingerprint is a
hash of its weight files, and NDIF runs the weights in the server's own dtype).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import HfApi
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from workbench.config import ModelSpec, stable_hash
from workbench.errors import ModelError
from workbench.fileio import atomic_write_json, read_json_or_none
from workbench.models.architectures import architecture_for
from workbench.models.sources import is_hub_id
from workbench.models.state import ModelState, _prepare_tokenizer
from workbench.paths import cache_root

#: Seconds to wait for the hub's answer about a model.
HUB_TIMEOUT = 20.0


@dataclass
class RemoteModelState(ModelState):
    """A `ModelState` whose `model` is a meta-device skeleton: shapes and paths, no weights.

    `n_layers`, `d_model`, `n_neurons` and `arch` read the skeleton; inputs are made on the
    CPU (`device`) and the server moves them to its copy of the model.
    """

    @property
    def device(self) -> Any:
        """Where batches are made: the CPU (the weights are on the server)."""
        return torch.device("cpu")


def meta_state(config: Any, tokenizer: Any, *, fingerprint: str, spec: ModelSpec) -> RemoteModelState:
    """A weightless state from a model config and its tokenizer (the architecture built on meta).

    Raises:
        ModelError: an architecture the workbench's table does not know.
    """
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=spec.trust_remote_code)
    model.eval()
    model.requires_grad_(False)
    return RemoteModelState(spec.source, model, _prepare_tokenizer(tokenizer), architecture_for(model), fingerprint,
                            spec)


_STATES: dict[tuple[str, str | None, bool], RemoteModelState] = {}
_LOCK = threading.Lock()


def _key(spec: ModelSpec) -> tuple[str, str | None, bool]:
    return spec.source, spec.revision, spec.trust_remote_code


def remote_state(spec: ModelSpec | str) -> RemoteModelState:
    """The weightless state of a hub model for recording on NDIF (memoised per process).

    Reads the hub's record of the model (its commit), its config and its tokenizer; never
    its weights. A gated model (e.g. meta-llama/…) needs a Hugging Face token (`HF_TOKEN`)
    with access to it.

    Raises:
        ModelError: not a hub id, the hub cannot be read, or an unknown architecture.
    """
    spec = ModelSpec(source=spec) if isinstance(spec, str) else spec
    if not is_hub_id(spec.source):
        raise ModelError(f"model {spec.source!r} is not a Hugging Face hub id (org/name): NDIF runs hub models only")
    if spec.artifact:
        raise ModelError("a fine-tune artifact cannot be applied on NDIF (the server runs the hub's weights)")
    spec = dataclasses.replace(spec, device="auto", dtype="auto")  # the server's, not ours
    with _LOCK:
        if _key(spec) in _STATES:
            return _STATES[_key(spec)]
    src, rev = spec.source, spec.revision
    try:
        info = HfApi().model_info(src, revision=rev, timeout=HUB_TIMEOUT)
        config = AutoConfig.from_pretrained(src, revision=rev, trust_remote_code=spec.trust_remote_code)
        config._name_or_path = info.id  # nnsight's model key names the hub id through it
        tok = AutoTokenizer.from_pretrained(src, revision=rev, trust_remote_code=spec.trust_remote_code)
    except Exception as e:  # noqa: BLE001 - hub, network and auth errors of many kinds; one clear line
        why = (str(e).strip() or type(e).__name__).splitlines()[0][:200]
        raise ModelError(f"cannot read {src!r} from the Hugging Face hub ({type(e).__name__}: {why}); "
                         "NDIF recording needs the hub for the model's config and tokenizer "
                         "(gated models need HF_TOKEN)") from e
    state = meta_state(config, tok, fingerprint=f"ndif:{info.id}@{info.sha}", spec=spec)
    atomic_write_json(_fingerprint_file(spec), {"source": src, "revision": rev, "fingerprint": state.fingerprint})
    with _LOCK:
        return _STATES.setdefault(_key(spec), state)


def _fingerprint_file(spec: ModelSpec) -> Path:
    return cache_root() / "ndif" / f"{stable_hash(list(_key(spec)), n=16)}.json"


def remote_fingerprint(spec: ModelSpec | str) -> str | None:
    """The fingerprint of the last remote state built for `spec` (this process or an earlier one).

    None if none was ever built here. Never asks the hub or NDIF, so stored NDIF recordings
    stay readable offline; the hub's newest commit may have moved on since (a new remote
    recording then builds the state again and records under the new commit).
    """
    spec = ModelSpec(source=spec) if isinstance(spec, str) else spec
    with _LOCK:
        state = _STATES.get(_key(spec))
    if state is not None:
        return state.fingerprint
    memo = read_json_or_none(_fingerprint_file(spec)) or {}
    fp = memo.get("fingerprint")
    return fp if isinstance(fp, str) and fp.startswith("ndif:") else None

"""The model layer: sources, the architecture table, integrity, artifacts, and loading states.

`load(spec)` is the one way to get a model state and `fingerprint(spec)` the one definition
of its identity; see `state.py`. Modules: `architectures` (the table), `sources` (bundled
GGUFs, hub ids, local directories, `.gguf` files, tiny models), `tiny`, `integrity`
(fingerprints and checksums), `artifacts` (fine-tune deltas applied on a base), `state`,
`remote` (weightless states of hub models recorded on NDIF).
"""

from workbench.errors import ArtifactError, ModelError
from workbench.models.architectures import ARCHITECTURES, ArchEntry, architecture_for, get_path, hook_hidden0
from workbench.models.artifacts import apply_artifact, artifact_fingerprint
from workbench.models.integrity import directory_fingerprint, hash_files, tensor_fingerprint
from workbench.models.remote import RemoteModelState, is_hub_id, meta_state, remote_fingerprint, remote_state
from workbench.models.sources import (
    BUNDLED,
    DEFAULT_MODEL,
    BundledModel,
    PreparedModel,
    bundled_status,
    convert_gguf,
    converted_dir,
    list_models,
    prepare,
    verify,
)
from workbench.models.state import (
    ModelState,
    fingerprint,
    forget,
    load,
    loaded_states,
    memory_in_use,
    normalize,
    resolve_device,
    same_base,
    set_memory_budget,
    state_from_model,
    with_artifact,
    with_interventions,
)
from workbench.models.tiny import TINY_DEFAULT, TINY_TYPES, is_tiny, tiny_model, tiny_name, tiny_tokenizer

__all__ = [
    "ARCHITECTURES", "BUNDLED", "DEFAULT_MODEL", "TINY_DEFAULT", "TINY_TYPES", "ArchEntry", "ArtifactError",
    "BundledModel", "ModelError", "ModelState", "PreparedModel", "RemoteModelState", "apply_artifact",
    "architecture_for", "artifact_fingerprint", "bundled_status", "convert_gguf", "converted_dir",
    "directory_fingerprint", "fingerprint", "forget", "get_path", "hash_files", "hook_hidden0", "is_hub_id", "is_tiny",
    "list_models", "load", "loaded_states", "memory_in_use", "meta_state", "normalize", "prepare",
    "remote_fingerprint", "remote_state",
    "resolve_device", "same_base", "set_memory_budget",
    "state_from_model", "tensor_fingerprint", "tiny_model", "tiny_name", "tiny_tokenizer", "verify", "with_artifact",
    "with_interventions",
]

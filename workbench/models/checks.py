"""Whether a typed model source can be used from here, before anything is recorded (the Setup page asks).

What the string names is `sources.source_kind`; this module adds what the hub says.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import huggingface_hub
from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import validate_repo_id

from workbench.config import ModelSpec
from workbench.errors import WorkbenchError, user_message
from workbench.models.sources import source_kind
from workbench.models.state import fingerprint

log = logging.getLogger(__name__)

__all__ = ["HUB_TIMEOUT_S", "ModelCheck", "check_model_source", "hub_info"]


@dataclass(frozen=True)
class ModelCheck:
    """Whether a model source can be recorded from here, and what to tell the user."""

    usable: bool  # False: do not offer Record (the message says why and what to do)
    message: str = ""  # one line ("" when there is nothing to say)


HUB_TIMEOUT_S = 5.0


def hub_info(repo_id: str, revision: str | None) -> Any:
    """The hub's record of a model repository (a network call; tests replace this function)."""
    return huggingface_hub.model_info(repo_id, revision=revision, timeout=HUB_TIMEOUT_S)


def check_model_source(spec: ModelSpec) -> ModelCheck:
    """Check a typed model source before anything is recorded (never downloads weights).

    A bundled name, local directory or `.gguf` file is usable when it can be fingerprinted
    without a download (`models.fingerprint(spec, download=False)`). A hub id is usable
    when it is in the local Hugging Face cache, or when the hub says it exists; when the
    hub cannot be reached, it cannot be downloaded here and is not usable.

    Args:
        spec: the model spec (source and revision are checked).

    Returns:
        A `ModelCheck`; `usable=False` with a message naming the source and what to do.
    """
    source = spec.source.strip()
    try:
        if fingerprint(spec, download=False) is not None:
            return ModelCheck(True)
    except (WorkbenchError, OSError, ValueError) as e:
        return ModelCheck(False, f"Model `{source}` cannot be used: {user_message(e)}")
    kind = source_kind(source)
    if kind in ("bundled", "tiny"):
        return ModelCheck(True)  # converted on the first recording
    if kind in ("path", "gguf", "dir"):
        return ModelCheck(False, f"`{source}` does not exist on this machine: enter an existing model "
                                 "directory or .gguf file, or a Hugging Face hub id like `Qwen/Qwen2.5-0.5B`.")
    try:
        validate_repo_id(source)
    except HFValidationError:
        return ModelCheck(False, f"`{source}` is neither an existing path nor a valid Hugging Face hub id "
                                 "(`owner/name`, e.g. `Qwen/Qwen2.5-0.5B`).")
    cached = huggingface_hub.try_to_load_from_cache(source, "config.json", revision=spec.revision)
    if isinstance(cached, str):
        return ModelCheck(True, f"`{source}` is in the local Hugging Face cache.")
    try:
        hub_info(source, spec.revision)
    except (RepositoryNotFoundError, GatedRepoError) as e:
        gated = isinstance(e, GatedRepoError)
        return ModelCheck(False, f"`{source}` is " + ("a gated model on the Hugging Face hub: log in with "
                                 "`hf auth login` and accept its licence first." if gated else
                                 "not a model on the Hugging Face hub (or a private one): check the id."))
    except RevisionNotFoundError:
        return ModelCheck(False, f"`{source}` has no revision `{spec.revision}` on the Hugging Face hub.")
    except Exception as e:  # noqa: BLE001 - no network, proxy, offline mode: all mean "not from here"
        log.info("hub lookup of %s failed: %s", source, e)
        return ModelCheck(False, f"`{source}` is not on this machine and cannot be downloaded here: the "
                                 f"Hugging Face hub is not reachable ({type(e).__name__}). Use a bundled "
                                 "model or a local directory, or download it where there is a network.")
    return ModelCheck(True, f"`{source}` will be downloaded from the Hugging Face hub on the first recording.")

"""Whether a typed model source can be used from here, before anything is recorded (the Setup page asks).

What the string names is `sources.source_kind`; this module adds what the hub says, and
whether a recording spec fits the model's tokenizer (a chat template where the spec wraps
inputs in one: the `lens` preset), read from the tokenizer files alone, before any weights.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import huggingface_hub
from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import validate_repo_id
from transformers import AutoTokenizer

from workbench.config import ModelSpec, RecordSpec
from workbench.errors import RecordError, WorkbenchError, user_message
from workbench.models.sources import bundled_status, converted_dir, source_kind
from workbench.models.state import fingerprint
from workbench.models.tiny import TINY_TOKENIZER
from workbench.presets import PRESETS, preset_names

log = logging.getLogger(__name__)

__all__ = ["HUB_TIMEOUT_S", "ModelCheck", "check_model_source", "check_record_fits", "chat_template_problem",
           "has_chat_template", "hub_info"]


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


# --------------------------------------------------------------------------- recording spec vs tokenizer


def _tokenizer_dir(spec: ModelSpec) -> Path | None:
    """The directory of the model's tokenizer files when they are here already (None: a conversion or download)."""
    kind = source_kind(spec.source)
    if kind == "tiny":
        return TINY_TOKENIZER
    if kind == "bundled":
        return converted_dir(spec.source) if bundled_status(spec.source) in ("ready", "modified") else None
    if kind == "dir":
        return Path(spec.source).expanduser()
    if kind == "hub":
        cached = huggingface_hub.try_to_load_from_cache(spec.source, "tokenizer_config.json", revision=spec.revision)
        return Path(cached).parent if isinstance(cached, str) else None
    return None  # a .gguf file: its tokenizer exists once converted, on the first recording


@functools.lru_cache(maxsize=64)
def _dir_has_chat_template(path: str, stamp: float, trust_remote_code: bool) -> bool:
    """Whether the tokenizer in `path` has a chat template (`stamp`: its config's mtime, so an edit is seen)."""
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    return bool(getattr(tok, "chat_template", None))


def has_chat_template(spec: ModelSpec, tokenizer: Any = None) -> bool | None:
    """Whether the model's tokenizer has a chat template, from `tokenizer` or its files (never the weights).

    None when that cannot be known without a conversion or a download (a bundled model not
    converted yet, a hub id not in the local cache, a `.gguf` file) or the files do not load.
    """
    if tokenizer is not None:
        return bool(getattr(tokenizer, "chat_template", None))
    path = _tokenizer_dir(spec)
    if path is None or not path.is_dir():
        return None
    config = path / "tokenizer_config.json"
    try:
        return _dir_has_chat_template(str(path), config.stat().st_mtime if config.is_file() else 0.0,
                                      spec.trust_remote_code)
    except (OSError, ValueError) as e:  # unreadable files: loading the model says what is wrong
        log.info("could not read the tokenizer of %s: %s", spec.source, e)
        return None


def chat_template_problem(model: ModelSpec, spec: RecordSpec, tokenizer: Any = None) -> str | None:
    """One line when `spec` wraps inputs in a chat template the model's tokenizer lacks, else None.

    The line names the preset whose recording this is (LENS's), the missing template and
    the choices. LENS's code (circle-hit/Lens, `Probing/probe.py`) applies the chat template
    of the instruct models it studies unconditionally: there is no fallback to offer.
    """
    if not spec.chat_template or has_chat_template(model, tokenizer) is not False:
        return None
    name = Path(model.source).name
    presets = [n for n in preset_names() if PRESETS[n].record.get("chat_template")
               and all(getattr(spec, k) == v for k, v in PRESETS[n].record.items())]
    others = ", ".join(n for n in preset_names() if not PRESETS[n].record.get("chat_template"))
    if presets:
        return (f"preset {presets[0]!r} wraps every input in the tokenizer's chat template (LENS's code reads "
                f"instruct models and has no fallback), but the tokenizer of {name} has no chat template: choose "
                f"a model whose tokenizer has one (an instruct or chat model), another preset ({others}) or none")
    return (f"chat_template (--chat-template) is on, but the tokenizer of {name} has no chat template: choose a "
            "model whose tokenizer has one (an instruct or chat model) or record without it")


def check_record_fits(model: ModelSpec, spec: RecordSpec, tokenizer: Any = None) -> None:
    """Raise `RecordError` (one line) when the model's tokenizer cannot run `spec` (`chat_template_problem`)."""
    problem = chat_template_problem(model, spec, tokenizer)
    if problem:
        raise RecordError(problem)

"""UI-free helpers for the Streamlit front end (this module never imports Streamlit).

- `Settings`: the choices made on the Setup page (model, corpus, languages, pooling,
  max length), as plain specs; `to_dict()` is what pages keep in session state and what
  their data caches are keyed by.
- Whether the UI offers the tiny random-init test model (``WORKBENCH_UI_TINY_MODEL=1``).
- Upload handling for user corpora.
- `check_model_source`: whether a typed hub id or path can be used here, before Record.

Recordings (stored or in the background) are `workbench.recordings`; errors are
formatted by `workbench.errors.user_message`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import huggingface_hub
from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import validate_repo_id

from workbench import models
from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.corpus import CorpusError, ParallelCorpus, read_jsonl, read_tsv
from workbench.errors import WorkbenchError, user_message
from workbench.models import TINY_DEFAULT
from workbench.paths import cache_root
from workbench.presets import apply_preset, get_preset
from workbench.recipes.params import ANALYSES
from workbench.recipes.tables import silp_record_spec

log = logging.getLogger(__name__)

TINY_MODEL = TINY_DEFAULT
"""Model source of the tiny random-init test model the UI offers in test mode."""
TINY_ENV = "WORKBENCH_UI_TINY_MODEL"
UPLOAD_SUFFIXES = (".tsv", ".tab", ".jsonl", ".ndjson")


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """What the Setup page chose; every view reads its recording through these specs."""

    model: ModelSpec = field(default_factory=ModelSpec)
    corpus: CorpusSpec = field(default_factory=CorpusSpec)
    max_length: int = 256
    pooling: str = "mean"  # which recorded pooling the views use (all three are recorded)
    preset: str | None = None  # a paper's pipeline (workbench.presets): its recording fields
    remote: bool = False  # record on NDIF (hub ids only): recordings.ensure_recording(remote=True)

    def __post_init__(self) -> None:
        if self.preset is not None:
            pools = get_preset(self.preset).record.get("poolings")
            if pools and self.pooling not in pools:  # the views must use a pooling the preset records
                object.__setattr__(self, "pooling", pools[0])
        if self.remote and (self.model.artifact or not models.is_hub_id(self.model.source)):
            object.__setattr__(self, "remote", False)  # NDIF runs hub models only (e.g. a stale URL)

    def record_spec(self) -> RecordSpec:
        """The main recording: every pooling, embeddings and FFN statistics (or a paper preset's fields)."""
        spec = RecordSpec(max_length=self.max_length, batch_tokens=max(4096, self.max_length))
        return apply_preset(self.preset, spec) if self.preset else spec

    def silp_spec(self) -> RecordSpec:
        """SiLP's pair-template pass (FFN statistics of translation prompts): `tables.silp_record_spec`."""
        return silp_record_spec(self.record_spec())

    def pair_corpus(self, src: str, tgt: str) -> CorpusSpec:
        """The corpus spec of a SiLP pass for one translation direction."""
        return CorpusSpec(source=self.corpus.source, langs=(src, tgt), limit=self.corpus.limit)

    def figure_spec(self, analysis: str, params: Mapping[str, Any], *, langs: Sequence[str] | None = None,
                    title: str | None = None, model: ModelSpec | None = None) -> dict[str, Any]:
        """The registry's figure spec of a view: this choice plus the view's parameters.

        `pooling` is filled in from the choice for analyses that take one; `langs` defaults
        to the chosen languages, `model` to the chosen model. `recipes.build_figure` rebuilds
        the view from it.
        """
        default = RecordSpec().to_dict()
        record = {k: v for k, v in self.record_spec().to_dict().items() if v != default[k]}
        p = dict(params)
        if "pooling" in ANALYSES.get(analysis, {}):
            p.setdefault("pooling", self.pooling)
        return {"analysis": analysis, "model": (model or self.model).to_dict(), "corpus": self.corpus.source,
                "langs": list(langs if langs is not None else self.corpus.langs), "limit": self.corpus.limit,
                "record": record, "params": p, "title": title, "preset": self.preset,
                **({"remote": True} if self.remote else {})}

    @property
    def pivot(self) -> str:
        """Default pivot language: English if chosen, else the first language."""
        return "en" if "en" in self.corpus.langs else self.corpus.langs[0]

    def to_dict(self) -> dict[str, Any]:
        """Plain, hashable-by-value dict (for session state and cache keys)."""
        return {"model": self.model.to_dict(), "corpus": self.corpus.to_dict(),
                "max_length": self.max_length, "pooling": self.pooling, "preset": self.preset,
                **({"remote": True} if self.remote else {})}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Settings:
        """Inverse of `to_dict`."""
        return cls(ModelSpec.from_dict(d["model"]), CorpusSpec.from_dict(d["corpus"]),
                   int(d["max_length"]), str(d["pooling"]), d.get("preset") or None, bool(d.get("remote", False)))


# --------------------------------------------------------------------------- tiny model


def tiny_model_enabled() -> bool:
    """True when the UI offers the tiny test model `tiny:llama` (``WORKBENCH_UI_TINY_MODEL=1``)."""
    return os.environ.get(TINY_ENV, "").strip().lower() in ("1", "true", "yes")


# --------------------------------------------------------------------------- uploads and errors


def save_upload(name: str, data: bytes) -> Path:
    """Write an uploaded corpus file under the cache (content-addressed, so it stays valid).

    Raises:
        CorpusError: for a file type the readers do not take.
    """
    safe = Path(name).name or "upload.tsv"
    if Path(safe).suffix.lower() not in UPLOAD_SUFFIXES:
        raise CorpusError(f"unsupported file type {Path(safe).suffix or '(none)'!r}: upload a .tsv "
                          "(header row of language codes) or a .jsonl file (one object per line)", path=safe)
    path = cache_root() / "uploads" / hashlib.sha256(data).hexdigest()[:16] / safe
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def read_upload(path: Path, display_name: str | None = None) -> ParallelCorpus:
    """Parse and validate an uploaded corpus with `read_tsv`/`read_jsonl`.

    Raises:
        CorpusError: with the reader's message (file, line, language), the cache path
            replaced by `display_name`.
    """
    reader = read_jsonl if path.suffix.lower() in (".jsonl", ".ndjson") else read_tsv
    try:
        return reader(path)
    except CorpusError as e:
        if display_name is None:
            raise
        raise CorpusError(str(e).replace(str(path), display_name)) from e


def is_upload(source: str) -> bool:
    """True if a corpus source is a file saved by `save_upload`."""
    try:
        return Path(source).resolve().is_relative_to((cache_root() / "uploads").resolve())
    except OSError:
        return False



# --------------------------------------------------------------------------- model sources


@dataclass(frozen=True)
class ModelCheck:
    """Whether a model source can be recorded from here, and what to tell the user."""

    usable: bool  # False: do not offer Record (the message says why and what to do)
    message: str = ""  # one line ("" when there is nothing to say)


HUB_TIMEOUT_S = 5.0


def hub_info(repo_id: str, revision: str | None) -> Any:
    """The hub's record of a model repository (a network call; tests replace this function)."""
    return huggingface_hub.model_info(repo_id, revision=revision, timeout=HUB_TIMEOUT_S)


def _looks_like_path(source: str) -> bool:
    return (source.startswith(("/", "~", ".")) or source.endswith(".gguf") or "\\" in source
            or source.count("/") > 1)


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
        if models.fingerprint(spec, download=False) is not None:
            return ModelCheck(True)
    except (WorkbenchError, OSError, ValueError) as e:
        return ModelCheck(False, f"Model `{source}` cannot be used: {user_message(e)}")
    if source in models.BUNDLED or models.is_tiny(source):
        return ModelCheck(True)  # converted on the first recording
    if _looks_like_path(source):
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

"""Frozen, typed configuration dataclasses shared by the library, the CLI and the UI.

A run's config is what its store key and manifest are made of (HOUSE_STYLE 5, 7): every
field that changes the recorded bytes lives here, and `to_dict()` is what gets hashed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="_Spec")

POOLINGS = ("mean", "last", "weighted")
TOKEN_SPANS = ("all", "source", "target")

#: SiLP's default translation prompt (METHODS §2).
SILP_TEMPLATE = "Translate the following sentence from {src_name} to {tgt_name}.\n{src_text}\n{tgt_text}"


def _help(text: str, default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A dataclass field with one line of help in its metadata (peft's convention)."""
    if default is dataclasses.MISSING:
        return field(metadata={"help": text}, **kw)
    return field(default=default, metadata={"help": text}, **kw)


def stable_hash(obj: Any, n: int = 16) -> str:
    """Short sha256 hex digest of a JSON-serialisable object (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:n]


@dataclass(frozen=True)
class _Spec:
    """Base class: dict round trip and field help."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict of every field (tuples become lists)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any]) -> T:
        """Inverse of `to_dict`; unknown keys raise a clear error."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(d) - set(names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}; known: {sorted(names)}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kw)

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> one-line help."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


@dataclass(frozen=True)
class ModelSpec(_Spec):
    """Which model to load and how."""

    source: str = _help(
        "bundled name (gemma-3-270m, smollm2-135m, qwen2.5-coder-0.5b), a hub id, a local HF "
        "directory or a .gguf file",
        "gemma-3-270m",
    )
    revision: str | None = _help("hub revision (branch, tag or commit); hub ids only", None)
    device: str = _help("'auto' (CUDA if present, else CPU), 'cpu', 'cuda', 'cuda:1', ...", "auto")
    dtype: str = _help("'auto' (bf16 on CUDA, fp32 on CPU), 'float32', 'bfloat16', 'float16'", "auto")
    trust_remote_code: bool = _help("allow custom model code from the hub (off by default)", False)
    artifact: str | None = _help("fine-tune artifact directory applied on top of the base", None)


@dataclass(frozen=True)
class RecordSpec(_Spec):
    """What to record in one pass over a corpus. Every field changes the stored bytes."""

    FORMAT_VERSION: ClassVar[int] = 1

    poolings: tuple[str, ...] = _help("sentence poolings to keep: mean, last, weighted", POOLINGS)
    embeddings: bool = _help("also record the embedding output (layer 'emb')", True)
    final_norm: bool = _help("also record the post-final-norm output of the last block as layer 'final'", False)
    ffn_stats: bool = _help("record FFN neuron statistics (overlap counts, SiLP means)", True)
    max_length: int = _help("truncate inputs to this many tokens", 256)
    template: str | None = _help(
        "text template: '{text}' for one language; a pair template with {src_text} "
        "{tgt_text} {src_name} {tgt_name} (e.g. SiLP's) records translation pairs",
        None,
    )
    chat_template: bool = _help("wrap the (templated) text in the tokenizer's chat template", False)
    token_span: str = _help("tokens that count for pooling and FFN stats: all, source, target", "all")
    include_special: bool = _help("count special tokens (BOS) in pooling and FFN stats", False)
    layers: tuple[int, ...] | None = _help("blocks to record (0-based); None = all", None)
    batch_tokens: int = _help("padded tokens per forward batch (memory bound)", 4096)

    def __post_init__(self) -> None:
        bad = [p for p in self.poolings if p not in POOLINGS]
        if bad or not self.poolings:
            raise ValueError(f"unknown pooling {bad}; choose from {POOLINGS}")
        if self.token_span not in TOKEN_SPANS:
            raise ValueError(f"unknown token_span {self.token_span!r}; choose from {TOKEN_SPANS}")
        if self.max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {self.max_length}")
        if self.batch_tokens < self.max_length:
            raise ValueError(f"batch_tokens ({self.batch_tokens}) must be >= max_length ({self.max_length})")
        if self.token_span != "all" and not self.is_pair_template:
            raise ValueError("token_span 'source'/'target' needs a pair template ({src_text} and {tgt_text})")
        if self.template is not None and not (self.is_pair_template or "{text}" in self.template):
            raise ValueError("template must contain '{text}' or both '{src_text}' and '{tgt_text}'")

    @property
    def is_pair_template(self) -> bool:
        """True when the template takes a source and a target sentence."""
        return self.template is not None and "{src_text}" in self.template and "{tgt_text}" in self.template


@dataclass(frozen=True)
class CorpusSpec(_Spec):
    """A corpus and the part of it to use."""

    source: str = _help("bundled name (udhr, tatoeba:sw), or a TSV/JSONL file or FLORES dir", "udhr")
    langs: tuple[str, ...] = _help("language codes", ("en", "zh", "sw", "ar", "hi", "es", "fr", "ja"))
    limit: int | None = _help("use only the first N units per language", None)

"""Frozen, typed configuration dataclasses shared by the library, the CLI and the UI.

A run's config is what its store key and manifest are made of (HOUSE_STYLE 5, 7): every
field that changes the recorded bytes lives here, and `to_dict()` is what gets hashed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from workbench.errors import ParamError

T = TypeVar("T", bound="Spec")

POOLINGS = ("mean", "last", "weighted")
TOKEN_SPANS = ("all", "source", "target")
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
"""Accepted `ModelSpec.device` values (`cuda:N` is `cuda:0`, `cuda:1`, ...)."""
DTYPES = ("auto", "float32", "bfloat16", "float16")
"""Accepted `ModelSpec.dtype` values."""
_CUDA_N = re.compile(r"cuda:[0-9]+")

#: SiLP's default translation prompt (METHODS §2).
SILP_TEMPLATE = "Translate the following sentence from {src_name} to {tgt_name}.\n{src_text}\n{tgt_text}"


def spec_field(text: str, default: Any = dataclasses.MISSING, *, choices: tuple[Any, ...] | None = None,
               **kw: Any) -> Any:
    """A dataclass field with one line of help (and its allowed values) in its metadata (peft's convention).

    `choices` is read by the CLI (`--flag` choices) and the pages (a select box), so a
    field's values are declared once.
    """
    meta: dict[str, Any] = {"help": text, **({"choices": tuple(choices)} if choices else {})}
    if default is dataclasses.MISSING:
        return field(metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


def stable_hash(obj: Any, n: int = 16) -> str:
    """Short sha256 hex digest of a JSON-serialisable object (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:n]


def _check_type(owner: str, name: str, value: Any, kind: type | tuple[type, ...], what: str) -> None:
    """ParamError naming `owner.name` unless `value` is a `kind` (True is not an integer here)."""
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ParamError(f"{owner}.{name} must be {what}, got {value!r}")


_SCALAR_NAMES = {"int": "an integer", "float": "a number", "str": "text", "bool": "true or false", "None": "null"}


def _split_top(text: str, sep: str) -> list[str]:
    """`text` split at `sep` outside brackets ("tuple[str, float] | None" -> two parts at "|")."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == sep and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [*parts, cur.strip()]


def _scalar_fits(ann: str, value: Any) -> bool:
    if ann == "None":
        return value is None
    if ann == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):  # true/false are not numbers
        return False
    kind = {"int": numbers.Integral, "float": numbers.Real, "str": str}[ann]
    return isinstance(value, kind)


def _tuple_fits(inner: str, value: Any) -> bool | None:
    if not isinstance(value, list | tuple):
        return False
    if inner.endswith(", ..."):  # tuple[X, ...]: any number of X
        found = [annotation_fits(inner[:-5], v) for v in value]
    else:  # tuple[X, Y]: exactly these
        kinds = _split_top(inner, ",")
        if len(kinds) != len(value):
            return False
        found = [annotation_fits(k, v) for k, v in zip(kinds, value)]
    return False if False in found else None if None in found else True


def annotation_fits(ann: str, value: Any) -> bool | None:
    """Whether `value` fits a spec field's annotation (as written: "int | None", "tuple[str, ...]").

    None when the annotation is not one this checker reads (an alias such as `Layer`, `Any`):
    the spec's own checks decide. Lists count as tuples (JSON has no tuples); an integer is a
    number; true/false are neither.
    """
    ann = ann.strip()
    options = _split_top(ann, "|")
    if len(options) > 1:
        found = [annotation_fits(o, value) for o in options]
        return True if True in found else None if None in found else False
    if ann in _SCALAR_NAMES:
        return _scalar_fits(ann, value)
    if ann.startswith("tuple[") and ann.endswith("]"):
        return _tuple_fits(ann[6:-1], value)
    if ann.startswith(("dict[", "Mapping[")) or ann == "dict":
        return isinstance(value, dict | Mapping)
    return None


def _described(ann: str) -> str:
    options = [o for o in _split_top(ann.strip(), "|") if o != "None"]
    text = " or ".join(_SCALAR_NAMES.get(o, "a list" if o.startswith("tuple[") else "an object"
                                         if o.startswith("dict") else o) for o in options)
    return text + (" (or null)" if "None" in _split_top(ann.strip(), "|") else "")


def check_field_values(cls: type[Any], values: Mapping[str, Any]) -> None:
    """Raise `ParamError` naming `Class.field` for every value that does not fit its field's type.

    The one type check of spec values before use, whichever door they come in by
    (`--set FIELD=VALUE`, a manifest, a figure set, a job's config); `Spec.from_dict` and
    the analyses' `params_for` call it. Unknown names are left to the caller.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    bad = [f"{cls.__name__}.{k} must be {_described(str(fields[k].type))}, got {v!r}"
           for k, v in values.items() if k in fields and annotation_fits(str(fields[k].type), v) is False]
    if bad:
        raise ParamError("; ".join(bad))


@dataclass(frozen=True)
class Spec:
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
        """Inverse of `to_dict`; unknown keys and values of the wrong type raise a clear error (`ParamError`)."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(d) - set(names)
        if unknown:
            raise ParamError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}; known: {sorted(names)}")
        check_field_values(cls, d)
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kw)

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> one-line help."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


@dataclass(frozen=True)
class ModelSpec(Spec):
    """Which model to load and how."""

    source: str = spec_field(
        "bundled name (gemma-3-270m, smollm2-135m, qwen2.5-coder-0.5b), a hub id, a local HF "
        "directory or a .gguf file",
        "gemma-3-270m",
    )
    revision: str | None = spec_field("hub revision (branch, tag or commit); hub ids only", None)
    device: str = spec_field("'auto' (CUDA if present, else CPU), 'cpu', 'cuda', 'cuda:1', ...", "auto")
    dtype: str = spec_field("'auto' (bf16 on CUDA, fp32 on CPU), 'float32', 'bfloat16', 'float16'", "auto")
    trust_remote_code: bool = spec_field("allow custom model code from the hub (off by default)", False)
    artifact: str | None = spec_field("fine-tune artifact directory applied on top of the base", None)
    inference: tuple[tuple[str, Any], ...] = spec_field(
        "options handed to the artifact's inference kind as (key, value) pairs, e.g. (('decide', 'argmax'),) for a "
        "CC-Tuning state; checked by the kind (`models.hooks`); () = the kind's defaults. Not part of the "
        "fingerprint (recordings do not run them); part of every evaluation's store key", ())
    interventions: tuple[InterventionSpec, ...] = spec_field(
        "forward-time interventions on the state (METHODS §10: neurons, language vectors, subspace), applied in "
        "order; part of the fingerprint; () = none", ())

    def __post_init__(self) -> None:
        _check_type("ModelSpec", "source", self.source, str, "a model name, hub id or path")
        object.__setattr__(self, "inference", _options("ModelSpec.inference (--inference)", self.inference))
        object.__setattr__(self, "interventions", _interventions(self.interventions))
        if not self.source.strip():
            raise ParamError("ModelSpec.source (--model) is empty: give a bundled name, a hub id or a local path")
        _check_type("ModelSpec", "device", self.device, str, f"one of {', '.join(DEVICES)}")
        if self.device not in DEVICES and not _CUDA_N.fullmatch(self.device):
            raise ParamError(f"ModelSpec.device (--device): unknown device {self.device!r}; "
                             f"choose from {', '.join(DEVICES)}")
        _check_type("ModelSpec", "dtype", self.dtype, str, f"one of {', '.join(DTYPES)}")
        if self.dtype not in DTYPES:
            raise ParamError(f"ModelSpec.dtype (--dtype): unknown dtype {self.dtype!r}; "
                             f"choose from {', '.join(DTYPES)}")
        _check_type("ModelSpec", "trust_remote_code", self.trust_remote_code, bool, "true or false")
        for name in ("revision", "artifact"):
            value = getattr(self, name)
            if value is not None:
                _check_type("ModelSpec", name, value, str, "a string or None")


    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict; `inference` only when set, so a state without options keeps its dicts and keys."""
        d = super().to_dict()
        if not self.inference:
            d.pop("inference")
        else:
            d["inference"] = [list(kv) for kv in self.inference]
        if not self.interventions:  # omitted when empty: existing dicts, store keys and manifests unchanged
            d.pop("interventions")
        else:
            d["interventions"] = [iv.to_dict() for iv in self.interventions]
        return d


_SCALARS = (str, int, float, bool, type(None))


def _options(name: str, value: Any) -> tuple[tuple[str, Any], ...]:
    """(key, value) options as a sorted tuple of pairs (from pairs, lists or a dict); keys once, scalar values."""
    items = list(value.items()) if isinstance(value, dict) else list(value or ())
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], str) or not item[0]:
            raise ParamError(f"{name} takes KEY=VALUE pairs, got {item!r}")
        key, val = item
        if key in out:
            raise ParamError(f"{name} gives {key!r} twice")
        if not isinstance(val, _SCALARS):
            raise ParamError(f"{name}: {key} must be a number, a string, true/false or null, got {val!r}")
        out[key] = val
    return tuple(sorted(out.items()))


INTERVENTION_KINDS = ("neurons", "vector", "subspace")
"""The intervention kinds (`models.interventions.KINDS` registers one module each)."""
_POSITIONS = re.compile(r"all|last|from:[0-9]+")
_HASH = re.compile(r"[0-9a-f]{16,64}")


@dataclass(frozen=True)
class InterventionSpec(Spec):
    """One forward-time intervention of a model state (METHODS §10); frozen and hashable.

    Concrete (`file` set, or a kind that needs no tensors): `models.load` applies it. Its
    tensors (neuron indices and values, vectors, bases) live in one content-addressed file
    `<cache>/interventions/<file>.safetensors`, named by the hash of its bytes, so the spec
    (and the state's fingerprint) changes exactly when they do. `source` says where they
    came from (a recording key and the analysis parameters that chose them, or a user file)
    and is kept for provenance; an unresolved request (from `--intervention`) has a
    `source` and no `file` until `workbench.interventions.resolve_spec` resolves it.
    """

    kind: str = spec_field("neurons, vector or subspace", "neurons", choices=INTERVENTION_KINDS)
    layers: tuple[int, ...] | None = spec_field("blocks it acts on (0-based); None = every block its file has", None)
    positions: str = spec_field("'all', 'last' (the last position of each forward call) or 'from:K' (absolute "
                                "positions >= K)", "all")
    strength: float = spec_field("how far it goes (0 = no change): neurons: A moves this share of the way to its "
                                 "target (1: exactly 0, the mean, or factor*A); vector: alpha (on v_src); subspace: "
                                 "the share of the component removed or swapped (1 = METHODS' formula)", 1.0)
    options: tuple[tuple[str, Any], ...] = spec_field(
        "kind options as (key, value) pairs: neurons mode=zero|mean|scale; vector beta, norm; subspace mode="
        "remove|swap", ())
    file: str | None = spec_field("content hash of its tensor file under <cache>/interventions (None: unresolved)",
                                  None)
    source: tuple[tuple[str, Any], ...] = spec_field(
        "where its tensors came from (provenance): e.g. lang, recording key, LAPE parameters, or a user file", ())

    def __post_init__(self) -> None:
        _check_type("InterventionSpec", "kind", self.kind, str, f"one of {', '.join(INTERVENTION_KINDS)}")
        if self.kind not in INTERVENTION_KINDS:
            raise ParamError(f"InterventionSpec.kind: unknown intervention {self.kind!r}; choose from "
                             f"{', '.join(INTERVENTION_KINDS)}")
        if self.layers is not None:
            bad = [x for x in self.layers if isinstance(x, bool) or not isinstance(x, int) or x < 0]
            if bad or not self.layers or len(set(self.layers)) != len(self.layers):
                raise ParamError(f"InterventionSpec.layers must be distinct block indices >= 0, got "
                                 f"{list(self.layers)}")
            object.__setattr__(self, "layers", tuple(sorted(self.layers)))
        if not isinstance(self.positions, str) or not _POSITIONS.fullmatch(self.positions):
            raise ParamError(f"InterventionSpec.positions must be 'all', 'last' or 'from:K', got {self.positions!r}")
        if isinstance(self.strength, bool) or not isinstance(self.strength, int | float):
            raise ParamError(f"InterventionSpec.strength must be a number, got {self.strength!r}")
        object.__setattr__(self, "strength", float(self.strength))
        object.__setattr__(self, "options", _options("InterventionSpec.options", self.options))
        object.__setattr__(self, "source", _options("InterventionSpec.source", self.source))
        if self.file is not None and (not isinstance(self.file, str) or not _HASH.fullmatch(self.file)):
            raise ParamError(f"InterventionSpec.file must be a content hash (hex), got {self.file!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict (pairs as lists)."""
        d = super().to_dict()
        d["options"] = [list(kv) for kv in self.options]
        d["source"] = [list(kv) for kv in self.source]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InterventionSpec:
        """Inverse of `to_dict` (pairs from lists or a dict)."""
        d = dict(d)
        for k in ("options", "source"):
            if isinstance(d.get(k), dict):
                d[k] = list(d[k].items())
            if k in d:
                d[k] = [tuple(kv) if isinstance(kv, list) else kv for kv in d[k]]
        return super().from_dict(d)

    @property
    def resolved(self) -> bool:
        """True when `models.load` can apply it (its tensors are in a file)."""
        return self.file is not None

    def option(self, key: str, default: Any = None) -> Any:
        """One kind option (`options`), or `default`."""
        return dict(self.options).get(key, default)


def _interventions(value: Any) -> tuple[InterventionSpec, ...]:
    """ModelSpec.interventions as a tuple of InterventionSpec (from specs or their dicts)."""
    if isinstance(value, InterventionSpec | dict):
        value = (value,)
    if not isinstance(value, tuple | list):
        raise ParamError(f"ModelSpec.interventions must be a list of interventions, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, dict):
            v = InterventionSpec.from_dict(v)
        if not isinstance(v, InterventionSpec):
            raise ParamError(f"ModelSpec.interventions: not an intervention: {v!r}")
        out.append(v)
    return tuple(out)


@dataclass(frozen=True)
class RecordSpec(Spec):
    """What to record in one pass over a corpus. Every field changes the stored bytes."""

    FORMAT_VERSION: ClassVar[int] = 1

    poolings: tuple[str, ...] = spec_field("sentence poolings to keep: mean, last, weighted", POOLINGS)
    embeddings: bool = spec_field("also record the embedding output (layer 'emb')", True)
    final_norm: bool = spec_field("also record the post-final-norm output of the last block as layer 'final'", False)
    ffn_stats: bool = spec_field("record FFN neuron statistics (overlap counts, SiLP means)", True)
    max_length: int = spec_field("truncate inputs to this many tokens", 256)
    template: str | None = spec_field(
        "text template: '{text}' for one language; a pair template with {src_text} "
        "{tgt_text} {src_name} {tgt_name} (e.g. SiLP's) records translation pairs",
        None,
    )
    chat_template: bool = spec_field("wrap the (templated) text in the tokenizer's chat template", False)
    token_span: str = spec_field("tokens that count for pooling and FFN stats: all, source, target", "all")
    include_special: bool = spec_field("count special tokens (BOS) in pooling and FFN stats", False)
    layers: tuple[int, ...] | None = spec_field("blocks to record (0-based); None = all", None)
    batch_tokens: int = spec_field("padded tokens per forward batch (memory bound; batching is not part of the "
                              "store key)", 4096)

    def __post_init__(self) -> None:
        self._check_poolings_and_span()
        for name in ("embeddings", "ffn_stats", "chat_template", "include_special"):
            _check_type("RecordSpec", name, getattr(self, name), bool, "true or false")
        for name in ("max_length", "batch_tokens"):
            _check_type("RecordSpec", name, getattr(self, name), int, "an integer")
        if self.max_length < 2:
            raise ParamError(f"RecordSpec.max_length (--max-length) must be >= 2 tokens, got {self.max_length}")
        if self.batch_tokens < self.max_length:
            raise ParamError(f"RecordSpec.batch_tokens (--batch-tokens) must be >= max_length ({self.max_length}), "
                             f"got {self.batch_tokens}")
        if self.template is not None:
            _check_type("RecordSpec", "template", self.template, str, "a text template or None")
            if not (self.is_pair_template or "{text}" in self.template):
                raise ParamError("RecordSpec.template (--template) must contain '{text}' or both '{src_text}' "
                                 "and '{tgt_text}'")
        if self.token_span != "all" and not self.is_pair_template:
            raise ParamError(f"RecordSpec.token_span (--token-span) {self.token_span!r} needs a pair template "
                             "({src_text} and {tgt_text})")
        self._check_layers()

    def _check_layers(self) -> None:
        if self.layers is None:
            return
        _check_type("RecordSpec", "layers", self.layers, tuple, "a tuple of block indices or None")
        bad = [x for x in self.layers if isinstance(x, bool) or not isinstance(x, int) or x < 0]
        if bad or not (self.layers or self.final_norm):  # () with final_norm: only the post-norm top layer
            raise ParamError(f"RecordSpec.layers (--layers) must be block indices >= 0, got {list(self.layers)}")
        if len(set(self.layers)) != len(self.layers):
            raise ParamError(f"RecordSpec.layers (--layers) lists a block twice: {list(self.layers)}")

    def _check_poolings_and_span(self) -> None:
        _check_type("RecordSpec", "poolings", self.poolings, tuple, f"a tuple of {', '.join(POOLINGS)}")
        if not self.poolings:
            raise ParamError(f"RecordSpec.poolings (--poolings) is empty; choose from {', '.join(POOLINGS)}")
        bad = [p for p in self.poolings if p not in POOLINGS]
        if bad:
            raise ParamError(f"RecordSpec.poolings (--poolings): unknown pooling {', '.join(map(repr, bad))}; "
                             f"choose from {', '.join(POOLINGS)}")
        if len(set(self.poolings)) != len(self.poolings):
            raise ParamError(f"RecordSpec.poolings (--poolings) lists a pooling twice: {list(self.poolings)}")
        if self.token_span not in TOKEN_SPANS:
            raise ParamError(f"RecordSpec.token_span (--token-span): unknown span {self.token_span!r}; "
                             f"choose from {', '.join(TOKEN_SPANS)}")

    @property
    def is_pair_template(self) -> bool:
        """True when the template takes a source and a target sentence."""
        return self.template is not None and "{src_text}" in self.template and "{tgt_text}" in self.template


@dataclass(frozen=True)
class CorpusSpec(Spec):
    """A corpus and the part of it to use."""

    source: str = spec_field("bundled name (udhr, tatoeba:sw), or a TSV/JSONL file or FLORES dir", "udhr")
    langs: tuple[str, ...] = spec_field("language codes", ("en", "zh", "sw", "ar", "hi", "es", "fr", "ja"))
    limit: int | None = spec_field("use only the first N units per language", None)

    def __post_init__(self) -> None:
        _check_type("CorpusSpec", "source", self.source, str, "a corpus name or path")
        if not self.source.strip():
            raise ParamError("CorpusSpec.source (--corpus) is empty: give a bundled name or a file")
        _check_type("CorpusSpec", "langs", self.langs, tuple, "a tuple of language codes")
        if not self.langs:
            raise ParamError("CorpusSpec.langs (--langs) is empty: give at least one language code")
        bad = [x for x in self.langs if not isinstance(x, str) or not x.strip()]
        if bad:
            raise ParamError(f"CorpusSpec.langs (--langs) must be non-empty language codes, got {list(self.langs)}")
        twice = sorted({x for x in self.langs if self.langs.count(x) > 1})
        if twice:
            raise ParamError(f"CorpusSpec.langs (--langs) lists {', '.join(map(repr, twice))} twice; list each "
                             "language once (a translation direction needs two different languages)")
        if self.limit is not None:
            _check_type("CorpusSpec", "limit", self.limit, int, "a whole number or None")
            if self.limit < 1:
                raise ParamError(f"CorpusSpec.limit (--limit) must be at least 1 unit per language (or None for "
                                 f"all), got {self.limit}")

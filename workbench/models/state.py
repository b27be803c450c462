"""Model states: the ONE way to load one (base or base + artifact), and its fingerprint.

A model state = a base model + an optional fine-tune artifact, in a dtype on a device.
`load(spec)` is memoised per process (the CLI, a notebook, the UI's threads and the job
workers all share one read-only copy per spec); `fingerprint(spec)` says what a loaded
state's fingerprint will be without loading weights, and is the one definition:

    <base files hash>[+<artifact files hash>][+iv<interventions hash>]-<dtype>

It is part of every store key, so a state's recordings and evaluations never mix with
another's.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from workbench.config import ModelSpec
from workbench.errors import ModelError
from workbench.models.architectures import ArchEntry, architecture_for, get_path
from workbench.models.artifacts import apply_artifact, artifact_fingerprint, delta_names, read_manifest
from workbench.models.hooks import Inference, Plain, describe_inference, inference_for_artifact
from workbench.models.integrity import tensor_fingerprint
from workbench.models.interventions import digest as interventions_digest
from workbench.models.interventions import install as install_interventions
from workbench.models.sources import BUNDLED, PreparedModel, bundled_status, prepare
from workbench.models.tiny import build_tiny, is_tiny, parse_tiny, tiny_name

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class ModelState:
    """A loaded, read-only model: HF model + tokenizer + architecture entry + fingerprint + inference.

    `fingerprint` identifies the weights (base plus any fine-tune artifact) and the dtype,
    and is part of every store key. `inference` is how every door runs it (`models.hooks`).
    Never mutate `model`: copy it to train.
    """

    name: str
    model: Any
    tokenizer: Any
    arch: ArchEntry
    fingerprint: str
    spec: ModelSpec
    inference: Inference = field(default_factory=Plain)  # what it does at inference (an artifact's kind)

    @property
    def blocks(self) -> Any:
        """The ModuleList of decoder blocks."""
        return get_path(self.model, self.arch.layers)

    @property
    def n_layers(self) -> int:
        """Number of decoder blocks L."""
        return len(self.blocks)

    @property
    def d_model(self) -> int:
        """Residual width d."""
        return int(self.model.get_input_embeddings().weight.shape[1])

    @property
    def n_neurons(self) -> int:
        """FFN intermediate size M."""
        cfg = self.model.config
        # GPT-2 `n_inner`, XGLM `ffn_dim`; GPT-2 and BLOOM default to 4d (`hidden_size` aliases `n_embd`)
        return int(getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None)
                   or getattr(cfg, "ffn_dim", None) or 4 * cfg.hidden_size)

    @property
    def device(self) -> Any:
        """Device of the input embeddings."""
        return self.model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> Any:
        """Parameter dtype."""
        return self.model.get_input_embeddings().weight.dtype


def resolve_device(device: str = "auto", dtype: str = "auto") -> tuple[str, torch.dtype]:
    """('cuda'|'cpu'|..., torch dtype) for the spec's device and dtype ('auto' rules).

    Raises:
        ModelError: an unknown or unavailable device, or an unknown dtype.
    """
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    kind, _, index = dev.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise ModelError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} asked for but no CUDA GPU is available; use --device cpu")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ModelError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ModelError(f"device {device!r} asked for but MPS is not available; use --device cpu")
    if dtype == "auto":
        return dev, torch.bfloat16 if kind == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return dev, getattr(torch, dtype)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _prepare_tokenizer(tok: Any) -> Any:
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def state_from_model(model: Any, tokenizer: Any, *, name: str = "in-memory", spec: ModelSpec | None = None,
                     fingerprint: str | None = None) -> ModelState:
    """Wrap an already-built HF causal LM (a model built in code, a trained copy) as a ModelState."""
    model.eval()
    model.requires_grad_(False)
    fp = fingerprint or tensor_fingerprint(model, tokenizer)
    return ModelState(name, model, _prepare_tokenizer(tokenizer), architecture_for(model), fp,
                      spec or ModelSpec(source=name))


# --------------------------------------------------------------------------- fingerprints

_TINY_FP: dict[str, str] = {}
_LOCK = threading.RLock()


def normalize(spec: ModelSpec | str) -> ModelSpec:
    """The canonical spec of a state: device and dtype resolved, tiny names canonical."""
    spec = ModelSpec(source=spec) if isinstance(spec, str) else spec
    if is_tiny(spec.source):  # built in code, always on the CPU in fp32
        return dataclasses.replace(spec, source=tiny_name(*parse_tiny(spec.source)), device="cpu",
                                   dtype="float32")
    dev, dtype = resolve_device(spec.device, spec.dtype)
    return dataclasses.replace(spec, device=dev, dtype=_dtype_name(dtype))


def _base_fingerprint(spec: ModelSpec, prep: PreparedModel | None) -> str:
    if is_tiny(spec.source):
        with _LOCK:
            if spec.source not in _TINY_FP:
                _TINY_FP[spec.source] = tensor_fingerprint(*build_tiny(spec.source))
            return _TINY_FP[spec.source]
    return (prep or prepare(spec)).fingerprint


def fingerprint(spec: ModelSpec | str, *, prep: PreparedModel | None = None, download: bool = True) -> str | None:
    """The fingerprint a loaded state of `spec` has, without loading its weights.

    `<base>[+<artifact>]-<dtype>`. With `download=False`, returns None where knowing it
    would need a download (a hub id not yet fetched) or a conversion (a bundled model not
    yet converted): cheap enough for a page to call on every rerun.
    """
    spec = normalize(spec)
    if not download and not is_tiny(spec.source):
        if spec.source in BUNDLED and bundled_status(spec.source) not in ("ready", "modified"):
            return None
        if spec.source not in BUNDLED and not Path(spec.source).expanduser().exists():
            return None
    fp = _base_fingerprint(spec, prep)
    if spec.artifact:
        fp = artifact_fingerprint(Path(spec.artifact), fp)
    if spec.interventions:
        fp = f"{fp}+iv{interventions_digest(spec.interventions)}"
    return f"{fp}-{spec.dtype}"


# --------------------------------------------------------------------------- loading

_STATES: OrderedDict[ModelSpec, ModelState] = OrderedDict()  # least recently used first
_LOADING: dict[ModelSpec, threading.Lock] = {}
_BUDGET: list[int | None] = [None]  # bytes of loaded weights to keep (None: no limit, the CLI's default)


def set_memory_budget(nbytes: int | None) -> None:
    """Keep at most `nbytes` of loaded weights: least recently used states are dropped first (None: no limit).

    The app's model worker sets it from its settings; a state in use by a caller stays
    alive for that caller (dropping only forgets it here), and the state loaded last is
    always kept, whatever its size.
    """
    _BUDGET[0] = nbytes
    with _LOCK:
        _evict(keep=None)


def memory_in_use() -> int:
    """Bytes of the loaded states' weights and buffers, each shared tensor counted once."""
    with _LOCK:
        return _weights_bytes(list(_STATES.values()))


def _weights_bytes(states: list[ModelState]) -> int:
    seen: set[int] = set()
    total = 0
    for st in states:
        for t in (*st.model.parameters(), *st.model.buffers()):
            if t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
    return total


def _evict(keep: ModelSpec | None) -> None:
    budget = _BUDGET[0]
    if budget is None:
        return
    while len(_STATES) > 1 and _weights_bytes(list(_STATES.values())) > budget:
        victim = next((k for k in _STATES if k != keep), None)
        if victim is None:
            return
        log.info("memory budget: dropping %s", victim.source)
        del _STATES[victim]


def loaded_states() -> list[ModelSpec]:
    """The memoised states, least recently used first."""
    with _LOCK:
        return list(_STATES)


def _load_base(spec: ModelSpec, progress: Callable[[str], None] | None) -> ModelState:
    if is_tiny(spec.source):
        model, tok = build_tiny(spec.source)
        return state_from_model(model, tok, name=spec.source, spec=spec, fingerprint=fingerprint(spec))
    hf_logging.disable_progress_bar()  # progress is ours to report, not transformers'
    prep = prepare(spec, progress=progress)
    dev, dtype = resolve_device(spec.device, spec.dtype)
    if progress:
        progress(f"loading {prep.name} on {dev} ({_dtype_name(dtype)})")
    kw: dict[str, Any] = {"dtype": dtype, "trust_remote_code": spec.trust_remote_code}
    if dev.startswith("cuda"):
        kw["device_map"] = "auto" if dev == "cuda" else dev  # accelerate spreads a large model over the GPUs
    try:
        model = AutoModelForCausalLM.from_pretrained(str(prep.path), **kw)
        tok = AutoTokenizer.from_pretrained(str(prep.path), trust_remote_code=spec.trust_remote_code)
    except ValueError as e:
        if "trust_remote_code" in str(e):
            raise ModelError(f"{prep.name} needs custom code; enable trust_remote_code if you trust it") from e
        raise ModelError(f"could not load {prep.name} from {prep.path}: {e}") from e
    except (OSError, RuntimeError, KeyError, SafetensorError) as e:  # truncated or garbage weight files
        raise ModelError(f"could not load {prep.name} from {prep.path}: a weight or tokenizer file is damaged "
                         f"or incomplete ({type(e).__name__}: {str(e)[:200]})" + (
                             f"; repair with `workbench models prepare --force {spec.source}`"
                             if spec.source in BUNDLED else "")) from e
    if not dev.startswith("cuda"):
        model.to(dev)  # type: ignore[arg-type]  # transformers types `.to` through a decorator stub
    return state_from_model(model, tok, name=prep.name, spec=spec, fingerprint=f"{prep.fingerprint}-{spec.dtype}")


def tuned_fingerprint(base_fingerprint: str, path: str | Path) -> str:
    """`<base>+<artifact>-<dtype>` from a base state's fingerprint `<base>-<dtype>`."""
    head, sep, dtype = base_fingerprint.rpartition("-")
    if sep and dtype in DTYPES:
        return f"{artifact_fingerprint(Path(path), head)}-{dtype}"
    return artifact_fingerprint(Path(path), base_fingerprint)


def with_artifact(base: ModelState, path: str | Path, options: tuple[tuple[str, Any], ...] = ()) -> ModelState:
    """A new state: `base.model` with the artifact in `path` applied to a copy (base untouched).

    The copy shares every parameter the artifact does not change with the base (states are
    read-only), so a tuned state costs only its changed tensors. Its `inference` is the kind
    the artifact's manifest names (`models.hooks`), with `options` (`ModelSpec.inference`).
    """
    p = Path(path)
    changed = set(delta_names(p))
    shared = {id(t): t for n, t in base.model.named_parameters() if n not in changed}
    model = copy.deepcopy(base.model, shared)  # the memo maps each unchanged parameter to itself
    manifest = apply_artifact(model, p, base_fingerprint=base.fingerprint)
    fp = tuned_fingerprint(base.fingerprint, p)
    state = state_from_model(model, base.tokenizer, name=f"{base.name}+{p.name}",
                             spec=dataclasses.replace(base.spec, artifact=str(p), inference=options), fingerprint=fp)
    return dataclasses.replace(state, inference=inference_for_artifact(p, manifest, state, options))


def with_interventions(base: ModelState, spec: ModelSpec) -> ModelState:
    """A new state: a copy of `base.model` sharing ALL its parameters and buffers, with `spec.interventions` hooked.

    The hooks (`models.interventions.install`) sit on the copy only, so the base state runs
    unchanged beside it; the copy costs no weight memory. `spec` is the intervened spec
    (base's plus its interventions); its fingerprint is `fingerprint(spec)`.
    """
    tensors = [*base.model.parameters(), *base.model.buffers()]
    model = copy.deepcopy(base.model, {id(t): t for t in tensors})  # the memo maps each tensor to itself
    install_interventions(model, base.arch, spec.interventions)
    head, sep, dtype = base.fingerprint.rpartition("-")
    fp = f"{head}+iv{interventions_digest(spec.interventions)}-{dtype}" if sep else (
        f"{base.fingerprint}+iv{interventions_digest(spec.interventions)}")
    return dataclasses.replace(base, model=model, name=f"{base.name}+interventions", fingerprint=fp, spec=spec)


def _with_options(shared: ModelState, spec: ModelSpec) -> ModelState:
    """The tuned state `shared` with other inference options: the same weights (one copy), its own `inference`."""
    path = Path(str(spec.artifact))
    inference = inference_for_artifact(path, read_manifest(path), shared, spec.inference)
    return dataclasses.replace(shared, spec=spec, inference=inference)


def load(spec: ModelSpec | str, *, progress: Callable[[str], None] | None = None, fresh: bool = False) -> ModelState:
    """The loaded state of `spec` (memoised per process; thread-safe; never mutate it).

    A state with an artifact is its (memoised) base with the artifact applied to a copy.
    `fresh=True` returns a new, unshared copy instead (for code that trains in place). With a
    memory budget (`set_memory_budget`), least recently used states are dropped past it.

    Raises:
        ModelError / ArtifactError: with what to do (damaged files, missing packages, ...).
    """
    spec = normalize(spec)
    if fresh:
        shared = load(spec, progress=progress)
        return dataclasses.replace(shared, model=copy.deepcopy(shared.model))
    with _LOCK:
        if spec in _STATES:
            _STATES.move_to_end(spec)
            return _STATES[spec]
        lock = _LOADING.setdefault(spec, threading.Lock())
    with lock:  # one loader per spec; others wait and share its result
        with _LOCK:
            if spec in _STATES:
                return _STATES[spec]
        if spec.interventions:  # hooks on a copy of the (memoised) state without them
            interventions_digest(spec.interventions)  # an unresolved or bad one: one line, nothing loaded
            state = with_interventions(load(dataclasses.replace(spec, interventions=()), progress=progress), spec)
        elif spec.artifact and spec.inference:  # inference options do not change the weights: share them
            state = _with_options(load(dataclasses.replace(spec, inference=()), progress=progress), spec)
        elif spec.artifact:
            state = with_artifact(load(dataclasses.replace(spec, artifact=None), progress=progress), spec.artifact)
        else:
            describe_inference(None, spec.inference)  # a base takes no options: one clear line, nothing loaded
            state = _load_base(spec, progress)
        with _LOCK:
            _STATES[spec] = state
            _evict(keep=spec)
    return state


def forget(spec: ModelSpec | str | None = None) -> None:
    """Drop one memoised state (or all): the next `load` reads the files again."""
    with _LOCK:
        if spec is None:
            _STATES.clear()
        else:
            _STATES.pop(normalize(spec), None)


def same_base(a: ModelSpec, b: ModelSpec) -> bool:
    """True when two states share their base model."""
    return (normalize(a).source, a.revision) == (normalize(b).source, b.revision)

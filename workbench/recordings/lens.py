"""The one home of "give me this lens readout": store first, per-key locks, then `tracing.lens_readout`.

A `LensRequest` names everything a readout's numbers depend on besides the model state:
the prompts (their text: the template is part of it), how they were made (`about`: the
prompt kind, language pair, word list or corpus hash), the named token sets whose mass is
kept, the `LensSpec` (positions, top-k, embeddings, length limit, special tokens) and the
lens (``"logit"`` or a tuned-lens id). Its store key (`lens_key`) is a hash of all of it,
the model state's fingerprint (weights, tokenizer, artifact, dtype) and the format
versions; how prompts are batched is not part of it (it changes no number).

`ensure_lens` returns the stored readout or computes it (the model loaded only then) and
stores it atomically, holding the key's lock meanwhile so that two processes never compute
it twice; `stored_lens` only looks (never loads a model, converts or downloads);
`start_lens` is the same work as a background job: the app's warm model worker (`lens_job`,
its job kind ``"lens"``) by default, or a thread of a `jobs.threads.ThreadRegistry`.

A request with a `lenses.PatchSpec` (`patch`) is a cross-lingual patching readout
(`tracing.patching.patch_readout`: the prompts are the target runs, one "layer" per patched
layer); the same store, locks and jobs serve it, its key holding the patch spec.

What is stored is what views need (`lenses.LensReadout`): per (prompt, position) read and
layer the top-k ids and probabilities, entropy, KL to the final layer and the mass of each
token set — never a [layer × position × vocabulary] tensor.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from transformers import AutoTokenizer

from workbench import models
from workbench.config import ModelSpec, stable_hash
from workbench.errors import ParamError
from workbench.jobs.threads import ThreadRegistry
from workbench.jobs.warm import WARM
from workbench.lenses import LensReadout, LensSpec, PatchSpec
from workbench.lenses.artifacts import LOGIT, check_lens, lens_label, load_lens
from workbench.models import ModelState
from workbench.paths import cache_root
from workbench.progress import Progress, StatusFn, StopFn
from workbench.recordings.ensure import load_in_job
from workbench.store import Entry, Store, make_key
from workbench.tracing.lens import lens_readout
from workbench.tracing.patching import patch_readout

__all__ = ["LENS_FORMAT", "LensRequest", "StoredLens", "ensure_lens", "lens_job", "lens_job_args", "lens_job_key",
           "lens_key", "lens_work", "start_lens", "stored_lens", "tokenizer_for"]

LENS_FORMAT = 1
"""Version of a lens entry's arrays and manifest (part of the key)."""

TokenSets = tuple[tuple[str, tuple[int, ...]], ...]


@dataclass(frozen=True)
class LensRequest:
    """One lens readout: prompts, token sets, what to keep and with which lens (all in the store key)."""

    prompts: tuple[str, ...]
    token_sets: TokenSets = ()
    spec: LensSpec = field(default_factory=LensSpec)
    lens: str = LOGIT  # "logit" or a tuned-lens id (`lenses.artifacts`)
    about: Mapping[str, Any] = field(default_factory=dict)  # how the prompts were made (kind, pair, data hash)
    patch: PatchSpec | None = None  # a patching readout: the prompts are its target runs

    def __post_init__(self) -> None:
        if not self.prompts or not all(isinstance(p, str) and p for p in self.prompts):
            raise ParamError("a lens readout needs at least one prompt, each a non-empty string")
        names = [n for n, _ in self.token_sets]
        if len(set(names)) != len(names):
            raise ParamError("token set names must be distinct")
        lens_label(self.lens)  # a malformed lens value fails here, before any look-up
        if self.patch is not None and self.lens != LOGIT:
            raise ParamError("a patching readout reads the model's own output; its lens must be 'logit'")

    def key_parts(self) -> dict[str, Any]:
        """Everything of the request that goes into the store key."""
        return {"prompts": stable_hash(list(self.prompts), n=32), "n_prompts": len(self.prompts),
                "token_sets": stable_hash([[n, [int(i) for i in ids]] for n, ids in self.token_sets], n=32),
                "spec": self.spec.to_dict(), "lens": lens_label(self.lens), "about": dict(self.about),
                # only when set: the keys of plain readouts stay what they were
                **({} if self.patch is None else {"patch": stable_hash(self.patch.to_dict(), n=32),
                                                  "patch_format": PatchSpec.FORMAT_VERSION})}


@dataclass(frozen=True)
class StoredLens:
    """A readout and the store entry it was read from (its key and manifest go into figure provenance)."""

    readout: LensReadout
    entry: Entry

    @property
    def key(self) -> str:
        """The store key."""
        return self.entry.key


def lens_key(fingerprint: str, request: LensRequest) -> str:
    """Store key of a readout: model state, request (prompts, sets, spec, lens, about), format versions."""
    return make_key({"kind": "lens", "format": LENS_FORMAT, "lens_spec": LensSpec.FORMAT_VERSION,
                     "model": fingerprint, **request.key_parts(), "batching": "excluded",
                     "transformers": transformers.__version__.split(".")[:2]})


def _arrays(r: LensReadout, names: list[str]) -> dict[str, np.ndarray]:
    u, ly = r.entropy.shape
    mass = np.stack([r.set_mass[n] for n in names], axis=-1) if names else np.zeros((u, ly, 0), np.float32)
    return {"prompt": r.prompt, "position": r.position, "token": r.token, "top_ids": r.top_ids,
            "top_probs": r.top_probs, "entropy": r.entropy, "kl_to_final": r.kl_to_final,
            "set_mass": mass.astype(np.float32)}


def _readout(entry: Entry) -> LensReadout:
    m = entry.manifest
    mass = np.asarray(entry["set_mass"])
    core = {k: np.asarray(entry[k]) for k in ("prompt", "position", "token", "top_ids", "top_probs", "entropy",
                                               "kl_to_final")}
    return LensReadout(tuple(m["layer_labels"]), set_mass={n: mass[:, :, i] for i, n in enumerate(m["set_names"])},
                       lens=m["lens"], **core)


def _manifest(state: ModelState, request: LensRequest, readout: LensReadout, seconds: float) -> dict[str, Any]:
    about = dict(request.about)
    return {"kind": "lens", "format": LENS_FORMAT, "model_name": state.name, "model_fingerprint": state.fingerprint,
            "corpus_name": str(about.get("data", "prompts")), "unit": str(about.get("unit", "")),
            "n_units": len(request.prompts), "layer_labels": list(readout.layer_labels),
            "set_names": [n for n, _ in request.token_sets], "lens": readout.lens, "spec": request.spec.to_dict(),
            "about": about, "seconds": round(seconds, 3),
            **({} if request.patch is None else {"patch": {"variant": request.patch.variant,
                                                           "target_offsets": list(request.patch.target_offsets),
                                                           "n_sources": [len(x) for x in request.patch.sources]}}),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}


def _compute(state: ModelState, request: LensRequest, batch_tokens: int, progress: Progress | None,
             should_stop: StopFn | None) -> LensReadout:
    sets = {n: list(ids) for n, ids in request.token_sets}
    if request.patch is not None:
        return patch_readout(state, list(request.prompts), request.patch, request.spec, token_sets=sets,
                             progress=progress, should_stop=should_stop)
    translator = None if request.lens == LOGIT else load_lens(request.lens, state)
    return lens_readout(state, list(request.prompts), request.spec, token_sets=sets, translator=translator,
                        batch_tokens=batch_tokens, progress=progress, should_stop=should_stop)


def _lookup(store: Store, key: str) -> StoredLens | None:
    entry = store.get(key)
    return None if entry is None else StoredLens(_readout(entry), entry)


def stored_lens(model: ModelSpec, request: LensRequest, *, store: Store | None = None) -> StoredLens | None:
    """The stored readout of `request` on `model`, or None; never loads a model, converts or downloads.

    Raises:
        ArtifactError: the request's tuned lens does not exist or belongs to another base state.
    """
    fp = models.fingerprint(model, download=False)
    if fp is None:
        return None
    check_lens(request.lens, fp)
    return _lookup(store or Store(), lens_key(fp, request))


def ensure_lens(model: ModelSpec, request: LensRequest, *, store: Store | None = None,
                progress: Progress | None = None, status: StatusFn | None = None, state: ModelState | None = None,
                should_stop: StopFn | None = None, batch_tokens: int = 4096) -> StoredLens:
    """The readout of `request` on `model`: from the store, else computed (the model loaded only then) and stored.

    Args:
        model: the model state.
        request: prompts, token sets, spec and lens.
        store: the store (default: the cache's).
        progress: `progress(prompts done, prompts, message)` while reading.
        status: one-line messages (loading, found in the store).
        state: an already loaded state of `model` (its fingerprint is used).
        should_stop: checked before each batch; True raises `Cancelled` (nothing is stored).
        batch_tokens: padded tokens per forward batch (memory only; not in the key).

    Raises:
        ArtifactError: a tuned lens that does not exist or belongs to another base state.
        RecordError: an over-long prompt. Cancelled: `should_stop()` returned True.
    """
    store = store or Store()
    fp = state.fingerprint if state is not None else models.fingerprint(model)
    assert fp is not None  # download=True always resolves one (or raises)
    check_lens(request.lens, fp)
    key = lens_key(fp, request)
    hit = _lookup(store, key)
    if hit is None:
        state = state or models.load(model, progress=status)
        with store.lock(key):
            hit = _lookup(store, key)  # another process may have stored it while we waited
            if hit is None:
                t0 = time.perf_counter()
                readout = _compute(state, request, batch_tokens, progress, should_stop)
                names = [n for n, _ in request.token_sets]
                entry = store.put(key, _arrays(readout, names),
                                  _manifest(state, request, readout, time.perf_counter() - t0))
                return StoredLens(readout, entry)
    if status:
        status("lens readout found in the store")
    return hit


# --------------------------------------------------------------------------- tokenizers (no weights)

_TOKENIZERS: dict[tuple[str, str | None], Any] = {}
_TOK_LOCK = threading.Lock()


def tokenizer_for(model: ModelSpec, *, download: bool = True) -> Any | None:
    """The tokenizer of a model state, without loading its weights (memoised per base model).

    Prompts and token sets are built with it before anything is looked up. With
    `download=False`, None where it would need a download or a conversion (a page's look).
    A fine-tune artifact does not change the tokenizer: its base's is returned.
    """
    spec = models.normalize(model)
    memo = (spec.source, spec.revision)
    with _TOK_LOCK:
        if memo in _TOKENIZERS:
            return _TOKENIZERS[memo]
    if not download and models.fingerprint(ModelSpec.from_dict({**spec.to_dict(), "artifact": None}),
                                           download=False) is None:
        return None
    if models.is_tiny(spec.source):
        tok = models.tiny_tokenizer()
    else:
        prep = models.prepare(spec)
        tok = AutoTokenizer.from_pretrained(str(prep.path), trust_remote_code=spec.trust_remote_code)
    if tok.pad_token is None:  # as `models.load` prepares it
        tok.pad_token = tok.eos_token
    with _TOK_LOCK:
        return _TOKENIZERS.setdefault(memo, tok)


# --------------------------------------------------------------------------- background readouts


def lens_job_key(model: ModelSpec, request: LensRequest) -> str:
    """Key of a readout job: the model spec, the request and the store root."""
    return stable_hash({"kind": "lens", "model": model.to_dict(), **request.key_parts(), "root": str(cache_root())},
                       n=20)


def _label(model: ModelSpec, request: LensRequest) -> str:
    what = request.about.get("unit") or f"{len(request.prompts)} prompts"
    lens = ("patching" if request.patch is not None else "logit lens" if request.lens == LOGIT
            else f"tuned lens {request.lens[:8]}")
    tuned = f" + {Path(model.artifact).parent.name}" if model.artifact else ""
    return f"{Path(model.source).name}{tuned} · {what} · {lens}"


def lens_work(model: ModelSpec, request: LensRequest, job: Any) -> StoredLens:
    """A readout job's work: a plain function of its arguments and the job's reporter."""
    job.phase("checking the store", unit="prompts")
    found = stored_lens(model, request)
    if found is not None:
        return found
    state, _ = load_in_job(model, job)
    job.phase(f"reading {len(request.prompts)} prompt(s) through every layer", unit="prompts")
    return ensure_lens(model, request, state=state, progress=job.progress, status=job.status,
                       should_stop=job.should_stop)


def lens_job_args(model: ModelSpec, request: LensRequest) -> dict[str, Any]:
    """The JSON arguments of the worker's ``"lens"`` job kind."""
    return {"model": model.to_dict(), "prompts": list(request.prompts),
            "token_sets": [[n, [int(i) for i in ids]] for n, ids in request.token_sets],
            "spec": request.spec.to_dict(), "lens": request.lens, "about": dict(request.about),
            "patch": None if request.patch is None else request.patch.to_dict()}


def lens_job(args: Mapping[str, Any], job: Any) -> dict[str, Any]:
    """The warm worker's ``"lens"`` job kind: `lens_work` of `lens_job_args`; returns the store key."""
    request = LensRequest(tuple(args["prompts"]), tuple((str(n), tuple(int(i) for i in ids))
                                                        for n, ids in args["token_sets"]),
                          LensSpec.from_dict(dict(args["spec"])), str(args["lens"]), dict(args["about"]),
                          None if args.get("patch") is None else PatchSpec.from_dict(dict(args["patch"])))
    return {"key": lens_work(ModelSpec.from_dict(dict(args["model"])), request, job).key}


def start_lens(model: ModelSpec, request: LensRequest, *, registry: ThreadRegistry | None = None,
               rerun_done: bool = False) -> Any:
    """Compute a readout in the background unless stored; returns the (possibly shared) job (kind ``"lens"``).

    By default the app's warm model worker runs it (`jobs.warm.WARM`; the state it loads stays
    loaded for the next view); a `ThreadRegistry` runs it in a thread of this process.
    """
    key, label = lens_job_key(model, request), _label(model, request)
    if registry is not None:
        return registry.submit(key, label, functools.partial(lens_work, model, request), kind="lens",
                               rerun_done=rerun_done)
    return WARM.submit(key, label, "lens", lens_job_args(model, request), rerun_done=rerun_done)

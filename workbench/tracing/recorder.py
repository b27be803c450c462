"""The recorder: one nnsight pass per batch computes every requested site of a unit (the store is `recordings`).

With `tracing.lens`, the module that imports nnsight (on the first trace: `_nns`). For each batch it captures,
in execution order,the embedding output, each block's FFN neuron activations `act_fn(gate_proj(x))`, each
block's output (layer `l`, before any final norm) and, with `final_norm`, the final norm
applied to the last block's output (layer "final"); it pools and aggregates them on the
fly and stops the forward after the last needed module: never the LM head or logits.
Token-level tensors live for one batch only.

Batches are formed across all units of one call (`record_units`): every (unit, sentence)
is sorted by token length and grouped by `inputs.length_batches` under the token budget
and a padding budget, so short languages do not pay for long ones; results go back into
each unit's arrays in corpus order. With `Batching(pack=True)` several sentences share a
row (sequence packing). `record` records in groups of units whose result arrays fit
`ACC_BUDGET_BYTES`, so memory stays flat in corpus size.

Per unit (a language, or a translation direction `src>tgt` under a pair template) the
store keeps:

- `pooled_<mean|last|weighted>`: `(n_rec_layers, n, d)` float32, rows in corpus order,
  layer axis = `layer_labels` ("emb" first if recorded, then block indices, then "final"
  if recorded);
- `ffn_pos_counts`: `(L_ffn, M)` int64, number of counted tokens with `A > 0`;
- `ffn_tokens`: `(1,)` int64, number of counted tokens;
- `ffn_layer_mean`: `(n, L_ffn)` float32, per-sentence mean over tokens and neurons of A
  (SiLP's paper variant needs only this);
- `ffn_absdiff`: `(n, L_ffn)` float32, per-sentence `mean_i |Ā^l_i − Ā^{l−1}_i|` where `Ā`
  is the token-mean activation (SiLP's `abs` variant; NaN at block 0);
- `n_tokens`: `(n,)` int64, counted tokens per sentence.

`L_ffn` = blocks 0 … the last recorded block. Which tokens count: real (non-padding)
tokens, minus special tokens unless `include_special`, restricted to `token_span` under a
pair template.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import transformers

from workbench.config import RecordSpec
from workbench.errors import RecordError
from workbench.models import ModelState, get_path
from workbench.progress import Advance
from workbench.tracing.accumulate import Accumulator, acc_bytes, accumulate
from workbench.tracing.inputs import Batching, build_texts, encode, make_batch, plan_batches, split_batch
from workbench.tracing.units import FINAL, layer_labels

log = logging.getLogger(__name__)

"""progress(done_sentences, total_sentences, message)."""

#: Result arrays of the units recorded together stay under this many bytes (then stored).
ACC_BUDGET_BYTES = 512 << 20


@functools.cache
def _nns() -> SimpleNamespace:
    """Nnsight's names the recorder uses, imported on the first trace.

    Start-up time (an allowed exception of the import test): nnsight takes seconds to import,
    and `workbench --help`, a page's first paint and every look-up in the store need none of it.
    """
    import nnsight
    from nnsight import NNsight
    from nnsight.intervention.backends.remote import RemoteError
    from nnsight.intervention.source import STATE, Controller
    from nnsight.modeling.transformers import TransformersModel

    return SimpleNamespace(nnsight=nnsight, NNsight=NNsight, RemoteError=RemoteError, STATE=STATE,
                           Controller=Controller, TransformersModel=TransformersModel)

_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _model_lock(state: ModelState) -> threading.Lock:
    """One lock per loaded model: a model is traced by one recording at a time."""
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(id(state.model), threading.Lock())


#: Remote mode of each envoy `traced` handed out with one ("local" or True), by id.
_REMOTE: dict[int, bool | str] = {}


@contextmanager
def traced(state: ModelState, remote: bool | str = False) -> Iterator[Any]:
    """The model wrapped by nnsight for the duration of the block, then unwrapped.

    nnsight installs a controller as every submodule's instance `forward` and leaves it
    there (inert, but it makes later plain forwards several times slower and is copied
    by `deepcopy`). The loaded model is shared read-only by the UI, fine-tunes and
    evaluation, so the wrapper is removed again afterwards. `remote`: False traces here
    (`NNsight`); "local" is nnsight's serverless dry run of a remote trace (the body is
    serialized as for NDIF, deserialized with non-installed modules hidden, and run on this
    model); True runs on NDIF (`state` is then a weightless `models.remote_state`).
    """
    if remote not in (False, True, "local"):
        raise RecordError(f"remote must be False, True (NDIF) or 'local' (dry run), not {remote!r}")
    with _model_lock(state):
        # Instance forwards already there (accelerate's device-moving wrappers under a
        # device_map) are what nnsight calls while traced, and are put back afterwards.
        kept = {m: m.__dict__["forward"] for m in state.model.modules() if "forward" in m.__dict__}
        envoy = _remote_envoy(state, remote) if remote else _nns().NNsight(state.model)
        _REMOTE[id(envoy)] = remote
        try:
            yield envoy
        finally:
            _REMOTE.pop(id(envoy), None)
            _unwrap(state.model)
            for m, f in kept.items():
                m.__dict__["forward"] = f


def _remote_envoy(state: ModelState, remote: bool | str) -> Any:
    """A remotable nnsight wrapper (`TransformersModel`) around `state.model`.

    The body's helpers live in workbench modules, which NDIF lacks: they are registered to
    travel by value (as source). The wrapper sets the tokenizer's padding side and tags it
    for serialization, so it gets a copy. For NDIF the model key is made of the meta
    model's `name_or_path` (the hub id) and `state.spec.revision`.
    """
    if remote is True and not all(p.is_meta for p in state.model.parameters()):  # the wrapper moves it to meta
        raise RecordError("remote=True runs on NDIF: pass the weightless models.remote_state(spec), "
                          "not a loaded model")
    for module in sorted({f.__module__ for f in (_trace_body, pool, _ffn_stats, _hidden, get_path)}):
        _nns().nnsight.register(module)
    try:  # the wrapper's pipeline moves the model to `device` (default cuda:0): keep it where it is
        kw: dict[str, Any] = ({"revision": state.spec.revision, "device": "meta"} if remote is True
                              else {} if getattr(state.model, "hf_device_map", None) else {"device": state.device})
        kw["trust_remote_code"] = state.spec.trust_remote_code  # part of nnsight's NDIF model key
        return _nns().TransformersModel(state.model, tokenizer=copy.copy(state.tokenizer), task="text-generation", **kw)
    except Exception as e:  # noqa: BLE001 - nnsight/transformers raise many kinds; one clear line
        raise RecordError(f"nnsight cannot wrap {state.name} for a remote trace ({type(e).__name__}: {e})") from e


def _unwrap(model: Any) -> None:
    for module in model.modules():
        if isinstance(module.__dict__.get("forward"), _nns().Controller):
            del module.__dict__["forward"]
        module.__dict__.pop(_nns().STATE, None)
        module.__dict__.pop("_persistent_id", None)  # tagged when a remote trace is serialized


# --------------------------------------------------------------------------- the trace


def _hidden(out: Any) -> torch.Tensor:
    """A block's output is a tensor (transformers 5) or a tuple whose first item is it."""
    return out[0] if isinstance(out, tuple) else out


_INDEX_KEYS = ("cidx", "cseg", "n", "cw", "wsum", "last")


def _index_on(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch's pooling indices on `device`, moved once per device and batch (kept in the batch).

    With `device_map="auto"` over several GPUs a block's output lives on that block's GPU
    while the batch was built on the first device. On one device this returns `batch`.
    """
    if batch["cidx"].device == device:
        return batch
    moved = batch.setdefault("_index_on", {})
    if device not in moved:
        moved[device] = {k: batch[k].to(device) for k in _INDEX_KEYS}
    return moved[device]


def pool(h: torch.Tensor, batch: dict[str, Any], poolings: Sequence[str]) -> dict[str, torch.Tensor]:
    """Pool `h` `(R, T, d)` into one vector per sentence of the batch → `(B, d)` each.

    Only counted tokens enter (`batch["cidx"]`, flat positions, with their sentence
    `cseg`), so padding and, in packed rows, the neighbouring sentences never do.
    `mean`: mean of counted tokens; `last`: the last counted token; `weighted`: weights
    1…T' over the counted tokens in order (position-weighted mean). The indices may sit
    on another device than `h` (a model split over GPUs): they are moved to `h`'s.
    """
    ix = _index_on(batch, h.device)
    flat = h.reshape(-1, h.shape[-1])
    seg, n_b = ix["cseg"], ix["n"].shape[0]
    hc = flat[ix["cidx"]]
    out = {}
    if "mean" in poolings:
        out["mean"] = hc.new_zeros(n_b, h.shape[-1]).index_add_(0, seg, hc) / ix["n"].unsqueeze(1)
    if "last" in poolings:
        out["last"] = flat[ix["last"]]
    if "weighted" in poolings:
        out["weighted"] = (hc.new_zeros(n_b, h.shape[-1]).index_add_(0, seg, hc * ix["cw"].unsqueeze(1))
                           / ix["wsum"].unsqueeze(1))
    return out


def _ffn_stats(a: torch.Tensor, batch: dict[str, Any], prev: torch.Tensor | None) -> tuple[Any, ...]:
    """Per-sentence FFN statistics of one block from its activations `a` `(R, T, M)`.

    Indices are moved to `a`'s device as in `pool`; `prev` (the block before, possibly on
    another GPU) too.

    Returns:
        positive counts per sentence `(B, M)`, the sentence's token-mean activation `(B, M)`,
        its mean over neurons `(B,)` and `mean |Ā^l − Ā^{l−1}|` `(B,)` (None at block 0).
    """
    ix = _index_on(batch, a.device)
    ac = a.reshape(-1, a.shape[-1])[ix["cidx"]]
    n_b = ix["n"].shape[0]
    pos = ac.new_zeros(n_b, ac.shape[1]).index_add_(0, ix["cseg"], (ac > 0).to(ac.dtype))
    sent = ac.new_zeros(n_b, ac.shape[1]).index_add_(0, ix["cseg"], ac) / ix["n"].unsqueeze(1)
    return pos, sent, sent.mean(1), (sent - prev.to(sent.device)).abs().mean(1) if prev is not None else None


def _trace_body(envoy: Any, arch: dict[str, Any], batch: dict[str, Any], plan: dict[str, Any]) -> dict[Any, Any]:
    """What runs inside the trace: visit sites in execution order, pool, aggregate.

    One body for every mode (local, nnsight's local simulation, NDIF). It returns a dict
    built inside the trace, which the caller saves (`nnsight.save`): a remote run sends back
    saved values only. It reads only its arguments (`arch`: the architecture entry as a
    plain dict) and calls only `pool`, `_ffn_stats`, `_hidden` and `get_path`, which
    `traced` registers to travel by value. Returns label -> pooling -> `(B, d)` and
    `ffn<l>` -> (positive counts, neuron-mean, absdiff): `_ffn_stats` without the per-neuron means.
    """
    out: dict[Any, Any] = {}
    poolings = plan["poolings"]
    if plan["embeddings"]:
        site = get_path(envoy, arch["embed"])  # hidden_states[0]: its output, or its input (XGLM's block 0)
        out["emb"] = pool(_hidden(site.input if arch["embed_input"] else site.output).float(), batch, poolings)
    block_list = get_path(envoy, arch["layers"])
    prev = None
    for layer in range(plan["stop"] + 1):
        block = block_list[layer]
        if plan["ffn"] and layer < plan["ffn_layers"]:
            pos, prev, mean, diff = _ffn_stats(get_path(block, arch["act"]).output.float(), batch, prev)
            out[f"ffn{layer}"] = pos, mean, diff
        if layer in plan["layers"]:
            out[layer] = pool(_hidden(block.output).float(), batch, poolings)
    if plan["final"]:
        out[FINAL] = pool(_hidden(get_path(envoy, arch["norm"]).output).float(), batch, poolings)
    return out


def _run_batch(envoy: Any, state: ModelState, batch: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    remote = _REMOTE.get(id(envoy), False)
    kw: dict[str, Any] = {"remote": remote} if remote else {}
    arch = dataclasses.asdict(state.arch)
    save = _nns().nnsight.save  # bound here: the trace body may run on a server without workbench
    try:
        with torch.inference_mode():
            # The whole causal LM is traced, but the run stops after the last needed module:
            # the LM head never executes (nor the final norm unless `final_norm`).
            with envoy.trace(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             position_ids=batch["position_ids"], use_cache=False, **kw) as tracer:
                out = save(_trace_body(envoy, arch, batch, plan))
                tracer.stop()
    except Exception as e:
        if remote is not True or isinstance(e, (torch.OutOfMemoryError, MemoryError)):
            raise
        # on NDIF anything can fail (the hub look-up of the model key, the request, the server);
        # nnsight's RemoteError carries the server's reason
        why = (str(e).strip() or "no reason given").splitlines()[0][:300]
        raise RecordError(f"the NDIF run of {state.name} failed: "
                          + (why if isinstance(e, _nns().RemoteError) else f"{type(e).__name__}: {why}")) from e
    return out


def _plan(state: ModelState, spec: RecordSpec) -> dict[str, Any]:
    L = state.n_layers
    layers = list(range(L)) if spec.layers is None else sorted(set(spec.layers))
    bad = [x for x in layers if not 0 <= x < L]
    if bad:
        raise RecordError(f"layer(s) {bad} out of range: {state.name} has {L} blocks, 0…{L - 1}")
    final = bool(getattr(spec, "final_norm", False))
    if not layers and not spec.embeddings and not final:
        raise RecordError("nothing to record: no layers, no embeddings and no final norm")
    last = max(layers) if layers else 0
    return {"poolings": list(spec.poolings), "embeddings": spec.embeddings, "ffn": spec.ffn_stats,
            "ffn_layers": last + 1 if spec.ffn_stats else 0, "layers": set(layers), "final": final,
            "stop": L - 1 if final else last, "labels": layer_labels(L, spec)}


def checked_labels(state: ModelState, spec: RecordSpec) -> list[Any]:
    """The layer labels a recording of `spec` on `state` has (raises `RecordError` for layers out of range)."""
    return _plan(state, spec)["labels"]


# --------------------------------------------------------------------------- batches

_PACKING_OK: dict[int, bool] = {}


def packing_works(state: ModelState, envoy: Any, plan: dict[str, Any]) -> bool:
    """Whether this model reads restarting position ids as packed sequences (probed once per model).

    transformers' own architectures build a block-diagonal causal mask from the restarts
    (SDPA, eager, flex; variable-length kernels with flash attention); custom model code
    may not. Two short sentences are recorded packed in one row and in a padded batch,
    through the same trace as the recording: packing is used only when they agree.

    Never for a remote trace (NDIF or its local simulation): nnsight's `TransformersModel`
    turns a missing attention mask into an all-ones one, and with a mask transformers no
    longer reads the restarts as packed sequences (so sentences would see each other).
    """
    if _REMOTE.get(id(envoy)):
        return False
    key = id(state.model)
    if key not in _PACKING_OK:
        ids, count = [[5, 6, 7, 8], [9, 10, 11]], [[True] * 4, [True] * 3]
        pad, dev = state.tokenizer.pad_token_id, state.device
        packed = _run_batch(envoy, state, make_batch(ids, count, [[0, 1]], pad, "right", dev), plan)
        alone = _run_batch(envoy, state, make_batch(ids, count, [[0], [1]], pad, "right", dev), plan)
        got = [t for label in plan["labels"] for t in packed[label].values()]
        ref = [t for label in plan["labels"] for t in alone[label].values()]
        _PACKING_OK[key] = all(torch.allclose(g, r, atol=1e-2 * (1 + r.abs().max().item()), rtol=1e-2)
                               for g, r in zip(got, ref))
        if not _PACKING_OK[key]:
            log.warning("%s does not support packed sequences; recording with padded batches", state.name)
    return _PACKING_OK[key]


def _run_all(envoy: Any, state: ModelState, ids: list[list[int]], count: list[list[bool]],
             batches: list[list[list[int]]], plan: dict[str, Any], padding_side: str,
             sink: Callable[[list[int], dict[str, Any]], None]) -> None:
    """Run every batch, longest first; a batch that runs out of memory is halved and retried."""
    pending = list(batches)
    while pending:
        rows = pending.pop(0)
        try:
            batch = make_batch(ids, count, rows, state.tokenizer.pad_token_id, padding_side, state.device)
            out = _run_batch(envoy, state, batch, plan)
        except (torch.OutOfMemoryError, MemoryError):
            if len(rows) == 1 and len(rows[0]) == 1:
                raise RecordError(f"one sentence of {len(ids[rows[0][0]])} tokens does not fit in memory; "
                                  "lower max_length") from None
            log.warning("batch of %d sentences ran out of memory; splitting it in two", sum(map(len, rows)))
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            pending[:0] = split_batch(rows)
            continue
        sink(batch["order"], out)


def _record(state: ModelState, corpus: Any, units: Sequence[str], spec: RecordSpec, *, padding_side: str,
            batching: Batching | None, progress: Advance | None,
            shard: tuple[int, int] | None = None, remote: bool | str = False) -> list[Accumulator]:
    """Fill one accumulator per unit; with `shard=(rank, world)`, run only batches rank, rank + world, …."""
    batching = batching or Batching()
    plan = _plan(state, spec)
    ids: list[list[int]] = []
    count: list[list[bool]] = []
    owner: list[tuple[int, int]] = []
    accs = []
    for u, unit in enumerate(units):
        texts, spans = build_texts(corpus, unit, spec)
        enc = encode(state.tokenizer, texts, spans, spec)
        acc = Accumulator(len(texts), len(plan["labels"]), spec.poolings, plan["ffn_layers"], state.d_model,
                   state.n_neurons)
        acc.n_tokens[:] = [sum(c) for c in enc.count]
        accs.append(acc)
        ids += enc.ids
        count += enc.count
        owner += [(u, i) for i in range(len(texts))]

    def sink(order: list[int], out: dict[str, Any]) -> None:
        accumulate(accs, owner, order, out, plan)
        if progress:
            progress(len(order))

    if ids:
        with traced(state, remote) as envoy:
            if batching.pack and not packing_works(state, envoy, plan):
                batching = dataclasses.replace(batching, pack=False)
            batches = plan_batches([len(x) for x in ids], spec, batching, state.device)
            if shard is not None:
                rank, world = shard
                batches = batches[rank::world]  # longest first: interleaving balances the work
            _run_all(envoy, state, ids, count, batches, plan, padding_side, sink)
    return accs


def record_units(state: ModelState, corpus: Any, units: Sequence[str], spec: RecordSpec, *,
                 padding_side: str = "right", batching: Batching | None = None, progress: Advance | None = None,
                 remote: bool | str = False) -> dict[str, dict[str, np.ndarray]]:
    """Record several units together, without touching the store. Arrays as module doc.

    All sentences of all units are batched together by length; each unit's arrays come
    back in corpus order, equal (to float rounding) to recording the unit alone.
    `progress(k)` is called with the number of sentences of each finished batch.
    `remote`: see `traced` (True: on NDIF; "local": nnsight's local simulation of it).
    """
    accs = _record(state, corpus, units, spec, padding_side=padding_side, batching=batching, progress=progress,
                   remote=remote)
    return {unit: acc.arrays() for unit, acc in zip(units, accs)}


def record_shard(state: ModelState, corpus: Any, units: Sequence[str], spec: RecordSpec, *, rank: int,
                 world: int, padding_side: str = "right", batching: Batching | None = None,
                 progress: Callable[[int], None] | None = None) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
    """This rank's share of `record_units(state, corpus, units, spec)`: the same batches, every world-th.

    Every rank forms the one-process batch plan and runs batches `rank, rank + world, …`,
    so each sentence runs in exactly the batch (same neighbours, same shapes) it has in
    one process. `merge_shards` of all ranks' results is then byte-identical to
    `record_units` in one process (given the same kernels and thread count).

    Returns:
        unit -> (its arrays with only this rank's rows filled, the bool mask of those rows).
    """
    if not 0 <= rank < world:
        raise RecordError(f"rank {rank} is not in 0…{world - 1}")
    accs = _record(state, corpus, units, spec, padding_side=padding_side, batching=batching, progress=progress,
                   shard=(rank, world))
    return {unit: (acc.arrays(), acc.filled.copy()) for unit, acc in zip(units, accs)}


def record_unit(state: ModelState, corpus: Any, unit: str, spec: RecordSpec, *, padding_side: str = "right",
                batching: Batching | None = None, progress: Advance | None = None) -> dict[str, np.ndarray]:
    """Record one unit (language or `src>tgt`) without touching the store. Arrays as module doc."""
    return record_units(state, corpus, [unit], spec, padding_side=padding_side, batching=batching,
                        progress=progress)[unit]


# --------------------------------------------------------------------------- record + store


def unit_groups(state: ModelState, corpus: Any, units: Sequence[str], spec: RecordSpec) -> list[list[str]]:
    """`units` in order, grouped so that each group's result arrays fit `ACC_BUDGET_BYTES`.

    `record` records each group with one `record_units` call; a sharded recording forms
    the same groups on every rank.
    """
    per = max(1, ACC_BUDGET_BYTES // max(1, acc_bytes(len(corpus), _plan(state, spec), state.d_model,
                                                      state.n_neurons)))
    return [list(units[k:k + per]) for k in range(0, len(units), per)]


def record_manifest(state: ModelState, corpus: Any, unit: str, spec: RecordSpec, *, seconds: float,
                    recorded_with: Sequence[str] = (), **extra: Any) -> dict[str, Any]:
    """The store manifest of one recorded unit (what `record` writes beside its arrays)."""
    return {"kind": "record", "model_name": state.name, "model_fingerprint": state.fingerprint,
            "corpus_name": corpus.name, "corpus_hash": corpus.content_hash(unit.split(">")), "unit": unit,
            "n_units": len(corpus), "spec": spec.to_dict(), "layer_labels": _plan(state, spec)["labels"],
            "seconds": seconds, "recorded_with": [x for x in recorded_with if x != unit], "versions": _versions(),
            **extra}


def _versions() -> dict[str, str]:
    return {"torch": torch.__version__, "transformers": transformers.__version__, "nnsight": _nns().nnsight.__version__}

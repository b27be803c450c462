"""The tracing core: one nnsight pass per batch records every requested site into the store.

The only module that imports nnsight. For each batch it captures, in execution order,
the embedding output, each block's FFN neuron activations `act_fn(gate_proj(x))` and each
block's output (layer `l`, before any final norm), pools and aggregates them on the fly,
and stops the forward after the last needed block: no final norm, no LM head, no logits.
Token-level tensors live for one batch only, so memory does not grow with the corpus.

Per unit (a language, or a translation direction `src>tgt` under a pair template) the
store keeps:

- `pooled_<mean|last|weighted>`: `(n_rec_layers, n, d)` float32, rows in corpus order,
  layer axis = `layer_labels` ("emb" first if recorded, then block indices);
- `ffn_pos_counts`: `(L_ffn, M)` int64, number of counted tokens with `A > 0`;
- `ffn_tokens`: `(1,)` int64, number of counted tokens;
- `ffn_layer_mean`: `(n, L_ffn)` float32, per-sentence mean over tokens and neurons of A
  (SiLP's paper variant needs only this);
- `ffn_absdiff`: `(n, L_ffn)` float32, per-sentence `mean_i |Ā^l_i − Ā^{l−1}_i|` where `Ā`
  is the token-mean activation (SiLP's `abs` variant; NaN at block 0);
- `n_tokens`: `(n,)` int64, counted tokens per sentence.

Which tokens count: real (non-padding) tokens, minus special tokens unless
`include_special`, restricted to `token_span` under a pair template.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from nnsight import NNsight

from workbench.config import RecordSpec
from workbench.models import ModelState, get_path
from workbench.store import Entry, Store, make_key
from workbench.errors import RecordError

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
"""progress(done_sentences, total_sentences, message)."""

_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()




def _model_lock(state: ModelState) -> threading.Lock:
    """One lock per loaded model: a model is traced by one recording at a time."""
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(id(state.model), threading.Lock())


@contextmanager
def traced(state: ModelState) -> Iterator[Any]:
    """The model wrapped by nnsight for the duration of the block, then unwrapped.

    nnsight installs a controller as every submodule's instance `forward` and leaves it
    there (inert, but it makes later plain forwards several times slower and is copied
    by `deepcopy`). The loaded model is shared read-only by the UI, fine-tunes and
    evaluation, so the wrapper is removed again afterwards.
    """
    with _model_lock(state):
        envoy = NNsight(state.model)
        try:
            yield envoy
        finally:
            _unwrap(state.model)


def _unwrap(model: Any) -> None:
    from nnsight.intervention.source import STATE, Controller

    for module in model.modules():
        if isinstance(module.__dict__.get("forward"), Controller):
            del module.__dict__["forward"]
        module.__dict__.pop(STATE, None)


# --------------------------------------------------------------------------- inputs


@dataclass
class Encoded:
    """Tokenised inputs of one unit, unpadded. `count[i]` marks the tokens that count."""

    ids: list[list[int]]
    count: list[list[bool]]


def _span_offsets(template: str, values: dict[str, str]) -> tuple[str, dict[str, tuple[int, int]]]:
    """Format `template`, returning the text and char spans of {src_text} and {tgt_text}."""
    spans: dict[str, tuple[int, int]] = {}
    out = ""
    rest = template
    while True:
        cut = [(rest.find("{" + k + "}"), k) for k in ("src_text", "tgt_text") if "{" + k + "}" in rest]
        if not cut:
            return out + rest.format(**values), spans
        pos, k = min(cut)
        out += rest[:pos].format(**values)
        spans[k.split("_")[0]] = (len(out), len(out) + len(values[k]))
        out += values[k]
        rest = rest[pos + len(k) + 2:]


def build_texts(corpus: Any, unit: str, spec: RecordSpec) -> tuple[list[str], list[tuple[int, int] | None]]:
    """The strings to run for one unit, and the char span that counts (None = all)."""
    if ">" in unit:
        src, tgt = unit.split(">")
        names = {"src_name": corpus.languages[src].name, "tgt_name": corpus.languages[tgt].name}
        texts, spans = [], []
        for s, t in zip(corpus.texts(src), corpus.texts(tgt)):
            text, sp = _span_offsets(spec.template or "", {**names, "src_text": s, "tgt_text": t})
            texts.append(text)
            spans.append(None if spec.token_span == "all" else sp[{"source": "src", "target": "tgt"}[spec.token_span]])
        return texts, spans
    raw = corpus.texts(unit)
    if spec.template:
        texts = [spec.template.replace("{text}", t) for t in raw]
        spans = [(spec.template.index("{text}"), spec.template.index("{text}") + len(t)) for t in raw]
        return texts, [None] * len(texts) if spec.token_span == "all" else spans
    return list(raw), [None] * len(raw)


def encode(tokenizer: Any, texts: Sequence[str], spans: Sequence[tuple[int, int] | None],
           spec: RecordSpec) -> Encoded:
    """Tokenise each text alone (no padding), with the mask of tokens that count."""
    ids_all, count_all = [], []
    for i, (text, span) in enumerate(zip(texts, spans)):
        shift = 0
        if spec.chat_template:
            wrapped = tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                                    tokenize=False, add_generation_prompt=True)
            shift, text = wrapped.index(text), wrapped
        enc = tokenizer(text, truncation=True, max_length=spec.max_length,
                        add_special_tokens=not spec.chat_template, return_special_tokens_mask=True,
                        return_offsets_mapping=span is not None)
        ids = list(enc["input_ids"])
        keep = [True] * len(ids) if spec.include_special else [not s for s in enc["special_tokens_mask"]]
        if spec.chat_template and not spec.include_special:
            special = set(tokenizer.all_special_ids)
            keep = [t not in special for t in ids]
        if span is not None:
            a, b = span[0] + shift, span[1] + shift
            keep = [k and (e > a and s < b) for k, (s, e) in zip(keep, enc["offset_mapping"])]
        if not any(keep):
            raise RecordError(f"sentence {i} has no tokens to count (empty text, or the span was cut by "
                              f"max_length={spec.max_length})")
        ids_all.append(ids)
        count_all.append(keep)
    return Encoded(ids_all, count_all)


def make_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Indices grouped by similar length, each batch's padded size ≤ `batch_tokens`.

    Sorted longest first, so a batch that does not fit memory shows up at once.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        width = lengths[cur[0]] if cur else lengths[i]
        if cur and (len(cur) + 1) * width > batch_tokens:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


def pad_batch(enc: Encoded, idx: Sequence[int], pad_id: int, side: str, device: Any) -> dict[str, torch.Tensor]:
    """Padded tensors for one batch: input_ids, attention_mask, position_ids, count mask.

    Position ids count real tokens only, so left and right padding give the same result.
    """
    if side not in ("left", "right"):
        raise ValueError(f"padding side must be 'left' or 'right', not {side!r}")
    width = max(len(enc.ids[i]) for i in idx)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(idx), width), dtype=torch.long)
    count = torch.zeros((len(idx), width), dtype=torch.bool)
    for r, i in enumerate(idx):
        n = len(enc.ids[i])
        sl = slice(width - n, width) if side == "left" else slice(0, n)
        ids[r, sl] = torch.tensor(enc.ids[i])
        attn[r, sl] = 1
        count[r, sl] = torch.tensor(enc.count[i])
    pos = (attn.cumsum(1) - 1).clamp(min=0)
    return {"input_ids": ids.to(device), "attention_mask": attn.to(device),
            "position_ids": pos.to(device), "count": count.to(device)}


# --------------------------------------------------------------------------- the trace


def _hidden(out: Any) -> torch.Tensor:
    """A block's output is a tensor (transformers 5) or a tuple whose first item is it."""
    return out[0] if isinstance(out, tuple) else out


def pool(h: torch.Tensor, count: torch.Tensor, poolings: Sequence[str]) -> dict[str, torch.Tensor]:
    """Masked pooling of `h` `(B, T, d)` over the tokens in `count` `(B, T)` → `(B, d)` each.

    `mean`: mean of counted tokens; `last`: the last counted token; `weighted`: weights
    1…T' over the counted tokens in order (position-weighted mean).
    """
    m = count.to(h.dtype).unsqueeze(-1)
    out = {}
    if "mean" in poolings:
        out["mean"] = (h * m).sum(1) / m.sum(1)
    if "last" in poolings:
        pos = torch.arange(h.shape[1], device=h.device).expand_as(count)
        last = torch.where(count, pos, -1).max(1).values
        out["last"] = h[torch.arange(h.shape[0], device=h.device), last]
    if "weighted" in poolings:
        w = count.to(h.dtype).cumsum(1) * count.to(h.dtype)
        out["weighted"] = (h * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True)
    return out


@dataclass
class _Acc:
    """Accumulators for one unit, filled batch by batch (corpus order)."""

    n: int
    rec_layers: list[Any]
    poolings: Sequence[str]
    ffn_layers: int
    d: int
    m: int
    pooled: dict[str, np.ndarray] = field(init=False)
    pos_counts: torch.Tensor = field(init=False)
    tokens: int = 0
    layer_mean: np.ndarray = field(init=False)
    absdiff: np.ndarray = field(init=False)
    n_tokens: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.pooled = {p: np.zeros((len(self.rec_layers), self.n, self.d), np.float32) for p in self.poolings}
        self.pos_counts = torch.zeros((self.ffn_layers, self.m), dtype=torch.long)
        self.layer_mean = np.full((self.n, self.ffn_layers), np.nan, np.float32)
        self.absdiff = np.full((self.n, self.ffn_layers), np.nan, np.float32)
        self.n_tokens = np.zeros(self.n, np.int64)


def _trace_body(envoy: Any, arch: Any, batch: dict[str, torch.Tensor], plan: dict[str, Any],
                out: dict[Any, Any]) -> None:
    """What runs inside the trace: visit sites in execution order, pool, aggregate.

    Kept free of local I/O so the same body can run under nnsight's remote execution.
    """
    count = batch["count"]
    poolings = plan["poolings"]
    if plan["embeddings"]:
        out["emb"] = pool(get_path(envoy, arch.embed).output.float(), count, poolings)
    block_list = get_path(envoy, arch.layers)
    cm = count.float().unsqueeze(-1)
    denom = cm.sum(1)
    prev = None
    for layer in range(plan["last"] + 1):
        block = block_list[layer]
        if plan["ffn"]:
            a = get_path(block, arch.act).output.float()
            sent = (a * cm).sum(1) / denom  # (B, M) token-mean activation per neuron
            out[f"ffn{layer}"] = ((a > 0) & count.unsqueeze(-1)).sum((0, 1)), sent.mean(1), (
                (sent - prev).abs().mean(1) if prev is not None else None)
            prev = sent
        if layer in plan["layers"]:
            out[layer] = pool(_hidden(block.output).float(), count, poolings)


def _run_batch(envoy: Any, state: ModelState, batch: dict[str, torch.Tensor],
               plan: dict[str, Any]) -> dict[str, Any]:
    out: dict[Any, Any] = {}
    with torch.inference_mode():
        # The whole causal LM is traced, but the run stops after the last needed block:
        # the final norm and the LM head never execute.
        with envoy.trace(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                        position_ids=batch["position_ids"], use_cache=False) as tracer:
            _trace_body(envoy, state.arch, batch, plan, out)
            tracer.stop()
    return out


def _free_accelerator_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _accumulate(acc: _Acc, idx: list[int], out: dict[Any, Any], plan: dict[str, Any]) -> None:
    rows = np.asarray(idx)
    for li, label in enumerate(acc.rec_layers):
        for p, v in out[label].items():
            acc.pooled[p][li, rows] = v.detach().cpu().numpy()
    if plan["ffn"]:
        for layer in range(acc.ffn_layers):
            pos, mean, diff = out[f"ffn{layer}"]
            acc.pos_counts[layer] += pos.cpu()
            acc.layer_mean[rows, layer] = mean.cpu().numpy()
            if diff is not None:
                acc.absdiff[rows, layer] = diff.cpu().numpy()


def _plan(state: ModelState, spec: RecordSpec) -> dict[str, Any]:
    L = state.n_layers
    layers = list(range(L)) if spec.layers is None else sorted(set(spec.layers))
    bad = [x for x in layers if not 0 <= x < L]
    if bad:
        raise RecordError(f"layer(s) {bad} out of range: {state.name} has {L} blocks, 0…{L - 1}")
    if not layers and not spec.embeddings:
        raise RecordError("nothing to record: no layers and no embeddings")
    last = max(layers) if layers else 0
    return {"poolings": list(spec.poolings), "embeddings": spec.embeddings, "ffn": spec.ffn_stats,
            "layers": set(layers), "last": last,
            "labels": (["emb"] if spec.embeddings else []) + layers}


def _run_batches(envoy: Any, state: ModelState, enc: Encoded, acc: _Acc, plan: dict[str, Any], spec: RecordSpec,
                 padding_side: str, progress: Callable[[int], None] | None) -> None:
    """All batches of one unit, longest first; a batch that runs out of memory is halved."""
    pending = make_batches([len(x) for x in enc.ids], spec.batch_tokens)
    while pending:
        idx = pending.pop(0)
        try:
            batch = pad_batch(enc, idx, state.tokenizer.pad_token_id, padding_side, state.device)
            out = _run_batch(envoy, state, batch, plan)
        except (torch.OutOfMemoryError, MemoryError):
            if len(idx) == 1:
                raise RecordError(f"one sentence of {len(enc.ids[idx[0]])} tokens does not fit in memory; "
                                  "lower max_length") from None
            log.warning("batch of %d sentences ran out of memory; splitting it in two", len(idx))
            _free_accelerator_memory()
            pending[:0] = [idx[: len(idx) // 2], idx[len(idx) // 2:]]
            continue
        _accumulate(acc, idx, out, plan)
        if progress:
            progress(len(idx))


def record_unit(state: ModelState, corpus: Any, unit: str, spec: RecordSpec, *,
                padding_side: str = "right", progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Record one unit (language or `src>tgt`) without touching the store. Arrays as module doc."""
    plan = _plan(state, spec)
    texts, spans = build_texts(corpus, unit, spec)
    enc = encode(state.tokenizer, texts, spans, spec)
    acc = _Acc(len(texts), plan["labels"], spec.poolings, plan["last"] + 1 if spec.ffn_stats else 0,
               state.d_model, state.n_neurons)
    acc.n_tokens[:] = [sum(c) for c in enc.count]
    with traced(state) as envoy:
        _run_batches(envoy, state, enc, acc, plan, spec, padding_side, progress)
    arrays: dict[str, np.ndarray] = {f"pooled_{p}": a for p, a in acc.pooled.items()}
    arrays["n_tokens"] = acc.n_tokens
    if spec.ffn_stats:
        arrays.update(ffn_pos_counts=acc.pos_counts.numpy(), ffn_tokens=np.array([acc.n_tokens.sum()]),
                      ffn_layer_mean=acc.layer_mean, ffn_absdiff=acc.absdiff)
    return arrays


# --------------------------------------------------------------------------- record + store


def unit_key(fingerprint: str, corpus: Any, unit: str, spec: RecordSpec) -> str:
    """Store key of one unit: model state, corpus content, unit, spec and format version."""
    import transformers

    langs = unit.split(">")
    return make_key({"kind": "record", "format": RecordSpec.FORMAT_VERSION, "model": fingerprint,
                     "corpus": corpus.content_hash(langs), "n_units": len(corpus), "unit": unit,
                     "spec": spec.to_dict(), "transformers": transformers.__version__.split(".")[:2]})


def units_for(corpus: Any, langs: Sequence[str], spec: RecordSpec,
              pairs: Sequence[tuple[str, str]] | None) -> list[str]:
    """The units to record: languages, or `src>tgt` directions for a pair template."""
    known = corpus.check_langs(list(langs) + [x for p in pairs or [] for x in p])
    if spec.is_pair_template:
        if not pairs:
            raise RecordError("a pair template needs language pairs (e.g. --pairs en:sw)")
        return [f"{corpus.check_langs([s])[0]}>{corpus.check_langs([t])[0]}" for s, t in pairs]
    return known[: len(langs)] if langs else known


@dataclass
class Recording:
    """Everything recorded for one model state, corpus and spec; arrays read from the store."""

    model_name: str
    fingerprint: str
    corpus_name: str
    spec: RecordSpec
    entries: dict[str, Entry]
    layer_labels: list[Any]

    def vectors(self, pooling: str = "mean") -> dict[str, np.ndarray]:
        """Unit -> `(n_layers, n, d)` pooled vectors (memory-mapped)."""
        if pooling not in self.spec.poolings:
            raise RecordError(f"pooling {pooling!r} was not recorded; recorded: {list(self.spec.poolings)}")
        return {u: e[f"pooled_{pooling}"] for u, e in self.entries.items()}

    def activation_probs(self) -> dict[str, np.ndarray]:
        """Unit -> `(L_ffn, M)` probability that a neuron is active (A > 0) on a counted token."""
        return {u: np.asarray(e["ffn_pos_counts"], np.float64) / float(e["ffn_tokens"][0])
                for u, e in self.entries.items()}

    def layer_index(self, layer: Any) -> int:
        """Position of a layer label (block index or 'emb') on the layer axis."""
        try:
            return self.layer_labels.index(layer)
        except ValueError:
            raise RecordError(f"layer {layer!r} not recorded; recorded: {self.layer_labels}") from None


def record(state: ModelState, corpus: Any, langs: Sequence[str], spec: RecordSpec | None = None, *,
           pairs: Sequence[tuple[str, str]] | None = None, store: Store | None = None,
           progress: ProgressFn | None = None, padding_side: str = "right") -> Recording:
    """Record every unit missing from the store, then return the `Recording` of all of them.

    Units already stored are read, not recomputed; a unit being recorded by another process
    is waited for (per-key lock) rather than computed twice.
    """
    spec = spec or RecordSpec()
    store = store or Store()
    plan = _plan(state, spec)
    units = units_for(corpus, langs, spec, pairs)
    keys = {u: unit_key(state.fingerprint, corpus, u, spec) for u in units}
    total = len(units) * len(corpus)
    done = 0
    entries: dict[str, Entry] = {}
    for u in units:
        with store.lock(keys[u]):
            entry = store.get(keys[u])
            if entry is None:
                t0 = time.perf_counter()

                def tick(k: int, u: str = u) -> None:
                    nonlocal done
                    done += k
                    if progress:
                        progress(done, total, f"recording {u}")

                arrays = record_unit(state, corpus, u, spec, padding_side=padding_side, progress=tick)
                entry = store.put(keys[u], arrays, {
                    "kind": "record", "model_name": state.name, "model_fingerprint": state.fingerprint,
                    "corpus_name": corpus.name, "corpus_hash": corpus.content_hash(u.split(">")),
                    "unit": u, "n_units": len(corpus), "spec": spec.to_dict(), "layer_labels": plan["labels"],
                    "seconds": round(time.perf_counter() - t0, 3), "versions": _versions()})
            else:
                done += len(corpus)
                if progress:
                    progress(done, total, f"{u} from store")
        entries[u] = entry
    return Recording(state.name, state.fingerprint, corpus.name, spec, entries, plan["labels"])


def lookup(fingerprint: str, corpus: Any, units: Sequence[str], spec: RecordSpec,
           store: Store | None = None) -> dict[str, Entry | None]:
    """Stored entries for these units, without loading the model (None where missing)."""
    store = store or Store()
    return {u: store.get(unit_key(fingerprint, corpus, u, spec)) for u in units}


def _versions() -> dict[str, str]:
    import nnsight
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "nnsight": nnsight.__version__}

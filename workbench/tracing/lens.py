"""The lens readout: what every layer predicts at chosen positions, one nnsight pass per batch.

For each prompt (text or token ids) the positions to read are chosen by `LensSpec.positions`
(default: the last prompt token; `"all"` for the token view). Prompts are grouped by
`inputs.length_batches` into padded batches (position ids restart at each prompt's first
real token, so padding never moves a position) and run through the unmodified HF model
under nnsight, as the recorder does (`recorder.traced`). The trace keeps each layer's
residual only at the read positions (`(reads, d)` per layer) and stops after the last
block: the model's final norm and LM head never run over the whole sequence.

Each batch's residuals are then decoded with the model's own final norm, unembedding and
logit post-processing (`models.unembed.lens_logits`; an optional tuned lens translates each
layer first), in row chunks, and reduced at once to what views keep (`lenses.decode_stats`).
Memory is bounded by the batch: no [layer × position × vocabulary] tensor outlives one chunk.
The last block's lens is exactly the model's own next-token distribution.

Nothing here touches the store (a store wrapper keys readouts by everything in `LensSpec`,
the prompts, the token sets and the lens).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from workbench.errors import Cancelled, RecordError
from workbench.examples import MAX_PADDING, length_batches
from workbench.lenses.readout import FinalDist, LensReadout, decode_stats, row_chunks, token_set_tensors
from workbench.lenses.spec import LensSpec
from workbench.lenses.tuned import TunedLens
from workbench.models import ModelState, get_path
from workbench.models.unembed import lens_logits
from workbench.progress import Progress, StopFn
from workbench.tracing.inputs import make_batch, token_budget
from workbench.tracing.recorder import _hidden, _index_on, _nns, traced

log = logging.getLogger(__name__)

Prompt = str | Sequence[int]


def prompt_ids(tokenizer: Any, prompts: Sequence[Prompt], spec: LensSpec) -> list[list[int]]:
    """Token ids of each prompt: a string is tokenised (`spec.add_special_tokens`), ids are kept as given.

    Raises:
        RecordError: an empty prompt, or one longer than `spec.max_length` (never truncated).
    """
    out = []
    for i, p in enumerate(prompts):
        ids = (list(tokenizer(p, add_special_tokens=spec.add_special_tokens)["input_ids"]) if isinstance(p, str)
               else [int(t) for t in p])
        if not ids:
            raise RecordError(f"prompt {i} has no tokens")
        if len(ids) > spec.max_length:
            raise RecordError(f"prompt {i} has {len(ids)} tokens, more than max_length={spec.max_length}; "
                              "shorten it or raise max_length")
        out.append(ids)
    return out


def read_positions(n_tokens: int, positions: str | tuple[int, ...]) -> list[int]:
    """The sorted, distinct 0-based positions read in a prompt of `n_tokens` tokens.

    Raises:
        RecordError: an explicit position outside the prompt.
    """
    if isinstance(positions, str):
        return [n_tokens - 1] if positions == "last" else list(range(n_tokens))  # LensSpec checked the name
    bad = [p for p in positions if not -n_tokens <= p < n_tokens]
    if bad:
        raise RecordError(f"position(s) {bad} outside a prompt of {n_tokens} tokens")
    return sorted({p % n_tokens for p in positions})


def _lens_body(envoy: Any, arch: dict[str, Any], batch: dict[str, Any], plan: dict[str, Any]) -> list[Any]:
    """Inside the trace: each layer's residual at the read positions, `(reads, d)`, in execution order."""
    out = []
    if plan["embeddings"]:
        site = get_path(envoy, arch["embed"])  # hidden_states[0]: its output, or its input (XGLM's block 0)
        out.append(_hidden(site.input if arch["embed_input"] else site.output))
    blocks = get_path(envoy, arch["layers"])
    for layer in range(plan["n_layers"]):
        out.append(_hidden(blocks[layer].output))
    return [h.reshape(-1, h.shape[-1])[_index_on(batch, h.device)["cidx"]] for h in out]


def _run_batch(envoy: Any, state: ModelState, batch: dict[str, Any], plan: dict[str, Any]) -> list[torch.Tensor]:
    arch = dataclasses.asdict(state.arch)  # a plain dict, as the recorder passes it
    save = _nns().nnsight.save  # bound outside the trace body, as the recorder does
    with torch.inference_mode():
        with envoy.trace(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         position_ids=batch["position_ids"], use_cache=False) as tracer:
            hs = save(_lens_body(envoy, arch, batch, plan))
            tracer.stop()  # after the last block: the final norm and the LM head never run
    return list(hs)


def _decode(state: ModelState, hs: list[torch.Tensor], labels: Sequence[Any], translator: TunedLens | None,
            sets: Mapping[str, torch.Tensor], top_k: int) -> dict[str, Any]:
    """Decode one batch's residuals (one `(reads, d)` per layer) and reduce them: arrays `(reads, layers, ...)`."""
    vocab = int(get_path(state.model, state.arch.unembed).weight.shape[0])
    parts: list[dict[str, Any]] = []
    with torch.inference_mode():
        for rows in row_chunks(hs[-1].shape[0], vocab):
            # the last block's lens is the model's own distribution (no translator): p_final
            last = lens_logits(state.model, state.arch, hs[-1][rows])
            final = FinalDist.of(last)  # once per chunk, for every layer's KL
            per_layer = []
            for label, h in zip(labels[:-1], hs[:-1]):
                x = h[rows] if translator is None else translator.translate(h[rows], label)
                per_layer.append(decode_stats(lens_logits(state.model, state.arch, x), final, top_k=top_k,
                                              token_sets=sets))
            per_layer.append(decode_stats(last, final, top_k=top_k, token_sets=sets))
            parts.append(_stack_layers(per_layer))
    return {k: (np.concatenate([p[k] for p in parts]) if k != "mass" else
                {n: np.concatenate([p["mass"][n] for p in parts]) for n in sets}) for k in parts[0]}


def _stack_layers(per_layer: list[dict[str, Any]]) -> dict[str, Any]:
    """Layer dicts of `(rows, ...)` tensors → numpy arrays `(rows, layers, ...)`."""
    def stack(ts: list[torch.Tensor]) -> np.ndarray:
        return torch.stack(ts, 1).cpu().numpy()

    out: dict[str, Any] = {k: stack([d[k] for d in per_layer]) for k in ("top_ids", "top_probs", "entropy", "kl")}
    out["mass"] = {n: stack([d["mass"][n] for d in per_layer]) for n in per_layer[0]["mass"]}
    return out


def lens_readout(state: ModelState, prompts: Sequence[Prompt], spec: LensSpec | None = None, *,
                 token_sets: Mapping[str, Any] | None = None, translator: TunedLens | None = None,
                 batch_tokens: int = 4096, max_padding: float = MAX_PADDING, padding_side: str = "right",
                 progress: Progress | None = None, should_stop: StopFn | None = None) -> LensReadout:
    """Decode every layer at the chosen positions of each prompt; keep only what lens views need.

    Args:
        state: the model state (never modified).
        prompts: texts or lists of token ids.
        spec: positions, top-k, whether to decode `"emb"`, prompt length limit.
        token_sets: name -> token ids; the readout keeps each set's probability mass.
        translator: a tuned lens of this state (None: the logit lens).
        batch_tokens: padded tokens per forward batch (memory; never changes the numbers).
        max_padding: padding budget of a batch (`length_batches`).
        padding_side: "right" or "left" (positions are the same either way).
        progress: `progress(prompts done, prompts, message)` after each batch.
        should_stop: checked before each batch; True raises `Cancelled`.

    Returns:
        A `LensReadout`: reads in prompt order, then position order.

    Raises:
        RecordError: an empty or over-long prompt, a position outside a prompt.
        ParamError: a bad token set. ArtifactError: a tuned lens of another model state.
        Cancelled: `should_stop()` returned True.
    """
    spec = spec or LensSpec()
    if translator is not None:
        translator.check_base(state)
    ids = prompt_ids(state.tokenizer, prompts, spec)
    pos = [read_positions(len(x), spec.positions) for x in ids]
    count = [np.isin(np.arange(len(x)), p).tolist() for x, p in zip(ids, pos)]  # the tokens read
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pos])]).astype(np.int64)
    labels: tuple[Any, ...] = (("emb",) if spec.embeddings else ()) + tuple(range(state.n_layers))
    vocab = int(get_path(state.model, state.arch.unembed).weight.shape[0])
    sets = token_set_tensors(token_sets, vocab)
    top_k = min(spec.top_k, vocab)
    acc = _Arrays(int(offsets[-1]), len(labels), top_k, list(sets))
    plan = {"embeddings": spec.embeddings, "n_layers": state.n_layers}
    batches = length_batches([len(x) for x in ids], max_tokens=token_budget(batch_tokens, state.device),
                             max_padding=max_padding)
    done, pending = 0, list(batches)
    with traced(state) as envoy:
        while pending:
            if should_stop is not None and should_stop():
                raise Cancelled(f"lens readout cancelled after {done} of {len(ids)} prompts")
            b = pending.pop(0)
            batch = make_batch(ids, count, [[i] for i in b], state.tokenizer.pad_token_id, padding_side, state.device)
            try:
                got = _decode(state, _run_batch(envoy, state, batch, plan), labels, translator, sets, top_k)
            except (torch.OutOfMemoryError, MemoryError):
                if len(b) == 1:
                    raise RecordError(f"one prompt of {len(ids[b[0]])} tokens does not fit in memory") from None
                log.warning("lens batch of %d prompts ran out of memory; splitting it in two", len(b))
                pending[:0] = [b[: len(b) // 2], b[len(b) // 2:]]
                continue
            acc.put(np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in batch["order"]]), got)
            done += len(b)
            if progress is not None:
                progress(done, len(ids), "lens readout")
    return LensReadout(
        labels, prompt=np.repeat(np.arange(len(ids)), [len(p) for p in pos]).astype(np.int64),
        position=np.array([q for p in pos for q in p], dtype=np.int64),
        token=np.array([x[q] for x, p in zip(ids, pos) for q in p], dtype=np.int64),
        top_ids=acc.top_ids, top_probs=acc.top_probs, entropy=acc.entropy, kl_to_final=acc.kl,
        set_mass=acc.mass, lens="logit" if translator is None else f"tuned:{translator.fingerprint}")


class _Arrays:
    """The readout's arrays, filled batch by batch at the rows of each batch's reads."""

    def __init__(self, n: int, n_layers: int, k: int, set_names: list[str]) -> None:
        self.top_ids = np.zeros((n, n_layers, k), np.int64)
        self.top_probs = np.zeros((n, n_layers, k), np.float32)
        self.entropy = np.zeros((n, n_layers), np.float32)
        self.kl = np.zeros((n, n_layers), np.float32)
        self.mass = {name: np.zeros((n, n_layers), np.float32) for name in set_names}

    def put(self, rows: np.ndarray, got: dict[str, Any]) -> None:
        """Write one batch's reductions at `rows`."""
        self.top_ids[rows] = got["top_ids"]
        self.top_probs[rows] = got["top_probs"]
        self.entropy[rows] = got["entropy"]
        self.kl[rows] = got["kl"]
        for name, arr in got["mass"].items():
            self.mass[name][rows] = arr

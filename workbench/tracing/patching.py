"""Cross-lingual activation patching (Dumas et al. 2024; METHODS §10): one nnsight pass per target prompt.

For a target prompt with `k` source prompts and a model of `L` blocks, one batch holds the
`k` source rows, then `L` copies of the target (row `l`: patched at layer `l`, or at every
layer ≥ `l` in the ``from`` variant), then the target unpatched. Inside one trace, at each
block `j` in execution order, the sources' block-`j` output at their last token is read
(averaged over the `k` sources: the mean-over-languages variant; one source is copied as
is), and written into the target rows patched at `j`, at the target's patch position
(`PatchSpec.target_offsets`). Source rows are never written, so the state copied at `j` is
exactly the source run's `h_j`: a batch is the source run and the `L` patched runs at once,
where the authors' ``object_lens`` makes one trace per layer after collecting the sources.
Padding is on the right with position ids restarting at each row's first token
(`inputs.make_batch`), so rows of different lengths share a batch without moving a position.

The trace keeps only the last block's output at each target row's last token and stops
there; that state is decoded with the model's own final norm, unembedding and logit
post-processing (`models.unembed.lens_logits`, so it is the model's next-token
distribution) and reduced as a lens readout is (`lenses.decode_stats`), the KL being
taken to the unpatched target's distribution. The result is a `LensReadout` with one read
per target prompt and one "layer" per patched layer, plus `lenses.UNPATCHED` (the target's
own run) last.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from workbench.errors import Cancelled, RecordError
from workbench.lenses.patch import UNPATCHED, PatchSpec
from workbench.lenses.readout import FinalDist, LensReadout, decode_stats, row_chunks, token_set_tensors
from workbench.lenses.spec import LensSpec
from workbench.models import ModelState, get_path
from workbench.models.unembed import lens_logits
from workbench.progress import Progress, StopFn
from workbench.tracing.inputs import make_batch
from workbench.tracing.lens import prompt_ids
from workbench.tracing.recorder import _hidden, _nns, traced

__all__ = ["patch_plan", "patch_readout"]


def patch_plan(n_layers: int, n_sources: int, variant: str) -> list[list[int]]:
    """Per block `j`, the batch rows written there: target copy `l` sits at row `n_sources + l`.

    ``single``: copy `l` at block `l` only; ``from``: copy `l` at every block ≥ `l`. The last
    row (`n_sources + n_layers`, the unpatched target) is never written.
    """
    return [[n_sources + row for row in range(n_layers) if (row == j if variant == "single" else row <= j)]
            for j in range(n_layers)]


def _body(envoy: Any, arch: dict[str, Any], plan: list[list[int]], src: tuple[list[int], list[int]], tpos: int,
          last: int) -> Any:
    """Inside the trace: patch every block in order, then the last block's output at the target rows' last token."""
    blocks = get_path(envoy, arch["layers"])
    rows, cols = src
    n = len(plan)
    for j in range(n):
        h = _hidden(blocks[j].output)
        v = h[rows[0], cols[0]] if len(rows) == 1 else h[rows, cols].mean(0)  # one source: copied bit for bit
        if plan[j]:
            h[plan[j], tpos] = v
    out = _hidden(blocks[n - 1].output)
    return out[len(rows):, last]


def _run(envoy: Any, state: ModelState, batch: dict[str, Any], plan: list[list[int]],
         src: tuple[list[int], list[int]], tpos: int, last: int) -> torch.Tensor:
    arch = dataclasses.asdict(state.arch)
    save = _nns().nnsight.save  # bound outside the trace body, as the recorder does
    with torch.inference_mode():
        with envoy.trace(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         position_ids=batch["position_ids"], use_cache=False) as tracer:
            got = save(_body(envoy, arch, plan, src, tpos, last))
            tracer.stop()  # after the last block: the final norm and LM head run only on the rows kept
    return got


def _decode(state: ModelState, h: torch.Tensor, sets: Mapping[str, torch.Tensor], top_k: int) -> dict[str, Any]:
    """Reductions of the `(L + 1, d)` last-token states (the last row unpatched), as numpy arrays."""
    vocab = int(get_path(state.model, state.arch.unembed).weight.shape[0])
    parts = []
    with torch.inference_mode():
        # one row at a time: a matrix product's rows can differ in their last bits with the batch's size, and a
        # patched run that changes nothing must decode to exactly the unpatched run's distribution
        logits = torch.cat([lens_logits(state.model, state.arch, h[i:i + 1]) for i in range(h.shape[0])])
        base = FinalDist.of(logits[-1:])
        for rows in row_chunks(h.shape[0], vocab):
            x = logits[rows]
            f = FinalDist(base.logits.expand(x.shape[0], -1), base.lse.expand(x.shape[0], -1),
                          base.p.expand(x.shape[0], -1))
            parts.append(decode_stats(x, f, top_k=top_k, token_sets=sets))
    out: dict[str, Any] = {k: torch.cat([p[k] for p in parts]).cpu().numpy()
                           for k in ("top_ids", "top_probs", "entropy", "kl")}
    out["mass"] = {n: torch.cat([p["mass"][n] for p in parts]).cpu().numpy() for n in sets}
    return out


def patch_readout(state: ModelState, targets: Sequence[str], patch: PatchSpec, spec: LensSpec | None = None, *,
                  token_sets: Mapping[str, Any] | None = None, progress: Progress | None = None,
                  should_stop: StopFn | None = None) -> LensReadout:
    """Patch each target prompt at every layer; keep the target's next-token reductions per patched layer.

    Args:
        state: the model state (never modified).
        targets: the target prompts (texts), one read each at its last token.
        patch: the source prompts of each target, the patch position, the variant.
        spec: top-k, prompt length limit, special tokens (its positions are not used: the
            read is the last token).
        token_sets: name -> token ids; the mass of each set is kept.
        progress: `progress(targets done, targets, message)` after each target.
        should_stop: checked before each target; True raises `Cancelled`.

    Returns:
        A `LensReadout` with `layer_labels` = blocks ``0 … L-1`` then `lenses.UNPATCHED`;
        `kl_to_final` is KL(p_unpatched ‖ p_patched at l).

    Raises:
        RecordError: a count of source lists other than the targets', an empty or over-long
            prompt, a patch position outside its prompt. Cancelled: `should_stop()` was True.
    """
    spec = spec or LensSpec()
    if len(patch.sources) != len(targets):
        raise RecordError(f"{len(patch.sources)} source lists for {len(targets)} target prompts")
    L = state.n_layers
    vocab = int(get_path(state.model, state.arch.unembed).weight.shape[0])
    sets = token_set_tensors(token_sets, vocab)
    top_k = min(spec.top_k, vocab)
    tok = state.tokenizer
    ids_t = prompt_ids(tok, targets, spec)
    plan = patch_plan(L, 0, patch.variant)
    acc: dict[str, Any] = {"top_ids": [], "top_probs": [], "entropy": [], "kl": [], "mass": {n: [] for n in sets}}
    with traced(state) as envoy:
        for i, (target, sources) in enumerate(zip(ids_t, patch.sources)):
            if should_stop is not None and should_stop():
                raise Cancelled(f"patching cancelled after {i} of {len(ids_t)} targets")
            ids_s = prompt_ids(tok, list(sources), spec)
            k = len(ids_s)
            tpos = len(target) + patch.target_offsets[i]
            if tpos < 0:
                raise RecordError(f"patch position {patch.target_offsets[i]} outside target prompt {i} "
                                  f"({len(target)} tokens)")
            seqs = [*ids_s, *[target] * (L + 1)]
            batch = make_batch(seqs, [[True] * len(s) for s in seqs], [[r] for r in range(len(seqs))],
                               tok.pad_token_id, "right", state.device)
            src = (list(range(k)), [len(s) - 1 for s in ids_s])
            h = _run(envoy, state, batch, [[r + k for r in rows] for rows in plan], src, tpos, len(target) - 1)
            got = _decode(state, h, sets, top_k)
            for key in ("top_ids", "top_probs", "entropy", "kl"):
                acc[key].append(got[key])
            for n in sets:
                acc["mass"][n].append(got["mass"][n])
            if progress is not None:
                progress(i + 1, len(ids_t), "patching")
    return LensReadout(
        (*range(L), UNPATCHED), prompt=np.arange(len(ids_t), dtype=np.int64),
        position=np.array([len(t) - 1 for t in ids_t], dtype=np.int64),
        token=np.array([t[-1] for t in ids_t], dtype=np.int64),
        top_ids=np.stack(acc["top_ids"]).astype(np.int64), top_probs=np.stack(acc["top_probs"]).astype(np.float32),
        entropy=np.stack(acc["entropy"]).astype(np.float32), kl_to_final=np.stack(acc["kl"]).astype(np.float32),
        set_mass={name: np.stack(v).astype(np.float32) for name, v in acc["mass"].items()}, lens="patch")

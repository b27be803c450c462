"""Cross-lingual activation patching (Dumas et al. 2024; METHODS §10): two nnsight passes per target prompt.

A patch at position `t` changes nothing before `t`, so the tokens before it are run once.
For a target prompt with `k` source prompts and a model of `L` blocks:

1. the *prefix pass* runs, in one left-padded batch, each source prompt without its last
   token and the target without its tokens from `t` on (`PatchSpec.target_offsets`), filling
   a key/value cache and stopping after the last block (no head runs);
2. the *suffix pass* runs the rest, on that cache with the target's row repeated: the `k`
   sources' last token, then `L` copies of the target's tokens from `t` (copy `l` patched at
   layer `l`, or at every layer ≥ `l` in the ``from`` variant), then the target unpatched.
   Inside one trace, at each block `j` in execution order, the sources' block-`j` output at
   their last token is read (averaged over the `k` sources: the mean-over-languages variant;
   one source is copied as is) and written into the copies patched at `j`, at `t`.

Source rows are never written, so the state copied at `j` is the source run's `h_j`; and a
source equal to the target computes exactly what the unpatched row computes (same prefix,
same batch), so such a patch changes no bit (on one CPU thread: with several, a BLAS may split
a batch's rows between threads and round them differently in the last bit). Position ids
count each row's real tokens and the attention mask hides the padding, so padding moves no
position. The authors' ``object_lens`` runs the whole target once per layer; here the prefix
is run once and each layer's copy costs only the tokens from `t` (one for the last token).

The suffix pass keeps only the last block's output at each target row's last token and stops
there; that state is decoded with the model's own final norm, unembedding and logit
post-processing (`models.unembed.lens_logits`, so it is the model's next-token
distribution) and reduced as a lens readout is (`lenses.decode_stats`), the KL being taken to
the unpatched target's distribution. The result is a `LensReadout` with one read per target
prompt and one "layer" per patched layer, plus `lenses.UNPATCHED` (the target's own run) last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers import DynamicCache

from workbench.errors import Cancelled, RecordError
from workbench.lenses.patch import UNPATCHED, PatchSpec
from workbench.lenses.readout import FinalDist, LensReadout, decode_stats, row_chunks, token_set_tensors
from workbench.lenses.spec import LensSpec
from workbench.models import ModelState, get_path
from workbench.models.unembed import lens_logits
from workbench.progress import Progress, StopFn
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


def _left_padded(rows: Sequence[Sequence[int]], pad_id: int, device: Any) -> dict[str, torch.Tensor]:
    """A left-padded batch (every row ends in the last column): ids, attention mask, position ids of real tokens."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(list(r), dtype=torch.long)
        mask[i, width - len(r):] = 1
        pos[i, width - len(r):] = torch.arange(len(r))
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "position_ids": pos.to(device)}


def _prefix_cache(envoy: Any, state: ModelState, prefixes: Sequence[Sequence[int]]) -> tuple[Any, torch.Tensor]:
    """The key/value cache of the prefixes (one left-padded batch) and its attention mask; no head runs."""
    blocks = get_path(envoy, state.arch.layers)
    batch = _left_padded(prefixes, state.tokenizer.pad_token_id, state.device)
    cache = DynamicCache(config=state.model.config)  # per layer the architecture's kind (full, sliding window)
    with torch.inference_mode():
        with envoy.trace(**batch, cache=cache, use_cache=True) as tracer:
            blocks[state.n_layers - 1].output  # wait for the last block: every layer has filled the cache  # noqa: B018
            tracer.stop()
    return cache, batch["attention_mask"]


def _suffix_body(envoy: Any, layers: str, plan: list[list[int]], k: int, last: int) -> Any:
    """Inside the trace: patch every block in order (column 0 = the patch position), then read the last block."""
    blocks = get_path(envoy, layers)
    n = len(plan)
    for j in range(n):
        h = _hidden(blocks[j].output)
        v = h[0, 0].clone() if k == 1 else h[:k, 0].mean(0)  # one source: copied bit for bit
        if plan[j]:
            h[plan[j], 0] = v
    return _hidden(blocks[n - 1].output)[k:, last]


def _suffix_pass(envoy: Any, state: ModelState, cache: Any, prefix_mask: torch.Tensor,
                 suffixes: Sequence[Sequence[int]], plan: list[list[int]], k: int) -> torch.Tensor:
    """`(L + 1, d)`: the last block's output at the target rows' last token, after the patches of `plan`."""
    L = state.n_layers
    rows = [*range(k), *[k] * (L + 1)]  # the sources' cache rows, then the target's, repeated
    index = torch.tensor(rows, device=prefix_mask.device)
    cache.batch_select_indices(index)
    width = max(len(x) for x in suffixes)
    seqs = [*suffixes[:k], *[suffixes[k]] * (L + 1)]
    ids = torch.full((len(seqs), width), state.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, x in enumerate(seqs):  # right-padded: column 0 is every row's first new token
        ids[i, :len(x)] = torch.tensor(list(x), dtype=torch.long)
        mask[i, :len(x)] = 1
    pmask = prefix_mask[index]
    start = pmask.sum(1, keepdim=True).cpu()  # real prefix tokens: the first new position of each row
    pos = start + torch.arange(width)[None, :]
    save = _nns().nnsight.save  # bound outside the trace body, as the recorder does
    with torch.inference_mode():
        with envoy.trace(input_ids=ids.to(state.device), attention_mask=torch.cat([pmask, mask.to(pmask.device)], 1),
                         position_ids=pos.to(state.device), cache=cache, use_cache=True) as tracer:
            got = save(_suffix_body(envoy, state.arch.layers, plan, k, len(suffixes[k]) - 1))
            tracer.stop()  # after the last block: the final norm and the head run only on the rows kept
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
            if tpos < 1 or any(len(x) < 2 for x in ids_s):
                raise RecordError(f"target prompt {i}: the patch position {patch.target_offsets[i]} needs a token "
                                  f"before it ({len(target)} tokens), and each source prompt two tokens")
            cache, pmask = _prefix_cache(envoy, state, [*[x[:-1] for x in ids_s], target[:tpos]])
            h = _suffix_pass(envoy, state, cache, pmask, [*[x[-1:] for x in ids_s], target[tpos:]],
                             [[r + k for r in rows] for rows in plan], k)
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

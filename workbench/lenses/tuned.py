"""The tuned lens (Belrose et al. 2023): one affine translator per layer, trained against the final layer.

`p_l = softmax(post(U · N(A_l h_l + b_l)))` (METHODS §9), with the model's own final norm
`N`, unembedding `U` and logit post-processing (`models.unembed.lens_logits`). As in the
authors' code (AlignmentResearch/tuned-lens, `TunedLens.transform_hidden`) a translator is
parametrised residually, `A_l h + b_l = h + W_l h + b_l` with `W_l = 0`, `b_l = 0` at the
start (so `A_l` starts at the identity and weight decay pulls it back there). Translators
exist for `"emb"` (hidden_states[0]) and blocks `0 … L-2`; the last block's lens is the
model's own distribution and has none.

Training minimises `Σ_l mean_positions KL(p_final ‖ p_l)` over every real token of
ordinary text, with the authors' optimiser (`TunedLensSpec`). We do not use the
`tuned-lens` package: 0.2.0 finds a model's parts with an isinstance chain that knows
neither Gemma-3, Qwen, Cohere, Phi-3, OLMo-2 nor XGLM (NotImplementedError), ignores
logit soft-capping and scaling, and pulls in torchdata and wandb; this module implements
its objective and optimiser and tests them against the paper's formula.

A trained lens is an artifact of its base model: a directory with `translators.safetensors`
and `tuned-lens.json` (the base fingerprint, the spec, the KL before/after).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from workbench.errors import ArtifactError, Cancelled, ParamError
from workbench.examples import length_batches
from workbench.fileio import atomic_write_json, file_sha256
from workbench.lenses.readout import DECODE_CHUNK_BYTES, kl_to_final, row_chunks
from workbench.lenses.spec import TunedLensSpec
from workbench.models import ModelState, get_path
from workbench.models.unembed import lens_logits, postprocess_logits
from workbench.progress import Progress, StopFn

log = logging.getLogger(__name__)

MANIFEST = "tuned-lens.json"
TENSORS = "translators.safetensors"
FORMAT = 1


class TunedLens(torch.nn.Module):
    """Per-layer translators `h ↦ h + W_l h + b_l` of one base model (float32, `W_l`, `b_l` zero at start).

    `labels` = `("emb", 0, …, L-2)`: the layers that have a translator; any other label
    (the last block) is read through the identity.
    """

    def __init__(self, d_model: int, n_layers: int, *, base_fingerprint: str, base_name: str = "") -> None:
        super().__init__()
        self.labels: tuple[Any, ...] = ("emb", *range(n_layers - 1))
        self.d_model, self.n_layers = d_model, n_layers
        self.base_fingerprint, self.base_name = base_fingerprint, base_name
        self.spec: TunedLensSpec | None = None
        self.metrics: dict[str, Any] = {}
        linears = [torch.nn.Linear(d_model, d_model) for _ in self.labels]
        for t in linears:
            torch.nn.init.zeros_(t.weight)
            torch.nn.init.zeros_(t.bias)
        self.translators = torch.nn.ModuleList(linears)
        self._index = {label: i for i, label in enumerate(self.labels)}

    @classmethod
    def identity(cls, state: ModelState) -> TunedLens:
        """Untrained translators of `state` (every `A_l = I`, `b_l = 0`): the logit lens."""
        return cls(state.d_model, state.n_layers, base_fingerprint=state.fingerprint, base_name=state.name)

    def translate(self, h: torch.Tensor, label: Any) -> torch.Tensor:
        """`A_l h + b_l` for layer `label` (`h` `(..., d)`, any dtype; float32 out), `h` itself without a translator."""
        i = self._index.get(label)
        if i is None:
            return h
        t = cast(torch.nn.Linear, self.translators[i])
        x = h.to(device=t.weight.device, dtype=t.weight.dtype)
        return x + t(x)

    @property
    def fingerprint(self) -> str:
        """Short hash of the translator tensors (what makes two lenses read alike)."""
        h = hashlib.sha256()
        for name, t in sorted(self.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def check_base(self, state: ModelState) -> None:
        """Raise `ArtifactError` unless this lens was trained for `state`'s weights."""
        if self.base_fingerprint != state.fingerprint:
            raise ArtifactError(f"this tuned lens was trained on {self.base_name or 'another model'} "
                                f"({self.base_fingerprint}), not on {state.name} ({state.fingerprint}); "
                                "train one for this model state")


# --------------------------------------------------------------------------- data and objective


def _encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    ids = [list(tokenizer(t, truncation=True, max_length=max_length)["input_ids"]) for t in texts]
    return [x for x in ids if x]


def _batch(ids: list[list[int]], rows: list[int], pad_id: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded `(input_ids, attention_mask)` of the sequences `rows`."""
    width = max(len(ids[i]) for i in rows)
    tok = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, i in enumerate(rows):
        tok[r, : len(ids[i])] = torch.tensor(ids[i])
        mask[r, : len(ids[i])] = 1
    return tok.to(device), mask.to(device)


@torch.no_grad()
def _residuals(state: ModelState, tok: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """hidden_states `0 … L` of one batch at its real tokens, each `(N, d)`.

    One forward of the model body (`arch.base`: the LM head never runs over the batch).
    hidden_states[0] is "emb", hidden_states[l+1] block l (l ≤ L-2) and hidden_states[L]
    is already final-normed: the model's own logits are `post(U · hidden_states[L])`.
    """
    out = get_path(state.model, state.arch.base)(input_ids=tok, attention_mask=mask, output_hidden_states=True,
                                                 use_cache=False)
    keep = mask.bool()
    return [h[keep] for h in out.hidden_states]


def _final_logp(state: ModelState, normed: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the model's own distribution from final-normed states `(n, d)` → `(n, V)`."""
    head = get_path(state.model, state.arch.unembed)
    with torch.no_grad():
        logits = postprocess_logits(state.model, state.arch, head(normed.to(head.weight.device)))
    return torch.log_softmax(logits.float(), dim=-1)


def layer_kl(state: ModelState, lens: TunedLens | None, label: Any, h: torch.Tensor,
             final_logp: torch.Tensor) -> torch.Tensor:
    """`KL(p_final ‖ p_l)` per position `(N,)` for residuals `h` `(N, d)` of layer `label` (graph kept)."""
    x = lens.translate(h, label) if lens is not None else h
    logp = torch.log_softmax(lens_logits(state.model, state.arch, x).float(), dim=-1)
    return kl_to_final(final_logp.to(logp.device), logp)


def _batch_kl(state: ModelState, lens: TunedLens | None, hs: list[torch.Tensor], *, backward: bool) -> list[float]:
    """Σ over the batch's tokens of each translated layer's KL (`backward`: also add `∂(Σ_l mean KL_l)` to the grads).

    In row chunks (the final distribution of a chunk is computed once for every layer),
    so memory holds one chunk's `(rows, V)` logits, never the batch's: Gemma's vocabulary
    has 262k tokens.
    """
    n, labels = hs[0].shape[0], ("emb", *range(len(hs) - 2))
    vocab = int(get_path(state.model, state.arch.unembed).weight.shape[0])
    sums = [0.0] * len(labels)
    for part in row_chunks(n, vocab, 2 * DECODE_CHUNK_BYTES):  # float32 (rows, V) tensors of DECODE_CHUNK_BYTES
        final = _final_logp(state, hs[-1][part])
        for i, label in enumerate(labels):
            with torch.set_grad_enabled(backward):
                kl = layer_kl(state, lens, label, hs[i][part], final).sum()
            if backward:
                (kl / n).backward()
            sums[i] += float(kl.detach())
    return sums


def lens_kl(state: ModelState, texts: Sequence[str], lens: TunedLens | None = None, *, max_length: int = 256,
            batch_tokens: int = 2048) -> np.ndarray:
    """Mean `KL(p_final ‖ p_l)` over every real token of `texts`, per translated layer `("emb", 0…L-2)`.

    `lens=None` is the logit lens. Returns `(L,)` float64 in nats.
    """
    ids = _encode(state.tokenizer, texts, max_length)
    total = np.zeros(state.n_layers)
    n = 0
    for rows in length_batches([len(x) for x in ids], max_tokens=batch_tokens):
        hs = _residuals(state, *_batch(ids, rows, state.tokenizer.pad_token_id, state.device))
        total += _batch_kl(state, lens, hs, backward=False)
        n += hs[0].shape[0]
    return total / max(n, 1)


# --------------------------------------------------------------------------- training


def _optimiser(lens: TunedLens, spec: TunedLensSpec) -> tuple[torch.optim.Optimizer, Any]:
    """tuned-lens's SGD: Nesterov, lr_scale·(1−β), weight decay; the rate decays linearly to 0."""
    opt = torch.optim.SGD(lens.parameters(), lr=spec.lr * (1 - spec.momentum), momentum=spec.momentum,
                          nesterov=spec.momentum > 0, weight_decay=spec.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1.0 - step / spec.steps))
    return opt, sched


def train_tuned_lens(state: ModelState, texts: Sequence[str], *, steps: int = 250, lr: float = 1.0,
                     momentum: float = 0.9, weight_decay: float = 1e-3, max_length: int = 256,
                     batch_tokens: int = 2048, progress: Progress | None = None, should_stop: StopFn | None = None,
                     seed: int = 0) -> TunedLens:
    """Train a tuned lens of `state` on `texts` (ordinary text; every real token is a training position).

    Each step runs one length-grouped batch (`length_batches` under `batch_tokens`; batches
    in a seeded order, reshuffled every pass) through the unmodified model, then minimises
    `Σ_l mean_positions KL(p_final ‖ p_l)` over the translators (hyper-parameters: see
    `TunedLensSpec`). Deterministic for a given seed. The base model is never changed.

    Args:
        state: the base model state (its fingerprint goes into the lens).
        texts: training texts.
        steps: optimiser steps (one batch each).
        lr: learning-rate scale; SGD runs at `lr * (1 - momentum)` (tuned-lens's `lr_scale`).
        momentum: Nesterov momentum.
        weight_decay: weight decay of the translators (towards the identity).
        max_length: texts are truncated to this many tokens.
        batch_tokens: padded tokens per batch.
        seed: seed of the batch order.
        progress: `progress(step, steps, message, {"kl": mean over layers, "kl_per_layer": [...]})`.
        should_stop: checked before each step; True raises `Cancelled`.

    Returns:
        The trained `TunedLens` (float32, on the model's device), with `spec` and
        `metrics` (`kl_first`, `kl_last`: per-layer KL of the first and last step).

    Raises:
        Cancelled: `should_stop()` returned True.
        ParamError: bad hyper-parameters, or no text with a token.
    """
    spec = TunedLensSpec(steps=steps, lr=float(lr), momentum=float(momentum), weight_decay=float(weight_decay),
                         max_length=max_length, batch_tokens=batch_tokens, seed=seed)
    ids = _encode(state.tokenizer, texts, spec.max_length)
    if not ids:
        raise ParamError("train_tuned_lens needs at least one text with a token")
    batches = length_batches([len(x) for x in ids], max_tokens=spec.batch_tokens)
    lens = TunedLens.identity(state).to(state.device)
    lens.spec = spec
    opt, sched = _optimiser(lens, spec)
    gen = torch.Generator().manual_seed(seed)
    order: list[int] = []
    first: list[float] = []
    per_layer: list[float] = []
    for step in range(spec.steps):
        if should_stop is not None and should_stop():
            raise Cancelled(f"tuned-lens training cancelled at step {step}/{spec.steps}")
        if not order:
            order = torch.randperm(len(batches), generator=gen).tolist()
        rows = batches[order.pop(0)]
        hs = _residuals(state, *_batch(ids, rows, state.tokenizer.pad_token_id, state.device))
        per_layer = [x / hs[0].shape[0] for x in _batch_kl(state, lens, hs, backward=True)]
        first = first or per_layer
        torch.nn.utils.clip_grad_norm_(lens.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=False)
        sched.step()
        if progress is not None:
            progress(step + 1, spec.steps, f"tuned lens: step {step + 1}/{spec.steps}",
                     {"kl": float(np.mean(per_layer)), "kl_per_layer": per_layer})
    lens.metrics = {"kl_first": first, "kl_last": per_layer}
    return lens.requires_grad_(False)


# --------------------------------------------------------------------------- artifact


def save_tuned_lens(lens: TunedLens, path: str | Path) -> Path:
    """Write the lens as an artifact of its base model: `translators.safetensors` + `tuned-lens.json`."""
    d = Path(path)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in lens.state_dict().items()}
    save_file(tensors, str(d / TENSORS), metadata={"format": "pt"})
    manifest = {"kind": "tuned_lens", "format": FORMAT, "base_fingerprint": lens.base_fingerprint,
                "base_name": lens.base_name, "d_model": lens.d_model, "n_layers": lens.n_layers,
                "labels": list(lens.labels), "spec": lens.spec.to_dict() if lens.spec else None,
                "metrics": lens.metrics, "fingerprint": lens.fingerprint,
                "tensors_sha256": file_sha256(d / TENSORS)}
    atomic_write_json(d / MANIFEST, manifest)
    return d


def _read_manifest(d: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((d / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{d} is not a tuned lens ({MANIFEST} missing or damaged: {e})") from e
    if not isinstance(manifest, dict) or manifest.get("kind") != "tuned_lens" or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{d / MANIFEST} is not a tuned-lens manifest of format {FORMAT}")
    return manifest


def load_tuned_lens(path: str | Path, state: ModelState | None = None) -> TunedLens:
    """Read a lens written by `save_tuned_lens`; with `state`, check it was trained for that state.

    Raises:
        ArtifactError: not a tuned lens, damaged or changed tensors, or another base model.
    """
    d = Path(path)
    manifest = _read_manifest(d)
    if file_sha256(d / TENSORS) != manifest.get("tensors_sha256"):
        raise ArtifactError(f"{d / TENSORS} does not match its manifest (changed or damaged)")
    try:
        tensors = load_file(str(d / TENSORS))
    except (OSError, SafetensorError) as e:
        raise ArtifactError(f"{d / TENSORS} cannot be read ({e})") from e
    lens = TunedLens(manifest["d_model"], manifest["n_layers"], base_fingerprint=manifest["base_fingerprint"],
                     base_name=manifest.get("base_name", ""))
    lens.load_state_dict(tensors)
    lens.spec = TunedLensSpec.from_dict(manifest["spec"]) if manifest.get("spec") else None
    lens.metrics = manifest.get("metrics") or {}
    if state is not None:
        lens.check_base(state)
        lens.to(state.device)
    return lens.requires_grad_(False)

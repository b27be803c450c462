"""LENS: language subspace manipulation of the top layers (METHODS.md §6; LENS §3.2–3.3).

`x` is the last-token representation at the top layer (output of block `L-1`, before the
final norm) of each sample, chat-templated as LENS feeds its probing samples. On the
frozen model, per language `l`, `m_l` = mean of `x` over the samples; the subspaces of
METHODS §4 (`workbench.analysis.subspace.language_subspace`) give `P_a`, `P_s` and
`δ_l = P_s(m_l − m_c)`. Training updates only blocks `>= start` with

    L1 = ‖P_a (x_l − x_c)‖²                     pull together in the agnostic subspace
    L2 = ‖P_s (x_l − x_l^ref) − λ_l δ_l‖²        push along the language direction
    L3 = ‖x_c − x_c^ref‖²                        retain the central language
    L  = λ1·L1 + L2 + λ3·L3

where `ref` is the frozen original model. Our choices where the paper is silent: each
squared norm is summed over the `d` dimensions and averaged over the batch; with several
target languages L1 and L2 are summed over them (L3 is counted once). The frozen
representations are computed once before training (the lower blocks and the reference
model do not change).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from workbench.finetune.data import Example, ParallelSplit, collate, encode_texts, epoch_batches, n_batches
from workbench.finetune.specs import LENSSpec
from workbench.finetune.train import (
    ProgressFn,
    Stepper,
    StopFn,
    TrainResult,
    block_output,
    clone_for_training,
    finish_model,
    last_token,
    summarize,
)

log = logging.getLogger(__name__)

__all__ = ["lens_losses", "lens_representations", "lens_subspace", "train_lens"]


def lens_losses(x_t: torch.Tensor, x_c: torch.Tensor, x_t_ref: torch.Tensor, x_c_ref: torch.Tensor, *,
                p_a: torch.Tensor, p_s: torch.Tensor, delta: torch.Tensor, lam: torch.Tensor | float,
                lambda1: float = 1.0, lambda3: float = 1.0) -> dict[str, torch.Tensor]:
    """LENS's three losses and their total (METHODS §6).

    Args:
        x_t: `(K, B, d)` (or `(B, d)` for K = 1) target-language representations x_l.
        x_c: `(B, d)` central-language representations x_c (row b parallel to x_t[:, b]).
        x_t_ref: like `x_t`, from the frozen reference model.
        x_c_ref: like `x_c`, from the frozen reference model.
        p_a: `(d, d)` projection onto the agnostic subspace `u_a u_aᵀ / ‖u_a‖²`.
        p_s: `(d, d)` projection onto the specific subspace `U_s U_sᵀ`.
        delta: `(K, d)` (or `(d,)`) language directions δ_l.
        lam: `(K,)` (or a float) push strengths λ_l.
        lambda1: weight λ1 of L1.
        lambda3: weight λ3 of L3.

    Returns:
        `{"l1", "l2", "l3", "loss"}` scalars; `loss = λ1·l1 + l2 + λ3·l3`. Squared norms are
        summed over d, averaged over B, and (l1, l2) summed over the K languages.
    """
    if x_t.ndim == 2:
        x_t, x_t_ref = x_t.unsqueeze(0), x_t_ref.unsqueeze(0)
    delta = delta.reshape(-1, delta.shape[-1])
    lam_t = torch.as_tensor(lam, dtype=x_t.dtype, device=x_t.device).reshape(-1, 1, 1)
    if x_t.shape != x_t_ref.shape or x_t.shape[1:] != x_c.shape or x_c.shape != x_c_ref.shape:
        raise ValueError(f"shapes do not fit: x_t {tuple(x_t.shape)}, x_t_ref {tuple(x_t_ref.shape)}, "
                         f"x_c {tuple(x_c.shape)}, x_c_ref {tuple(x_c_ref.shape)}")
    if delta.shape[0] != x_t.shape[0]:
        raise ValueError(f"{delta.shape[0]} directions for {x_t.shape[0]} target languages")
    pull = (x_t - x_c.unsqueeze(0)) @ p_a.T  # P_a is symmetric; .T keeps row-vector convention
    push = (x_t - x_t_ref) @ p_s.T - lam_t * delta.unsqueeze(1)
    l1 = pull.pow(2).sum(-1).mean(-1).sum()
    l2 = push.pow(2).sum(-1).mean(-1).sum()
    l3 = (x_c - x_c_ref).pow(2).sum(-1).mean()
    return {"l1": l1, "l2": l2, "l3": l3, "loss": lambda1 * l1 + l2 + lambda3 * l3}


def _reps(model: Any, arch: Any, examples: list[Example], pad_id: int, device: Any, layer: int,
          batch_size: int = 16) -> torch.Tensor:
    """`(n, d)` float32 last-token outputs of block `layer`, no gradients."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(examples), batch_size):
            batch = collate(examples[i:i + batch_size], pad_id, device)
            out.append(last_token(block_output(model, arch, batch, layer), batch["attention_mask"]).float())
    return torch.cat(out)


def lens_representations(
    state: Any, split: ParallelSplit, spec: LENSSpec
) -> tuple[dict[str, list[Example]], dict[str, torch.Tensor]]:
    """Tokenised samples and frozen top-layer last-token vectors `(n, d)` per language."""
    n = min(spec.samples_per_lang, len(split.train))
    examples = {lang: encode_texts(state.tokenizer, split.column(lang)[:n], split.spec.max_length,
                                   chat_template=spec.chat_template) for lang in spec.languages}
    top = state.n_layers - 1
    reps = {lang: _reps(state.model, state.arch, ex, state.tokenizer.pad_token_id, state.device, top)
            for lang, ex in examples.items()}
    return examples, reps


def lens_subspace(reps: dict[str, torch.Tensor], spec: LENSSpec) -> dict[str, Any]:
    """Fit the subspaces on the language means; return P_a, P_s, δ (targets) and the fit."""
    from workbench.analysis.subspace import language_subspace

    langs = list(spec.languages)
    means = np.stack([reps[lang].double().mean(0).cpu().numpy() for lang in langs])
    sub = language_subspace(means, rank=spec.rank, languages=langs)
    u = sub.agnostic
    p_a = np.outer(u, u) / (u @ u)
    p_s = sub.specific @ sub.specific.T
    deltas = np.stack([sub.direction(lang, spec.central) for lang in spec.targets])
    return {"subspace": sub, "p_a": p_a, "p_s": p_s, "delta": deltas}


def train_lens(state: Any, split: ParallelSplit, spec: LENSSpec, *, progress: ProgressFn | None = None,
               should_stop: StopFn | None = None, inplace: bool = False) -> TrainResult:
    """LENS on a copy of `state.model`: only blocks >= start are trained.

    Args:
        state: a ModelState-like object (model, tokenizer, arch, n_layers, device).
        split: parallel data containing every language of `spec.languages`.
        spec: the LENS config.
        progress: progress(step, total, metrics) after each step (metrics l1, l2, l3).
        should_stop: checked before each step; True raises `Cancelled`.
        inplace: modify `state.model` itself (only for a model nobody else uses).

    Returns:
        The trained model, history, metrics (start layer, rank, ‖δ_l‖) and trained names.
    """
    start = spec.start_layer if spec.start_layer is not None else max(0, state.n_layers - 2)
    if start >= state.n_layers:
        raise ValueError(f"start_layer {start} out of range: the model has {state.n_layers} blocks")
    examples, reps = lens_representations(state, split, spec)
    fit = lens_subspace(reps, spec)
    torch.manual_seed(spec.seed)
    model = clone_for_training(state.model, inplace)
    prefixes = tuple(f"{state.arch.layers}.{i}." for i in range(start, state.n_layers))
    names = [n for n, _ in model.named_parameters() if n.startswith(prefixes)]
    params = dict(model.named_parameters())
    for n in names:
        params[n].requires_grad_(True)
    dtype, dev = params[names[0]].dtype, state.device
    as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=dev)  # noqa: E731 - local shorthand
    p_a, p_s, delta = as_t(fit["p_a"]), as_t(fit["p_s"]), as_t(fit["delta"])
    lam = as_t([spec.push_strength(lang) for lang in spec.targets])
    ref = {lang: r.to(device=dev, dtype=dtype) for lang, r in reps.items()}
    n = len(examples[spec.central])
    total = n_batches(n, spec.batch_size, spec.epochs)
    total = min(total, spec.max_steps) if spec.max_steps is not None else total
    stepper = Stepper([params[k] for k in names], lr=spec.lr, schedule=spec.schedule, warmup=spec.warmup,
                      steps=total, max_grad_norm=spec.max_grad_norm, progress=progress,
                      should_stop=should_stop, stage="lens")
    order = [spec.central, *spec.targets]
    top = state.n_layers - 1
    for idx in epoch_batches(n, spec.batch_size, spec.epochs, spec.seed):
        if stepper.done >= total:
            break
        stepper.check()
        batch = collate([examples[lang][i] for lang in order for i in idx], state.tokenizer.pad_token_id, dev)
        x = last_token(block_output(model, state.arch, batch, top), batch["attention_mask"])
        x = x.reshape(len(order), len(idx), -1)
        rows = torch.as_tensor(idx, device=dev)
        losses = lens_losses(x[1:], x[0], torch.stack([ref[lang][rows] for lang in spec.targets]),
                             ref[spec.central][rows], p_a=p_a, p_s=p_s, delta=delta, lam=lam,
                             lambda1=spec.lambda1, lambda3=spec.lambda3)
        stepper.step(losses["loss"], l1=losses["l1"], l2=losses["l2"], l3=losses["l3"])
    seconds = stepper.close()
    finish_model(model)
    sub = fit["subspace"]
    metrics = {"start_layer": start, "rank": sub.rank, "samples_per_lang": n,
               "direction_norms": {lang: float(np.linalg.norm(d)) for lang, d in zip(spec.targets, fit["delta"])},
               **summarize(stepper.history, seconds, ("loss", "l1", "l2", "l3"))}
    return TrainResult(model, stepper.history, metrics, sorted(names))

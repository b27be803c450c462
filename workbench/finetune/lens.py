"""LENS: language subspace manipulation of the top layers (METHODS.md §6; LENS §3.2–3.3).

Follows the authors' code (circle-hit/Lens, ``Manipulation/src/trainer_lens.py`` and
``Probing/probe.py``). ``x`` is the **last-token** representation **after the final norm**
(the model's final-norm module applied to the output of block ``L−1``, i.e. HF's
``hidden_states[-1]``; the ``final`` layer of the recorder) of each sample. On the frozen
model, per language ``l``, ``m_l`` = mean of ``x`` over the samples; the subspaces of
METHODS §4 (``workbench.analysis.subspace.language_subspace``) give ``P_a``, ``P_s`` and
``δ_l = P_s(m_l − m_c)``. Training updates only blocks ``>= start`` with, every term a
``torch.nn.functional.mse_loss`` (mean over batch **and** dimensions, as ``nn.MSELoss``):

    L1 = MSE(P̂_a x_l, P̂_a x_c)                    pull together in the agnostic subspace
    L2 = MSE(P_s x_l − P_s x_l^ref, λ_l δ_l)        push along the language direction
    L3 = MSE(mean_t x_c, mean_t x_c^ref)            retain the central language
    L  = λ1·L1 + L2 + λ3·L3

``P̂_a`` projects on the unit-normalised agnostic direction (``û ûᵀ``, equal to
``u_a u_aᵀ/‖u_a‖²``); ``ref`` is the frozen original model; ``mean_t`` is the mean over
the sequence's real tokens (the authors average ``hidden_states[-1]`` over every column of
the padded batch; ours does not depend on padding). With several target languages L1 and
L2 are summed over them, as the authors' loop does. (The authors name L2 "pull" and L1
"push"; the formulas are what counts.) Summed squared norms of pre-norm residuals, which
an earlier version used, are ~10⁷ times larger on Gemma-3-270M and do not train.

Chat template: with ``chat_template=True`` each sample is a user turn of the tokenizer's
chat template plus the generation prompt; a tokenizer without one is a ``ParamError``
here, as it is an error in recording (one rule, no silent fallback to plain text).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from workbench.analysis.subspace import language_subspace
from workbench.config import Spec, spec_field
from workbench.errors import ParamError
from workbench.examples import Example, ParallelSplit, encode_texts, epoch_batches, n_batches, scoring_batches
from workbench.finetune.data import collate
from workbench.finetune.method import Method
from workbench.finetune.specs import SCHEDULES, check_common
from workbench.finetune.train import (
    Stepper,
    TrainResult,
    block_output,
    clone_for_training,
    finish_model,
    last_token,
    masked_mean,
    summarize,
)
from workbench.models import get_path
from workbench.progress import Progress, StopFn

log = logging.getLogger(__name__)

__all__ = ["final_states", "lens_encode", "lens_evaluate", "lens_losses", "lens_representations", "lens_subspace",
           "train_lens"]


@dataclass(frozen=True)
class LENSSpec(Spec):
    """LENS: pull in the agnostic subspace, push along δ_l, retain the central language."""

    languages: tuple[str, ...] = spec_field("languages, the central one included", ("en", "sw"))
    central: str = spec_field("central (pivot) language c", "en")
    start_layer: int | None = spec_field("train blocks >= start (all their parameters); None = L-2", None)
    rank: int | None = spec_field("language-specific subspace rank r; None = n_langs − 1", None)
    lambda1: float = spec_field("λ1, weight of L1 (pull together in the agnostic subspace)", 1.0)
    lambda3: float = spec_field("λ3, weight of L3 (retain the central language)", 1.0)
    push: float = spec_field("λ_l, push strength along δ_l, for every target language", 1.0)
    push_per_lang: tuple[tuple[str, float], ...] = spec_field(
        "per-language λ_l overrides, e.g. (('sw', 0.2),)", ())
    samples_per_lang: int = spec_field("parallel samples per language (subspace fit and training)", 200)
    chat_template: bool = spec_field(
        "wrap each sample as a user turn of the tokenizer's chat template with the generation prompt "
        "(LENS's setting, on instruct models); a tokenizer without a chat template is an error, as in "
        "recording (no fallback); off by default because the bundled base models have none", False)
    lr: float = spec_field("peak learning rate (AdamW; LENS App. D: 1e-5)", 1e-5)
    schedule: str = spec_field("learning-rate schedule (LENS App. D: cosine)", "cosine", choices=SCHEDULES)
    warmup: float = spec_field("warm-up fraction of the steps (LENS App. D: 0.05)", 0.05)
    weight_decay: float = spec_field("AdamW weight decay of the trained blocks (LENS App. D: 0.1)", 0.1)
    epochs: float = spec_field("epochs over the samples (LENS: 1)", 1.0)
    batch_size: int = spec_field("parallel samples per step, each in every language (LENS: 8)", 8)
    max_steps: int | None = spec_field("cap on steps", None)
    max_grad_norm: float | None = spec_field("clip the gradient norm (LENS: 1.0); None = no clipping", 1.0)
    seed: int = spec_field("seed of the data order", 0)

    def __post_init__(self) -> None:
        check_common(self)
        object.__setattr__(self, "push_per_lang",
                           tuple((str(k), float(v)) for k, v in self.push_per_lang))
        if len(self.languages) < 2 or len(set(self.languages)) != len(self.languages):
            raise ParamError(f"LENSSpec: need >= 2 distinct languages, got {self.languages}")
        if self.central not in self.languages:
            raise ParamError(f"LENSSpec: central {self.central!r} must be one of {self.languages}")
        unknown = [k for k, _ in self.push_per_lang if k not in self.languages or k == self.central]
        if unknown:
            raise ParamError(f"LENSSpec: push_per_lang names {unknown}, not target languages")
        if self.samples_per_lang < 2:
            raise ParamError("LENSSpec: samples_per_lang must be >= 2")
        if self.start_layer is not None and self.start_layer < 0:
            raise ParamError(f"LENSSpec: start_layer must be >= 0, got {self.start_layer}")
        if self.weight_decay < 0:
            raise ParamError(f"LENSSpec: weight_decay must be >= 0, got {self.weight_decay}")

    def push_strength(self, lang: str) -> float:
        """λ_l for one target language."""
        return dict(self.push_per_lang).get(lang, self.push)

    @property
    def targets(self) -> tuple[str, ...]:
        """The target languages (all but the central one), in order."""
        return tuple(x for x in self.languages if x != self.central)


def lens_losses(x_t: torch.Tensor, x_c: torch.Tensor, x_t_ref: torch.Tensor, m_c: torch.Tensor,
                m_c_ref: torch.Tensor, *, p_a: torch.Tensor, p_s: torch.Tensor, delta: torch.Tensor,
                lam: torch.Tensor | float, lambda1: float = 1.0, lambda3: float = 1.0) -> dict[str, torch.Tensor]:
    """LENS's three losses and their total, each an `F.mse_loss` (METHODS §6).

    Args:
        x_t: `(K, B, d)` (or `(B, d)` for K = 1) target-language last-token states x_l.
        x_c: `(B, d)` central-language last-token states x_c (row b parallel to x_t[:, b]).
        x_t_ref: like `x_t`, from the frozen reference model.
        m_c: `(B, d)` sequence means of the central-language states (trained model).
        m_c_ref: `(B, d)` the same from the frozen reference model.
        p_a: `(d, d)` projection onto the agnostic direction `û ûᵀ`.
        p_s: `(d, d)` projection onto the specific subspace `U_s U_sᵀ`.
        delta: `(K, d)` (or `(d,)`) language directions δ_l.
        lam: `(K,)` (or a float) push strengths λ_l.
        lambda1: weight λ1 of L1.
        lambda3: weight λ3 of L3.

    Every tensor is moved to `x_t`'s device (a model split over GPUs); the losses live there.

    Returns:
        `{"l1", "l2", "l3", "loss"}` scalars; `loss = λ1·l1 + l2 + λ3·l3`; l1 and l2 are
        summed over the K target languages, each term a mean over batch and dimensions.

    Raises:
        ParamError: shapes that do not fit together.
    """
    if x_t.ndim == 2:
        x_t, x_t_ref = x_t.unsqueeze(0), x_t_ref.unsqueeze(0)
    # the states come from the top block's device; with device_map="auto" over several GPUs the
    # projections, references and batch rows were made on the first one (a no-op on one device)
    dev = x_t.device
    x_c, x_t_ref, m_c, m_c_ref = x_c.to(dev), x_t_ref.to(dev), m_c.to(dev), m_c_ref.to(dev)
    p_a, p_s, delta = p_a.to(dev), p_s.to(dev), delta.to(dev)
    delta = delta.reshape(-1, delta.shape[-1])
    lam_t = torch.as_tensor(lam, dtype=x_t.dtype, device=x_t.device).reshape(-1, 1, 1)
    if x_t.shape != x_t_ref.shape or x_t.shape[1:] != x_c.shape or m_c.shape != m_c_ref.shape:
        raise ParamError(f"shapes do not fit: x_t {tuple(x_t.shape)}, x_t_ref {tuple(x_t_ref.shape)}, "
                         f"x_c {tuple(x_c.shape)}, m_c {tuple(m_c.shape)}, m_c_ref {tuple(m_c_ref.shape)}")
    if delta.shape[0] != x_t.shape[0]:
        raise ParamError(f"{delta.shape[0]} directions for {x_t.shape[0]} target languages")
    # row vectors: x @ Pᵀ = P x (both projections are symmetric)
    l1 = sum(F.mse_loss(x_t[k] @ p_a.T, x_c @ p_a.T) for k in range(x_t.shape[0]))
    push_target = (lam_t * delta.unsqueeze(1)).expand_as(x_t)
    l2 = sum(F.mse_loss(x_t[k] @ p_s.T - x_t_ref[k] @ p_s.T, push_target[k]) for k in range(x_t.shape[0]))
    l3 = F.mse_loss(m_c, m_c_ref)
    return {"l1": l1, "l2": l2, "l3": l3, "loss": lambda1 * l1 + l2 + lambda3 * l3}  # type: ignore[dict-item]  # sums of tensors


def final_states(model: Any, arch: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """`(B, T, d)` post-final-norm states: the final norm applied to block `L−1`'s output (HF `hidden_states[-1]`)."""
    top = len(get_path(model, arch.layers)) - 1
    return get_path(model, arch.norm)(block_output(model, arch, batch, top))


def _reps(model: Any, arch: Any, examples: list[Example], pad_id: int, device: Any,
          batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """`(n, d)` float32 last-token and `(n, d)` sequence-mean post-norm states, no gradients.

    Examples run in batches of similar length (`scoring_batches`); rows come back in input order.
    """
    n = len(examples)
    last: list[torch.Tensor | None] = [None] * n
    mean: list[torch.Tensor | None] = [None] * n
    with torch.inference_mode():
        for idx in scoring_batches([len(e.ids) for e in examples], batch_size=batch_size):
            batch = collate([examples[i] for i in idx], pad_id, device)
            h = final_states(model, arch, batch)
            mask = batch["attention_mask"]
            lt, mt = last_token(h, mask).float(), masked_mean(h, mask.bool()).float()
            for j, i in enumerate(idx):
                last[i], mean[i] = lt[j], mt[j]
    return torch.stack(last), torch.stack(mean)  # type: ignore[arg-type]  # every row set above


def lens_encode(tokenizer: Any, texts: list[str], max_length: int, spec: LENSSpec) -> list[Example]:
    """Tokenised LENS samples (chat-templated with `spec.chat_template`).

    Raises:
        ParamError: `chat_template` is on and the tokenizer has no chat template.
    """
    if spec.chat_template and not getattr(tokenizer, "chat_template", None):
        raise ParamError("LENSSpec.chat_template is on but this tokenizer has no chat template "
                         "(as in recording, there is no fallback): set chat_template=False")
    return encode_texts(tokenizer, texts, max_length, chat_template=spec.chat_template)


def lens_representations(
    state: Any, split: ParallelSplit, spec: LENSSpec, part: str = "train"
) -> tuple[dict[str, list[Example]], dict[str, torch.Tensor]]:
    """Tokenised samples and frozen last-token post-norm vectors `(n, d)` per language.

    `part="train"` takes the first `samples_per_lang` training units; `"heldout"` every
    held-out unit.
    """
    texts = {lang: split.column(lang, part) for lang in spec.languages}
    if part == "train":
        texts = {lang: t[:spec.samples_per_lang] for lang, t in texts.items()}
    examples = {lang: lens_encode(state.tokenizer, t, split.spec.max_length, spec) for lang, t in texts.items()}
    reps = {lang: _reps(state.model, state.arch, ex, state.tokenizer.pad_token_id, state.device)[0]
            for lang, ex in examples.items()}
    return examples, reps


def lens_subspace(reps: dict[str, torch.Tensor], spec: LENSSpec) -> dict[str, Any]:
    """Fit the subspaces on the language means; return P_a, P_s, δ (targets) and the fit."""
    langs = list(spec.languages)
    means = np.stack([reps[lang].double().mean(0).cpu().numpy() for lang in langs])
    sub = language_subspace(means, rank=spec.rank, languages=langs)
    u = sub.agnostic
    p_a = np.outer(u, u) / (u @ u)
    p_s = sub.specific @ sub.specific.T
    deltas = np.stack([sub.direction(lang, spec.central) for lang in spec.targets])
    return {"subspace": sub, "p_a": p_a, "p_s": p_s, "delta": deltas}


def lens_evaluate(model: Any, ref_model: Any, state: Any, examples: dict[str, list[Example]], fit: dict[str, Any],
                  spec: LENSSpec) -> dict[str, float]:
    """The three loss terms of `model` against `ref_model` on `examples` (e.g. held-out), no gradients.

    `l1` is the agnostic-subspace distance of the target languages to the central one
    (the MSE between their agnostic projections), the number that LENS pulls down.

    Returns:
        `{"l1", "l2", "l3", "loss", "n"}` as floats.
    """
    pad, dev = state.tokenizer.pad_token_id, state.device
    got = {lang: _reps(model, state.arch, ex, pad, dev) for lang, ex in examples.items()}
    ref = {lang: _reps(ref_model, state.arch, ex, pad, dev) for lang, ex in examples.items()}
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=dev)  # noqa: E731 - local shorthand
    out = lens_losses(torch.stack([got[lang][0] for lang in spec.targets]), got[spec.central][0],
                      torch.stack([ref[lang][0] for lang in spec.targets]), got[spec.central][1],
                      ref[spec.central][1], p_a=as_t(fit["p_a"]), p_s=as_t(fit["p_s"]), delta=as_t(fit["delta"]),
                      lam=as_t([spec.push_strength(lang) for lang in spec.targets]), lambda1=spec.lambda1,
                      lambda3=spec.lambda3)
    return {**{k: float(v) for k, v in out.items()}, "n": len(examples[spec.central])}


def train_lens(state: Any, split: ParallelSplit, spec: LENSSpec, *, progress: Progress | None = None,
               should_stop: StopFn | None = None, inplace: bool = False) -> TrainResult:
    """LENS on a copy of `state.model`: only blocks >= start are trained.

    Args:
        state: a ModelState-like object (model, tokenizer, arch, n_layers, device).
        split: parallel data containing every language of `spec.languages`.
        spec: the LENS config.
        progress: progress(step, total, stage, metrics) after each step (metrics l1, l2, l3).
        should_stop: checked before each step; True raises `Cancelled`.
        inplace: modify `state.model` itself (only for a model nobody else uses).

    Returns:
        The trained model, history, metrics (start layer, rank, ‖δ_l‖, and `heldout_init` /
        `heldout_final`: the loss terms on the held-out units before and after training,
        `l1` being the agnostic-subspace distance to the central language) and trained names.
    """
    start = spec.start_layer if spec.start_layer is not None else max(0, state.n_layers - 2)
    if start >= state.n_layers:
        raise ParamError(f"start_layer {start} out of range: the model has {state.n_layers} blocks")
    pad, dev = state.tokenizer.pad_token_id, state.device
    examples, reps = lens_representations(state, split, spec)
    fit = lens_subspace(reps, spec)
    held = ({lang: lens_encode(state.tokenizer, split.column(lang, "heldout"), split.spec.max_length, spec)
             for lang in spec.languages} if split.heldout else None)
    # frozen sequence means of the central language (L3's reference); lower blocks never change
    ref_mean = _reps(state.model, state.arch, examples[spec.central], pad, dev)[1]
    held_init = lens_evaluate(state.model, state.model, state, held, fit, spec) if held else None
    torch.manual_seed(spec.seed)
    model = clone_for_training(state.model, inplace)
    prefixes = tuple(f"{state.arch.layers}.{i}." for i in range(start, state.n_layers))
    names = [n for n, _ in model.named_parameters() if n.startswith(prefixes)]
    params = dict(model.named_parameters())
    for n in names:
        params[n].requires_grad_(True)
    dtype = params[names[0]].dtype
    as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=dev)  # noqa: E731 - local shorthand
    p_a, p_s, delta = as_t(fit["p_a"]), as_t(fit["p_s"]), as_t(fit["delta"])
    lam = as_t([spec.push_strength(lang) for lang in spec.targets])
    ref = {lang: r.to(device=dev, dtype=dtype) for lang, r in reps.items()}
    ref_mean = ref_mean.to(device=dev, dtype=dtype)
    n = len(examples[spec.central])
    total = n_batches(n, spec.batch_size, spec.epochs)
    total = min(total, spec.max_steps) if spec.max_steps is not None else total
    stepper = Stepper([params[k] for k in names], lr=spec.lr, schedule=spec.schedule, warmup=spec.warmup,
                      steps=total, max_grad_norm=spec.max_grad_norm, progress=progress,
                      should_stop=should_stop, stage="lens")
    for group in stepper.opt.param_groups:  # the Stepper's AdamW has no decay; LENS uses 0.1 (App. D)
        group["weight_decay"] = spec.weight_decay
    order = [spec.central, *spec.targets]
    for idx in epoch_batches(n, spec.batch_size, spec.epochs, spec.seed):
        if stepper.done >= total:
            break
        stepper.check()
        batch = collate([examples[lang][i] for lang in order for i in idx], pad, dev)
        h = final_states(model, state.arch, batch)
        x = last_token(h, batch["attention_mask"]).reshape(len(order), len(idx), -1)
        m_c = masked_mean(h[:len(idx)], batch["attention_mask"][:len(idx)].bool())
        rows = torch.as_tensor(idx, device=dev)
        losses = lens_losses(x[1:], x[0], torch.stack([ref[lang][rows] for lang in spec.targets]), m_c,
                             ref_mean[rows], p_a=p_a, p_s=p_s, delta=delta, lam=lam,
                             lambda1=spec.lambda1, lambda3=spec.lambda3)
        stepper.step(losses["loss"], l1=losses["l1"], l2=losses["l2"], l3=losses["l3"])
    seconds = stepper.close()
    finish_model(model)
    sub = fit["subspace"]
    metrics = {"start_layer": start, "rank": sub.rank, "samples_per_lang": n,
               "direction_norms": {lang: float(np.linalg.norm(d)) for lang, d in zip(spec.targets, fit["delta"])},
               **summarize(stepper.history, seconds, ("loss", "l1", "l2", "l3"))}
    if held:
        metrics["heldout_init"] = held_init
        metrics["heldout_final"] = lens_evaluate(model, state.model, state, held, fit, spec)
    return TrainResult(model, stepper.history, metrics, sorted(names))


METHOD = Method(
    name="lens", label="LENS", caption="top layers; pull together / push apart in language subspaces",
    spec=LENSSpec, train=train_lens,
    languages=lambda s: tuple(s.languages),
    pivot=lambda s: s.central,
    from_langs=lambda langs: {"languages": tuple(langs), "central": langs[0]},
    lang_fields=("languages", "central"), many_languages=True, shardable=True,
)
"""LENS's record (registered in `finetune.methods`)."""

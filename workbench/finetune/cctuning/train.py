"""CC-Tuning training: model (LoRA, FFN or full) and `W_DM` with the SFT loss through the connection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from workbench.examples import ParallelSplit, epoch_batches, n_batches
from workbench.finetune import lora
from workbench.finetune.cctuning.examples import CCBatch, _datasets, _last, collate_cc
from workbench.finetune.cctuning.report import fit_and_report
from workbench.finetune.cctuning.spec import CCTuningSpec
from workbench.finetune.silp import ffn_parameter_names
from workbench.finetune.train import (
    Stepper,
    TrainResult,
    clone_for_training,
    finish_model,
    summarize,
)
from workbench.models.hooks.cctuning import CC_FILE, decision_maker, ffn_connection, ffn_outputs, prompt_mask
from workbench.progress import Progress, StopFn

__all__ = ["cc_loss", "init_decision_maker", "lora_config", "train_cctuning"]



def lora_config(spec: CCTuningSpec, model: Any) -> Any:
    """The peft LoraConfig of `spec` for `model` (`finetune.lora`: the architecture's module names)."""
    return lora.lora_config(model, r=spec.r, alpha=spec.alpha, dropout=spec.dropout, targets=spec.target_modules)


def _trainable(state: Any, spec: CCTuningSpec, inplace: bool) -> tuple[Any, Any, list[str]]:
    """(module tree to run, peft model or None, names of the trained plain-model parameters)."""
    model = clone_for_training(state.model, inplace)
    if spec.train == "lora":

        peft_model = lora.get_peft_model(model, lora_config(spec, model))
        peft_model.train()
        return peft_model.base_model.model, peft_model, []
    names = (ffn_parameter_names(model, state.arch, list(range(state.n_layers))) if spec.train == "ffn"
             else [n for n, _ in model.named_parameters()])
    params = dict(model.named_parameters())
    for n in names:
        params[n].requires_grad_(True)
    return model, None, names


def cc_loss(net: Any, arch: Any, batch: CCBatch, w_dm: torch.Tensor, *, tau: float = 1.0,
            embed: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """One training forward: English pass (no gradients) → Gumbel Decision Maker → connected SFT loss.

    Returns:
        `(loss, selected (B,))`: the causal-LM loss on the response tokens and the chosen layers.
    """
    with torch.no_grad():
        f_en = ffn_outputs(net, arch, batch.en["input_ids"], batch.en["attention_mask"],
                           _last(batch.en["attention_mask"]))
    decide = lambda e: decision_maker(f_en, e, w_dm, tau=tau, sample=True)  # noqa: E731 - closes over f_en
    with ffn_connection(net, arch, batch.pos, decide=decide, embed=embed,
                        embed_mask=prompt_mask(batch.x, batch.pos)) as link:
        loss = net(input_ids=batch.x["input_ids"], attention_mask=batch.x["attention_mask"],
                   labels=batch.x["labels"], use_cache=False).loss
    return loss, link.selected  # type: ignore[return-value]  # set by the connected pass


def init_decision_maker(d_model: int, n_layers: int, spec: CCTuningSpec) -> torch.Tensor:
    """`W_DM` `(d, L)` float32 at initialisation: zeros, or `N(0, dm_init²)` drawn with the spec's seed.

    Zeros make the first choices uniform random (the paper's "Random Pooling"); a small
    random matrix gives each input its own scores from step 1.
    """
    if spec.dm_init == 0:
        return torch.zeros(d_model, n_layers, dtype=torch.float32)
    gen = torch.Generator().manual_seed(spec.seed)
    return torch.randn(d_model, n_layers, generator=gen, dtype=torch.float32) * spec.dm_init


def _step_decision_maker(dm: Stepper) -> None:
    """Clip, step and zero `W_DM`'s own optimiser (its gradient came from the model's backward)."""
    if dm.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(dm.params, dm.max_grad_norm)
    dm.opt.step()
    dm.sched.step()
    dm.opt.zero_grad(set_to_none=True)


def train_cctuning(state: Any, split: ParallelSplit, spec: CCTuningSpec, *, progress: Progress | None = None,
                   should_stop: StopFn | None = None, inplace: bool = False) -> TrainResult:
    """CC-Tuning on a copy of `state.model`, then the Transform Matrix and the held-out report.

    Args:
        state: a ModelState-like object (model, tokenizer, arch, n_layers, d_model, device).
        split: parallel data with `spec.pivot`, `spec.lang` (and `spec.target`).
        spec: the CC-Tuning config.
        progress: progress(step, total, stage, metrics) after each step.
        should_stop: checked before each step; True raises `Cancelled`.
        inplace: modify `state.model` itself (only for a model nobody else uses).

    Returns:
        The tuned plain model (LoRA merged), history, metrics (with `cctuning`: the report of
        `fit_and_report`), the trained parameter names, the adapter (LoRA), and in `extra`
        `w_dm` `(d, L)`, `w_t` `(d, d)` and `artifact_files` (what goes into `CC_FILE`).
    """
    train_ex, held_ex = _datasets(state.tokenizer, split, spec)
    torch.manual_seed(spec.seed)
    net, peft_model, names = _trainable(state, spec, inplace)
    dev = state.device
    w_dm = torch.nn.Parameter(init_decision_maker(state.d_model, state.n_layers, spec).to(dev))
    total = n_batches(len(train_ex), spec.batch_size, spec.epochs)
    total = min(total, spec.max_steps) if spec.max_steps is not None else total
    params = [p for p in (peft_model or net).parameters() if p.requires_grad]
    stepper = Stepper(params, lr=spec.lr, schedule=spec.schedule, warmup=spec.warmup, steps=total,
                      max_grad_norm=spec.max_grad_norm, progress=progress, should_stop=should_stop,
                      stage="cctuning")
    # W_DM has its own AdamW, learning rate and clipping, on the same schedule and steps;
    # it steps right after the model (whose backward filled W_DM's gradient too).
    dm = Stepper([w_dm], lr=spec.dm_lr, schedule=spec.schedule, warmup=spec.warmup, steps=total,
                 max_grad_norm=spec.max_grad_norm, stage="cctuning-dm")
    counts = torch.zeros(state.n_layers, dtype=torch.long, device=dev)
    for idx in epoch_batches(len(train_ex), spec.batch_size, spec.epochs, spec.seed):
        if stepper.done >= total:
            break
        stepper.check()
        batch = collate_cc([train_ex[i] for i in idx], state.tokenizer.pad_token_id, dev)
        loss, selected = cc_loss(net, state.arch, batch, w_dm, tau=spec.tau, embed=spec.embed)
        counts += torch.bincount(selected, minlength=state.n_layers)
        stepper.step(loss, w_dm_norm=w_dm.detach().norm())
        _step_decision_maker(dm)
    seconds = stepper.close()
    adapter = cfg = None
    if peft_model is not None:
        model, adapter, cfg, names = lora.merge_lora(peft_model)
    else:
        model = net
    finish_model(model)
    w = w_dm.detach().cpu().clone()
    tuned = _Tuned(model, state.arch, state.tokenizer)
    w_t, report = fit_and_report(tuned, w.to(dev), train_ex, held_ex, spec)
    metrics = {"train": spec.train, "n_train_examples": len(train_ex), "n_heldout_examples": len(held_ex),
               "train_selection": counts.cpu().tolist(), "dm_lr": spec.dm_lr, "dm_init": spec.dm_init,
               "w_dm_norm": float(w.norm()), **summarize(stepper.history, seconds),
               "cctuning": report}
    extra = {"w_dm": w, "w_t": w_t, "artifact_files": {CC_FILE: {"w_dm": w, "w_t": w_t}}}
    return TrainResult(model, stepper.history, metrics, sorted(names), adapter=adapter, adapter_config=cfg,
                       extra=extra)


@dataclass
class _Tuned:
    """The pieces of a state that inference needs (for a model that is not wrapped in a ModelState yet)."""

    model: Any
    arch: Any
    tokenizer: Any

"""Mid-align: LoRA fine-tune alternating task and middle-layer alignment batches (METHODS §6).

Task batches: causal-LM translation loss (labels on the target only). Alignment batches:
for `n` parallel pairs, `h` = masked mean over the real (non-special) tokens of the output
of block `i` (METHODS' layer `i`, i.e. HF's `hidden_states[i+1]`), and

    L_align = −mean_j log softmax_j'( cos(h_s^j, h_t^j') / τ )        (in-batch negatives)

Default `i` = the paper's middle layer: Mid-align counts layers from 1 with the embedding
output as layer 0, and its code's `--additional_loss_layer m` runs the parallel inputs
through the first `m` blocks and pools their output (`m = 16` of 32 for Llama-3-8B),
so its layer `m` is our block `m − 1` and the middle layer `L/2` is **block `L//2 − 1`**
(`default_align_layer`). The authors pool over the attention mask with BOS included; we
pool over real non-special tokens (the `midalign` preset of `workbench.presets` matches
the authors' pooling for recordings).

Mid-align Eq. 1, one direction (source rows against target columns), as METHODS writes
it. Each optimiser step uses one batch kind: task, align, task, align, … (Mid-align §3);
either loss can be switched off. The LoRA is merged into the weights at the end; the
raw adapter is kept for merging experiments (`merge_lora_weights`: weighted average of
the LoRA tensors, paper weight 0.9 on the task adapter, Mid-align §6.3 / App. D.3).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from workbench.config import Spec, spec_field
from workbench.errors import ParamError
from workbench.examples import ParallelSplit, encode_texts, n_batches, translation_examples
from workbench.finetune import artifact_io, lora
from workbench.finetune.data import collate
from workbench.finetune.method import Method
from workbench.finetune.specs import SCHEDULES, check_common
from workbench.finetune.train import (
    Stepper,
    TrainResult,
    block_output,
    clone_for_training,
    finish_model,
    masked_mean,
    summarize,
)
from workbench.models.architectures import LORA_TARGETS
from workbench.progress import Progress, StopFn

log = logging.getLogger(__name__)

__all__ = [
    "contrastive_alignment_loss",
    "default_align_layer",
    "lora_config",
    "merge_adapter_artifacts",
    "merge_lora_weights",
    "train_midalign",
]

@dataclass(frozen=True)
class MidAlignSpec(Spec):
    """Mid-align: LoRA, alternating task (translation) and middle-layer contrastive alignment."""

    src: str = spec_field("first language of each pair (the pivot, e.g. en)", "en")
    tgt: str = spec_field("second language of each pair (e.g. sw)", "sw")
    task_directions: str = spec_field("translation task: 'both' (src→tgt and tgt→src) or 'forward'", "both",
                                   choices=("both", "forward"))
    r: int = spec_field("LoRA rank", 8)
    alpha: int = spec_field("LoRA α (scaling α/r)", 16)
    dropout: float = spec_field("LoRA dropout", 0.1)
    target_modules: tuple[str, ...] = spec_field(
        "modules that get LoRA (Llama names; the default set maps to each architecture's `lora_targets`)",
        LORA_TARGETS, choices=LORA_TARGETS)
    align_layer: int | None = spec_field(
        "block i (0-based, our numbering) whose output is aligned; None = the paper's middle layer L/2 "
        "(1-based, embedding = layer 0) = block L//2 − 1", None)
    tau: float = spec_field("contrastive temperature τ (paper: 0.1 for Llama, 1.5 for Qwen)", 0.1)
    task_loss: bool = spec_field("use task batches (causal-LM translation loss)", True)
    align_loss: bool = spec_field("use alignment batches (contrastive loss at the align layer)", True)
    align_batch_size: int = spec_field("pairs per alignment batch (in-batch negatives; paper: 32)", 32)
    lr: float = spec_field("peak learning rate (AdamW, no weight decay)", 5e-4)
    schedule: str = spec_field("learning-rate schedule: inverse_sqrt (paper), cosine, linear, constant",
                          "inverse_sqrt", choices=SCHEDULES)
    warmup: float = spec_field("warm-up fraction of the steps", 0.03)
    epochs: float = spec_field("epochs over the task batches (align-only: over the pairs)", 1.0)
    batch_size: int = spec_field("examples per task batch", 8)
    max_steps: int | None = spec_field("cap on optimiser steps (task and align steps both count)", None)
    max_grad_norm: float | None = spec_field("clip the gradient norm", 1.0)
    seed: int = spec_field("seed of the data order, LoRA init and dropout", 0)

    def __post_init__(self) -> None:
        check_common(self)
        if not (self.task_loss or self.align_loss):
            raise ParamError("MidAlignSpec: switch on at least one of task_loss and align_loss")
        if self.task_directions not in ("both", "forward"):
            raise ParamError(f"MidAlignSpec: task_directions must be 'both' or 'forward', "
                             f"got {self.task_directions!r}")
        if self.r < 1 or self.tau <= 0 or not 0 <= self.dropout < 1:
            raise ParamError("MidAlignSpec: need r >= 1, tau > 0 and 0 <= dropout < 1")
        if self.align_batch_size < 2:
            raise ParamError("MidAlignSpec: align_batch_size must be >= 2 (in-batch negatives)")
        if self.align_layer is not None and self.align_layer < 0:
            raise ParamError(f"MidAlignSpec: align_layer must be >= 0, got {self.align_layer}")
        if self.src == self.tgt:
            raise ParamError(f"MidAlignSpec: src and tgt must differ, both are {self.src!r}")


def default_align_layer(n_layers: int) -> int:
    """Mid-align's default alignment layer as our 0-based block: its layer `L/2` (1-based) = block `L//2 − 1`.

    Args:
        n_layers: number of decoder blocks `L`.

    Returns:
        `max(0, L//2 − 1)`: 15 for Llama-3-8B (L = 32, the paper's layer 16), 8 for Gemma-3-270M (L = 18).
    """
    return max(0, n_layers // 2 - 1)


def contrastive_alignment_loss(hs: torch.Tensor, ht: torch.Tensor, tau: float) -> torch.Tensor:
    """In-batch contrastive loss `−mean_j log softmax_j'(cos(hs_j, ht_j') / τ)` at j' = j.

    Args:
        hs: `(n, d)` pooled source-sentence vectors.
        ht: `(n, d)` pooled target-sentence vectors; row j translates `hs[j]`.
        tau: temperature τ > 0.

    Returns:
        Scalar loss (computed in float32).
    """
    if hs.ndim != 2 or hs.shape != ht.shape or hs.shape[0] < 1:
        raise ValueError(f"hs and ht must both be (n, d), got {tuple(hs.shape)} and {tuple(ht.shape)}")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    s = F.normalize(hs.float(), dim=-1)
    t = F.normalize(ht.float(), dim=-1)
    logits = s @ t.T / tau
    return F.cross_entropy(logits, torch.arange(hs.shape[0], device=hs.device))


def lora_config(spec: MidAlignSpec, model: Any) -> Any:
    """The peft LoraConfig of `spec` for `model` (`finetune.lora`: the architecture's module names)."""
    return lora.lora_config(model, r=spec.r, alpha=spec.alpha, dropout=spec.dropout, targets=spec.target_modules)


def _plan(spec: MidAlignSpec, n_task: int, n_pairs: int) -> list[str]:
    """The kind of each step: 'task' / 'align', alternating when both are on."""
    if spec.task_loss:
        rounds = n_batches(n_task, spec.batch_size, spec.epochs)
        kinds = ["task", "align"] * rounds if spec.align_loss else ["task"] * rounds
    else:
        kinds = ["align"] * n_batches(n_pairs, spec.align_batch_size, spec.epochs)
    return kinds[: spec.max_steps] if spec.max_steps is not None else kinds


def _cycle(n: int, batch_size: int, seed: int, stream: int) -> Any:
    """Endless seeded batches over n items: one permutation per pass, seeded by (seed, stream, pass)."""
    e = 0
    while True:
        perm = np.random.Generator(np.random.PCG64([seed, stream, e])).permutation(n)
        for b in range(0, n, batch_size):
            yield [int(i) for i in perm[b:b + batch_size]]
        e += 1


def train_midalign(state: Any, split: ParallelSplit, spec: MidAlignSpec, *, progress: Progress | None = None,
                   should_stop: StopFn | None = None, inplace: bool = False) -> TrainResult:
    """LoRA fine-tune with alternating task/alignment batches on a copy of `state.model`.

    Args:
        state: a ModelState-like object (model, tokenizer, arch, n_layers, device).
        split: parallel data containing `spec.src` and `spec.tgt`.
        spec: the Mid-align config.
        progress: progress(step, total, stage, metrics) after each step.
        should_stop: checked before each step; True raises `Cancelled`.
        inplace: modify `state.model` itself (only for a model nobody else uses).

    Returns:
        The merged model, history (task_loss / align_loss per step), metrics, the names of
        the merged weights, and the raw LoRA adapter with its config.
    """
    layer = spec.align_layer if spec.align_layer is not None else default_align_layer(state.n_layers)
    if layer >= state.n_layers:
        raise ParamError(f"align_layer {layer} out of range: the model has {state.n_layers} blocks")
    tok, pad, dev = state.tokenizer, state.tokenizer.pad_token_id, state.device
    directions = [(spec.src, spec.tgt)] + ([(spec.tgt, spec.src)] if spec.task_directions == "both" else [])
    task = translation_examples(tok, split, directions) if spec.task_loss else []
    src_ex = encode_texts(tok, split.column(spec.src), split.spec.max_length) if spec.align_loss else []
    tgt_ex = encode_texts(tok, split.column(spec.tgt), split.spec.max_length) if spec.align_loss else []
    n_pairs = len(split.train)
    kinds = _plan(spec, len(task), n_pairs)

    torch.manual_seed(spec.seed)
    base = clone_for_training(state.model, inplace)
    peft_model = lora.get_peft_model(base, lora_config(spec, base))
    peft_model.train()
    hf_model = peft_model.base_model.model  # the same module tree, LoRA layers injected
    stepper = Stepper(peft_model.parameters(), lr=spec.lr, schedule=spec.schedule, warmup=spec.warmup,
                      steps=len(kinds), max_grad_norm=spec.max_grad_norm, progress=progress,
                      should_stop=should_stop, stage="midalign")
    task_it = _cycle(len(task), spec.batch_size, spec.seed, 0) if task else None
    align_it = _cycle(n_pairs, min(spec.align_batch_size, n_pairs), spec.seed, 1) if src_ex else None
    for kind in kinds:
        stepper.check()
        if kind == "task":
            batch = collate([task[i] for i in next(task_it)], pad, dev)  # type: ignore[arg-type]  # set when task steps exist
            loss = peft_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                              labels=batch["labels"], use_cache=False).loss
            stepper.step(loss, task_loss=loss)
        else:
            idx = next(align_it)  # type: ignore[arg-type]  # set when align steps exist
            batch = collate([src_ex[i] for i in idx] + [tgt_ex[i] for i in idx], pad, dev)
            h = masked_mean(block_output(hf_model, state.arch, batch, layer), batch["count"])
            loss = contrastive_alignment_loss(h[: len(idx)], h[len(idx):], spec.tau)
            stepper.step(loss, align_loss=loss)
    seconds = stepper.close()
    merged, adapter, cfg, changed = lora.merge_lora(peft_model)
    finish_model(merged)
    metrics = {"align_layer": layer, "kinds": {k: kinds.count(k) for k in ("task", "align")},
               **summarize(stepper.history, seconds, ("loss", "task_loss", "align_loss"))}
    return TrainResult(merged, stepper.history, metrics, changed, adapter=adapter, adapter_config=cfg)


# --------------------------------------------------------------------------- adapter merging


def merge_lora_weights(task: dict[str, torch.Tensor], align: dict[str, torch.Tensor],
                       weight: float = 0.9) -> dict[str, torch.Tensor]:
    """Weighted average of two LoRA adapters, tensor by tensor: `w·task + (1−w)·align`.

    Each LoRA factor (A and B) is averaged separately, which is what "averaging the
    adapters' weights" means for LoRA (Mid-align §6.3); the merged update is then
    `B_m A_m`, not the average of the two products.

    Raises:
        ValueError: different tensor names or shapes, or a weight outside [0, 1].
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    if set(task) != set(align):
        diff = sorted(set(task) ^ set(align))[:5]
        raise ValueError(f"the adapters have different tensors (e.g. {diff}); train both with the same LoRA config")
    out = {}
    for k, t in task.items():
        if t.shape != align[k].shape:
            raise ValueError(f"tensor {k}: shapes {tuple(t.shape)} and {tuple(align[k].shape)} differ")
        out[k] = weight * t + (1.0 - weight) * align[k].to(t.dtype)
    return out


def merge_adapter_artifacts(state: Any, task_dir: str | Path, align_dir: str | Path, out_dir: str | Path,
                            *, weight: float = 0.9) -> Path:
    """Merge a task adapter artifact and an alignment-only one into a new artifact.

    The new artifact holds the averaged adapter and, as its delta, the base weights with
    that adapter merged in, so `models.load(ModelSpec(artifact=out_dir))` works.
    """
    a = artifact_io.load_artifact(task_dir)
    b = artifact_io.load_artifact(align_dir)
    for art, path in ((a, task_dir), (b, align_dir)):
        if art.adapter is None or art.adapter_config is None:
            raise ValueError(f"{path} holds no LoRA adapter")
        if art.manifest.get("base_fingerprint") != state.fingerprint:
            raise ValueError(f"{path} was made for base {art.manifest.get('base_fingerprint')}, "
                             f"not {state.fingerprint}")
    merged = merge_lora_weights(a.adapter, b.adapter, weight)  # type: ignore[arg-type]  # checked above
    model = lora.apply_adapter(copy.deepcopy(state.model), merged, a.adapter_config)  # type: ignore[arg-type]  # checked above
    finish_model(model)
    manifest = {"method": "midalign-merge", "spec": {"weight": weight, "task": str(task_dir), "align": str(align_dir)},
                "sources": [a.manifest, b.manifest], "data_hash": None, "seed": None,
                "base_model": a.manifest.get("base_model"), "metrics": {}}
    return artifact_io.write_artifact(out_dir, state, model, manifest, adapter=merged,
                                      adapter_config=a.adapter_config)


METHOD = Method(
    name="midalign", label="Mid-align", caption="LoRA; translation loss + middle-layer contrastive alignment",
    spec=MidAlignSpec, train=train_midalign,
    languages=lambda s: (s.src, s.tgt),
    pivot=lambda s: s.src,  # the first language of each pair
    from_langs=lambda langs: {"src": langs[0], "tgt": langs[1]},
    lang_fields=("src", "tgt"), shardable=True,
    aliases={"layer": "align_layer", "task": "task_loss", "align": "align_loss"},
)
"""Mid-align's record (registered in `finetune.methods`)."""

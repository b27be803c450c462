"""CC-Tuning's config (CC-Tuning §4.1 / §3.2.2: batch 16, 3 epochs, warm-up 0.1, 1,000 pairs for W_T)."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.config import Spec, spec_field
from workbench.errors import ParamError
from workbench.finetune.specs import SCHEDULES, check_common
from workbench.models.architectures import LORA_TARGETS

__all__ = ["CCTuningSpec"]


@dataclass(frozen=True)
class CCTuningSpec(Spec):
    """CC-Tuning: cross-lingual FFN connection chosen by a Decision Maker (§3.2; METHODS §6)."""

    lang: str = spec_field("N: the non-English language of the inputs the model is tuned on", "sw")
    pivot: str = spec_field("the English (parallel) language whose FFN outputs are connected", "en")
    target: str | None = spec_field("language of the responses (translation data); None = the pivot", None)
    train: str = spec_field("what the SFT loss trains besides W_DM: 'lora' (cheap), 'ffn' (gate/up/down of "
                       "every block) or 'full' (every parameter, as the paper does)", "lora",
                       choices=("lora", "ffn", "full"))
    r: int = spec_field("LoRA rank (train='lora')", 8)
    alpha: int = spec_field("LoRA α (scaling α/r)", 16)
    dropout: float = spec_field("LoRA dropout", 0.05)
    target_modules: tuple[str, ...] = spec_field(
        "modules that get LoRA (Llama names; the default set maps to each architecture's `lora_targets`)",
        LORA_TARGETS, choices=LORA_TARGETS)
    tau: float = spec_field("Gumbel-softmax temperature of the Decision Maker (hard, straight-through)", 1.0)
    dm_lr: float = spec_field("learning rate of W_DM, its own AdamW on the same schedule (the paper trains it with the "
                         "model at 1e-5 for 3 epochs over 60+ languages); measured on Gemma-3-270M: at 1e-4, "
                         "|W_DM| = 0.09 after 75 steps and the Gumbel choices stay uniform; at 1e-2 |W_DM| = 2.4 "
                         "after 10 steps and the choices concentrate", 1e-2)
    dm_init: float = spec_field("std of W_DM's normal initialisation; 0 = zeros (uniform random layer choice at the "
                           "start, the paper's Random Pooling)", 0.0)
    embed: str = spec_field("e of Eq. 3: 'position' (the embedding output at the connection position, as the "
                       "authors' code feeds it; a CC-Tuning state's inference uses the same by default) or 'mean' "
                       "(averaged over the non-English prompt's real tokens)", "position",
                       choices=("position", "mean"))
    wt_pairs: int = spec_field("parallel training pairs the Transform Matrix is fitted on (paper: 1,000; "
                          "clipped to the training data)", 1000)
    curve_points: int = spec_field("points of the fit-error-vs-pairs curve (CC-Tuning Fig. 5)", 8)
    eval_items: int | None = spec_field("held-out examples for |Δ| and the layer distribution; None = all", 200)
    instruction_file: str | None = spec_field(
        "optional JSONL of instruction (in N) / instruction_en / output rows; used instead of the "
        "translation pairs for training and the Transform Matrix", None)
    lr: float = spec_field("peak learning rate (AdamW, no weight decay; the paper: 1e-5 with full "
                      "fine-tuning; LoRA needs ~10× more)", 1e-4)
    schedule: str = spec_field("learning-rate schedule (LLaMA-Factory's default, the paper's tool: cosine)",
                          "cosine", choices=SCHEDULES)
    warmup: float = spec_field("warm-up fraction of the steps (paper: 0.1)", 0.1)
    epochs: float = spec_field("epochs (paper: 3)", 3.0)
    batch_size: int = spec_field("examples per step (paper: 16)", 16)
    max_steps: int | None = spec_field("cap on optimiser steps (short CPU runs); None = epochs", None)
    max_grad_norm: float | None = spec_field("clip the gradient norm (LLaMA-Factory default 1.0)", 1.0)
    seed: int = spec_field("seed of the data order, LoRA init, dropout and the Gumbel noise", 0)

    def __post_init__(self) -> None:
        check_common(self)
        if self.lang == self.pivot:
            raise ParamError(f"CCTuningSpec: lang and pivot must differ, both are {self.lang!r}")
        if self.target == self.lang:
            raise ParamError("CCTuningSpec: target must differ from lang (the input language)")
        if self.train not in ("lora", "ffn", "full"):
            raise ParamError(f"CCTuningSpec: train must be 'lora', 'ffn' or 'full', got {self.train!r}")
        if self.embed not in ("mean", "position"):
            raise ParamError(f"CCTuningSpec: embed must be 'mean' or 'position', got {self.embed!r}")
        if self.r < 1 or self.tau <= 0 or not 0 <= self.dropout < 1:
            raise ParamError("CCTuningSpec: need r >= 1, tau > 0 and 0 <= dropout < 1")
        if self.dm_lr <= 0 or self.dm_init < 0:
            raise ParamError(f"CCTuningSpec: need dm_lr > 0 and dm_init >= 0, got {self.dm_lr}, {self.dm_init}")
        if self.wt_pairs < 1 or self.curve_points < 1:
            raise ParamError("CCTuningSpec: wt_pairs and curve_points must be >= 1")
        if self.eval_items is not None and self.eval_items < 1:
            raise ParamError(f"CCTuningSpec: eval_items must be >= 1 or None, got {self.eval_items}")

    @property
    def response_lang(self) -> str:
        """The language of the responses (translation data): `target`, else the pivot."""
        return self.target or self.pivot

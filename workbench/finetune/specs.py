"""Fine-tune configs: frozen, typed dataclasses with one line of help per field (HOUSE_STYLE 5).

Defaults follow the papers (METHODS.md §6): SiLP §3.2–3.3 and §4 (lr 2e-5, cosine,
warm-up 0.03, 2 epochs), Mid-align App. D.1 (LoRA r=8, α=16, dropout 0.1 on
q,k,v,o,gate,up,down; lr 5e-4, inverse-sqrt schedule, warm-up 0.03; τ = 0.1; contrastive
mini-batches of 32), LENS §4.3 / App. D (lr 1e-5, batch 8, 1 epoch, 200 samples per
language, top layers), CC-Tuning §4.1 / §3.2.2 (batch 16, 3 epochs, warm-up 0.1,
1,000 pairs for the Transform Matrix). What a paper leaves open is said in the field's help.

A job's config is `{method, model: ModelSpec, data: DataSpec, spec: <method spec>}`; all
of it goes into the artifact's manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.config import Spec, spec_field
from workbench.errors import ParamError
from workbench.models.architectures import LORA_TARGETS

__all__ = ["CCTuningSpec", "LENSSpec", "MidAlignSpec", "SCHEDULES", "SPECS", "SiLPSpec", "languages_for",
           "spec_for"]

SCHEDULES = ("cosine", "linear", "constant", "inverse_sqrt")


def _check_common(spec: Any) -> None:
    """Checks shared by every method spec (fields lr, batch_size, epochs, ...)."""
    name = type(spec).__name__
    if spec.lr <= 0:
        raise ParamError(f"{name}: lr must be > 0, got {spec.lr}")
    if spec.batch_size < 1:
        raise ParamError(f"{name}: batch_size must be >= 1, got {spec.batch_size}")
    if spec.epochs <= 0:
        raise ParamError(f"{name}: epochs must be > 0, got {spec.epochs}")
    if spec.max_steps is not None and spec.max_steps < 1:
        raise ParamError(f"{name}: max_steps must be >= 1 or None, got {spec.max_steps}")
    if not 0 <= spec.warmup < 1:
        raise ParamError(f"{name}: warmup must be a fraction in [0, 1), got {spec.warmup}")
    if spec.schedule not in SCHEDULES:
        raise ParamError(f"{name}: unknown schedule {spec.schedule!r}; choose from {SCHEDULES}")
    if spec.max_grad_norm is not None and spec.max_grad_norm <= 0:
        raise ParamError(f"{name}: max_grad_norm must be > 0 or None, got {spec.max_grad_norm}")


def _check_layers(name: str, field: str, layers: tuple[int, ...] | None) -> None:
    if layers is not None and any((not isinstance(x, int)) or x < 0 for x in layers):
        raise ParamError(f"{name}: {field} must be non-negative block indices, got {layers}")


@dataclass(frozen=True)
class SiLPSpec(Spec):
    """SiLP: selective FFN fine-tune of projection-sensitive layers, N2D then D2N (§3.2–3.3)."""

    src: str = spec_field("N: the non-dominant language (input of stage N2D, output of D2N)", "sw")
    tgt: str = spec_field("D: the dominant language (output of stage N2D, input of D2N)", "en")
    n2d_layers: tuple[int, ...] | None = spec_field(
        "blocks whose FFN stage N2D trains; None = SiLP allocation from projection sensitivity; "
        "() skips the stage", None)
    d2n_layers: tuple[int, ...] | None = spec_field(
        "blocks whose FFN stage D2N trains; None = from the allocation; () skips the stage", None)
    split: int | None = spec_field("allocation split k, a 0-based block (SiLP numbers FFN layers 0…L−1 too): N2D "
                              "candidates are blocks 1…k, D2N k+1…L−1; None = round(0.625·L) (paper: 20 of 32)",
                              None)
    k1: int | None = spec_field("number of N2D layers chosen by the allocation; None = min(4, candidates) "
                           "(the paper's 4, clipped on shallow models)", None)
    k2: int | None = spec_field("number of D2N layers chosen by the allocation; None = min(4, candidates)", None)
    alloc_pairs: int = spec_field("training pairs used to score projection sensitivity", 200)
    lr: float = spec_field("peak learning rate (AdamW β=(0.9, 0.999), no weight decay)", 2e-5)
    schedule: str = spec_field("learning-rate schedule per stage: cosine, linear, constant, inverse_sqrt",
                          "cosine")
    warmup: float = spec_field("warm-up fraction of each stage's steps", 0.03)
    epochs: float = spec_field("epochs per stage (the paper: 2)", 2.0)
    batch_size: int = spec_field("pairs per step (the paper: 128 global; no accumulation here)", 8)
    max_steps: int | None = spec_field("cap on the steps of each stage (short runs); None = epochs", None)
    max_grad_norm: float | None = spec_field("clip the gradient norm (LLaMA-Factory default 1.0)", 1.0)
    seed: int = spec_field("seed of the data order and of torch", 0)
    tft_file: str | None = spec_field(
        "optional stage TFT: JSONL of instruction/output (or prompt/response) pairs in N; "
        "trains all parameters (SiLP Eq. 7)", None)

    def __post_init__(self) -> None:
        _check_common(self)
        _check_layers("SiLPSpec", "n2d_layers", self.n2d_layers)
        _check_layers("SiLPSpec", "d2n_layers", self.d2n_layers)
        if self.src == self.tgt:
            raise ParamError(f"SiLPSpec: src (N) and tgt (D) must differ, both are {self.src!r}")
        if any(k is not None and k < 1 for k in (self.k1, self.k2)) or self.alloc_pairs < 1:
            raise ParamError("SiLPSpec: k1, k2 must be None or >= 1, and alloc_pairs >= 1")


@dataclass(frozen=True)
class MidAlignSpec(Spec):
    """Mid-align: LoRA, alternating task (translation) and middle-layer contrastive alignment."""

    src: str = spec_field("first language of each pair (the pivot, e.g. en)", "en")
    tgt: str = spec_field("second language of each pair (e.g. sw)", "sw")
    task_directions: str = spec_field("translation task: 'both' (src→tgt and tgt→src) or 'forward'", "both")
    r: int = spec_field("LoRA rank", 8)
    alpha: int = spec_field("LoRA α (scaling α/r)", 16)
    dropout: float = spec_field("LoRA dropout", 0.1)
    target_modules: tuple[str, ...] = spec_field(
        "modules that get LoRA (Llama names; the default set maps to each architecture's `lora_targets`)", LORA_TARGETS)
    align_layer: int | None = spec_field(
        "block i (0-based, our numbering) whose output is aligned; None = the paper's middle layer L/2 "
        "(1-based, embedding = layer 0) = block L//2 − 1", None)
    tau: float = spec_field("contrastive temperature τ (paper: 0.1 for Llama, 1.5 for Qwen)", 0.1)
    task_loss: bool = spec_field("use task batches (causal-LM translation loss)", True)
    align_loss: bool = spec_field("use alignment batches (contrastive loss at the align layer)", True)
    align_batch_size: int = spec_field("pairs per alignment batch (in-batch negatives; paper: 32)", 32)
    lr: float = spec_field("peak learning rate (AdamW, no weight decay)", 5e-4)
    schedule: str = spec_field("learning-rate schedule: inverse_sqrt (paper), cosine, linear, constant",
                          "inverse_sqrt")
    warmup: float = spec_field("warm-up fraction of the steps", 0.03)
    epochs: float = spec_field("epochs over the task batches (align-only: over the pairs)", 1.0)
    batch_size: int = spec_field("examples per task batch", 8)
    max_steps: int | None = spec_field("cap on optimiser steps (task and align steps both count)", None)
    max_grad_norm: float | None = spec_field("clip the gradient norm", 1.0)
    seed: int = spec_field("seed of the data order, LoRA init and dropout", 0)

    def __post_init__(self) -> None:
        _check_common(self)
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
    schedule: str = spec_field("learning-rate schedule (LENS App. D: cosine)", "cosine")
    warmup: float = spec_field("warm-up fraction of the steps (LENS App. D: 0.05)", 0.05)
    weight_decay: float = spec_field("AdamW weight decay of the trained blocks (LENS App. D: 0.1)", 0.1)
    epochs: float = spec_field("epochs over the samples (LENS: 1)", 1.0)
    batch_size: int = spec_field("parallel samples per step, each in every language (LENS: 8)", 8)
    max_steps: int | None = spec_field("cap on steps", None)
    max_grad_norm: float | None = spec_field("clip the gradient norm (LENS: 1.0); None = no clipping", 1.0)
    seed: int = spec_field("seed of the data order", 0)

    def __post_init__(self) -> None:
        _check_common(self)
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


@dataclass(frozen=True)
class CCTuningSpec(Spec):
    """CC-Tuning: cross-lingual FFN connection chosen by a Decision Maker (§3.2; METHODS §6)."""

    lang: str = spec_field("N: the non-English language of the inputs the model is tuned on", "sw")
    pivot: str = spec_field("the English (parallel) language whose FFN outputs are connected", "en")
    target: str | None = spec_field("language of the responses (translation data); None = the pivot", None)
    train: str = spec_field("what the SFT loss trains besides W_DM: 'lora' (cheap), 'ffn' (gate/up/down of "
                       "every block) or 'full' (every parameter, as the paper does)", "lora")
    r: int = spec_field("LoRA rank (train='lora')", 8)
    alpha: int = spec_field("LoRA α (scaling α/r)", 16)
    dropout: float = spec_field("LoRA dropout", 0.05)
    target_modules: tuple[str, ...] = spec_field(
        "modules that get LoRA (Llama names; the default set maps to each architecture's `lora_targets`)", LORA_TARGETS)
    tau: float = spec_field("Gumbel-softmax temperature of the Decision Maker (hard, straight-through)", 1.0)
    dm_lr: float = spec_field("learning rate of W_DM, its own AdamW on the same schedule (the paper trains it with the "
                         "model at 1e-5 for 3 epochs over 60+ languages); measured on Gemma-3-270M: at 1e-4, "
                         "|W_DM| = 0.09 after 75 steps and the Gumbel choices stay uniform; at 1e-2 |W_DM| = 2.4 "
                         "after 10 steps and the choices concentrate", 1e-2)
    dm_init: float = spec_field("std of W_DM's normal initialisation; 0 = zeros (uniform random layer choice at the "
                           "start, the paper's Random Pooling)", 0.0)
    embed: str = spec_field("e of Eq. 3: 'mean' (embedding output averaged over the non-English prompt's "
                       "real tokens) or 'position' (the embedding output at the connection position)",
                       "mean")
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
                          "cosine")
    warmup: float = spec_field("warm-up fraction of the steps (paper: 0.1)", 0.1)
    epochs: float = spec_field("epochs (paper: 3)", 3.0)
    batch_size: int = spec_field("examples per step (paper: 16)", 16)
    max_steps: int | None = spec_field("cap on optimiser steps (short CPU runs); None = epochs", None)
    max_grad_norm: float | None = spec_field("clip the gradient norm (LLaMA-Factory default 1.0)", 1.0)
    seed: int = spec_field("seed of the data order, LoRA init, dropout and the Gumbel noise", 0)

    def __post_init__(self) -> None:
        _check_common(self)
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


SPECS: dict[str, type[Spec]] = {"silp": SiLPSpec, "midalign": MidAlignSpec, "lens": LENSSpec,
                                 "cctuning": CCTuningSpec}


def spec_for(method: str, d: dict[str, Any] | Spec | None = None) -> Any:
    """The method's spec from a dict (or the spec itself, or defaults for None).

    Raises:
        ParamError: unknown method, unknown field or an invalid value.
    """
    if method not in SPECS:
        raise ParamError(f"unknown fine-tune method {method!r}; choose from {sorted(SPECS)}")
    cls = SPECS[method]
    if d is None:
        return cls()
    if isinstance(d, Spec):
        if not isinstance(d, cls):
            raise ParamError(f"method {method!r} takes a {cls.__name__}, got {type(d).__name__}")
        return d
    return cls.from_dict(d)


def languages_for(method: str, spec: Any) -> tuple[str, ...]:
    """The corpus languages a method needs, in the order its data split stores them."""
    if isinstance(spec, LENSSpec):
        return tuple(spec.languages)
    if isinstance(spec, CCTuningSpec):
        return (spec.pivot, spec.lang) + ((spec.target,) if spec.target not in (None, spec.pivot) else ())
    return (spec.src, spec.tgt)

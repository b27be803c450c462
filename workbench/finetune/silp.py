"""SiLP: selective bidirectional language projection (METHODS.md §6; SiLP §3.2–3.3).

Stage N2D trains only the FFN parameters (gate/up/down) of the N2D layers on
`x_N → x_D` translation pairs, then stage D2N only the FFN of the D2N layers on
`x_D → x_N` (loss on the target tokens only, SiLP Eqs. 5–6). An optional stage TFT
trains all parameters on instruction data in N (Eq. 7). Each stage has its own AdamW and
learning-rate schedule (the paper runs them as separate trainings).

When a stage's layers are not given, they come from SiLP's allocation (METHODS §2):
projection-sensitivity scores `S_l` from teacher-forced passes over translation prompts
of the training pairs, then top-k1 of `S_1…S_k` (N2D) and top-k2 of `S_{k+1}…S_{L-1}`
(D2N). Layer numbering: SiLP indexes FFN layers `0 … L−1` (its Eqs. 2–4 run `S_1 … S_{L−1}`,
`S_0` being undefined, and its LLaMA-Factory code addresses `model.layers.{l}`), which is
our 0-based block index; the split `k` is therefore the last N2D candidate block, and the
paper's `k = 20` of `L = 32` means candidates blocks 1…20 (N2D) and 21…31 (D2N). This is
`default_split` (`round(0.625·L)`, 11 of Gemma-3-270M's 18) and `SiLPSpec.split`; no
shift is needed, unlike Mid-align's 1-based layers.

Our choice where the paper is silent: the passes cover both directions (N→D and D→N) of
the first `alloc_pairs` training pairs, all real non-special tokens count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.analysis.sensitivity import allocate_layers, default_split, projection_sensitivity
from workbench.config import RecordSpec, Spec, spec_field
from workbench.corpus import Language, ParallelCorpus
from workbench.errors import ParamError
from workbench.examples import (
    Example,
    ParallelSplit,
    encode_translation,
    epoch_batches,
    jsonl_records,
    n_batches,
    translation_examples,
)
from workbench.finetune.data import collate
from workbench.finetune.method import Method, Prefill
from workbench.finetune.specs import SCHEDULES, check_common, check_layers
from workbench.finetune.train import (
    Stepper,
    TrainResult,
    clone_for_training,
    finish_model,
    summarize,
)
from workbench.progress import Progress, StopFn
from workbench.tracing import record_units

log = logging.getLogger(__name__)

__all__ = ["ffn_parameter_names", "load_tft_examples", "silp_allocation", "train_silp"]


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
                          "cosine", choices=SCHEDULES)
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
        check_common(self)
        check_layers("SiLPSpec", "n2d_layers", self.n2d_layers)
        check_layers("SiLPSpec", "d2n_layers", self.d2n_layers)
        if self.src == self.tgt:
            raise ParamError(f"SiLPSpec: src (N) and tgt (D) must differ, both are {self.src!r}")
        if any(k is not None and k < 1 for k in (self.k1, self.k2)) or self.alloc_pairs < 1:
            raise ParamError("SiLPSpec: k1, k2 must be None or >= 1, and alloc_pairs >= 1")


def ffn_parameter_names(model: Any, arch: Any, layers: list[int] | tuple[int, ...]) -> list[str]:
    """Names of the FFN parameters (arch.ffn_params: weights and biases) of `layers`."""
    prefixes = tuple(f"{arch.layers}.{i}.{p}." for i in layers for p in arch.ffn_params)
    return [n for n, _ in model.named_parameters() if n.startswith(prefixes)]


def allocation_inputs(split: ParallelSplit, n_pairs: int) -> tuple[ParallelCorpus, RecordSpec]:
    """The corpus (the first `n_pairs` training pairs) and record spec of SiLP's allocation pass."""
    pairs = split.train[:n_pairs]
    corpus = ParallelCorpus("silp-allocation", [str(i) for i in range(len(pairs))],
                            {lang: [u[i] for u in pairs] for i, lang in enumerate(split.langs)},
                            languages={lang: Language(lang, split.names.get(lang, lang), lang)
                                       for lang in split.langs})
    rspec = RecordSpec(template=split.spec.template, poolings=("mean",), embeddings=False, ffn_stats=True,
                       max_length=split.spec.max_length)
    return corpus, rspec


def silp_allocation(state: Any, split: ParallelSplit, spec: SiLPSpec) -> dict[str, Any]:
    """SiLP's layer allocation on the frozen model (METHODS §2), from the training pairs.

    The FFN statistics come from the recorder (one `tracing.record_units` call over both
    directions with the pair template of the data spec, so the two directions share
    length-grouped batches), the scores from
    `analysis.sensitivity`: the same numbers the Layer profile page and
    `workbench analyze sensitivity` show for the same pairs.

    Returns:
        `{"scores": [S_0 (NaN→None), …, S_{L-1}], "split": k, "n2d": [...], "d2n": [...]}`.
    """
    corpus, rspec = allocation_inputs(split, spec.alloc_pairs)
    units = [f"{a}>{b}" for a, b in ((spec.src, spec.tgt), (spec.tgt, spec.src))]
    arrays = record_units(state, corpus, units, rspec)
    means = [arrays[u]["ffn_layer_mean"] for u in units]
    scores = projection_sensitivity(np.concatenate(means).astype(np.float64))
    k = spec.split if spec.split is not None else default_split(len(scores))
    n2d, d2n = allocate_layers(scores, split=k, k1=spec.k1, k2=spec.k2)
    return {"scores": [None if not np.isfinite(s) else float(s) for s in scores],
            "split": int(k), "n2d": n2d, "d2n": d2n}


def load_tft_examples(path: str | Path, tokenizer: Any, max_length: int) -> list[Example]:
    """Instruction data for stage TFT: JSONL with instruction/output (or prompt/response).

    An optional `input` field is appended to the instruction after a blank line.

    Raises:
        ValueError: unreadable line or missing fields (with the 1-based line number).
    """
    out = []
    p = Path(path)
    for lineno, rec in jsonl_records(p):
        prompt = rec.get("instruction", rec.get("prompt"))
        answer = rec.get("output", rec.get("response"))
        if not isinstance(prompt, str) or not isinstance(answer, str) or not answer:
            raise ValueError(f"{p}:{lineno}: needs string fields instruction/output (or prompt/response)")
        if rec.get("input"):
            prompt = f"{prompt}\n\n{rec['input']}"
        out.append(encode_translation(tokenizer, prompt + "\n", answer, max_length))
    if not out:
        raise ValueError(f"{p}: no instruction examples")
    return out


def _stages(state: Any, split: ParallelSplit, spec: SiLPSpec,
            alloc: dict[str, Any] | None) -> list[tuple[str, list[int] | None, list[Example]]]:
    """(name, layers (None = all parameters), examples) of each stage that runs."""
    n2d = list(spec.n2d_layers) if spec.n2d_layers is not None else alloc["n2d"]  # type: ignore[index]  # alloc set when needed
    d2n = list(spec.d2n_layers) if spec.d2n_layers is not None else alloc["d2n"]  # type: ignore[index]  # alloc set when needed
    bad = [x for x in n2d + d2n if x >= state.n_layers]
    if bad:
        raise ValueError(f"SiLP layer(s) {bad} out of range: the model has {state.n_layers} blocks")
    tok = state.tokenizer
    stages: list[tuple[str, list[int] | None, list[Example]]] = []
    if n2d:
        stages.append(("n2d", n2d, translation_examples(tok, split, [(spec.src, spec.tgt)])))
    if d2n:
        stages.append(("d2n", d2n, translation_examples(tok, split, [(spec.tgt, spec.src)])))
    if spec.tft_file:
        stages.append(("tft", None, load_tft_examples(spec.tft_file, tok, split.spec.max_length)))
    if not stages:
        raise ValueError("SiLP: nothing to train (no N2D layers, no D2N layers, no TFT file)")
    return stages


def _stage_steps(n: int, spec: SiLPSpec) -> int:
    steps = n_batches(n, spec.batch_size, spec.epochs)
    return min(steps, spec.max_steps) if spec.max_steps is not None else steps


def train_silp(state: Any, split: ParallelSplit, spec: SiLPSpec, *, progress: Progress | None = None,
               should_stop: StopFn | None = None, inplace: bool = False) -> TrainResult:
    """Run SiLP's stages on a copy of `state.model`.

    Args:
        state: a ModelState-like object (model, tokenizer, arch, n_layers, device).
        split: parallel data containing `spec.src` and `spec.tgt`.
        spec: the SiLP config.
        progress: progress(step, total, stage, metrics) after each step (steps count across stages).
        should_stop: checked before each step; True raises `Cancelled`.
        inplace: train `state.model` itself (only for a model nobody else uses, e.g. a worker's).

    Returns:
        The trained model, per-step history, and metrics (layers, allocation, per-stage summary).
    """
    torch.manual_seed(spec.seed)
    need_alloc = spec.n2d_layers is None or spec.d2n_layers is None
    alloc = silp_allocation(state, split, spec) if need_alloc else None
    stages = _stages(state, split, spec, alloc)
    steps = [_stage_steps(len(ex), spec) for _, _, ex in stages]
    total = sum(steps)
    model = clone_for_training(state.model, inplace)
    params = dict(model.named_parameters())
    history: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {"allocation": alloc, "stages": {}}
    trainable: set[str] = set()
    offset, seconds = 0, 0.0
    for (name, layers, examples), n_steps in zip(stages, steps):
        names = ffn_parameter_names(model, state.arch, layers) if layers is not None else list(params)
        model.requires_grad_(False)
        for n in names:
            params[n].requires_grad_(True)
        trainable.update(names)
        stepper = Stepper([params[n] for n in names], lr=spec.lr, schedule=spec.schedule, warmup=spec.warmup,
                          steps=n_steps, max_grad_norm=spec.max_grad_norm, progress=progress,
                          should_stop=should_stop, offset=offset, total=total, stage=name, history=history)
        for idx in epoch_batches(len(examples), spec.batch_size, spec.epochs, spec.seed):
            if stepper.done >= n_steps:
                break
            stepper.check()
            batch = collate([examples[i] for i in idx], state.tokenizer.pad_token_id, state.device)
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                        labels=batch["labels"], use_cache=False)
            stepper.step(out.loss)
        secs = stepper.close()
        seconds += secs
        stage_hist = [h for h in history if h["stage"] == name]
        metrics["stages"][name] = {"layers": layers, "examples": len(examples), **summarize(stage_hist, secs)}
        offset += n_steps
    metrics.update({"n2d_layers": metrics["stages"].get("n2d", {}).get("layers", []),
                    "d2n_layers": metrics["stages"].get("d2n", {}).get("layers", []),
                    **summarize(history, seconds)})
    finish_model(model)
    return TrainResult(model, history, metrics, sorted(trainable))


METHOD = Method(
    name="silp", label="SiLP", caption="FFN of the projection-sensitive layers; N → D, then D → N",
    spec=SiLPSpec, train=train_silp,
    languages=lambda s: (s.src, s.tgt),
    pivot=lambda s: s.tgt,  # D, the dominant language
    from_langs=lambda langs: {"src": langs[1], "tgt": langs[0]},  # N = the target language, D = the pivot
    lang_fields=("src", "tgt"), shardable=True,
    aliases={"n2d": "n2d_layers", "d2n": "d2n_layers", "tft": "tft_file"},
    layer_fields=("n2d_layers", "d2n_layers"), stages=("N2D", "D2N"),
    prefill=Prefill(
        analysis="sensitivity",
        # N → D is stage N2D; the Layer profile may have recorded either direction
        params=lambda langs, k: [{"src": s, "tgt": t, "split": k.get("split"), "k1": k.get("k1"), "k2": k.get("k2"),
                                  "variant": "paper"} for s, t in ((langs[1], langs[0]), (langs[0], langs[1]))],
        fields=lambda table: {f: tuple(int(x) for x in table.loc[table["allocation"] == a, "layer"])
                              for f, a in (("n2d_layers", "N2D"), ("d2n_layers", "D2N"))},
        note="from the stored {src} → {tgt} SiLP pass of the Setup's corpus (projection sensitivity, the "
             "allocation's top k1 / k2); empty boxes let the job allocate from its own training pairs"),
)
"""SiLP's record (registered in `finetune.methods`)."""

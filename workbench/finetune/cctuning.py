"""CC-Tuning: a cross-lingual connection of FFN outputs, chosen by a Decision Maker (METHODS §6; CC-Tuning §3.2).

Definitions this module follows (METHODS §6 is the spec; where it and the paper are silent,
the choice is written here):

- **FFN output vector** `f_l` of block `l`: the output of `arch.down` (`down_proj`; GPT-2
  `c_proj`), i.e. before Gemma's post-feed-forward norm. Read and changed with forward hooks
  on the wrapped HF model; the forward is never re-implemented.
- **Connection position** ("just before the response", the paper's "right before the
  [output] token"): the **last prompt token**. For translation pairs the prompt is the
  DataSpec template (SiLP-style) formatted up to `{tgt_text}`, so the position is the token
  whose next-token prediction is the response's first token; for instruction rows the
  prompt is the instruction followed by a newline.
- **Example** (translation data, pair `en`–`N`): the non-English input `x` is the template
  with source language `N` and the `N` sentence, the response `y` is the sentence in
  `spec.response_lang` (default: the English pivot). The English parallel `x^en` is `x` with
  its source sentence replaced by the English one (the instruction words are English
  already; the language names are kept), i.e. the English translation of `x`. With
  response language English, `x^en` contains the answer: the |Δ| below measures how much of
  that a Transform Matrix recovers from `x` alone. Use a third language (`target`) or an
  instruction file for a set-up without that leak.
- **Decision Maker** (Eq. 3–4): `H = mean_l(f^en_l + e) W_DM = (mean_l f^en_l + e) W_DM`,
  `W_DM ∈ R^{d×L}` (no bias; initialised to zero, so training starts from uniform random
  layer choice, the paper's "Random Pooling"). `e` (the paper's "embedding activations
  e_i ∈ R^d of x_i") is the output of the embedding module (`hidden_states[0]`, Gemma's
  √d scale included) of the **non-English** input, averaged over the real non-special
  prompt tokens (`embed="mean"`, default), or taken at the connection position
  (`embed="position"`). The default is the mean because the connection position is the same
  template token in every example, so its embedding would be a constant and tell the
  Decision Maker nothing about `x`. Training: `onehot = gumbel_softmax(H, τ, hard=True)`
  (straight-through); inference and the Fig. 8 distribution: `argmax H` (the mode of that
  distribution, "the layer with the highest probability of being selected").
- **Connection** (Eq. 5): `f_sel = onehot · F^en` is added to block 0's FFN output at the
  connection position of the non-English pass; everything after it changes, nothing
  before it. The English pass runs without gradients (the paper's 1.12–1.16× training
  cost fits a forward-only English pass; the model learns through the non-English pass).
- **Transform Matrix** (Eq. 6–7): `W_T = argmin ‖A W_T − B‖²` with `numpy.linalg.lstsq`
  (never an explicit inverse), `A`/`B` = the stacked `(N·L, d)` FFN outputs at the
  connection position of `x` / `x^en` for `N` training pairs, from the tuned model without
  the connection. Inference on monolingual input: first pass → `F` → `F̂^en = F W_T` →
  Decision Maker → second pass with the connection.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from workbench.analysis.cctuning import (
    fit_transform_matrix,
    layer_distribution,
    parallel_gap,
    transform_fit_curve,
    transform_mse,
)
from workbench.finetune.data import (
    IGNORE,
    Example,
    ParallelSplit,
    collate,
    encode_translation,
    epoch_batches,
    jsonl_records,
    n_batches,
    prompt_and_target,
)
from workbench.finetune.specs import LORA_TARGETS, CCTuningSpec
from workbench.finetune.train import (
    ProgressFn,
    Stepper,
    StopFn,
    TrainResult,
    clone_for_training,
    finish_model,
    summarize,
)
from workbench.models import get_path

log = logging.getLogger(__name__)

__all__ = [
    "CC_FILE",
    "CCBatch",
    "CCExample",
    "CCTuned",
    "cc_examples",
    "cctuning_evaluate",
    "cctuning_forward",
    "cctuning_generate",
    "collate_cc",
    "collect_ffn_pairs",
    "decision_maker",
    "ffn_connection",
    "ffn_outputs",
    "fit_transform_matrix",
    "layer_distribution",
    "load_cctuning",
    "parallel_gap",
    "train_cctuning",
    "transform_fit_curve",
    "transform_mse",
    "write_artifact_with_files",
]

CC_FILE = "cctuning.safetensors"
"""The artifact file holding `w_dm` `(d, L)` and `w_t` `(d, d)` beside delta.safetensors."""

# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class CCExample:
    """One example: the non-English sequence `x` (prompt + response) and the English prompt `x^en`.

    `x.labels` are -100 on the prompt; `pos` is the connection position in `x` (its last
    prompt token); `en` holds only the English prompt's ids, whose last token is where
    `F^en` is read.
    """

    x: Example
    pos: int
    en: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.pos < len(self.x.ids) or not self.en:
            raise ValueError(f"CCExample: pos {self.pos} outside x ({len(self.x.ids)} tokens) or empty en")


def _encode(tokenizer: Any, prompt: str, prompt_en: str, response: str, max_length: int) -> CCExample:
    """`x` = prompt + response + EOS as `encode_translation` makes it (labels on the response), and the English prompt.

    An English prompt over `max_length` is cut on the right, as `x`'s prompt is.
    """
    x = encode_translation(tokenizer, prompt, response, max_length)
    n_prompt = next((i for i, lab in enumerate(x.labels) if lab != IGNORE), len(x.labels))
    en = list(tokenizer(prompt_en, add_special_tokens=True)["input_ids"])[:max_length]
    return CCExample(x, n_prompt - 1, tuple(en))


def cc_examples(tokenizer: Any, split: ParallelSplit, spec: CCTuningSpec, part: str = "train") -> list[CCExample]:
    """Translation examples of `part`: `x` = template(N → response language), `x^en` = `x` with the English source."""
    ds = split.spec
    out = []
    for src, en, resp in zip(split.column(spec.lang, part), split.column(spec.pivot, part),
                             split.column(spec.response_lang, part)):
        prompt, _ = prompt_and_target(ds.template, split.names, spec.lang, spec.response_lang, src, resp)
        prompt_en, _ = prompt_and_target(ds.template, split.names, spec.lang, spec.response_lang, en, resp)
        out.append(_encode(tokenizer, prompt, prompt_en, resp, ds.max_length))
    return out


def instruction_examples(path: str | Path, tokenizer: Any, max_length: int) -> list[CCExample]:
    """Rows `{"instruction", "instruction_en", "output"}` of a JSONL file (prompt = instruction + newline).

    Raises:
        ValueError: unreadable line or missing fields (with the 1-based line number).
    """
    out = []
    p = Path(path)
    for lineno, rec in jsonl_records(p):
        fields = [rec.get(k) for k in ("instruction", "instruction_en", "output")]
        if not all(isinstance(f, str) and f for f in fields):
            raise ValueError(f"{p}:{lineno}: needs non-empty string fields instruction, instruction_en, output")
        out.append(_encode(tokenizer, fields[0] + "\n", fields[1] + "\n", fields[2], max_length))
    return out


def _datasets(tokenizer: Any, split: ParallelSplit, spec: CCTuningSpec) -> tuple[list[CCExample], list[CCExample]]:
    """(training, held-out) examples: the translation split, or the instruction file split like a DataSpec."""
    if not spec.instruction_file:
        return cc_examples(tokenizer, split, spec, "train"), cc_examples(tokenizer, split, spec, "heldout")
    rows = instruction_examples(spec.instruction_file, tokenizer, split.spec.max_length)
    if len(rows) < 2:
        raise ValueError(f"{spec.instruction_file}: CC-Tuning needs at least 2 instruction rows")
    order = np.random.RandomState(split.spec.split_seed).permutation(len(rows))
    n_held = min(len(rows) - 1, max(1, round(split.spec.heldout * len(rows))))
    return [rows[i] for i in order[n_held:]], [rows[i] for i in order[:n_held]]


@dataclass
class CCBatch:
    """A right-padded batch: `x` (collate of the `x` examples), `pos` `(B,)`, `en` (collate of the English prompts)."""

    x: dict[str, torch.Tensor]
    pos: torch.Tensor
    en: dict[str, torch.Tensor]


def collate_cc(examples: Sequence[CCExample], pad_id: int, device: Any = "cpu") -> CCBatch:
    """Right-padded tensors for the non-English sequences and the English prompts."""
    en = [Example(e.en, e.en, tuple(True for _ in e.en)) for e in examples]
    return CCBatch(collate([e.x for e in examples], pad_id, device),
                   torch.tensor([e.pos for e in examples], dtype=torch.long, device=device),
                   collate(en, pad_id, device))


def _last(attention_mask: torch.Tensor) -> torch.Tensor:
    return attention_mask.sum(1) - 1


# --------------------------------------------------------------------------- hooks


def ffn_outputs(model: Any, arch: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                positions: torch.Tensor) -> torch.Tensor:
    """FFN output vectors of every block at one position per row: `(B, L, d)`.

    Runs the model body (no LM head) once; hooks read the output of `arch.down` of each
    block at `positions[b]`. Columns after the largest position are not fed (causal model).
    Gradients flow if enabled (callers use `torch.no_grad`).
    """
    blocks = get_path(model, arch.layers)
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)
    got: dict[int, torch.Tensor] = {}

    def grab(i: int) -> Any:
        return lambda _m, _a, out: got.__setitem__(i, out[rows, positions])

    hooks = [get_path(b, arch.down).register_forward_hook(grab(i)) for i, b in enumerate(blocks)]
    width = int(positions.max()) + 1
    try:
        get_path(model, arch.base)(input_ids=input_ids[:, :width], attention_mask=attention_mask[:, :width],
                                   use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return torch.stack([got[i] for i in range(len(blocks))], 1)


@dataclass
class _Link:
    """What one connected forward pass did: the embedding summary `e` `(B, d)`, the added vectors, the choice."""

    e: torch.Tensor | None = None
    added: torch.Tensor | None = None
    onehot: torch.Tensor | None = None
    selected: torch.Tensor | None = None
    fired: bool = False


@contextmanager
def ffn_connection(model: Any, arch: Any, positions: torch.Tensor, vectors: torch.Tensor | None = None, *,
                   decide: Any = None, embed: str = "mean", embed_mask: torch.Tensor | None = None) -> Iterator[_Link]:
    """Add a vector to block 0's FFN output at one position per row, in the next forward pass.

    Hooks on `arch.embed` (to read `e`) and on block 0's `arch.down`. They act on the first
    call only (a `generate` prefill; later decoding steps pass through untouched).

    Args:
        model: the HF causal LM (or its peft-injected module tree).
        arch: the model's ArchEntry.
        positions: `(B,)` column of the connection in each row of that forward's input.
        vectors: `(B, d)` vectors to add; or None with `decide`.
        decide: `decide(e) -> (f_sel (B, d), onehot (B, L))`, called inside the forward with
            the embedding summary `e` `(B, d)` (the Decision Maker).
        embed: 'mean' (masked mean of the embedding output over `embed_mask`) or 'position'.
        embed_mask: `(B, T)` tokens that count for the mean (default: every column up to `positions`).

    Yields:
        A record of the pass (`e`, `added`, `onehot`, `selected`), filled once it has run.
    """
    if (vectors is None) == (decide is None):
        raise ValueError("give exactly one of vectors and decide")
    link = _Link()
    block0 = get_path(model, arch.layers)[0]

    def on_embed(_m: Any, _a: Any, out: Any) -> None:
        if link.e is not None:
            return
        h = out[0] if isinstance(out, tuple) else out
        rows = torch.arange(h.shape[0], device=h.device)
        if embed == "position":
            link.e = h[rows, positions]
        else:
            cols = torch.arange(h.shape[1], device=h.device)
            m = embed_mask[:, : h.shape[1]] if embed_mask is not None else cols[None] <= positions[:, None]
            w = m.to(h.dtype).unsqueeze(-1)
            link.e = (h * w).sum(1) / w.sum(1).clamp(min=1.0)

    def on_down(_m: Any, _a: Any, out: torch.Tensor) -> torch.Tensor | None:
        if link.fired:
            return None
        link.fired = True
        if vectors is not None:
            vec = vectors
        elif link.e is None:
            raise RuntimeError(f"the embedding module {arch.embed!r} did not run before block 0")
        else:
            vec, link.onehot = decide(link.e)
            link.selected = link.onehot.detach().argmax(-1)
        link.added = vec
        rows = torch.arange(out.shape[0], device=out.device)
        return out.index_put((rows, positions), vec.to(out.dtype), accumulate=True)

    hooks = [get_path(model, arch.embed).register_forward_hook(on_embed),
             get_path(block0, arch.down).register_forward_hook(on_down)]
    try:
        yield link
    finally:
        for h in hooks:
            h.remove()


def decision_maker(f_en: torch.Tensor, e: torch.Tensor, w_dm: torch.Tensor, *, tau: float = 1.0,
                   sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 3–4: `H = (mean_l f^en_l + e) W_DM`, one layer per row, `f_sel = onehot · F^en`.

    Args:
        f_en: `(B, L, d)` English FFN outputs (or their estimate `F W_T`).
        e: `(B, d)` embedding summary of the non-English input.
        w_dm: `(d, L)` Decision Maker.
        tau: Gumbel-softmax temperature.
        sample: True = `gumbel_softmax(H, tau, hard=True)` (training); False = one-hot `argmax H`.

    Returns:
        `(f_sel (B, d), onehot (B, L))`. The forward value of `f_sel` is exactly the chosen
        row of `F^en`; with `sample` its gradient is the straight-through estimator's
        (`onehot` carries the softmax gradient to `W_DM`).
    """
    h = (f_en.float().mean(1) + e.float()) @ w_dm.float()
    if sample:
        onehot = F.gumbel_softmax(h, tau=tau, hard=True)
    else:
        onehot = F.one_hot(h.argmax(-1), h.shape[-1]).to(h.dtype)
    rows = torch.arange(f_en.shape[0], device=f_en.device)
    chosen = f_en[rows, onehot.detach().argmax(-1)]
    # value: exactly F^en[sel] (the STE's y_hard − y_soft + y_soft is off by rounding); gradient: the STE's
    ste = torch.einsum("bl,bld->bd", onehot - onehot.detach(), f_en.float())
    return chosen + ste.to(chosen.dtype), onehot


# --------------------------------------------------------------------------- inference


@dataclass
class CCOutput:
    """A connected forward pass: `logits` `(B, T, V)`, `selected` `(B,)` layers, `f_en` `(B, L, d)` used."""

    logits: torch.Tensor
    selected: torch.Tensor
    f_en: torch.Tensor


def _prompt_mask(batch: Mapping[str, torch.Tensor], positions: torch.Tensor, tokenizer: Any = None) -> torch.Tensor:
    """`(B, T)` prompt tokens that count for `e`: real and non-special (as `count` of `collate`), column <= position.

    Without a `count` in the batch, special tokens are found with `tokenizer` (if given).
    """
    ids = batch["input_ids"]
    base = batch["count"] if "count" in batch else batch["attention_mask"].bool()
    if "count" not in batch and tokenizer is not None:
        special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=ids.dtype, device=ids.device)
        base = base & ~torch.isin(ids, special)
    cols = torch.arange(ids.shape[1], device=ids.device)
    return base & (cols[None] <= positions[:, None])


def _model_arch(state: Any) -> tuple[Any, Any]:
    return state.model, state.arch


def cctuning_forward(state: Any, w_dm: torch.Tensor, w_t: torch.Tensor | None, batch: Mapping[str, torch.Tensor], *,
                     positions: torch.Tensor | None = None, f_en: torch.Tensor | None = None,
                     embed: str = "mean") -> CCOutput:
    """CC-Tuning inference on monolingual input: first pass → `F W_T` → Decision Maker (argmax) → connected pass.

    Args:
        state: the tuned ModelState (or anything with `.model` and `.arch`).
        w_dm: `(d, L)` Decision Maker.
        w_t: `(d, d)` Transform Matrix (ignored when `f_en` is given).
        batch: right-padded `input_ids`, `attention_mask` (and `count`: tokens that count for `e`).
        positions: `(B,)` connection positions; None = the last real token of each row (a prompt).
        f_en: `(B, L, d)` real English FFN outputs: the "parallel input" variant (no first pass).
        embed: how `e` is read ('mean' or 'position'; the spec's choice).

    Returns:
        Logits of the connected pass, the chosen layer per row, and the `F^en` (estimate) used.
    """
    model, arch = _model_arch(state)
    pos = positions if positions is not None else _last(batch["attention_mask"])
    with torch.no_grad():
        if f_en is None:
            if w_t is None:
                raise ValueError("give w_t (monolingual inference) or f_en (the real English input)")
            f = ffn_outputs(model, arch, batch["input_ids"], batch["attention_mask"], pos)
            f_en = (f.float() @ w_t.to(f.device, torch.float32)).to(f.dtype)
        decide = lambda e: decision_maker(f_en, e, w_dm, sample=False)  # noqa: E731 - closes over f_en
        mask = _prompt_mask(batch, pos, getattr(state, "tokenizer", None))
        with ffn_connection(model, arch, pos, decide=decide, embed=embed, embed_mask=mask) as link:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           use_cache=False).logits
    return CCOutput(logits, link.selected, f_en)  # type: ignore[arg-type]  # set by the connected pass


def cctuning_generate(state: Any, w_dm: torch.Tensor, w_t: torch.Tensor | None, prompts: Sequence[Sequence[int]], *,
                      max_new_tokens: int = 32, embed: str = "mean", connect: bool = True,
                      **generate_kw: Any) -> list[list[int]]:
    """Greedy generation from token-id prompts with the connection (first pass → `F W_T` → DM → generate).

    Prompts are left-padded, so the connection position is the last column of every row;
    the hooks act on the prefill only. `connect=False` is plain (vanilla) generation of
    the same batch, for cost comparisons. `generate_kw` go to `model.generate` (e.g.
    `min_new_tokens` for a fixed length).

    Returns:
        The new tokens of each prompt.
    """
    model, arch = _model_arch(state)
    pad = state.tokenizer.pad_token_id
    width = max(len(p) for p in prompts)
    dev = next(model.parameters()).device
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], dtype=torch.long, device=dev)
    attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long, device=dev)
    kw = dict(input_ids=ids, attention_mask=attn, max_new_tokens=max_new_tokens, do_sample=False,
              pad_token_id=pad, **generate_kw)
    with torch.no_grad():
        if not connect:
            out = model.generate(**kw)
        else:
            pos = torch.full((len(prompts),), width - 1, dtype=torch.long, device=dev)
            f = ffn_outputs(model, arch, ids, attn, pos)
            f_en = (f.float() @ w_t.to(dev, torch.float32)).to(f.dtype)  # type: ignore[union-attr]  # needed here
            decide = lambda e: decision_maker(f_en, e, w_dm, sample=False)  # noqa: E731 - closes over f_en
            mask = _prompt_mask({"input_ids": ids, "attention_mask": attn}, pos, state.tokenizer)
            with ffn_connection(model, arch, pos, decide=decide, embed=embed, embed_mask=mask):
                out = model.generate(**kw)
    return [row[width:].tolist() for row in out]


def _score(logits: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: summed NLL of the labelled tokens, top-1 hits, token count."""
    lg, lb = logits[:, :-1].float(), labels[:, 1:]
    mask = lb != IGNORE
    nll = F.cross_entropy(lg.transpose(1, 2), lb.clamp(min=0), reduction="none") * mask
    hits = (lg.argmax(-1) == lb) & mask
    return nll.sum(1).cpu().numpy(), hits.sum(1).cpu().numpy(), mask.sum(1).cpu().numpy()


def collect_ffn_pairs(model: Any, arch: Any, examples: Sequence[CCExample], pad_id: int,
                      batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """`(A, B)`: `(N, L, d)` float32 FFN outputs at the connection position of `x` and of `x^en` (no connection)."""
    dev = next(model.parameters()).device
    a, b = [], []
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            cb = collate_cc(examples[i:i + batch_size], pad_id, dev)
            a.append(ffn_outputs(model, arch, cb.x["input_ids"], cb.x["attention_mask"], cb.pos).float().cpu())
            b.append(ffn_outputs(model, arch, cb.en["input_ids"], cb.en["attention_mask"],
                                 _last(cb.en["attention_mask"])).float().cpu())
    return torch.cat(a).numpy(), torch.cat(b).numpy()


def cctuning_evaluate(state: Any, w_dm: torch.Tensor, w_t: torch.Tensor, examples: Sequence[CCExample], *,
                      embed: str = "mean", batch_size: int = 4, f_en: np.ndarray | None = None) -> dict[str, Any]:
    """Held-out numbers of Table 2 and Fig. 8: vanilla vs real-English vs `W_T` connection.

    Args:
        state: the tuned state (`.model`, `.arch`, `.tokenizer`).
        w_dm: `(d, L)` Decision Maker.
        w_t: `(d, d)` Transform Matrix.
        examples: held-out examples (responses are scored teacher-forced).
        embed: the spec's `embed`.
        batch_size: examples per forward pass.
        f_en: optional `(N, L, d)` English FFN outputs already collected for `examples`.

    Returns:
        `gap` (parallel_gap of 'vanilla' (no connection), 'english', 'transform'),
        `selected` (`{"english": [...], "transform": [...]}`), `agree` (fraction of
        examples where both choose the same layer), `n` (examples).
    """
    model, arch = _model_arch(state)
    dev = next(model.parameters()).device
    if f_en is None:
        f_en = collect_ffn_pairs(model, arch, examples, state.tokenizer.pad_token_id)[1]
    kinds = ("vanilla", "english", "transform")
    nll: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    hits: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    sel: dict[str, list[np.ndarray]] = {"english": [], "transform": []}
    toks = []
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            cb = collate_cc(examples[i:i + batch_size], state.tokenizer.pad_token_id, dev)
            fe = torch.as_tensor(f_en[i:i + batch_size], device=dev, dtype=state.model.dtype)
            logits = {"vanilla": model(input_ids=cb.x["input_ids"], attention_mask=cb.x["attention_mask"],
                                       use_cache=False).logits}
            for k, kw in (("english", {"f_en": fe}), ("transform", {})):
                out = cctuning_forward(state, w_dm, w_t, cb.x, positions=cb.pos, embed=embed, **kw)
                logits[k] = out.logits
                sel[k].append(out.selected.cpu().numpy())
            for k in kinds:
                n, h, t = _score(logits[k], cb.x["labels"])
                nll[k].append(n)
                hits[k].append(h)
            toks.append(t)
    cat = {k: np.concatenate(v) for k, v in sel.items()}
    gap = parallel_gap({k: np.concatenate(v) for k, v in nll.items()},
                       {k: np.concatenate(v) for k, v in hits.items()}, np.concatenate(toks))
    return {"gap": gap, "selected": {k: v.tolist() for k, v in cat.items()},
            "agree": float(np.mean(cat["english"] == cat["transform"])), "n": len(examples)}


def _nan_to_none(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()} for r in records]


def fit_and_report(state: Any, w_dm: torch.Tensor, train_ex: Sequence[CCExample], held_ex: Sequence[CCExample],
                   spec: CCTuningSpec) -> tuple[torch.Tensor, dict[str, Any]]:
    """After training: fit `W_T` on `min(wt_pairs, N)` training pairs, then the Fig. 5 / Fig. 8 / Table 2 numbers.

    Returns:
        `(W_T (d, d) float32, report)`; the report is JSON-ready (it goes into the manifest).
    """
    model, arch = _model_arch(state)
    pad = state.tokenizer.pad_token_id
    n = min(spec.wt_pairs, len(train_ex))
    log.info("fitting the Transform Matrix on %d parallel pairs", n)
    a, b = collect_ffn_pairs(model, arch, train_ex[:n], pad)
    w_t = fit_transform_matrix(a, b)
    held = list(held_ex[: spec.eval_items] if spec.eval_items is not None else held_ex)
    log.info("held-out report on %d examples (fit curve, |Δ|, selected layers)", len(held))
    a_h, b_h = collect_ffn_pairs(model, arch, held, pad)
    curve = transform_fit_curve(a, b, a_h, b_h, points=spec.curve_points)
    w_t_t = torch.as_tensor(w_t, dtype=torch.float32)
    ev = cctuning_evaluate(state, w_dm, w_t_t, held, embed=spec.embed, f_en=b_h)
    n_layers = a.shape[1]
    dist = layer_distribution({"English input": ev["selected"]["english"],
                               "Transform Matrix": ev["selected"]["transform"]}, n_layers)
    report = {"n_layers": n_layers, "d_model": int(a.shape[2]), "wt_pairs": n, "n_eval": ev["n"],
              "fit_mse": transform_mse(a, b, w_t),
              "heldout_mse": transform_mse(a_h, b_h, w_t), "identity_mse": transform_mse(a_h, b_h, None),
              "fit_curve": _nan_to_none(curve.to_dict("records")), "layer_distribution": dist.to_dict("records"),
              "gap": ev["gap"], "agree": ev["agree"], "selected": ev["selected"]}
    return w_t_t, report


# --------------------------------------------------------------------------- training


def _lora_config(spec: CCTuningSpec, model: Any) -> Any:
    from peft import LoraConfig

    targets = list(spec.target_modules)
    if getattr(model.config, "model_type", "") == "gpt2" and tuple(targets) == LORA_TARGETS:
        targets = ["c_attn", "c_proj", "c_fc"]
    return LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=targets,
                      bias="none", task_type="CAUSAL_LM")


def _trainable(state: Any, spec: CCTuningSpec, inplace: bool) -> tuple[Any, Any, list[str]]:
    """(module tree to run, peft model or None, names of the trained plain-model parameters)."""
    from workbench.finetune.silp import ffn_parameter_names

    model = clone_for_training(state.model, inplace)
    if spec.train == "lora":
        from peft import get_peft_model

        peft_model = get_peft_model(model, _lora_config(spec, model))
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
                        embed_mask=_prompt_mask(batch.x, batch.pos)) as link:
        loss = net(input_ids=batch.x["input_ids"], attention_mask=batch.x["attention_mask"],
                   labels=batch.x["labels"], use_cache=False).loss
    return loss, link.selected  # type: ignore[return-value]  # set by the connected pass


def train_cctuning(state: Any, split: ParallelSplit, spec: CCTuningSpec, *, progress: ProgressFn | None = None,
                   should_stop: StopFn | None = None, inplace: bool = False) -> TrainResult:
    """CC-Tuning on a copy of `state.model`, then the Transform Matrix and the held-out report.

    Args:
        state: a ModelState-like object (model, tokenizer, arch, n_layers, d_model, device).
        split: parallel data with `spec.pivot`, `spec.lang` (and `spec.target`).
        spec: the CC-Tuning config.
        progress: progress(step, total, metrics) after each step.
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
    w_dm = torch.nn.Parameter(torch.zeros(state.d_model, state.n_layers, device=dev, dtype=torch.float32))
    total = n_batches(len(train_ex), spec.batch_size, spec.epochs)
    total = min(total, spec.max_steps) if spec.max_steps is not None else total
    params = [p for p in (peft_model or net).parameters() if p.requires_grad]
    stepper = Stepper([*params, w_dm], lr=spec.lr, schedule=spec.schedule, warmup=spec.warmup, steps=total,
                      max_grad_norm=spec.max_grad_norm, progress=progress, should_stop=should_stop,
                      stage="cctuning")
    counts = torch.zeros(state.n_layers, dtype=torch.long, device=dev)
    for idx in epoch_batches(len(train_ex), spec.batch_size, spec.epochs, spec.seed):
        if stepper.done >= total:
            break
        stepper.check()
        batch = collate_cc([train_ex[i] for i in idx], state.tokenizer.pad_token_id, dev)
        loss, selected = cc_loss(net, state.arch, batch, w_dm, tau=spec.tau, embed=spec.embed)
        counts += torch.bincount(selected, minlength=state.n_layers)
        stepper.step(loss)
    seconds = stepper.close()
    adapter = cfg = None
    if peft_model is not None:
        from workbench.finetune.midalign import _merge  # the same merge (and changed names) as Mid-align

        model, adapter, cfg, names = _merge(peft_model)
    else:
        model = net
    finish_model(model)
    w = w_dm.detach().cpu().clone()
    tuned = _Tuned(model, state.arch, state.tokenizer)
    w_t, report = fit_and_report(tuned, w.to(dev), train_ex, held_ex, spec)
    metrics = {"train": spec.train, "n_train_examples": len(train_ex), "n_heldout_examples": len(held_ex),
               "train_selection": counts.cpu().tolist(), **summarize(stepper.history, seconds),
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


# --------------------------------------------------------------------------- artifact


def write_artifact_with_files(out_dir: str | Path, base_state: Any, tuned_model: Any, manifest: dict[str, Any],
                              files: Mapping[str, Mapping[str, torch.Tensor]], **kw: Any) -> Path:
    """`artifact_io.write_artifact` plus extra safetensors files (e.g. `CC_FILE`), still atomic.

    The artifact is written into a temporary sibling directory, the files are added, and
    the directory is renamed into place.

    Raises:
        FileExistsError: `out_dir` exists.
    """
    from safetensors.torch import save_file

    from workbench.finetune import artifact_io

    out = Path(out_dir)
    if out.exists():
        raise FileExistsError(f"artifact directory {out} already exists")
    tmp = out.parent / f".{out.name}.files-{os.getpid()}-{id(files):x}"
    try:
        artifact_io.write_artifact(tmp, base_state, tuned_model, manifest, **kw)
        for name, tensors in files.items():
            save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(tmp / name),
                      metadata={"format": "pt"})
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


@dataclass
class CCTuned:
    """A CC-Tuning artifact loaded: the tuned state, `w_dm` `(d, L)`, `w_t` `(d, d)`, its spec and manifest."""

    state: Any
    w_dm: torch.Tensor
    w_t: torch.Tensor
    spec: CCTuningSpec
    manifest: dict[str, Any]

    def forward(self, batch: Mapping[str, torch.Tensor], **kw: Any) -> CCOutput:
        """`cctuning_forward` with this artifact's matrices and `embed` choice."""
        return cctuning_forward(self.state, self.w_dm, self.w_t, batch, embed=self.spec.embed, **kw)


def load_cctuning(base_state: Any, path: str | Path, *, via: str = "delta") -> CCTuned:
    """Base + artifact (delta, or re-merged adapter) and the artifact's `W_DM`, `W_T`.

    Raises:
        ArtifactError: not a CC-Tuning artifact (no `CC_FILE`), or it does not fit the base.
    """
    from safetensors.torch import load_file

    from workbench.errors import ArtifactError
    from workbench.finetune import artifact_io

    p = Path(path)
    if not (p / CC_FILE).is_file():
        raise ArtifactError(f"{p} is not a CC-Tuning artifact (no {CC_FILE})")
    state = artifact_io.load_tuned(base_state, p, via=via)
    mats = load_file(str(p / CC_FILE))
    manifest = json.loads((p / "manifest.json").read_text())
    dev = state.device
    return CCTuned(state, mats["w_dm"].to(dev), mats["w_t"].to(dev), CCTuningSpec.from_dict(manifest["spec"]),
                   manifest)

"""CC-Tuning at inference (an inference kind of `models.hooks`): FFN output hooks, the connection, the Decision Maker.

The two-pass inference of a CC-Tuning state (METHODS §6; `finetune.cctuning` documents the
definitions): first pass → the FFN outputs `F` at the connection position → `F̂^en = F W_T`
→ Decision Maker → the second pass with `f_sel` added to block 0's FFN output there.
`CCTuningInference` serves it to every door (scoring, generation, lm-eval); the training
code uses the same hooks (`ffn_connection`, `decision_maker`, `ffn_outputs`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from workbench.errors import ParamError
from workbench.models.architectures import get_path, hook_hidden0
from workbench.models.artifacts import read_tensors
from workbench.models.hooks.base import Inference, Plain

__all__ = ["CC_FILE", "CCOutput", "CCTuningInference", "cctuning_forward", "cctuning_generate", "decision_maker",
           "ffn_connection", "ffn_outputs", "last_positions", "prompt_mask"]

CC_FILE = "cctuning.safetensors"
"""The artifact file holding `w_dm` `(d, L)` and `w_t` `(d, d)` beside delta.safetensors."""


def last_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """`(B,)` column of each row's last real token (right-padded rows)."""
    return attention_mask.sum(1) - 1



def ffn_outputs(model: Any, arch: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                positions: torch.Tensor) -> torch.Tensor:
    """FFN output vectors of every block at one position per row: `(B, L, d)`.

    Runs the model body (no LM head) once; hooks read the output of `arch.down` of each
    block at `positions[b]`. Columns after the largest position are not fed (causal model).
    Gradients flow if enabled (callers use `torch.no_grad`). With `device_map="auto"` over
    several GPUs each block's output is read on its own GPU (the row and position indices
    are moved there once per device) and the result is gathered on `input_ids`' device.
    """
    blocks = get_path(model, arch.layers)
    dev = input_ids.device
    rows = torch.arange(input_ids.shape[0], device=dev)
    index: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
    got: dict[int, torch.Tensor] = {}

    def grab(i: int) -> Any:
        def hook(_m: Any, _a: Any, out: torch.Tensor) -> None:
            if out.device not in index:
                index[out.device] = (rows.to(out.device), positions.to(out.device))
            r, p = index[out.device]
            got[i] = out[r, p].to(dev)

        return hook

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

    def on_embed(h: torch.Tensor) -> None:
        if link.e is not None:
            return
        rows = torch.arange(h.shape[0], device=h.device)
        pos = positions.to(h.device)  # the embedding may sit on another device than the batch (device_map)
        if embed == "position":
            link.e = h[rows, pos]
        else:
            cols = torch.arange(h.shape[1], device=h.device)
            m = embed_mask[:, : h.shape[1]].to(h.device) if embed_mask is not None else cols[None] <= pos[:, None]
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
        return out.index_put((rows, positions.to(out.device)), vec.to(out.device, out.dtype), accumulate=True)

    hooks = [hook_hidden0(model, arch, on_embed),  # hidden_states[0]: `arch.embed`'s output (XGLM: block 0's input)
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
    # e comes from the embedding's device and W_DM from the first one; F^en decides (device_map)
    h = (f_en.float().mean(1) + e.float().to(f_en.device)) @ w_dm.float().to(f_en.device)
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


def prompt_mask(batch: Mapping[str, torch.Tensor], positions: torch.Tensor, tokenizer: Any = None) -> torch.Tensor:
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
    pos = positions if positions is not None else last_positions(batch["attention_mask"])
    with torch.no_grad():
        if f_en is None:
            if w_t is None:
                raise ValueError("give w_t (monolingual inference) or f_en (the real English input)")
            f = ffn_outputs(model, arch, batch["input_ids"], batch["attention_mask"], pos)
            f_en = (f.float() @ w_t.to(f.device, torch.float32)).to(f.dtype)
        decide = lambda e: decision_maker(f_en, e, w_dm, sample=False)  # noqa: E731 - closes over f_en
        mask = prompt_mask(batch, pos, getattr(state, "tokenizer", None))
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
    pad = state.tokenizer.pad_token_id
    width = max(len(p) for p in prompts)
    dev = next(state.model.parameters()).device
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], dtype=torch.long, device=dev)
    attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long, device=dev)
    kw = dict(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad, **generate_kw)
    with torch.no_grad():
        if not connect:
            out = state.model.generate(input_ids=ids, attention_mask=attn, **kw)
        else:
            out = connected_generate(state, w_dm, w_t, ids, attn, embed=embed, **kw)
    return [row[width:].tolist() for row in out]


def connected_generate(state: Any, w_dm: torch.Tensor, w_t: torch.Tensor | None, input_ids: torch.Tensor,
                       attention_mask: torch.Tensor, *, embed: str = "mean", **generate_kw: Any) -> torch.Tensor:
    """`model.generate` on left-padded rows with the connection at the last column (the prefill only)."""
    model, arch = _model_arch(state)
    pos = torch.full((input_ids.shape[0],), input_ids.shape[1] - 1, dtype=torch.long, device=input_ids.device)
    with torch.no_grad():
        f = ffn_outputs(model, arch, input_ids, attention_mask, pos)
        f_en = (f.float() @ w_t.to(f.device, torch.float32)).to(f.dtype)  # type: ignore[union-attr]  # needed here
        decide = lambda e: decision_maker(f_en, e, w_dm, sample=False)  # noqa: E731 - closes over f_en
        mask = prompt_mask({"input_ids": input_ids, "attention_mask": attention_mask}, pos, state.tokenizer)
        with ffn_connection(model, arch, pos, decide=decide, embed=embed, embed_mask=mask):
            return model.generate(input_ids=input_ids, attention_mask=attention_mask, **generate_kw)


class CCTuningInference(Inference):
    """A CC-Tuning state at inference: the connection at the response position of every prompt.

    Scoring text without a response position (perplexity) runs the plain forward pass, as
    the connection needs one; lm-eval's rolling log-likelihood is refused (`needs_position`).
    Generation is greedy (the two-pass inference decides once, on the prompt).
    """

    kind = "cctuning"
    label = "CC-Tuning"
    needs_position = True

    def __init__(self, w_dm: torch.Tensor, w_t: torch.Tensor, embed: str = "mean") -> None:
        self.w_dm, self.w_t, self.embed = w_dm, w_t, embed

    @classmethod
    def from_artifact(cls, path: Path, manifest: dict[str, Any], state: Any) -> CCTuningInference:
        """The matrices of a CC-Tuning artifact (`CC_FILE`) on the state's device, its spec's `embed`."""
        mats = read_tensors(path, CC_FILE)
        dev = state.device
        return cls(mats["w_dm"].to(dev), mats["w_t"].to(dev), str((manifest.get("spec") or {}).get("embed", "mean")))

    def logits(self, state: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               positions: torch.Tensor | None = None) -> torch.Tensor:
        """The connected forward at `positions` (the prompt's last token), else the plain forward."""
        if positions is None:
            return Plain().logits(state, input_ids, attention_mask)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        return cctuning_forward(state, self.w_dm, self.w_t, batch, positions=positions, embed=self.embed).logits

    def generate(self, state: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 **generate_kw: Any) -> torch.Tensor:
        """Greedy generation with the connection (sampling is refused: it decides once, on the prompt)."""
        if generate_kw.get("do_sample"):
            raise ParamError("CC-Tuning states generate greedily (their two-pass inference); turn sampling off")
        return connected_generate(state, self.w_dm, self.w_t, input_ids, attention_mask, embed=self.embed,
                                  **generate_kw)

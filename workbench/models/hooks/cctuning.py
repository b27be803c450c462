"""CC-Tuning at inference (an inference kind of `models.hooks`): FFN output hooks, the connection, the Decision Maker.

The two-pass inference of a CC-Tuning state (METHODS §6; `finetune.cctuning` documents the
definitions): first pass → the FFN outputs `F` at the connection position → `F̂^en = F W_T`
→ Decision Maker → the second pass with `f_sel` added to block 0's FFN output there.
`CCTuningInference` serves it to every door (scoring, generation, lm-eval); the training
code uses the same hooks (`ffn_connection`, `decision_maker`, `ffn_outputs`).

How the Decision Maker chooses at inference (`CCTuningInference` options, `ModelSpec.inference`):

- `decide="gumbel"` (default; the authors' code, `llamawrapper_mlp.py`, calls
  `gumbel_softmax(H, dim=-1, hard=True)` with τ = 1 in every forward pass that connects,
  inference included): a hard Gumbel sample, `onehot(argmax(H + g))`. τ does not change a
  hard sample's value, so there is no τ option. The noise `g` of a row is drawn from a
  generator seeded by (`seed`, the row's prompt tokens), so a result depends on the seed
  and the prompt, never on batching or on what ran before (a content-keyed store can keep
  it); the same prompt gets the same draw under one seed, where the authors' code would
  draw afresh; another seed is another draw. `decide="argmax"`: the deterministic mode of
  that distribution (this project's earlier inference).
- `embed`: `e` of Eq. 3. "position" = the embedding output at the connection position, as
  the authors' code feeds it (`hidden_states[k, idx]` before block 0, Gemma's √d scale
  included); "mean" = its masked mean over the prompt. Default: the artifact's training
  choice (`CCTuningSpec.embed`, "position" unless it was trained otherwise), as the Decision
  Maker was trained on that input.
"""

from __future__ import annotations

import hashlib
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

__all__ = ["CC_FILE", "CCOutput", "CCTuningInference", "DECIDE", "EMBEDS", "cctuning_forward", "cctuning_generate",
           "decision_maker", "ffn_connection", "ffn_outputs", "gumbel_noise", "last_positions", "prompt_mask"]

CC_FILE = "cctuning.safetensors"
"""The artifact file holding `w_dm` `(d, L)` and `w_t` `(d, d)` beside delta.safetensors."""

DECIDE = ("gumbel", "argmax")
"""How the Decision Maker chooses at inference: a seeded hard Gumbel sample (the authors') or the argmax."""
EMBEDS = ("position", "mean")
"""`e` of Eq. 3: the embedding output at the connection position (the authors') or its mean over the prompt."""


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


def gumbel_noise(input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor, n_layers: int,
                 seed: int) -> torch.Tensor:
    """`(B, L)` float64 standard Gumbel noise, one draw per row from (`seed`, the row's prompt tokens).

    A row's prompt tokens are its real tokens up to its connection position (right- or
    left-padded alike), so the draw of a prompt does not depend on its batch or padding.
    """
    cols = torch.arange(input_ids.shape[1], device=input_ids.device)
    keep = attention_mask.bool() & (cols[None] <= positions.to(input_ids.device)[:, None])
    rows = []
    for ids, k in zip(input_ids.tolist(), keep.tolist()):
        text = f"cctuning-gumbel:{int(seed)}:" + ",".join(str(t) for t, m in zip(ids, k) if m)
        digest = hashlib.sha256(text.encode()).digest()
        gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
        rows.append(torch.rand(n_layers, generator=gen, dtype=torch.float64))
    u = torch.stack(rows).clamp(1e-12, 1 - 1e-12)
    return -torch.log(-torch.log(u))


def decision_maker(f_en: torch.Tensor, e: torch.Tensor, w_dm: torch.Tensor, *, tau: float = 1.0,
                   sample: bool = True, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 3–4: `H = (mean_l f^en_l + e) W_DM`, one layer per row, `f_sel = onehot · F^en`.

    Args:
        f_en: `(B, L, d)` English FFN outputs (or their estimate `F W_T`).
        e: `(B, d)` embedding summary of the non-English input.
        w_dm: `(d, L)` Decision Maker.
        tau: Gumbel-softmax temperature.
        sample: True = `gumbel_softmax(H, tau, hard=True)` (training; torch's global generator);
            False = one-hot `argmax H`, or with `noise` the hard Gumbel sample `argmax(H + noise)`.
        noise: `(B, L)` Gumbel noise of a seeded sample at inference (`gumbel_noise`): the
            forward value `gumbel_softmax(H, tau, hard=True)` has for that noise, at any τ.

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
        scores = h if noise is None else h.double() + noise.to(h.device)
        onehot = F.one_hot(scores.argmax(-1), h.shape[-1]).to(h.dtype)
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


def _decider(f_en: torch.Tensor, w_dm: torch.Tensor, decide: str, seed: int, ids: torch.Tensor, attn: torch.Tensor,
             pos: torch.Tensor) -> Any:
    """`decide(e)` of the Decision Maker at inference: argmax, or the seeded hard Gumbel sample of each row."""
    if decide not in DECIDE:
        raise ParamError(f"decide must be one of {', '.join(DECIDE)}; got {decide!r}")
    noise = gumbel_noise(ids, attn, pos, w_dm.shape[-1], seed) if decide == "gumbel" else None
    return lambda e: decision_maker(f_en, e, w_dm, sample=False, noise=noise)


def cctuning_forward(state: Any, w_dm: torch.Tensor, w_t: torch.Tensor | None, batch: Mapping[str, torch.Tensor], *,
                     positions: torch.Tensor | None = None, f_en: torch.Tensor | None = None,
                     embed: str = "mean", decide: str = "argmax", seed: int = 0) -> CCOutput:
    """CC-Tuning inference on monolingual input: first pass → `F W_T` → Decision Maker → connected pass.

    Args:
        state: the tuned ModelState (or anything with `.model` and `.arch`).
        w_dm: `(d, L)` Decision Maker.
        w_t: `(d, d)` Transform Matrix (ignored when `f_en` is given).
        batch: right-padded `input_ids`, `attention_mask` (and `count`: tokens that count for `e`).
        positions: `(B,)` connection positions; None = the last real token of each row (a prompt).
        f_en: `(B, L, d)` real English FFN outputs: the "parallel input" variant (no first pass).
        embed: how `e` is read ('mean' or 'position').
        decide: 'argmax' (this function's default) or 'gumbel' (the inference kind's default:
            a hard Gumbel sample per row, seeded by `seed` and the row's prompt; `gumbel_noise`).
        seed: the Gumbel draw's seed.

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
        choose = _decider(f_en, w_dm, decide, seed, batch["input_ids"], batch["attention_mask"], pos)
        mask = prompt_mask(batch, pos, getattr(state, "tokenizer", None))
        with ffn_connection(model, arch, pos, decide=choose, embed=embed, embed_mask=mask) as link:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           use_cache=False).logits
    return CCOutput(logits, link.selected, f_en)  # type: ignore[arg-type]  # set by the connected pass


def cctuning_generate(state: Any, w_dm: torch.Tensor, w_t: torch.Tensor | None, prompts: Sequence[Sequence[int]], *,
                      max_new_tokens: int = 32, embed: str = "mean", connect: bool = True, decide: str = "argmax",
                      seed: int = 0, **generate_kw: Any) -> list[list[int]]:
    """Greedy generation from token-id prompts with the connection (first pass → `F W_T` → DM → generate).

    Prompts are left-padded, so the connection position is the last column of every row;
    the hooks act on the prefill only. `connect=False` is plain (vanilla) generation of
    the same batch, for cost comparisons. `decide`, `seed`: as `cctuning_forward`.
    `generate_kw` go to `model.generate` (e.g. `min_new_tokens` for a fixed length).

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
            out = connected_generate(state, w_dm, w_t, ids, attn, embed=embed, decide=decide, seed=seed, **kw)
    return [row[width:].tolist() for row in out]


def connected_generate(state: Any, w_dm: torch.Tensor, w_t: torch.Tensor | None, input_ids: torch.Tensor,
                       attention_mask: torch.Tensor, *, embed: str = "mean", decide: str = "argmax", seed: int = 0,
                       **generate_kw: Any) -> torch.Tensor:
    """`model.generate` on left-padded rows with the connection at the last column (the prefill only).

    The Decision Maker chooses once per prompt (`decide`, `seed` as `cctuning_forward`), as the
    authors' generation loop connects only its first forward pass.
    """
    model, arch = _model_arch(state)
    pos = torch.full((input_ids.shape[0],), input_ids.shape[1] - 1, dtype=torch.long, device=input_ids.device)
    with torch.no_grad():
        f = ffn_outputs(model, arch, input_ids, attention_mask, pos)
        f_en = (f.float() @ w_t.to(f.device, torch.float32)).to(f.dtype)  # type: ignore[union-attr]  # needed here
        choose = _decider(f_en, w_dm, decide, seed, input_ids, attention_mask, pos)
        mask = prompt_mask({"input_ids": input_ids, "attention_mask": attention_mask}, pos, state.tokenizer)
        with ffn_connection(model, arch, pos, decide=choose, embed=embed, embed_mask=mask):
            return model.generate(input_ids=input_ids, attention_mask=attention_mask, **generate_kw)


class CCTuningInference(Inference):
    """A CC-Tuning state at inference: the connection at the response position of every prompt.

    Options (`ModelSpec.inference`; the module docstring says why each default): `decide`
    'gumbel' (default, the authors') or 'argmax'; `embed` 'position' or 'mean' (default: the
    artifact's training choice); `seed` (an integer, default 0; 'gumbel' only).
    Scoring text without a response position (perplexity) runs the plain forward pass, as
    the connection needs one; lm-eval's rolling log-likelihood is refused (`needs_position`).
    Generation is greedy; the Decision Maker chooses once per prompt, on its prefill.
    """

    kind = "cctuning"
    label = "CC-Tuning"
    needs_position = True

    def __init__(self, w_dm: torch.Tensor, w_t: torch.Tensor, embed: str = "position", decide: str = "gumbel",
                 seed: int = 0) -> None:
        self.w_dm, self.w_t = w_dm, w_t
        self.options = self.resolve({"spec": {"embed": embed}}, {"decide": decide, "embed": embed,
                                                                 **({"seed": seed} if decide == "gumbel" else {})})
        self.embed, self.decide = str(self.options["embed"]), str(self.options["decide"])
        self.seed = int(self.options.get("seed", 0))

    @classmethod
    def resolve(cls, manifest: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
        """`decide`, `embed` and (with 'gumbel') `seed`, defaults filled in (`Inference.resolve`).

        Raises:
            ParamError: an unknown option or value; `seed` with 'argmax' (it would change nothing).
        """
        unknown = sorted(set(options) - {"decide", "embed", "seed"})
        if unknown:
            raise ParamError(f"CC-Tuning inference takes decide ({'|'.join(DECIDE)}), embed ({'|'.join(EMBEDS)}) "
                             f"and seed; got {', '.join(unknown)}")
        trained = str((manifest.get("spec") or {}).get("embed", "mean"))  # artifacts before `embed`: the mean
        out: dict[str, Any] = {"decide": options.get("decide", "gumbel"), "embed": options.get("embed", trained)}
        if out["decide"] not in DECIDE:
            raise ParamError(f"CC-Tuning inference: decide must be one of {', '.join(DECIDE)}; got {out['decide']!r}")
        if out["embed"] not in EMBEDS:
            raise ParamError(f"CC-Tuning inference: embed must be one of {', '.join(EMBEDS)}; got {out['embed']!r}")
        seed = options.get("seed", 0)
        if out["decide"] == "argmax":
            if "seed" in options:
                raise ParamError("CC-Tuning inference: seed applies to decide=gumbel only (argmax draws nothing)")
        elif isinstance(seed, bool) or not isinstance(seed, int):
            raise ParamError(f"CC-Tuning inference: seed must be an integer; got {seed!r}")
        else:
            out["seed"] = seed
        return out

    @classmethod
    def from_artifact(cls, path: Path, manifest: dict[str, Any], state: Any,
                      options: Mapping[str, Any] | None = None) -> CCTuningInference:
        """The matrices of a CC-Tuning artifact (`CC_FILE`) on the state's device, with `options` resolved."""
        opts = cls.resolve(manifest, dict(options or {}))
        mats = read_tensors(path, CC_FILE)
        dev = state.device
        return cls(mats["w_dm"].to(dev), mats["w_t"].to(dev), **opts)

    def logits(self, state: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               positions: torch.Tensor | None = None) -> torch.Tensor:
        """The connected forward at `positions` (the prompt's last token), else the plain forward."""
        if positions is None:
            return Plain().logits(state, input_ids, attention_mask)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        return cctuning_forward(state, self.w_dm, self.w_t, batch, positions=positions, embed=self.embed,
                                decide=self.decide, seed=self.seed).logits

    def generate(self, state: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 **generate_kw: Any) -> torch.Tensor:
        """Greedy generation with the connection (token sampling is refused: the two-pass inference decides once)."""
        if generate_kw.get("do_sample"):
            raise ParamError("CC-Tuning states generate greedily (their two-pass inference); turn sampling off")
        return connected_generate(state, self.w_dm, self.w_t, input_ids, attention_mask, embed=self.embed,
                                  decide=self.decide, seed=self.seed, **generate_kw)

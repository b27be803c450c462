"""What a lens view keeps of a decoded distribution, and the one result object of a readout.

Pure tensor functions: `decode_stats` reduces the logits of one layer at N positions to
top-k ids and probabilities, entropy, KL(p_final ‖ p_l) and the probability mass of named
token sets, so no [layer × position × vocabulary] tensor is ever kept. `LensReadout` holds
the reductions for every (prompt, position) read and every layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from workbench.errors import ParamError

__all__ = ["DECODE_CHUNK_BYTES", "FinalDist", "LensReadout", "decode_stats", "entropy", "kl_to_final", "row_chunks",
           "token_set_tensors"]

#: Row chunks of a decode hold at most this many bytes per (rows × vocabulary) float64 tensor.
DECODE_CHUNK_BYTES = 64 << 20


def kl_to_final(final_logp: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """`KL(p_final ‖ p_l) = Σ_v p_final(v) (log p_final(v) − log p_l(v))` per row, in nats.

    Args:
        final_logp: `(N, V)` log-probabilities of the final layer (the model's own).
        logp: `(N, V)` log-probabilities of the layer read.

    Returns:
        `(N,)`; terms where `p_final(v) = 0` count 0 (the limit), never NaN.
    """
    pf = final_logp.exp()
    return torch.where(pf > 0, pf * (final_logp - logp), torch.zeros_like(pf)).sum(-1)


def entropy(logp: torch.Tensor) -> torch.Tensor:
    """`H(p) = −Σ_v p(v) log p(v)` per row of `(N, V)` log-probabilities, in nats (0·log 0 = 0)."""
    p = logp.exp()
    return -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)


def token_set_tensors(token_sets: Mapping[str, Any] | None, vocab_size: int,
                      device: Any = "cpu") -> dict[str, torch.Tensor]:
    """Named token sets as unique, sorted id tensors (a token counts once however often it is listed).

    Raises:
        ParamError: a name that is not a string, or an id outside `0 … vocab_size − 1`.
    """
    out: dict[str, torch.Tensor] = {}
    for name, ids in (token_sets or {}).items():
        if not isinstance(name, str) or not name:
            raise ParamError(f"token set names must be non-empty strings, got {name!r}")
        arr = np.unique(np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64))
        if arr.size and (arr[0] < 0 or arr[-1] >= vocab_size):
            raise ParamError(f"token set {name!r} has ids outside 0…{vocab_size - 1}")
        out[name] = torch.as_tensor(arr, device=device)
    return out


@dataclass(frozen=True)
class FinalDist:
    """The final layer's distribution over a row chunk, computed once for every layer decoded against it.

    `logits` `(N, V)` float64 (any logits: log-probabilities are logits too), `lse` `(N, 1)`
    their log-normaliser, `p` `(N, V)` the probabilities `exp(logits − lse)`.
    """

    logits: torch.Tensor
    lse: torch.Tensor
    p: torch.Tensor

    @classmethod
    def of(cls, logits: torch.Tensor) -> FinalDist:
        """The final distribution of `(N, V)` logits (any float dtype), in float64."""
        x = _finite(logits)
        lse = torch.logsumexp(x, dim=-1, keepdim=True)
        return cls(x, lse, (x - lse).exp_())


def _finite(logits: torch.Tensor) -> torch.Tensor:
    """A float64 copy with −∞ as −1e300: `exp` still gives 0 and `0 · x` is 0, never NaN (0 · log 0 = 0)."""
    return logits.double().clamp_(min=-1e300)


def decode_stats(logits: torch.Tensor, final: torch.Tensor | FinalDist, *, top_k: int,
                 token_sets: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The reductions of one layer's logits `(N, V)` (any float dtype), computed in float64.

    float64 because a float32 softmax over a large vocabulary carries the summation error
    of its normaliser (about 1e-5 relative at Gemma's 262k tokens, measured), and KL to the
    final layer subtracts nearly equal numbers; the logits themselves are the model's.

    With `x` the logits, `lse = log Σ exp x` and `p = exp(x − lse)`, the reductions are
    written so that each is one pass over the vocabulary (the decode is half of a lens
    readout's time on Gemma's 262k tokens): `H(p) = lse·Σp − Σ p·x` and
    `KL(p_f ‖ p) = Σ p_f·(x_f − x) + (lse − lse_f)·Σp_f` (= Σ p_f (log p_f − log p)); the
    final layer read against itself gives exactly 0.

    Args:
        logits: `(N, V)` logits of the layer read.
        final: the final layer's `FinalDist` (computed once per chunk), or its `(N, V)`
            log-probabilities.
        top_k: most probable tokens kept (capped at V).
        token_sets: name -> id tensor; the mass of each set is kept.

    Returns:
        `top_ids` `(N, k)` int64 (most probable first), `top_probs` `(N, k)`, `entropy` `(N,)`,
        `kl` `(N,)` (KL(p_final ‖ p_l)), `mass` name -> `(N,)` (Σ of p over the set's ids).
    """
    f = final if isinstance(final, FinalDist) else FinalDist.of(final)
    x = _finite(logits)
    lse = torch.logsumexp(x, dim=-1, keepdim=True)
    top_x, top_ids = x.topk(min(top_k, x.shape[-1]), dim=-1)
    p = (x - lse).exp_()
    mass = {name: p.index_select(-1, ids.to(p.device)).sum(-1).float() for name, ids in token_sets.items()}
    ent = lse.squeeze(-1) * p.sum(-1) - torch.einsum("nv,nv->n", p, x)
    kl = torch.einsum("nv,nv->n", f.p, f.logits - x) + (lse - f.lse).squeeze(-1) * f.p.sum(-1)
    return {"top_ids": top_ids, "top_probs": (top_x - lse).exp().float(), "entropy": ent.clamp_(min=0).float(),
            "kl": kl.clamp_(min=0).float(), "mass": mass}


def row_chunks(n_rows: int, vocab_size: int, budget: int | None = None) -> list[slice]:
    """Slices of `range(n_rows)` whose `(rows, vocab)` float64 tensors stay under `budget` bytes.

    `budget` defaults to `DECODE_CHUNK_BYTES` (read at call time); a row is never split.
    """
    step = max(1, (budget or DECODE_CHUNK_BYTES) // max(1, 8 * vocab_size))
    return [slice(a, min(n_rows, a + step)) for a in range(0, n_rows, step)]


@dataclass(frozen=True)
class LensReadout:
    """Per (prompt, position) read and layer: what lens views need of `p_l` (METHODS §9).

    `U` reads (rows), in prompt order then position order; `Ly = len(layer_labels)`
    (`"emb"` first if decoded, then blocks `0 … L-1`; the last block's lens is the model's
    own distribution, so its `kl_to_final` is 0).
    """

    layer_labels: tuple[Any, ...]
    prompt: np.ndarray  # (U,) int64: index of the prompt of each read
    position: np.ndarray  # (U,) int64: the token position read, 0-based within its prompt
    token: np.ndarray  # (U,) int64: the input token at that position
    top_ids: np.ndarray  # (U, Ly, k) int64, most probable first
    top_probs: np.ndarray  # (U, Ly, k) float32
    entropy: np.ndarray  # (U, Ly) float32, nats
    kl_to_final: np.ndarray  # (U, Ly) float32, KL(p_final ‖ p_l) in nats
    set_mass: Mapping[str, np.ndarray] = field(default_factory=dict)  # name -> (U, Ly) float32
    lens: str = "logit"  # "logit" or "tuned:<fingerprint of the translators>"

    def __post_init__(self) -> None:
        u, ly = self.prompt.shape[0], len(self.layer_labels)
        want = {"prompt": (u,), "position": (u,), "token": (u,), "entropy": (u, ly), "kl_to_final": (u, ly)}
        got = {k: getattr(self, k).shape for k in want}
        got.update({f"set_mass[{n}]": a.shape for n, a in self.set_mass.items()})
        want.update({f"set_mass[{n}]": (u, ly) for n in self.set_mass})
        bad = {k: v for k, v in got.items() if v != want[k]}
        if self.top_ids.shape[:2] != (u, ly) or self.top_probs.shape != self.top_ids.shape:
            bad["top_ids/top_probs"] = (self.top_ids.shape, self.top_probs.shape)
        if bad:
            raise ValueError(f"LensReadout shapes do not match (U={u}, layers={ly}): {bad}")

    @property
    def n_reads(self) -> int:
        """Number of (prompt, position) reads U."""
        return int(self.prompt.shape[0])

    def layer_index(self, label: Any) -> int:
        """Index on the layer axis of a label (`"emb"` or a block index)."""
        return self.layer_labels.index(label)

    def rows(self, prompt: int) -> np.ndarray:
        """Indices of the reads of one prompt, in position order."""
        return np.flatnonzero(self.prompt == prompt)

    def arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays for storage (`mass:<name>` for each token set)."""
        out = {k: getattr(self, k) for k in ("prompt", "position", "token", "top_ids", "top_probs", "entropy",
                                              "kl_to_final")}
        out.update({f"mass:{n}": a for n, a in self.set_mass.items()})
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], layer_labels: Sequence[Any],
                    lens: str = "logit") -> LensReadout:
        """Inverse of `arrays()`."""
        masses = {k.split(":", 1)[1]: np.asarray(v) for k, v in arrays.items() if k.startswith("mass:")}
        core = {k: np.asarray(arrays[k]) for k in ("prompt", "position", "token", "top_ids", "top_probs",
                                                    "entropy", "kl_to_final")}
        return cls(tuple(layer_labels), set_mass=masses, lens=lens, **core)

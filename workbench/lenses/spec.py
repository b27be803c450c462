"""Frozen specs of a lens readout and of a tuned-lens training (HOUSE_STYLE 5).

`LensSpec` holds every choice that changes a readout's numbers (the store key of the lens
recording is made of it, the prompts, the token sets and the lens); `TunedLensSpec` the
hyper-parameters of a tuned-lens training (written into the lens's manifest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from workbench.config import Spec, _check_type, spec_field
from workbench.errors import ParamError

POSITIONS = ("last", "all")


@dataclass(frozen=True)
class LensSpec(Spec):
    """What a lens readout decodes, and what it keeps per (prompt, position, layer)."""

    FORMAT_VERSION: ClassVar[int] = 1

    positions: str | tuple[int, ...] = spec_field(
        "token positions to read: 'last' (the last prompt token), 'all' (every position: the token view), "
        "or explicit positions (negative counts from the end)", "last")
    top_k: int = spec_field("most probable tokens kept per cell (ids and probabilities)", 5)
    embeddings: bool = spec_field("also decode the embedding output (layer 'emb', hidden_states[0])", False)
    max_length: int = spec_field("longest prompt in tokens; a longer prompt is an error (never truncated, which "
                            "would move its last token)", 512)
    add_special_tokens: bool = spec_field("tokenise text prompts with the tokenizer's special tokens (BOS)", True)

    def __post_init__(self) -> None:
        if isinstance(self.positions, str):
            if self.positions not in POSITIONS:
                raise ParamError(f"LensSpec.positions must be 'last', 'all' or a tuple of positions, "
                                 f"got {self.positions!r}")
        elif not isinstance(self.positions, tuple) or not self.positions or not all(
                isinstance(p, int) and not isinstance(p, bool) for p in self.positions):
            raise ParamError(f"LensSpec.positions must be 'last', 'all' or a non-empty tuple of integers, "
                             f"got {self.positions!r}")
        for name in ("top_k", "max_length"):
            _check_type("LensSpec", name, getattr(self, name), int, "an integer")
        if self.top_k < 1:
            raise ParamError(f"LensSpec.top_k must be >= 1, got {self.top_k}")
        if self.max_length < 1:
            raise ParamError(f"LensSpec.max_length must be >= 1, got {self.max_length}")
        for name in ("embeddings", "add_special_tokens"):
            _check_type("LensSpec", name, getattr(self, name), bool, "true or false")


@dataclass(frozen=True)
class TunedLensSpec(Spec):
    """Hyper-parameters of a tuned-lens training (defaults: AlignmentResearch/tuned-lens's `train`).

    The optimiser is theirs: SGD with Nesterov momentum at `lr * (1 - momentum)`, weight
    decay on the translators' residual weights (so towards the identity), a linear decay of
    the rate to 0 over `steps` without warm-up, gradient norm clipped to 1.
    """

    FORMAT_VERSION: ClassVar[int] = 1

    steps: int = spec_field("optimiser steps (one batch of texts each)", 250)
    lr: float = spec_field("learning-rate scale (tuned-lens's lr_scale): SGD runs at lr * (1 - momentum)", 1.0)
    momentum: float = spec_field("Nesterov momentum", 0.9)
    weight_decay: float = spec_field("weight decay of the translators (pulls A_l towards the identity)", 1e-3)
    max_length: int = spec_field("texts are truncated to this many tokens", 256)
    batch_tokens: int = spec_field("padded tokens per training batch", 2048)
    seed: int = spec_field("seed of the batch order (the translators start at the identity)", 0)

    def __post_init__(self) -> None:
        for name in ("steps", "max_length", "batch_tokens", "seed"):
            _check_type("TunedLensSpec", name, getattr(self, name), int, "an integer")
        for name in ("lr", "momentum", "weight_decay"):
            _check_type("TunedLensSpec", name, getattr(self, name), (int, float), "a number")
        if self.steps < 1 or self.max_length < 2 or self.batch_tokens < self.max_length:
            raise ParamError("TunedLensSpec: steps >= 1, max_length >= 2 and batch_tokens >= max_length, got "
                             f"{self.steps}, {self.max_length}, {self.batch_tokens}")
        if self.lr <= 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise ParamError(f"TunedLensSpec: lr > 0, 0 <= momentum < 1, weight_decay >= 0, got {self.lr}, "
                             f"{self.momentum}, {self.weight_decay}")

"""The inference protocol: how a model state runs a forward pass and generates.

Every door that runs a state (scoring, generation, lm-eval) calls its `Inference`, so a
change that an artifact makes at inference (CC-Tuning's connection) reaches all of them
without any door naming it (interventions need no `Inference`: they are forward hooks on the
state's model, `models.interventions`). `Plain` is the unmodified HF forward and `generate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from workbench.errors import ParamError

__all__ = ["Inference", "Plain"]


class Inference:
    """What a state does at inference. Subclasses override what they change.

    `needs_position`: the change acts at a response position (the last prompt token), so
    text without one (perplexity, rolling log-likelihood) runs the plain forward or is refused.
    """

    kind = "plain"
    label = "plain"  # in messages: "<label> states cannot …"
    needs_position = False
    options: Mapping[str, Any] = {}  # the resolved options (`resolve`), what `describe` reports

    @classmethod
    def resolve(cls, manifest: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
        """The kind's options with its defaults filled in and every value checked; reads no weights.

        `manifest`: the artifact's (a default may depend on how it was trained). A kind
        without options refuses any.

        Raises:
            ParamError: an option the kind does not take, or a bad value (one line).
        """
        if options:
            raise ParamError(f"{cls.label} states take no inference options; got {', '.join(sorted(options))} "
                             "(options go to an artifact's inference kind, e.g. a CC-Tuning state's)")
        return {}

    def logits(self, state: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               positions: torch.Tensor | None = None) -> torch.Tensor:
        """`(B, T, V)` logits of right-padded rows; `positions` `(B,)` = each row's last prompt token, if any."""
        return state.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    def generate(self, state: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 **generate_kw: Any) -> torch.Tensor:
        """`model.generate` on left-padded rows (the KV cache on); returns prompt + new tokens."""
        return state.model.generate(input_ids=input_ids, attention_mask=attention_mask, **generate_kw)

    def describe(self) -> dict[str, Any]:
        """What a manifest and an evaluation's store key record about it: the kind and its resolved options."""
        return {"kind": self.kind, **dict(self.options)}


class Plain(Inference):
    """The unmodified model."""

"""The inference protocol: how a model state runs a forward pass and generates.

Every door that runs a state (scoring, generation, lm-eval) calls its `Inference`, so a
change that a state makes at inference (CC-Tuning's connection; the interventions of
`models.hooks`) reaches all of them without any door naming it. `Plain` is the unmodified
HF forward and `generate`.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["Inference", "Plain"]


class Inference:
    """What a state does at inference. Subclasses override what they change.

    `needs_position`: the change acts at a response position (the last prompt token), so
    text without one (perplexity, rolling log-likelihood) runs the plain forward or is refused.
    """

    kind = "plain"
    label = "plain"  # in messages: "<label> states cannot …"
    needs_position = False

    def logits(self, state: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               positions: torch.Tensor | None = None) -> torch.Tensor:
        """`(B, T, V)` logits of right-padded rows; `positions` `(B,)` = each row's last prompt token, if any."""
        return state.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    def generate(self, state: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 **generate_kw: Any) -> torch.Tensor:
        """`model.generate` on left-padded rows (the KV cache on); returns prompt + new tokens."""
        return state.model.generate(input_ids=input_ids, attention_mask=attention_mask, **generate_kw)

    def describe(self) -> dict[str, Any]:
        """What a manifest records about it."""
        return {"kind": self.kind}


class Plain(Inference):
    """The unmodified model."""

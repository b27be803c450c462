"""Decoding a residual stream into logits exactly as the model decodes its last block's output.

`lens_logits(model, arch, h)` = post-processing(unembed(final_norm(h))), with the model's
own modules (never a re-implemented norm) and the post-processing its forward applies,
read from the architecture table (`ArchEntry.unembed`, `logit_scale`, `softcap`):

- every family: `logits = lm_head(norm(h))` (the head is tied to the input embedding
  where the model ties them: the same parameter, so nothing to do);
- Cohere (`CohereForCausalLM.forward`): `logits = logits * self.logit_scale`;
- Gemma-2/3 (`Gemma{2,3}ForCausalLM.forward`): when `config.final_logit_softcapping` is
  set, `logits = tanh(logits / c) * c`, in that order of operations.

For `h` = the last block's output this is the model's own next-token logits (the tests pin
it to 1e-5 in fp32 on every table entry); for an earlier layer it is the logit lens.
"""

from __future__ import annotations

from typing import Any

import torch

from workbench.models.architectures import ArchEntry, get_path


def _placement(module: Any) -> tuple[torch.device, torch.dtype] | None:
    """(device, dtype) of a module's first parameter (None for a module without parameters)."""
    p = next(module.parameters(), None)
    return None if p is None else (p.device, p.dtype)


def _to(h: torch.Tensor, module: Any) -> torch.Tensor:
    """`h` on the module's device and in its dtype (a model split over GPUs, a bf16 model fed fp32)."""
    where = _placement(module)
    return h if where is None else h.to(device=where[0], dtype=where[1])


def postprocess_logits(model: Any, arch: ArchEntry, logits: torch.Tensor) -> torch.Tensor:
    """What the model's forward does to `lm_head`'s output before returning it (see module doc).

    Values are read from the model at call time (`model.logit_scale`, `model.config.<softcap>`),
    as its forward reads them, so a changed config is followed.
    """
    if arch.logit_scale is not None:
        logits = logits * getattr(model, arch.logit_scale)
    cap = getattr(model.config, arch.softcap, None) if arch.softcap is not None else None
    if cap is not None:
        logits = logits / cap
        logits = torch.tanh(logits)
        logits = logits * cap
    return logits


def lens_logits(model: Any, arch: ArchEntry, h: torch.Tensor) -> torch.Tensor:
    """Logits `(..., V)` of residual-stream vectors `h` `(..., d)`: final norm → unembedding → post-processing.

    `h` is moved to the final norm's device and dtype (as the model's own last hidden state
    would be); the logits come back in the head's dtype on its device. Gradients flow to `h`
    (the tuned lens trains through this) but the model's parameters are not changed.
    """
    norm = get_path(model, arch.norm)
    head = get_path(model, arch.unembed)
    x = norm(_to(h, norm))
    return postprocess_logits(model, arch, head(_to(x, head)))


def is_tied(model: Any, arch: ArchEntry) -> bool:
    """Whether the unembedding is the input embedding matrix (the same parameter)."""
    return get_path(model, arch.unembed).weight is model.get_input_embeddings().weight

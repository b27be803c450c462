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

from typing import Any

from workbench.errors import ParamError
from workbench.models.architectures import LORA_TARGETS

__all__ = ["LORA_TARGETS", "SCHEDULES", "check_common", "check_layers"]

SCHEDULES = ("cosine", "linear", "constant", "inverse_sqrt")


def check_common(spec: Any) -> None:
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


def check_layers(name: str, field: str, layers: tuple[int, ...] | None) -> None:
    """Raise `ParamError` unless `layers` is None or non-negative block indices."""
    if layers is not None and any((not isinstance(x, int)) or x < 0 for x in layers):
        raise ParamError(f"{name}: {field} must be non-negative block indices, got {layers}")

"""Shared training machinery: a copy of the model, the optimiser step, logging, cancellation.

Every method trains a deep copy of the model it is given (the base in memory is never
touched) and returns a `TrainResult`. `Stepper` is one optimisation stage: AdamW
(β = (0.9, 0.999), no weight decay), a learning-rate schedule, optional gradient clipping,
a cancellation check before each step and a progress callback after it.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import optimization as o

from workbench.errors import Cancelled
from workbench.finetune import distributed
from workbench.models import get_path
from workbench.progress import Progress, StopFn

log = logging.getLogger(__name__)

__all__ = [
    "Cancelled",
    "StopFn",
    "Stepper",
    "TrainResult",
    "block_output",
    "clone_for_training",
    "last_token",
    "masked_mean",
]

@dataclass
class TrainResult:
    """What a fine-tune returns.

    `model` is a plain HF causal LM (LoRA merged in), in eval mode with gradients off.
    """

    model: Any
    history: list[dict[str, float]]
    """one dict per optimiser step: step, stage, lr, loss and method-specific losses."""
    metrics: dict[str, Any]
    """summary: steps, seconds, steps_per_s, final losses, method details (layers, ...)."""
    trainable: list[str]
    """names (as in the plain model's named_parameters) of the parameters the method trains."""
    adapter: dict[str, torch.Tensor] | None = None
    """LoRA weights (peft state-dict names) before merging; None for non-LoRA methods."""
    adapter_config: dict[str, Any] | None = None
    """peft LoraConfig as a dict; None for non-LoRA methods."""
    extra: dict[str, Any] = field(default_factory=dict)


def clone_for_training(model: Any, inplace: bool = False) -> Any:
    """A deep copy of `model` (or `model` itself) with every parameter frozen, in train mode."""
    m = model if inplace else copy.deepcopy(model)
    m.requires_grad_(False)
    m.train()
    return m


def finish_model(model: Any) -> Any:
    """Eval mode, gradients off: the state a `TrainResult.model` is handed back in."""
    model.requires_grad_(False)
    model.eval()
    return model


def _schedule(opt: torch.optim.Optimizer, name: str, warmup: int, steps: int) -> Any:

    if name == "cosine":
        return o.get_cosine_schedule_with_warmup(opt, warmup, steps)
    if name == "linear":
        return o.get_linear_schedule_with_warmup(opt, warmup, steps)
    if name == "inverse_sqrt":
        return o.get_inverse_sqrt_schedule(opt, warmup)
    return o.get_constant_schedule_with_warmup(opt, warmup)


class Stepper:
    """One optimisation stage over `params` for `steps` steps.

    Warm-up steps are `floor(warmup · steps)`, so a short run does not spend its first
    step at learning rate 0. Metrics stay on the device and are read back in one transfer
    at most every `flush_s` seconds (and at `close()`), so logging does not stall a GPU
    pipeline every step; `progress` is still called once per step, in order.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], *, lr: float, schedule: str,
                 warmup: float, steps: int, max_grad_norm: float | None,
                 progress: Progress | None = None, should_stop: StopFn | None = None,
                 offset: int = 0, total: int | None = None, stage: str = "",
                 history: list[dict[str, Any]] | None = None, flush_s: float = 0.25) -> None:
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError(f"stage {stage or '?'}: no trainable parameters")
        self.opt = torch.optim.AdamW(self.params, lr=lr, betas=(0.9, 0.999), weight_decay=0.0)
        self.sched = _schedule(self.opt, schedule, int(warmup * steps), steps)
        self.max_grad_norm = max_grad_norm
        self.progress = progress
        self.should_stop = should_stop
        self.steps = steps
        self.offset = offset
        self.total = total if total is not None else offset + steps
        self.stage = stage
        self.done = 0
        self.history = history if history is not None else []
        self.flush_s = flush_s
        self._pending: list[tuple[int, float, dict[str, Any]]] = []
        self._t0 = self._last_flush = time.perf_counter()
        distributed.broadcast_(self.params)

    def check(self) -> None:
        """Raise `Cancelled` if should_stop() says so on any rank; open the next step.

        Called before each step. With N processes the flag is or-ed over the ranks, so
        every rank stops at the same step.
        """
        stop = self.should_stop is not None and bool(self.should_stop())
        if distributed.any_flag(stop):
            self._flush()
            raise Cancelled(f"cancelled at step {self.offset + self.done} of {self.total}")
        distributed.begin_step()

    def step(self, loss: torch.Tensor, **metrics: torch.Tensor | float) -> None:
        """Backward, clip, optimiser and schedule step; log `loss` and `metrics`.

        With N processes: the local loss is weighted (`distributed.loss_weight`), the
        gradients and the logged values are summed over the ranks, so every rank takes
        the step one process would take on the global batch.
        """
        (loss * distributed.loss_weight() if distributed.current().world > 1 else loss).backward()
        vals = {"loss": loss.detach(), **{k: v.detach() if torch.is_tensor(v) else v
                                          for k, v in metrics.items()}}
        vals = self._reduce(vals)
        distributed.end_step()
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        lr = float(self.opt.param_groups[0]["lr"])
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        self.done += 1
        self._pending.append((self.offset + self.done, lr, vals))
        if time.perf_counter() - self._last_flush >= self.flush_s:
            self._flush()

    def _reduce(self, vals: dict[str, Any]) -> dict[str, Any]:
        """Sum the gradients over the ranks; the logged tensors become their global values."""
        if distributed.current().world == 1:
            return vals
        keys = [k for k, v in vals.items() if torch.is_tensor(v)]
        w = distributed.metric_weight()
        vec = torch.stack([vals[k].float().reshape(()) * w for k in keys]).to(self.params[0].device)
        distributed.reduce_gradients(self.params, vec)  # in place: gradients and vec
        return {**vals, **{k: vec[i] for i, k in enumerate(keys)}}

    def _flush(self) -> None:
        self._last_flush = time.perf_counter()
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        tensors = [v for _, _, vals in pending for v in vals.values() if torch.is_tensor(v)]
        floats = iter(torch.stack([t.float().reshape(()) for t in tensors]).tolist()) if tensors else iter(())
        for step, lr, vals in pending:
            row: dict[str, Any] = {"step": step, "stage": self.stage, "lr": lr}
            row.update({k: next(floats) if torch.is_tensor(v) else float(v) for k, v in vals.items()})
            self.history.append(row)
            if self.progress is not None:
                self.progress(step, self.total, str(row.get("stage") or ""),
                              {k: v for k, v in row.items() if k != "step"})

    def close(self) -> float:
        """Flush the remaining metrics; return this stage's wall time in seconds."""
        self._flush()
        return time.perf_counter() - self._t0


def summarize(history: list[dict[str, Any]], seconds: float, keys: Iterable[str] = ("loss",)) -> dict[str, Any]:
    """Steps, seconds, steps/s and, per key, the mean of the first and last ~10% of steps."""
    out: dict[str, Any] = {"steps": len(history), "seconds": round(seconds, 3),
                           "steps_per_s": round(len(history) / seconds, 4) if seconds > 0 else None}
    for k in keys:
        vals = [h[k] for h in history if k in h]
        if vals:
            w = max(1, len(vals) // 10)
            out[f"{k}_first"] = sum(vals[:w]) / w
            out[f"{k}_last"] = sum(vals[-w:]) / w
    return out


# --------------------------------------------------------------------------- representations


class _Stop(Exception):
    """Raised by a forward hook to end the forward pass after the block we need."""


def block_output(model: Any, arch: Any, batch: dict[str, torch.Tensor], layer: int) -> torch.Tensor:
    """Output of decoder block `layer` (METHODS' layer `l`, before any final norm), `(B, T, d)`.

    Runs the model body (no LM head) and stops right after block `layer`, so later blocks
    never run. Works on a peft-wrapped model's underlying HF model (LoRA layers are
    injected in place). Gradients flow as usual.
    """
    blocks = get_path(model, arch.layers)
    if not 0 <= layer < len(blocks):
        raise ValueError(f"layer {layer} out of range: the model has {len(blocks)} blocks")
    box: dict[str, torch.Tensor] = {}

    def hook(_mod: Any, _args: Any, out: Any) -> None:
        box["h"] = out[0] if isinstance(out, tuple) else out
        raise _Stop

    handle = blocks[layer].register_forward_hook(hook)
    try:
        get_path(model, arch.base)(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                   use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
    if "h" not in box:
        raise RuntimeError(f"block {layer} did not run")
    return box["h"]


def masked_mean(h: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Mean of `h` `(B, T, d)` over the tokens where `count` `(B, T)` is True → `(B, d)`.

    Inside a training step of N > 1 processes, the rows of every rank (the global batch).
    """
    m = count.to(device=h.device, dtype=h.dtype).unsqueeze(-1)  # h may sit on a later GPU (device_map)
    return distributed.gather_rows((h * m).sum(1) / m.sum(1).clamp(min=1.0))


def last_token(h: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The last real token of each row of a right-padded batch: `(B, T, d)` → `(B, d)`.

    Inside a training step of N > 1 processes, the rows of every rank (the global batch).
    """
    last = (attention_mask.sum(1) - 1).to(h.device)  # h may sit on a later GPU (device_map)
    return distributed.gather_rows(h[torch.arange(h.shape[0], device=h.device), last])

"""Data-parallel training on `torch.distributed` (one process per device, launched by accelerate).

A fine-tune on N processes runs the very same method code in every process (the
single-process run is the N = 1 case, where everything here is a no-op). Each optimiser
step of a method is one *global* batch; this module makes N processes compute the update
one process would compute on that batch:

- `collate` (finetune/data.py) keeps only this rank's contiguous shard of the examples
  while a step is open (`Stepper.check` opens it, `Stepper.step` closes it);
- per-row poolings (`train.masked_mean`, `train.last_token`) gather the rows of every
  rank back into the global batch, in the global order, so in-batch losses (Mid-align's
  contrastive loss, LENS's losses) see every row and every rank computes the same loss;
- `Stepper.step` weights the local loss before `backward` and sums the gradients over the
  ranks (`reduce_gradients`): a causal-LM loss (a mean over label tokens) is weighted by
  this shard's share of the global label tokens, a gathered loss by 1 (its backward hands
  each rank the gradient of its own rows only). Both sum to the gradient of the global
  batch exactly, which is what DDP's averaging gives for equal shards, without wrapping
  the model (the methods call the model, hooks and peft directly);
- the stop flag is or-ed over the ranks before each step, so a cancel stops every rank at
  the same step.

Methods whose step uses the batch in other ways (CC-Tuning: per-row positions built
beside `collate`, Gumbel noise) are not shardable: `check_method` refuses them.
Dropout masks differ between one process and N (each draws its own); with dropout 0 the
parameters agree to float rounding.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from workbench.errors import ParamError

log = logging.getLogger(__name__)

__all__ = [
    "Dist",
    "any_flag",
    "barrier",
    "begin_step",
    "broadcast_",
    "check_method",
    "current",
    "end_step",
    "gather_rows",
    "init_from_env",
    "loss_weight",
    "reduce_gradients",
    "shard_bounds",
    "shard_examples",
    "shutdown",
]

_BUCKET_BYTES = 64 << 20


@dataclass(frozen=True)
class Dist:
    """This process's place in the group: rank, world size, local rank (device index)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on rank 0 (the one that writes status, progress and the artifact)."""
        return self.rank == 0


def current() -> Dist:
    """The initialised group (or the one-process `Dist()`)."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return Dist()


def init_from_env(timeout_s: float | None = None) -> Dist:
    """Join the group that `accelerate launch` (torchrun) describes in the environment.

    NCCL when CUDA is visible (each rank on `cuda:LOCAL_RANK`), gloo otherwise. The
    timeout (default `WORKBENCH_DIST_TIMEOUT_S`, 2 hours) bounds how long a rank waits for
    the others, e.g. while rank 0 evaluates the base model.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or dist.is_initialized():
        return current()
    timeout = timeout_s or float(os.environ.get("WORKBENCH_DIST_TIMEOUT_S", "7200"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=_dt.timedelta(seconds=timeout))
    return current()


def shutdown() -> None:
    """Leave the group (if any)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_method(method: Any, num_processes: int) -> None:
    """Raise `ParamError` when `method` (a `Method`) cannot run on `num_processes` processes."""
    if num_processes < 1:
        raise ParamError(f"--num-processes must be >= 1, got {num_processes}")
    if num_processes > 1 and not method.shardable:
        raise ParamError(f"{method.name} cannot be split across processes (its steps use the batch beside the "
                         "shared collate); run it with --num-processes 1")


# --------------------------------------------------------------------------- one step


@dataclass
class _Step:
    open: bool = False
    sharded: bool = False
    weight: float | None = None  # this shard's share of the global label tokens
    sizes: list[int] = field(default_factory=list)  # real rows per rank
    local: int = 0  # rows of this rank's local batch (1 for a placeholder shard)
    gathered: bool = False


_STEP = _Step()


def begin_step() -> None:
    """A step starts: the next `collate` calls shard their examples (N > 1 only)."""
    global _STEP
    _STEP = _Step(open=current().world > 1)


def end_step() -> None:
    """The step is over: `collate` sees whole batches again."""
    global _STEP
    _STEP = _Step()


def shard_bounds(n: int, world: int) -> list[tuple[int, int]]:
    """Contiguous, balanced `[start, end)` of each rank for `n` rows (sizes differ by <= 1)."""
    q, r = divmod(n, world)
    out, start = [], 0
    for k in range(world):
        end = start + q + (1 if k < r else 0)
        out.append((start, end))
        start = end
    return out


def _label_tokens(example: Any) -> int:
    """Tokens a causal-LM loss counts: labels after the first position that are not -100."""
    return sum(1 for x in example.labels[1:] if x != -100)


def shard_examples(examples: Sequence[Any]) -> list[Any]:
    """This rank's shard of a step's global batch (all of it outside a step or with N = 1).

    A rank whose shard is empty (a global batch smaller than N) gets the first example as
    a placeholder with loss weight 0 and no rows in `gather_rows`.
    """
    if not _STEP.open:
        return list(examples)
    d = current()
    bounds = shard_bounds(len(examples), d.world)
    start, end = bounds[d.rank]
    local = list(examples[start:end]) or list(examples[:1])
    total = sum(_label_tokens(e) for e in examples)
    mine = sum(_label_tokens(e) for e in examples[start:end])
    _STEP.sharded = True
    _STEP.sizes = [b - a for a, b in bounds]
    _STEP.local = len(local)
    _STEP.weight = mine / total if total else (1.0 / d.world if end > start else 0.0)
    return local


class _Gather(torch.autograd.Function):
    """All-gather of rows; backward hands each rank the gradient of its own rows.

    Every rank computes the same loss from the gathered rows, so the gradient of its own
    rows is all it needs; the gradients of the parameters are then summed over the ranks.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, sizes: list[int], rank: int) -> torch.Tensor:  # noqa: D102
        width = max(max(sizes), 1)
        pad = x.new_zeros((width, *x.shape[1:]))
        pad[: x.shape[0]] = x.detach()
        parts = [torch.empty_like(pad) for _ in sizes]
        dist.all_gather(parts, pad.contiguous())
        ctx.offset, ctx.size, ctx.local = sum(sizes[:rank]), sizes[rank], x.shape[0]
        return torch.cat([p[:s] for p, s in zip(parts, sizes)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: D102
        out = grad.new_zeros((ctx.local, *grad.shape[1:]))
        out[: ctx.size] = grad[ctx.offset: ctx.offset + ctx.size]
        return out, None, None


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """The global batch's rows of a per-row result `(b_local, …)` → `(B, …)` (else `x` itself)."""
    if not (_STEP.open and _STEP.sharded) or x.shape[0] != _STEP.local:
        return x
    _STEP.gathered = True
    return _Gather.apply(x, _STEP.sizes, current().rank)


def loss_weight() -> float:
    """What this rank's loss is multiplied by before `backward` (1 with N = 1).

    Raises:
        ParamError: a step of N > 1 processes that never sharded its batch.
    """
    if current().world == 1:
        return 1.0
    if _STEP.gathered:
        return 1.0
    if _STEP.weight is None:
        raise ParamError("this training step did not go through collate, so it cannot be split across "
                         "processes; run with --num-processes 1")
    return _STEP.weight


def metric_weight() -> float:
    """Weight of this rank's metric values in their sum over ranks (a gathered loss is the same everywhere)."""
    world = current().world
    return 1.0 / world if _STEP.gathered or world == 1 else float(_STEP.weight or 0.0)


def reduce_gradients(params: Sequence[torch.nn.Parameter], metrics: torch.Tensor | None = None) -> torch.Tensor | None:
    """Sum the gradients (and a metrics vector) over the ranks, in buckets of ~64 MB.

    Parameters without a gradient on this rank are skipped (the ranks run the same graph,
    so they lack it everywhere, and AdamW then skips them as in one process).
    """
    if current().world == 1:
        return metrics
    grads = [p.grad for p in params if p.grad is not None]
    if metrics is not None:
        grads.append(metrics)
    bucket: list[torch.Tensor] = []
    size = 0
    for g in grads:
        if bucket and (size + g.numel() * g.element_size() > _BUCKET_BYTES or g.dtype != bucket[0].dtype
                       or g.device != bucket[0].device):
            _allreduce_bucket(bucket)
            bucket, size = [], 0
        bucket.append(g)
        size += g.numel() * g.element_size()
    if bucket:
        _allreduce_bucket(bucket)
    return metrics


def _allreduce_bucket(tensors: list[torch.Tensor]) -> None:
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset: offset + t.numel()].view_as(t))
        offset += t.numel()


def any_flag(flag: bool) -> bool:
    """True on every rank if `flag` is True on any rank (N = 1: `flag`)."""
    if current().world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_(params: Sequence[torch.Tensor]) -> None:
    """Copy rank 0's values into every rank's tensors (as DDP does when it wraps a model)."""
    if current().world == 1:
        return
    with torch.no_grad():
        for p in params:
            dist.broadcast(p.data, src=0)


def barrier() -> None:
    """Wait for every rank (N = 1: nothing)."""
    if current().world > 1:
        dist.barrier()


def _device() -> Any:
    return torch.device("cuda", torch.cuda.current_device()) if (
        torch.cuda.is_available() and dist.get_backend() == "nccl") else torch.device("cpu")

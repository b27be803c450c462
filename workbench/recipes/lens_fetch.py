"""The heavy side of the lens views: a `LensNeed` becomes a stored readout (read, computed, or looked up).

`recipes.build` hands these to the build context (`Ctx.lens`, `Ctx.tokenizer`), so the lens
analysis modules (`recipes.latent`, `recipes.tokens`) stay light: they name prompts and
token sets, this module reads them through `recordings.lens` (the one home of lens
readouts). Pages use `lens_status` to see what a figure lacks and `start_lens_need` for its
Record button: nothing records as a side effect of drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.errors import ExportError
from workbench.lenses import LensSpec, PatchSpec
from workbench.progress import Progress, StatusFn
from workbench.recipes.analysis import LensNeed
from workbench.recordings.lens import (
    LensRequest,
    StoredLens,
    ensure_lens,
    lens_job_key,
    start_lens,
    stored_lens,
    tokenizer_for,
)

__all__ = ["fetch_lens", "lens_job_of", "lens_provenance", "lens_request", "lens_status", "start_lens_need",
           "tokenizer"]


def lens_request(need: LensNeed) -> LensRequest:
    """The `recordings.lens.LensRequest` of a need."""
    patch = None if need.patch is None else PatchSpec.from_dict(dict(need.patch))
    return LensRequest(tuple(need.prompts), tuple((n, tuple(ids)) for n, ids in need.token_sets),
                       LensSpec.from_dict(dict(need.spec)), need.lens, dict(need.about), patch)


def _missing(need: LensNeed) -> ExportError:
    return ExportError(f"the lens readout behind this figure ({need.role}: {need.model.source}, "
                       f"{len(need.prompts)} prompt(s), {'patching' if need.patch else need.lens + ' lens'}) is not in "
                       "the store; record it first")


def fetch_lens(need: LensNeed, *, stored_only: bool, status: StatusFn | None = None,
               progress: Progress | None = None) -> StoredLens:
    """The readout of a need: from the store, else computed (unless `stored_only`: then ExportError)."""
    request = lens_request(need)
    if stored_only:
        got = stored_lens(need.model, request)
        if got is None:
            raise _missing(need)
        return got
    return ensure_lens(need.model, request, status=status, progress=progress)


def tokenizer(model: Any, *, stored_only: bool) -> Any:
    """A model state's tokenizer without its weights (`stored_only`: never download or convert)."""
    tok = tokenizer_for(model, download=not stored_only)
    if tok is None:
        raise ExportError(f"the tokenizer of {model.source} is not available yet (the model is not converted or "
                          "downloaded); record something with it first")
    return tok


def lens_status(needs: Sequence[LensNeed]) -> list[tuple[LensNeed, StoredLens | None]]:
    """Each need with its stored readout, or None where the store lacks it (never loads a model)."""
    return [(n, stored_lens(n.model, lens_request(n))) for n in needs]


def lens_job_of(need: LensNeed) -> str:
    """The key of the background job that computes a need (the warm worker's, `jobs.warm.WARM`)."""
    return lens_job_key(need.model, lens_request(need))


def start_lens_need(need: LensNeed, *, rerun_done: bool = True) -> Any:
    """Compute a need in the background (`recordings.lens.start_lens`); returns the shared job."""
    return start_lens(need.model, lens_request(need), rerun_done=rerun_done)


def lens_provenance(reads: Sequence[tuple[LensNeed, StoredLens]]) -> list[dict[str, Any]]:
    """What a manifest records of the lens readouts a figure read: role, model, store key, lens, prompts."""
    return [{"role": n.role, "model": n.model.to_dict(), "store_key": got.key,
             "fingerprint": got.entry.manifest.get("model_fingerprint"), "lens": got.readout.lens,
             "n_prompts": len(n.prompts), "about": dict(n.about), "spec": dict(n.spec),
             **({} if n.patch is None else {"patch": {"variant": n.patch["variant"]}})} for n, got in reads]

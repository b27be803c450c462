"""One fine-tune end to end, in this process: data → (eval) → train → (eval) → artifact.

`finetune` is what a job's worker runs; a notebook or a test can call it directly.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench import evaluation, ranks
from workbench.config import ModelSpec
from workbench.errors import CorpusError, JobError, ParamError
from workbench.examples import DataSpec, ParallelSplit, build_split
from workbench.finetune import artifact_io, distributed
from workbench.finetune.methods import get_method
from workbench.finetune.train import TrainResult
from workbench.models import artifacts, prepare, state_from_model
from workbench.models.hooks import inference_for_artifact
from workbench.models.state import tuned_fingerprint
from workbench.progress import Progress, StopFn

log = logging.getLogger(__name__)

__all__ = ["finetune", "train", "validate"]

def _layer_fields(spec: Any) -> dict[str, list[int]]:
    """Block indices a spec names explicitly (None fields are computed by the method)."""
    out: dict[str, list[int]] = {}
    for name in ("n2d_layers", "d2n_layers", "align_layer", "start_layer", "split"):
        v = getattr(spec, name, None)
        if v is not None:
            out[name] = list(v) if isinstance(v, tuple | list) else [int(v)]
    return out


def validate(method: str, model: ModelSpec, data: DataSpec, spec: Any, *, num_processes: int = 1,
             force_processes: bool = False) -> ParallelSplit:
    """Check everything that can be checked before a job starts, in about a second.

    The method, its spec, the data (corpus, languages, the pair in the data, empty texts)
    and the layers the spec names against the model's number of blocks (from its config,
    no weights loaded), and whether the method can run on `num_processes` processes (at
    most the training units, and this machine's GPUs or CPU cores unless `force_processes`).

    Raises:
        JobError / ParamError / CorpusError / ModelError: one line naming the input.
    """
    m = get_method(method)
    distributed.check_method(m, num_processes)
    if model.artifact:
        raise JobError("fine-tuning on top of an artifact is not supported; use the base model")
    spec = m.spec_from(spec)
    try:
        split = build_split(data, m.languages(spec))
    except ValueError as e:  # too few units, empty texts (CorpusError is a ValueError too, and passes)
        if isinstance(e, CorpusError):
            raise
        raise JobError(f"the data cannot be used: {e}") from None
    ranks.check_num_processes(num_processes, len(split.train), unit_name="training units", device=model.device,
                              force=force_processes)
    n_layers = prepare(model).n_layers
    for name, layers in _layer_fields(spec).items():
        bad = [x for x in layers if not 0 <= x < n_layers]
        if bad:
            raise ParamError(f"{name} {bad[0]} is out of range: {model.source} has blocks 0…{n_layers - 1}")
    return split


def train(method: str, state: Any, split: ParallelSplit, spec: Any, *, progress: Progress | None = None,
          should_stop: StopFn | None = None, inplace: bool = False) -> TrainResult:
    """The registered method's trainer (`Method.train`) on `split`."""
    m = get_method(method)
    return m.train(state, split, m.spec_from(spec), progress=progress, should_stop=should_stop, inplace=inplace)


def finetune(method: str, state: Any, data: DataSpec | dict[str, Any], spec: Any, out_dir: str | Path, *,
             model_spec: dict[str, Any] | None = None, progress: Progress | None = None,
             should_stop: StopFn | None = None, evaluate: bool = True,
             status: Callable[[str], None] | None = None, corpus: Any = None,
             split: ParallelSplit | None = None) -> tuple[Path, TrainResult]:
    """Build the data, train, evaluate before/after and write the artifact.

    Args:
        method: a registered method's name (`finetune.methods`).
        state: the base ModelState (never modified; training runs on a copy).
        data: the DataSpec (or its dict).
        spec: the method spec (or its dict).
        out_dir: the artifact directory to create.
        model_spec: how the base was loaded (ModelSpec dict), for the manifest.
        progress: progress(step, total, metrics) per step.
        should_stop: cancellation check, before each step.
        evaluate: held-out translation loss and pivot perplexity before and after.
        status: one-line messages ("building data", "evaluating", ...).
        corpus: an already loaded corpus (else loaded from `data.source`).
        split: an already built split of `data` (else built here).

    Returns:
        (artifact path, the TrainResult).

    With N > 1 processes (`distributed`), every rank trains; only rank 0 evaluates and
    writes the artifact (the other ranks return the path it is written to).
    """
    say = status or (lambda m: log.info(m))
    data = data if isinstance(data, DataSpec) else DataSpec.from_dict(data)
    m = get_method(method)
    spec = m.spec_from(spec)
    if split is None:
        say("building data")
        split = build_split(data, m.languages(spec), corpus)
    elif split.spec != data or split.langs != m.languages(spec):
        raise ValueError("the given split was built from another DataSpec or other languages")
    t0 = time.perf_counter()
    rank = distributed.current()
    directions = _eval_directions(split, m.pivot(spec))
    before = None
    if evaluate and rank.main:  # the cached "loss" suite: a base is scored once, whichever job asks
        say("evaluating the base model")
        before = _loss_metrics(evaluation.evaluate(state, ["loss"], split, directions=directions,
                                                   should_stop=should_stop))
    say("training")
    result = train(method, state, split, spec, progress=progress, should_stop=should_stop)
    if not rank.main:
        return Path(out_dir), result

    manifest = {
        "method": method, "spec": spec.to_dict(), "data": data.to_dict(), "data_hash": split.data_hash,
        "languages": list(split.langs), "n_train": len(split.train), "n_heldout": len(split.heldout),
        "base_model": model_spec or {"source": state.name}, "base_name": state.name, "seed": spec.seed,
        "metrics": {**result.metrics, "eval_before": before, "eval_after": None},
        "trainable": result.trainable if len(result.trainable) <= 2000 else len(result.trainable),
        "history": [{k: h[k] for k in ("step", "stage", "loss") if k in h} for h in result.history],
        "wall_s": round(time.perf_counter() - t0, 3), "processes": rank.world,
        **({"inference": m.inference} if m.inference else {}),  # the models.hooks kind its state runs
    }
    say("writing the artifact")
    path = artifact_io.write_artifact(out_dir, state, result.model, manifest, adapter=result.adapter,
                                      adapter_config=result.adapter_config, allowed=result.trainable,
                                      files=result.extra.get("artifact_files"))  # CC-Tuning: W_DM, W_T
    if evaluate:  # under the tuned state's own fingerprint, so Compare and `workbench compare` read it
        say("evaluating the tuned model")
        tuned = state_from_model(result.model, state.tokenizer, name=f"{state.name}+{path.name}",
                                 spec=dataclasses.replace(state.spec, artifact=str(path)),
                                 fingerprint=tuned_fingerprint(state.fingerprint, path))
        # scored as the state runs (CC-Tuning: its connection, default options), under the key Compare looks up
        tuned = dataclasses.replace(tuned, inference=inference_for_artifact(path, artifacts.read_manifest(path), tuned))
        after = _loss_metrics(evaluation.evaluate(tuned, ["loss"], split, directions=directions,
                                                  should_stop=should_stop))
        artifacts.update_manifest(path, metrics={**manifest["metrics"], "eval_after": after})
    return path, result


def _eval_directions(split: ParallelSplit, pivot: str) -> list[tuple[str, str]]:
    """Both directions between the pivot and every other language of the split."""
    pivot = pivot if pivot in split.langs else split.langs[0]
    return [d for o in split.langs if o != pivot for d in ((pivot, o), (o, pivot))]


def _loss_metrics(result: evaluation.EvalResult) -> dict[str, float]:
    """The loss suite's rows as the manifest's `{"loss_<src>><tgt>": …, "ppl_<lang>": …}`."""
    rows = result.eval[result.eval["suite"] == "loss"]
    return {f"{r.metric}_{r.direction}": float(r.value) for r in rows.itertuples()}

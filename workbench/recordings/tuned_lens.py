"""Training a tuned lens as a job: "give me the tuned lens of this state on this text", saved once.

The training texts are the sentences of a corpus in the chosen languages (`CorpusSpec`);
every tenth unit is held out, and the held-out KL to the final layer of the logit lens and
of the trained lens are measured and written into the lens's manifest with the data it was
trained on. The lens is saved as an artifact of its base model (`lenses.artifacts`:
content-addressed by its translators, the base fingerprint in its manifest).

A request (model fingerprint, corpus content of its languages, limit, `TunedLensSpec`) is
keyed (`train_key`) and the key written into the manifest, so asking again for the same
training returns the saved lens without training. `tuned_lens_work(model, corpus, spec,
job)` is the job's whole work (a plain function of its arguments and the `ThreadJob`
reporter); `start_tuned_lens` submits it to the app's warm model worker (`tuned_lens_job`) or
to a thread registry (progress: steps, the mean KL as the metric, ETA, cancel).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench import models
from workbench.config import CorpusSpec, ModelSpec, stable_hash
from workbench.corpus import ParallelCorpus, load_corpus_spec
from workbench.errors import ParamError
from workbench.jobs.threads import ThreadJob, ThreadRegistry
from workbench.jobs.warm import WARM
from workbench.lenses import TunedLensSpec, lens_kl, train_tuned_lens
from workbench.lenses.artifacts import list_lenses, save_lens
from workbench.paths import cache_root
from workbench.recordings.ensure import load_in_job

__all__ = ["HELDOUT_EVERY", "find_trained", "start_tuned_lens", "train_job_key", "train_key", "training_texts",
           "tuned_lens_job", "tuned_lens_work"]

HELDOUT_EVERY = 10
"""Unit i is held out when i % HELDOUT_EVERY == HELDOUT_EVERY - 1 (every language of that unit)."""
TRAIN_FORMAT = 1


def training_texts(corpus: ParallelCorpus, langs: list[str]) -> tuple[list[str], list[str]]:
    """(training texts, held-out texts): every sentence of `langs`, unit by unit; every tenth unit held out."""
    train: list[str] = []
    held: list[str] = []
    for i in range(len(corpus)):
        (held if i % HELDOUT_EVERY == HELDOUT_EVERY - 1 else train).extend(corpus.text(x, i) for x in langs)
    if not train:
        raise ParamError(f"corpus {corpus.name} has no text to train a tuned lens on")
    return train, held or train[-1:]


def train_key(fingerprint: str, corpus: ParallelCorpus, corpus_spec: CorpusSpec, spec: TunedLensSpec) -> str:
    """What a training is made of: base state, text (content of its languages), limit, hyper-parameters."""
    return stable_hash({"kind": "tuned_lens", "format": TRAIN_FORMAT, "model": fingerprint,
                        "corpus": corpus.content_hash(list(corpus_spec.langs)), "langs": list(corpus_spec.langs),
                        "limit": corpus_spec.limit, "heldout_every": HELDOUT_EVERY, "spec": spec.to_dict()}, n=24)


def find_trained(key: str) -> dict[str, Any] | None:
    """The saved lens of a training request (`train_key`), or None."""
    return next((r for r in list_lenses() if (r["data"] or {}).get("request") == key), None)


def _describe(corpus: ParallelCorpus, corpus_spec: CorpusSpec, n_train: int, n_held: int, key: str) -> dict[str, Any]:
    return {"corpus": corpus_spec.source, "corpus_name": corpus.name, "langs": list(corpus_spec.langs),
            "limit": corpus_spec.limit, "corpus_hash": corpus.content_hash(list(corpus_spec.langs)),
            "n_train_texts": n_train, "n_heldout_texts": n_held, "heldout_every": HELDOUT_EVERY, "request": key}


def tuned_lens_work(model: ModelSpec, corpus_spec: CorpusSpec, spec: TunedLensSpec, job: ThreadJob) -> dict[str, Any]:
    """Train (unless saved already), measure held-out KL, save; returns the lens's `list_lenses` row.

    Progress: `job.progress(step, steps, message, {"kl": …, "kl_per_layer": […]})`; cancel
    stops before the next step (nothing is saved).
    """
    job.status("reading the training text")
    corpus = load_corpus_spec(corpus_spec)
    train, held = training_texts(corpus, list(corpus_spec.langs))
    fp = models.fingerprint(model)
    assert fp is not None  # download=True resolves one (or raises)
    key = train_key(fp, corpus, corpus_spec, spec)
    found = find_trained(key)
    if found is not None:
        return found
    state, _ = load_in_job(model, job)
    job.phase(f"training {spec.steps} steps", unit="steps")
    kw = {"max_length": spec.max_length, "batch_tokens": spec.batch_tokens}
    lens = train_tuned_lens(state, train, steps=spec.steps, lr=spec.lr, momentum=spec.momentum,
                            weight_decay=spec.weight_decay, seed=spec.seed, progress=job.progress,
                            should_stop=job.should_stop, **kw)
    job.phase("measuring the held-out KL")
    lens.metrics.update(heldout_kl_logit=lens_kl(state, held, None, **kw).tolist(),
                        heldout_kl_tuned=lens_kl(state, held, lens, **kw).tolist(),
                        data=_describe(corpus, corpus_spec, len(train), len(held), key))
    lens_id = save_lens(lens)
    return next(r for r in list_lenses(state.fingerprint) if r["id"] == lens_id)


def train_job_key(model: ModelSpec, corpus_spec: CorpusSpec, spec: TunedLensSpec) -> str:
    """Key of a training job (specs and the cache root): a second request joins the running one."""
    return stable_hash({"kind": "tuned_lens", "model": model.to_dict(), "corpus": corpus_spec.to_dict(),
                        "spec": spec.to_dict(), "root": str(cache_root())}, n=20)


def tuned_lens_job(args: Mapping[str, Any], job: Any) -> dict[str, Any]:
    """The warm worker's ``"tuned_lens"`` job kind: `tuned_lens_work` of (model, corpus, spec) as JSON."""
    return tuned_lens_work(ModelSpec.from_dict(dict(args["model"])), CorpusSpec.from_dict(dict(args["corpus"])),
                           TunedLensSpec.from_dict(dict(args["spec"])), job)


def start_tuned_lens(model: ModelSpec, corpus_spec: CorpusSpec, spec: TunedLensSpec | None = None, *,
                     registry: ThreadRegistry | None = None, rerun_done: bool = False) -> Any:
    """Train a tuned lens in the background (kind ``"tuned_lens"``); joins a running job of the same specs.

    By default the app's warm model worker trains it (the state stays loaded for the lens
    views after it); a `ThreadRegistry` trains it in a thread of this process (the CLI).
    """
    spec = spec or TunedLensSpec()
    tuned = f" + {Path(model.artifact).parent.name}" if model.artifact else ""
    label = (f"tuned lens · {Path(model.source).name}{tuned} · {Path(corpus_spec.source).name} "
             f"{', '.join(corpus_spec.langs)} · {spec.steps} steps")
    key = train_job_key(model, corpus_spec, spec)
    if registry is not None:
        return registry.submit(key, label, functools.partial(tuned_lens_work, model, corpus_spec, spec),
                               kind="tuned_lens", rerun_done=rerun_done)
    args = {"model": model.to_dict(), "corpus": corpus_spec.to_dict(), "spec": spec.to_dict()}
    return WARM.submit(key, label, "tuned_lens", args, rerun_done=rerun_done)

"""The intervention preview as a job of the warm model worker (kind ``"intervene_preview"``).

The Intervene page asks for a handful of greedy continuations before and after an
intervention; the worker resolves the intervention (its neurons, vectors or basis from the
Setup's recording: recorded first if the store lacks it), loads the base once (the
intervened state is a hooked copy sharing its weights) and generates. It runs on the
worker's quick lane, beside a long recording or evaluation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from workbench import models
from workbench.config import CorpusSpec, ModelSpec, RecordSpec, stable_hash
from workbench.corpus import load_corpus
from workbench.errors import ParamError
from workbench.interventions.experiments import preview_generations
from workbench.interventions.requests import parse_intervention
from workbench.interventions.resolve import resolve_spec
from workbench.paths import cache_root
from workbench.recordings.ensure import load_in_job

__all__ = ["PREVIEW_PROMPTS", "PREVIEW_WORDS", "preview_args", "preview_job", "preview_key", "preview_prompts"]

PREVIEW_PROMPTS = 5
PREVIEW_WORDS = 6
"""Each prompt is the first words of a sentence the recording did not read (a continuation)."""


def preview_prompts(corpus: CorpusSpec, lang: str, n: int = PREVIEW_PROMPTS, words: int = PREVIEW_WORDS) -> list[str]:
    """`n` prompts in `lang`: the first `words` words of the corpus's sentences after its limit (held out).

    Without a limit (the recording read every unit), the last `n` sentences.
    """
    texts = load_corpus(corpus.source).texts(lang)
    start = corpus.limit if corpus.limit is not None and corpus.limit + n <= len(texts) else max(0, len(texts) - n)
    picked = [" ".join(t.split()[:words]) for t in texts[start:start + n]]
    if not picked:
        raise ParamError(f"the corpus {corpus.source} has no sentences in {lang!r} for a preview")
    return picked


def preview_args(model: ModelSpec, corpus: CorpusSpec, record: RecordSpec, requests: Sequence[str], lang: str,
                 *, max_new_tokens: int = 32) -> dict[str, Any]:
    """The JSON arguments of a preview: the base, the Setup's corpus and recording, the `--intervention` texts."""
    for text in requests:  # a malformed request fails here, in the page, before any job
        parse_intervention(text)
    return {"model": model.to_dict(), "corpus": corpus.to_dict(), "record": record.to_dict(),
            "requests": list(requests), "lang": lang, "max_new_tokens": int(max_new_tokens)}


def preview_key(args: Mapping[str, Any]) -> str:
    """What a preview computes (its arguments and the cache root): two tabs asking the same share one job."""
    return stable_hash({"kind": "intervene_preview", **dict(args), "root": str(cache_root())}, n=20)


def preview_job(args: Mapping[str, Any], job: Any) -> dict[str, Any]:
    """The worker's ``"intervene_preview"`` kind: resolve, then generate before and after; rows as JSON."""
    base = ModelSpec.from_dict(dict(args["model"]))
    corpus, record = CorpusSpec.from_dict(dict(args["corpus"])), RecordSpec.from_dict(dict(args["record"]))
    wanted = dataclasses.replace(base, interventions=tuple(parse_intervention(t) for t in args["requests"]))
    job.phase("resolving the intervention (its neurons or vectors from the recording)", unit="sentences")
    intervened = resolve_spec(wanted, corpus=corpus, record=record, progress=job.progress, status=job.status)
    prompts = preview_prompts(corpus, str(args["lang"]))
    load_in_job(base, job)
    job.phase(f"generating {len(prompts)} continuations before and after", unit="prompts")
    rows = preview_generations(base, intervened, prompts, max_new_tokens=int(args["max_new_tokens"]),
                               langs=tuple(corpus.langs))
    job.progress(len(prompts), len(prompts))
    return {"rows": rows.to_dict("records"), "fingerprint": models.fingerprint(intervened),
            "model": intervened.to_dict()}

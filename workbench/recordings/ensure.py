"""Getting recordings: store first, load the model only when something is missing.

"Give me the recording of (model state, corpus, record spec)":
`ensure_recording` (compute what the store lacks), `stored_recording` / `store_status`
(look without loading any model, for pages that must stay fast) and `start_recording`
(the same work as a background job of `workbench.jobs.threads`, shared by every tab).

`ensure_recording(..., num_processes=N)` splits the batches of the missing units over N
processes (`recordings.sharding.record_sharded`): the stored arrays are byte-identical to a
one-process recording. `remote=True` runs the
recorder's trace on NDIF through nnsight on a weightless state of the hub model
(`models.remote_state`; `remote_problems` says what is missing before anything is loaded
or written); `remote="local"` is nnsight's serverless dry run of the same trace on the
locally loaded model.
"""

from __future__ import annotations

import logging
import os
import socket
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from workbench import models, ranks, tracing
from workbench.config import CorpusSpec, ModelSpec, RecordSpec, stable_hash
from workbench.corpus import ParallelCorpus, load_corpus_spec
from workbench.errors import RecordError
from workbench.jobs.threads import ThreadRegistry
from workbench.jobs.warm import WARM
from workbench.models import ModelState
from workbench.models.checks import check_record_fits
from workbench.paths import cache_root
from workbench.progress import Progress, StatusFn
from workbench.recordings.keys import lookup
from workbench.recordings.record import record
from workbench.recordings.recording import Recording
from workbench.recordings.sharding import record_sharded
from workbench.store import Store

log = logging.getLogger(__name__)


def _recording(fp: str, corpus: ParallelCorpus, spec: RecordSpec, found: dict[str, Any],
               name: str) -> Recording:
    first = next(iter(found.values()))
    return Recording(first.manifest.get("model_name", name), fp, corpus.name, spec, found,
                             first.manifest["layer_labels"])


def ensure_recording(model: ModelSpec, corpus_spec: CorpusSpec, spec: RecordSpec | None = None, *,
                     pairs: Sequence[tuple[str, str]] | None = None, store: Store | None = None,
                     progress: Progress | None = None, status: StatusFn | None = None,
                     state: ModelState | None = None, num_processes: int = 1,
                     remote: bool | str = False, force_processes: bool = False) -> Recording:
    """A `Recording` for these specs, recording only what the store lacks.

    Args:
        model: which model state.
        corpus_spec: corpus, languages and limit.
        spec: what to record (default `RecordSpec()`).
        pairs: (src, tgt) pairs for a pair template.
        store: the store (default: the cache's).
        progress: progress(done, total, message) while recording.
        status: one-line messages (loading, converting).
        state: an already loaded ModelState to use instead of loading `model`.
        num_processes: split the batches of the missing units over this many processes: at most
            the units, and at most this machine's GPUs (else CPU cores) unless `force_processes`
            (`ranks.check_num_processes`).
        remote: True: run the trace on NDIF (needs `NDIF_API_KEY`, a network and a hub model;
            its weights are never downloaded; stored under the fingerprint `ndif:<id>@<sha>`).
            "local": a dry run of the remote path (nnsight's `remote="local"`: the trace is
            serialized as for NDIF and run on the loaded model); the same numbers as a local
            recording, stored under the same key, so units already stored are not re-run.
            nnsight hides non-installed modules process-wide while it deserializes each
            batch: a check for scripts and tests, not for a process serving the UI.
        force_processes: start `num_processes` even above this machine's GPUs or CPU cores.

    Raises:
        RecordError: `remote` and something it needs is missing (nothing is loaded or written).
        ParamError: `num_processes` out of bounds (before anything is loaded or written).
        ModelError: the model cannot be loaded (for NDIF: its config or tokenizer cannot be read from the hub).
    """
    spec = spec or RecordSpec()
    if remote not in (False, True, "local"):
        raise RecordError(f"remote must be False, True (NDIF) or 'local' (dry run), not {remote!r}")
    if remote and num_processes > 1:
        raise RecordError(f"--num-processes does not apply to {'NDIF' if remote is True else 'a remote dry run'}")
    store = store or Store()
    corpus = load_corpus_spec(corpus_spec)
    units = tracing.units_for(corpus, corpus_spec.langs, spec, pairs)
    ranks.check_num_processes(num_processes, len(units), unit_name="units to record", device=model.device,
                              force=force_processes)
    # NDIF: units stored by an earlier remote recording are served without NDIF or the hub
    fp = state.fingerprint if state is not None else (
        models.remote_fingerprint(model) if remote is True else models.fingerprint(model))
    found = lookup(fp, corpus, units, spec, store) if fp else dict.fromkeys(units)
    if fp and all(e is not None for e in found.values()):
        if status:
            status("all units found in the store")
        return _recording(fp, corpus, spec, found, model.source)
    if remote is True:
        problems = remote_problems(model)
        if problems:
            raise RecordError("cannot record on NDIF (--remote): " + "; ".join(problems))
        state = state or models.remote_state(model)  # config and tokenizer only, never the weights
        if state.fingerprint != fp:  # the hub's commit: look again under it
            fp, found = state.fingerprint, lookup(state.fingerprint, corpus, units, spec, store)
    missing = [u for u, e in found.items() if e is None]
    check_record_fits(model, spec, state.tokenizer if state is not None else None)  # before any weights load
    if num_processes > 1 and state is None:
        record_sharded(model, corpus_spec, spec, missing, num_processes, store=store, progress=progress,
                       status=status)
        return ensure_recording(model, corpus_spec, spec, pairs=pairs, store=store, status=status)
    if state is None:
        state = models.load(model, progress=status)
    return record(state, corpus, corpus_spec.langs, spec, pairs=pairs, store=store, progress=progress,
                          remote=remote)


# --------------------------------------------------------------------------- NDIF


def remote_problems(model: ModelSpec) -> list[str]:
    """What running the recorder's trace on NDIF lacks (empty = nothing known to be missing).

    Checks, without sending anything: an API key (nnsight's config, `NDIF_API_KEY`), a
    model that can be asked of NDIF (a hub id `org/name`, not a bundled, local or tiny
    model, no fine-tune artifact; whether NDIF hosts it is known only when asked) and a
    connection to the NDIF host.
    """
    from nnsight import CONFIG  # here: nnsight is heavy and only the remote path needs its config

    problems = []
    if not (os.environ.get("NDIF_API_KEY") or CONFIG.API.APIKEY):
        problems.append("no NDIF API key (set NDIF_API_KEY; keys come from https://login.ndif.us)")
    src = model.source
    if not models.is_hub_id(src):
        problems.append(f"model {src!r} is not a Hugging Face hub id that NDIF hosts (e.g. meta-llama/Llama-3.1-8B)")
    if model.artifact:
        problems.append("a fine-tune artifact cannot be applied on NDIF (the server runs the hub's weights)")
    host = urllib.parse.urlparse(CONFIG.API.HOST)
    try:
        socket.create_connection((host.hostname or "", host.port or 443), timeout=3).close()
    except OSError as e:
        problems.append(f"cannot reach NDIF at {CONFIG.API.HOST} (offline? {type(e).__name__})")
    return problems


@dataclass(frozen=True)
class StoreStatus:
    """What the store holds for one choice of model, corpus and recording spec."""

    units: list[str]
    entries: dict[str, Any]  # unit -> store Entry or None
    recording: Recording | None  # when every unit is stored
    unknown: str | None = None  # why the store could not be checked (None if it was)

    @property
    def missing(self) -> list[str]:
        """Units not (known to be) stored."""
        return [u for u in self.units if self.entries.get(u) is None]

    def table(self, corpus: ParallelCorpus) -> pd.DataFrame:
        """One row per unit: unit, language, stored, sentences, MB, recorded at."""
        rows = []
        for u in self.units:
            e = self.entries.get(u)
            names = " → ".join(corpus.languages[c].name for c in u.split(">"))
            rows.append({"unit": u, "language": names, "stored": e is not None,
                         "sentences": e.manifest.get("n_units") if e else None,
                         "MB": round(e.nbytes / 2**20, 2) if e else None,
                         "seconds": e.manifest.get("seconds") if e else None,
                         "created": str(e.manifest.get("created", ""))[:16].replace("T", " ") if e else None,
                         "key": e.key[:12] if e else None})
        return pd.DataFrame(rows)


def store_status(model: ModelSpec, corpus_spec: CorpusSpec, spec: RecordSpec,
                 pairs: Sequence[tuple[str, str]] | None = None, *, remote: bool = False) -> StoreStatus:
    """Look up every unit of a choice in the store; never loads a model, downloads or converts.

    `remote`: the recordings made on NDIF (fingerprint `ndif:<id>@<sha>` of the last remote
    state built on this machine, `models.remote_fingerprint`).
    """
    corpus = load_corpus_spec(corpus_spec)
    units = tracing.units_for(corpus, corpus_spec.langs, spec, pairs)
    fp = models.remote_fingerprint(model) if remote else models.fingerprint(model, download=False)
    if fp is None and remote:
        return StoreStatus(units, {}, None, unknown="nothing was recorded on NDIF for this model on this machine yet")
    if fp is None:
        why = ("the model is not converted yet" if model.source in models.BUNDLED
               else "the model's files are not available yet")
        return StoreStatus(units, {}, None, unknown=why)
    found = lookup(fp, corpus, units, spec)
    complete = {u: e for u, e in found.items() if e is not None}
    rec = _recording(fp, corpus, spec, complete, model.source) if len(complete) == len(found) else None
    return StoreStatus(units, dict(found), rec)


def stored_recording(model: ModelSpec, corpus_spec: CorpusSpec, spec: RecordSpec,
                     pairs: Sequence[tuple[str, str]] | None = None) -> Recording | None:
    """The complete stored recording of a state, or None (never loads a model)."""
    return store_status(model, corpus_spec, spec, pairs).recording


def recording_rows(recording: Recording) -> pd.DataFrame:
    """The units of a finished recording: unit, key, sentences, MB, seconds."""
    return pd.DataFrame([{"unit": u, "key": e.key[:12], "sentences": e.manifest.get("n_units"),
                          "MB": round(e.nbytes / 2**20, 2), "seconds": e.manifest.get("seconds")}
                         for u, e in recording.entries.items()])


# --------------------------------------------------------------------------- background recordings


def job_key(model: ModelSpec, corpus_spec: CorpusSpec, spec: RecordSpec,
            pairs: Sequence[tuple[str, str]] | None = None, *, remote: bool = False) -> str:
    """Key of a recording job: the specs, where it runs (NDIF or here) and the store root."""
    return stable_hash({"model": model.to_dict(), "corpus": corpus_spec.to_dict(), "spec": spec.to_dict(),
                        "pairs": [list(p) for p in pairs or []], "root": str(cache_root()),
                        **({"remote": True} if remote else {})}, n=20)


def job_label(model: ModelSpec, corpus_spec: CorpusSpec, pairs: Sequence[tuple[str, str]] | None = None) -> str:
    """Short human label of a recording job."""
    what = ", ".join(f"{s}→{t}" for s, t in pairs) + " (SiLP pass)" if pairs else ", ".join(corpus_spec.langs)
    limit = f", first {corpus_spec.limit} units" if corpus_spec.limit else ""
    tuned = f" + {Path(model.artifact).parent.name}" if model.artifact else ""
    return f"{Path(model.source).name}{tuned} · {Path(corpus_spec.source).name} · {what}{limit}"


def load_in_job(model: ModelSpec, job: Any) -> tuple[Any, bool]:
    """A job's loading phase: the state of `model` and whether it was loaded already (the warm worker keeps it).

    The phase says "loading <name>" (with `load=` so the rate history learns load times) or
    "<name> is loaded"; every worker job kind that needs a state starts with it.
    """
    warm = models.normalize(model) in models.loaded_states()
    name = Path(model.source).name
    job.phase(f"{name} is loaded" if warm else f"loading {name}", load=None if warm else model.source)
    return models.load(model, progress=job.status), warm


def record_job(args: Mapping[str, Any], job: Any) -> dict[str, Any]:
    """The worker's `record` job kind: record what the store lacks for `args` (model, corpus, spec, pairs, remote).

    Phases: checking the store, loading the state (once per worker: it stays loaded),
    recording (the progress counts the sentences computed). Returns the recording's
    `fingerprint` (what the page looks its entries up under).
    """
    model, corpus_spec = ModelSpec.from_dict(dict(args["model"])), CorpusSpec.from_dict(dict(args["corpus"]))
    spec = RecordSpec.from_dict(dict(args["spec"]))
    pairs = [(str(a), str(b)) for a, b in args.get("pairs") or []] or None
    remote = bool(args.get("remote"))
    job.phase("checking the store", unit="sentences")
    found = store_status(model, corpus_spec, spec, pairs, remote=remote)
    if found.recording is not None:
        return {"fingerprint": found.recording.fingerprint, "computed": 0}
    if remote:
        job.phase("recording on NDIF", unit="sentences")
        rec = ensure_recording(model, corpus_spec, spec, pairs=pairs, progress=job.progress, status=job.status,
                               remote=True)
        return {"fingerprint": rec.fingerprint, "computed": len(found.missing)}
    state, warm = load_in_job(model, job)
    job.phase(f"recording {len(found.missing) or len(found.units)} unit(s)", unit="sentences")
    rec = ensure_recording(model, corpus_spec, spec, pairs=pairs, progress=job.progress, status=job.status, state=state)
    return {"fingerprint": rec.fingerprint, "computed": len(found.missing) or len(found.units), "was_loaded": warm}


def record_job_args(model: ModelSpec, corpus_spec: CorpusSpec, spec: RecordSpec,
                    pairs: Sequence[tuple[str, str]] | None = None, *, remote: bool = False) -> dict[str, Any]:
    """The JSON arguments of the `record` job kind."""
    return {"model": model.to_dict(), "corpus": corpus_spec.to_dict(), "spec": spec.to_dict(),
            "pairs": [list(p) for p in pairs or []], "remote": bool(remote)}


def start_recording(model: ModelSpec, corpus_spec: CorpusSpec, spec: RecordSpec,
                    pairs: Sequence[tuple[str, str]] | None = None, *, registry: ThreadRegistry | None = None,
                    rerun_done: bool = False, remote: bool = False) -> Any:
    """Record in the background whatever the store lacks; returns the (possibly shared) job.

    By default the app's warm model worker runs it (`jobs.warm.WARM`: a separate process that
    keeps the states it loaded); a `ThreadRegistry` runs it in a thread of this process
    (notebooks, tests). A running job of the same specs is joined; a finished one is returned
    unless `rerun_done` (e.g. the store lost its entries since). `remote`: record on NDIF.
    """
    args = record_job_args(model, corpus_spec, spec, pairs, remote=remote)
    key = job_key(model, corpus_spec, spec, pairs, remote=remote)
    label = "Recording · " + ("NDIF · " if remote else "") + job_label(model, corpus_spec, pairs)
    if registry is not None:
        return registry.submit(key, label, lambda job: record_job(args, job), kind="record", rerun_done=rerun_done)
    return WARM.submit(key, label, "record", args, rerun_done=rerun_done)


def stored_by_fingerprint(fingerprint: str, corpus_spec: CorpusSpec, spec: RecordSpec,
                          pairs: Sequence[tuple[str, str]] | None = None) -> Recording | None:
    """The complete stored recording of a state known only by its fingerprint (a hub model a job recorded)."""
    corpus = load_corpus_spec(corpus_spec)
    units = tracing.units_for(corpus, corpus_spec.langs, spec, pairs)
    found = lookup(fingerprint, corpus, units, spec)
    if any(e is None for e in found.values()):
        return None
    return _recording(fingerprint, corpus, spec, found, fingerprint)

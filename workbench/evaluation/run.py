"""`evaluate`: any suites for one model state, each computed once and kept in the store.

Flow: resolve the data (a `DataSpec`, a corpus source or a built `ParallelSplit`) and
the directions; check every input (suite names, pairs in the data, lm-eval task names,
the Hub when a task needs it) before any work; compute each suite's store key from the
state fingerprint (no weights are loaded to compute it when a spec is given), the suite
and its parameters, the data hash, the decoding settings and library versions; serve
stored suites; load the state only if something is missing, check its tokenizer against
the data, compute the missing suites with progress and cancellation, and store each one
atomically when it is complete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from workbench import models
from workbench.config import ModelSpec, stable_hash
from workbench.errors import Cancelled, CorpusError, EvalError
from workbench.evaluation import suites as S
from workbench.evaluation.cache import CachedSuite, read_suite, suite_key, write_suite
from workbench.evaluation.generate import DecodingSpec
from workbench.evaluation.lmeval import OFFLINE_TASK, check_task, choice_items
from workbench.examples import DataSpec, ParallelSplit, build_split
from workbench.models.hooks import describe_inference
from workbench.progress import Progress, StatusFn
from workbench.store import Store

__all__ = ["EVAL_COLUMNS", "GENERATION_COLUMNS", "SUITES", "EvalResult", "both_directions", "evaluate", "planned_work",
           "heldout_hash"]

log = logging.getLogger(__name__)

EVAL_COLUMNS = ["state", "suite", "direction", "metric", "value", "ci_low", "ci_high", "n"]
GENERATION_COLUMNS = ["state", "direction", "id", "source", "reference", "output", "output_lang", "chrf"]
SUITES = ("translation", "loss", "lm-eval:<task>")


@dataclass(frozen=True)
class EvalResult:
    """Tables of one or more states' evaluations.

    `eval`: one row per (state, suite, direction, metric) with columns `EVAL_COLUMNS`
    (ci_low/ci_high: the 95% bootstrap interval, NaN where none applies; n: the sentences or
    items the row is computed from; a table without `n`, written before it existed, gets
    NaN: n unknown);
    `generations`: one row per (state, direction, held-out unit), columns
    `GENERATION_COLUMNS`; `manifest`: per state and suite, the store key, whether it was
    served from the store, sacrebleu signatures, flags, seconds.
    """

    eval: pd.DataFrame
    generations: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if list(self.eval.columns) == EVAL_COLUMNS[:-1]:  # before `n` (e.g. an older eval.csv)
            object.__setattr__(self, "eval", self.eval.assign(n=float("nan")))
        if list(self.eval.columns) != EVAL_COLUMNS or list(self.generations.columns) != GENERATION_COLUMNS:
            raise ValueError("EvalResult: tables must have exactly EVAL_COLUMNS and GENERATION_COLUMNS")

    @property
    def flags(self) -> list[str]:
        """Warnings a reader must see (e.g. a language the identifier cannot be trusted on)."""
        return [f for st in self.manifest.values() for s in st.values() for f in s.get("flags", [])]


# --------------------------------------------------------------------------- inputs


def _split(data: DataSpec | ParallelSplit | str, langs: Sequence[str]) -> ParallelSplit:
    if isinstance(data, ParallelSplit):
        missing = [x for x in langs if x not in data.langs]
        if missing:
            raise EvalError(f"language(s) {missing} not in the data (it has {', '.join(data.langs)})")
        return data
    spec = DataSpec(source=data) if isinstance(data, str) else data
    try:
        return build_split(spec, langs)
    except CorpusError as e:
        raise EvalError(f"pair {':'.join(langs)} not in {spec.source}: {e}") from e
    except ValueError as e:
        raise EvalError(f"data {spec.source}: {e}") from e


def _directions(directions: Sequence[tuple[str, str]] | Sequence[str] | None,
                data: DataSpec | ParallelSplit | str) -> list[tuple[str, str]]:
    if directions is None:
        langs = data.langs if isinstance(data, ParallelSplit) else None
        if not langs or len(langs) < 2:
            raise EvalError("give the directions (e.g. [('en', 'sw'), ('sw', 'en')])")
        return [(a, b) for a in langs for b in langs if a != b and langs[0] in (a, b)]
    out = []
    for d in directions:
        pair = tuple(d.replace(">", ":").split(":")) if isinstance(d, str) else tuple(d)
        if len(pair) != 2 or pair[0] == pair[1]:
            raise EvalError(f"direction {d!r} must be two different languages, e.g. 'en:sw'")
        out.append((str(pair[0]), str(pair[1])))
    return out


def both_directions(pairs: Sequence[str] | Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each pair in both directions, in order, without repeats: ["en:sw"] -> [("en", "sw"), ("sw", "en")]."""
    out: list[tuple[str, str]] = []
    for a, b in _directions(pairs, ""):
        out += [d for d in ((a, b), (b, a)) if d not in out]
    return out


def _check_suites(suites: Sequence[str]) -> list[str]:
    out = []
    for s in suites:
        if s in ("translation", "loss"):
            out.append(s)
        elif s.startswith("lm-eval:") and s[len("lm-eval:"):]:
            check_task(s[len("lm-eval:"):])
            out.append(s)
        else:
            raise EvalError(f"unknown suite {s!r}; suites: translation, loss, lm-eval:TASK")
    if not out:
        raise EvalError("no suite to evaluate")
    return list(dict.fromkeys(out))


def check_tokenizer(state: Any, split: ParallelSplit, *, min_share: float = 0.9) -> None:
    """Raise `EvalError` if the state's tokenizer cannot represent the data.

    Checks: an EOS token (the template's targets end with it); every token id of the data
    inside the model's embedding table (a tokenizer of another base model is caught here);
    and for each language the share of held-out sentences that survive encode → decode
    unchanged (up to whitespace) and contain no unknown token: at least `min_share`.
    """
    tok = state.tokenizer
    if tok.eos_token_id is None:
        raise EvalError(f"state {state.name}: its tokenizer has no EOS token, which the translation data ends with")
    n_emb = int(state.model.get_input_embeddings().weight.shape[0])
    for lang in split.langs:
        texts = split.column(lang, "heldout")
        ok = 0
        for t in texts:
            ids = tok(t, add_special_tokens=True)["input_ids"]
            if ids and max(ids) >= n_emb:
                raise EvalError(f"state {state.name}: its tokenizer gives token id {max(ids)} on the {lang} data but "
                                f"the model has {n_emb} embeddings; the tokenizer belongs to another base model")
            back = tok.decode(ids, skip_special_tokens=True)
            ok += (" ".join(back.split()) == " ".join(t.split())) and (tok.unk_token_id not in ids)
        if texts and ok / len(texts) < min_share:
            raise EvalError(f"state {state.name}: its tokenizer does not represent the {lang} data "
                            f"({ok}/{len(texts)} held-out sentences survive encoding); is it the right base model?")


# --------------------------------------------------------------------------- state


class _StateRef:
    """A state, or a spec whose state is loaded only when a suite must be computed."""

    def __init__(self, state_or_spec: Any) -> None:
        self._state = None if isinstance(state_or_spec, ModelSpec | str) else state_or_spec
        self.spec = (ModelSpec(source=state_or_spec) if isinstance(state_or_spec, str)
                     else state_or_spec if isinstance(state_or_spec, ModelSpec) else state_or_spec.spec)
        if self._state is not None:
            self.fingerprint, self.name = self._state.fingerprint, self._state.name
            self.inference = self._state.inference.describe()
        else:
            self.fingerprint = models.fingerprint(self.spec)
            art = getattr(self.spec, "artifact", None)
            self.name = f"{self.spec.source}+{Path(art).name}" if art else str(self.spec.source)
            self.inference = describe_inference(art, self.spec.inference)  # the manifest's kind; no weights

    def get(self, status: StatusFn | None = None) -> Any:
        if self._state is None:  # loaded only when a suite must be computed (the one loader, memoised)
            self._state = models.load(self.spec, progress=status)
        return self._state


# --------------------------------------------------------------------------- progress


class _Progress:
    def __init__(self, total: int, progress: Progress | None, should_stop: Callable[[], bool] | None) -> None:
        self.done, self.total, self.msg = 0, max(total, 1), ""
        self.progress, self.should_stop = progress, should_stop

    def stop_check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("evaluation cancelled")

    def set(self, msg: str) -> None:
        self.msg = msg
        self.stop_check()
        if self.progress is not None:
            self.progress(self.done, self.total, msg)

    def advance(self, n: int) -> None:
        self.done += n
        self.total = max(self.total, self.done)
        self.set(self.msg)


def _work(suite: str, split: ParallelSplit, directions: list[tuple[str, str]], limit: int | None) -> int:
    n = len(split.heldout) if limit is None else min(limit, len(split.heldout))
    if suite == "translation":
        return n * len(directions)
    if suite == "loss":
        return n * (len(directions) + 1)
    if suite == f"lm-eval:{OFFLINE_TASK}":
        return n * len(directions) * 4
    return 0  # hub tasks: the request count is known only once lm-eval built them


# --------------------------------------------------------------------------- evaluate


def heldout_hash(split: ParallelSplit) -> str:
    """Hash of what the suites read from the data: the held-out units, languages, names, template, max length.

    Not the split's `data_hash`: that also covers the training part (e.g. its `limit`), so
    fine-tunes of one corpus with different training sizes share the base state's results.
    Independent of the order the languages were asked in (a fine-tune's split lists its
    method's languages, a comparison the directions'), so both find the same results.
    """
    order = sorted(range(len(split.langs)), key=lambda i: split.langs[i])
    return stable_hash({"langs": [split.langs[i] for i in order], "names": dict(sorted(split.names.items())),
                        "heldout": [[u[i] for i in order] for u in split.heldout],
                        "template": split.spec.template, "max_length": split.spec.max_length})


def _is_hub(suite: str) -> bool:
    """An lm-eval task from the Hub (it reads its own data, not the held-out split)."""
    return suite.startswith("lm-eval:") and suite != f"lm-eval:{OFFLINE_TASK}"


def _key_parts(suite: str, ref: _StateRef, split: ParallelSplit, directions: list[tuple[str, str]],
               limit: int | None, decoding: DecodingSpec, batch_size: int, n_boot: int, seed: int) -> dict[str, Any]:
    parts: dict[str, Any] = {"suite": suite, "state": ref.fingerprint, "limit": limit, "n_boot": n_boot,
                             "seed": seed}
    if ref.inference.get("kind", "plain") != "plain":  # how it ran (CC-Tuning: decide, embed, seed); plain: as before
        parts["inference"] = ref.inference
    if not _is_hub(suite):
        parts.update(data=heldout_hash(split), directions=[list(d) for d in directions])
    if suite == "translation":
        parts["decoding"] = decoding.to_dict()
    else:
        parts["batch_size"] = batch_size
    return parts


def _compute(suite: str, ref: _StateRef, split: ParallelSplit, directions: list[tuple[str, str]], *,
             limit: int | None, decoding: DecodingSpec, batch_size: int, n_boot: int, seed: int,
             prog: _Progress, status: StatusFn | None) -> S.SuiteOutput:
    state = ref.get(status)
    check_tokenizer(state, split)
    kw: dict[str, Any] = dict(limit=limit, advance=prog.advance, n_boot=n_boot, seed=seed)
    if suite == "translation":
        return S.translation_suite(state, split, directions, decoding=decoding, **kw)
    if suite == "loss":
        return S.loss_suite(state, split, directions, batch_size=batch_size, **kw)
    return S.lmeval_suite(state, suite[len("lm-eval:"):], split, directions, batch_size=batch_size, **kw)


def missing_suites(state_or_spec: Any, suites: Sequence[str], data: DataSpec | ParallelSplit | str, *,
                   directions: Sequence[tuple[str, str]] | Sequence[str] | None = None, limit: int | None = None,
                   decoding: DecodingSpec | None = None, store: Store | None = None, batch_size: int = 8,
                   n_boot: int = 1000, seed: int = 0) -> list[str]:
    """The suites `evaluate` with these arguments would compute (not in the store).

    Loads, converts and downloads nothing: a state whose fingerprint is not known without
    that (a bundled model not converted yet, a hub id not fetched) has every suite missing.
    """
    suites = _check_suites(suites)
    if isinstance(state_or_spec, ModelSpec | str) and models.fingerprint(state_or_spec, download=False) is None:
        return list(suites)
    dirs = _directions(directions, data)
    split = _split(data, list(dict.fromkeys(x for d in dirs for x in d)))
    store = store or Store()
    ref = _StateRef(state_or_spec)
    return [s for s in suites if read_suite(store, suite_key(_key_parts(s, ref, split, dirs, limit, decoding or
                                                                        DecodingSpec(), batch_size, n_boot,
                                                                        seed))) is None]


def planned_work(state_or_spec: Any, suites: Sequence[str], data: DataSpec | ParallelSplit | str, *,
                 directions: Sequence[tuple[str, str]] | Sequence[str] | None = None, limit: int | None = None,
                 decoding: DecodingSpec | None = None, store: Store | None = None) -> tuple[list[str], int]:
    """(the suites `evaluate` would compute, how many examples they score) — what a job's progress counts.

    Hub lm-eval tasks count 0 here (their request count is known once lm-eval built them).
    """
    todo = missing_suites(state_or_spec, suites, data, directions=directions, limit=limit, decoding=decoding,
                          store=store)
    dirs = _directions(directions, data)
    split = _split(data, list(dict.fromkeys(x for d in dirs for x in d)))
    return todo, sum(_work(s, split, dirs, limit) for s in todo)


def evaluate(state_or_spec: Any, suites: Sequence[str], data: DataSpec | ParallelSplit | str, *,
             directions: Sequence[tuple[str, str]] | Sequence[str] | None = None, limit: int | None = None,
             decoding: DecodingSpec | None = None, store: Store | None = None, label: str | None = None,
             batch_size: int = 8, n_boot: int = 1000, seed: int = 0, progress: Progress | None = None,
             should_stop: Callable[[], bool] | None = None, status: StatusFn | None = None) -> EvalResult:
    """Evaluate one model state on `suites`, each computed once (store) and served afterwards.

    Args:
        state_or_spec: a loaded ModelState, or a ModelSpec / model source (loaded only if a
            suite is not stored yet).
        suites: "translation", "loss", "lm-eval:TASK" (e.g. "lm-eval:tatoeba_choice",
            the offline task; hub tasks such as "lm-eval:belebele_swh_Latn" need the network).
        data: the parallel data: a DataSpec, a corpus source ("tatoeba:sw"), or a split.
        directions: ordered pairs, e.g. [("en", "sw"), ("sw", "en")] or ["en:sw"]; default
            (split only): both directions between its first language and each other.
        limit: use the first N held-out units (None: all); a limit above their number scores them all
            and says so in the flags.
        decoding: generation settings (default greedy, stop at the answer line).
        store: where results live (default: the workbench store).
        label: the `state` column (default: the state's name).
        batch_size: sequences per forward pass of the loss and lm-eval suites.
        n_boot: bootstrap resamples of every interval.
        seed: seed of the bootstrap, the offline task's distractors and lm-eval.
        progress: called with (done, total, message) after every batch.
        should_stop: polled after every batch; True raises `Cancelled`.
        status: one-line phase messages (loading the state, when a suite must be computed).

    Returns:
        The state's `EvalResult`.

    Raises:
        EvalError: unknown suite or lm-eval task, a Hub task offline, a pair not in the
            data, a tokenizer that does not fit the data (nothing is stored).
        Cancelled: `should_stop` returned True (nothing of the running suite is stored).
    """
    t0 = time.perf_counter()
    decoding = decoding or DecodingSpec()
    if limit is not None and limit < 1:
        raise EvalError(f"limit must be >= 1, got {limit}")
    suites = _check_suites(suites)
    dirs = _directions(directions, data)
    split = _split(data, list(dict.fromkeys(x for d in dirs for x in d)))
    if f"lm-eval:{OFFLINE_TASK}" in suites:
        for d in dirs:
            choice_items(split, *d, seed=seed)  # raises EvalError on too little data, before any work
    store = store or Store()
    ref = _StateRef(state_or_spec)
    label = label or ref.name
    keys = {s: suite_key(_key_parts(s, ref, split, dirs, limit, decoding, batch_size, n_boot, seed)) for s in suites}
    got: dict[str, CachedSuite] = {s: c for s in suites if (c := read_suite(store, keys[s])) is not None}
    todo = [s for s in suites if s not in got]
    prog = _Progress(sum(_work(s, split, dirs, limit) for s in todo), progress, should_stop)
    manifest: dict[str, Any] = {}
    for s in suites:
        if s in got:
            manifest[s] = {**_info(got[s].manifest), "key": keys[s], "cached": True}
            continue
        with store.lock(keys[s]):
            cached = read_suite(store, keys[s])  # another process may have finished it meanwhile
            if cached is None:
                prog.set(f"{label}: {s}")
                t = time.perf_counter()
                rows, gens, info = _compute(s, ref, split, dirs, limit=limit, decoding=decoding,
                                            batch_size=batch_size, n_boot=n_boot, seed=seed, prog=prog, status=status)
                meta = {"suite": s, "model_name": ref.name, "state": ref.fingerprint,
                        "corpus_name": split.spec.source, "data_hash": heldout_hash(split),
                        **({"n_units": len(gens)} if gens else {}), "seconds": time.perf_counter() - t,
                        "parts": _key_parts(s, ref, split, dirs, limit, decoding, batch_size, n_boot, seed), **info}
                cached = write_suite(store, keys[s], CachedSuite(rows, gens, meta))
            got[s] = cached
        manifest[s] = {**_info(got[s].manifest), "key": keys[s], "cached": False}
    if limit is not None and limit > len(split.heldout):  # say so: "first 50" silently meaning 4 misleads
        note = (f"limit {limit} is more than the {len(split.heldout)} held-out units of {split.spec.source}: "
                f"scored {len(split.heldout)}")
        for s in suites:
            if not _is_hub(s):
                manifest[s]["flags"] = [*manifest[s].get("flags", []), note]
    prog.set(f"{label}: done")
    result = _tables(label, [got[s] for s in suites])
    log.info("evaluated %s on %s in %.1f s", label, suites, time.perf_counter() - t0)
    return replace(result, manifest={label: manifest})


def _info(manifest: dict[str, Any]) -> dict[str, Any]:
    keep = ("signatures", "flags", "seconds", "pivot", "task", "ppl_connection")
    return {k: manifest[k] for k in keep if k in manifest}


def _tables(label: str, parts: list[CachedSuite]) -> EvalResult:
    ev = [{"state": label, **r} for p in parts for r in p.eval_rows]
    gen = [{"state": label, **r} for p in parts for r in p.generation_rows]
    return EvalResult(pd.DataFrame(ev, columns=EVAL_COLUMNS), pd.DataFrame(gen, columns=GENERATION_COLUMNS))

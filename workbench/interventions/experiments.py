"""The experiments researchers run with interventions: deactivation matrix, steering curve, before/after preview.

Every intervened state is an ordinary model state (its own fingerprint), so its numbers
are computed once and kept in the store: per-sentence NLLs (`sentence_nll`) and
generations (`generations`) are keyed by the state's fingerprint, the texts and the
settings; the base state's come from the store after its first run, never again per row.

- `deactivation_matrix` (METHODS §10; Tang et al. 2024, RUCAIBox `ppl.py`): `ΔPPL[i, j] =
  PPL_j(neurons of i off) − PPL_j(base)`, PPL over held-out sentences of j (exp of summed
  NLL over summed tokens), a 95% paired bootstrap interval over sentences (the same
  resamples for both states), a control row of random neurons (the languages' mean size
  per layer), and per row the generation language shift: the share of continuations of
  j's prompts that py3langid identifies as j.
- `steering_curve`: fidelity and chrF++ of held-out translation prompts (`evaluate`'s
  translation suite, with its intervals) as functions of α of a language vector.
- `preview_generations`: a handful of greedy continuations before and after (the
  Intervene page's "within seconds" look).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from workbench import models
from workbench.config import CorpusSpec, InterventionSpec, ModelSpec, RecordSpec, stable_hash
from workbench.evaluation import evaluate
from workbench.evaluation.cache import versions
from workbench.evaluation.generate import DecodingSpec, generate
from workbench.evaluation.langid import Identifier
from workbench.evaluation.losses import nll_per_example, perplexity_examples
from workbench.evaluation.metrics import resample_counts
from workbench.examples import DataSpec
from workbench.interventions.resolve import resolve_spec
from workbench.models.interventions import load_tensors
from workbench.store import Store, make_key

__all__ = ["MATRIX_COLUMNS", "SHIFT_COLUMNS", "STEERING_COLUMNS", "deactivation_matrix", "delta_ppl", "generations",
           "preview_generations", "sentence_nll", "steering_curve"]

MATRIX_COLUMNS = ["row", "lang", "base_ppl", "ppl", "delta", "ci_low", "ci_high", "n", "neurons"]
SHIFT_COLUMNS = ["row", "lang", "kept", "n"]
STEERING_COLUMNS = ["alpha", "metric", "value", "ci_low", "ci_high", "n"]
CONTROL = "random"
BASE = "base"
Status = Callable[[str], None] | None


def sentence_nll(spec: ModelSpec, texts: Sequence[str], *, max_length: int = 128, batch_size: int = 8,
                 store: Store | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Summed NLL `(N,)` and scored tokens `(N,)` of each text under the state `spec` (store first)."""
    store = store or Store()
    key = make_key({"kind": "sentence_nll", "state": models.fingerprint(spec), "texts": stable_hash(list(texts)),
                    "max_length": max_length, "versions": versions()})
    entry = store.get(key)
    if entry is None:
        state = models.load(spec)
        tok = state.tokenizer
        sums, counts = nll_per_example(state, perplexity_examples(tok, list(texts), max_length), tok.pad_token_id,
                                       batch_size=batch_size)
        entry = store.put(key, {"sums": np.asarray(sums, np.float64), "counts": np.asarray(counts, np.int64)},
                          {"kind": "sentence_nll", "state": models.fingerprint(spec), "n": len(texts)})
    return np.asarray(entry["sums"]), np.asarray(entry["counts"])


def generations(spec: ModelSpec, prompts: Sequence[str], decoding: DecodingSpec, *,
                store: Store | None = None) -> list[str]:
    """Greedy (or the decoding's) outputs of `prompts` under the state `spec` (store first)."""
    store = store or Store()
    key = make_key({"kind": "intervention_generations", "state": models.fingerprint(spec),
                    "prompts": stable_hash(list(prompts)), "decoding": decoding.to_dict(), "versions": versions()})
    entry = store.get(key)
    if entry is None:
        outs = generate(models.load(spec), list(prompts), decoding)
        blob = np.frombuffer(json.dumps(outs, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
        entry = store.put(key, {"outputs": blob}, {"kind": "intervention_generations", "n": len(prompts)})
    return list(json.loads(bytes(np.asarray(entry["outputs"])).decode("utf-8")))


def delta_ppl(base: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray], *, n_boot: int = 1000,
              seed: int = 0) -> tuple[float, float, float, float]:
    """(PPL_base, ΔPPL, ci_low, ci_high): the paired bootstrap over sentences (the same resamples for both)."""
    bs, bc = base
    ns, nc = new
    ppl = lambda s, c: np.exp(np.minimum(s / np.maximum(c, 1), 700.0))  # noqa: E731  # one formula, arrays
    value = float(ppl(ns.sum(), nc.sum()) - ppl(bs.sum(), bc.sum()))
    w = resample_counts(len(bs), n_boot=n_boot, seed=seed)
    boot = ppl(w @ ns, w @ nc) - ppl(w @ bs, w @ bc)
    low, high = np.percentile(boot, [2.5, 97.5])
    return float(ppl(bs.sum(), bc.sum())), value, float(low), float(high)


def _prompt(text: str, words: int) -> str:
    return " ".join(text.split()[:words])


def _row_spec(base: ModelSpec, source: dict[str, Any], mode: str) -> ModelSpec:
    iv = InterventionSpec(kind="neurons", options=(("mode", mode),), source=tuple(source.items()))
    return dataclasses.replace(base, interventions=(*base.interventions, iv))


def deactivation_matrix(base: ModelSpec, corpus: CorpusSpec, record: RecordSpec,
                        eval_texts: Mapping[str, Sequence[str]], *, entropy_quantile: float = 0.01,
                        prob_quantile: float = 0.95, mode: str = "zero", control_seed: int | None = 0, n_gen: int = 5,
                        prompt_words: int = 5, max_new_tokens: int = 24, max_length: int = 128, n_boot: int = 1000,
                        seed: int = 0, store: Store | None = None,
                        status: Status = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The deactivation matrix and the generation language shift (see the module docstring).

    Args:
        base: the state whose neurons are switched off (its own interventions stay on).
        corpus: the corpus of the recording LAPE's sets come from (its languages are the rows).
        record: that recording's options.
        eval_texts: language -> held-out sentences (the columns); keep them out of `corpus`.
        entropy_quantile: LAPE's entropy quantile (METHODS §3).
        prob_quantile: LAPE's activation-probability quantile.
        mode: what the neurons are set to (`models.interventions.neurons`: zero, mean, scale).
        control_seed: seed of the random-neuron control row (None: no control row).
        n_gen: prompts per language for the shift (the first words of its held-out sentences; 0: none).
        prompt_words: words of a held-out sentence that make a prompt.
        max_new_tokens: tokens per continuation.
        max_length: truncate held-out sentences to this many tokens.
        n_boot: bootstrap resamples.
        seed: seed of the bootstrap.
        store: where per-sentence NLLs and generations live (default: the workbench store).
        status: one-line messages (which row runs).

    Returns:
        (matrix: `MATRIX_COLUMNS`, one row per (row state, evaluated language); shift:
        `SHIFT_COLUMNS`, the base row first).
    """
    store = store or Store()
    rows = {lang: {"lang": lang, "entropy_quantile": entropy_quantile, "prob_quantile": prob_quantile}
            for lang in corpus.langs}
    if control_seed is not None:
        rows[CONTROL] = {"lang": "mean", "random": control_seed, "entropy_quantile": entropy_quantile,
                         "prob_quantile": prob_quantile}
    decoding = DecodingSpec(max_new_tokens=max_new_tokens, stop_at_newline=False)
    prompts = {j: [_prompt(t, prompt_words) for t in eval_texts[j][:n_gen]] for j in eval_texts}
    ident = Identifier(tuple(eval_texts))
    base_nll = {j: sentence_nll(base, t, max_length=max_length, store=store) for j, t in eval_texts.items()}
    matrix, shift = [], []
    # the control under mode=mean is switched off (mode zero): random neurons have no language to take the mean of
    states = [(BASE, base), *((name, resolve_spec(_row_spec(base, src, "zero" if name == CONTROL and mode == "mean"
                                                            else mode), corpus=corpus, record=record))
                              for name, src in rows.items())]
    for name, spec in states:
        if status:
            status(f"deactivation: {name}")
        size = 0 if name == BASE else sum(int(t.numel()) for k, t in load_tensors(str(spec.interventions[-1].file))
                                          .items() if k.endswith(".index"))
        for j, texts in eval_texts.items():
            if name != BASE:
                b, d, lo, hi = delta_ppl(base_nll[j], sentence_nll(spec, texts, max_length=max_length, store=store),
                                         n_boot=n_boot, seed=seed)
                matrix.append({"row": name, "lang": j, "base_ppl": b, "ppl": b + d, "delta": d, "ci_low": lo,
                               "ci_high": hi, "n": len(texts), "neurons": size})
            if prompts[j]:
                found = ident.identify(generations(spec, prompts[j], decoding, store=store))
                shift.append({"row": name, "lang": j, "kept": float(np.mean([f == j for f in found])),
                              "n": len(found)})
    return pd.DataFrame(matrix, columns=MATRIX_COLUMNS), pd.DataFrame(shift, columns=SHIFT_COLUMNS)


def steering_curve(base: ModelSpec, corpus: CorpusSpec, record: RecordSpec, data: DataSpec | Mapping[str, Any], *,
                   src: str, tgt: str, direction: tuple[str, str], alphas: Sequence[float] = (0, 1, 2, 4, 8),
                   layers: tuple[int, ...] | None = None, positions: str = "all", norm: bool = False,
                   limit: int | None = None, max_new_tokens: int = 64, store: Store | None = None,
                   status: Status = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fidelity and chrF++ of the held-out prompts of `direction` under `h ← h − α v_src + α v_tgt`, per α.

    α = 0 is the base state itself (its evaluation shared with every other view). Returns
    (curve: `STEERING_COLUMNS`, metrics fidelity and chrf++ with their 95% intervals;
    generations: alpha + the translation suite's generation columns).
    """
    store = store or Store()
    data = data if isinstance(data, DataSpec) else DataSpec.from_dict(dict(data))
    request = InterventionSpec(kind="vector", layers=layers, positions=positions, strength=1.0,
                               options=(("norm", norm),), source=(("src", src), ("tgt", tgt)))
    unit = resolve_spec(dataclasses.replace(base, interventions=(*base.interventions, request)), corpus=corpus,
                        record=record).interventions[-1]
    curve, gens = [], []
    for alpha in alphas:
        if status:
            status(f"steering: alpha {alpha}")
        iv = dataclasses.replace(unit, strength=float(alpha), options=(("beta", float(alpha)), ("norm", norm)))
        spec = base if alpha == 0 else dataclasses.replace(base, interventions=(*base.interventions, iv))
        res = evaluate(spec, ["translation"], data, directions=[direction], limit=limit, store=store,
                       decoding=DecodingSpec(max_new_tokens=max_new_tokens), label=f"alpha={alpha:g}")
        ev = res.eval[res.eval["metric"].isin(["fidelity", "chrf++"])]
        curve += [{"alpha": float(alpha), **{k: r[k] for k in STEERING_COLUMNS[1:]}} for r in ev.to_dict("records")]
        gens.append(res.generations.drop(columns=["state"]).assign(alpha=float(alpha)))
    return pd.DataFrame(curve, columns=STEERING_COLUMNS), pd.concat(gens, ignore_index=True)


def preview_generations(base: ModelSpec, intervened: ModelSpec, prompts: Sequence[str], *, max_new_tokens: int = 32,
                        langs: Sequence[str] = ()) -> pd.DataFrame:
    """A handful of greedy continuations before and after: prompt, before, after (+ their languages if `langs`).

    Both are kept in the store per state fingerprint (`generations`): the base's "before" is
    generated once for every later preview of the same prompts (another kind, strength or
    layer set costs only its "after"). The states are the memoised ones, the intervened one a
    hooked copy sharing the weights.
    """
    decoding = DecodingSpec(max_new_tokens=max_new_tokens, stop_at_newline=False)
    before = generations(base, list(prompts), decoding)
    after = generations(intervened, list(prompts), decoding)
    out = pd.DataFrame({"prompt": list(prompts), "before": before, "after": after})
    if langs:
        ident = Identifier(tuple(langs))
        out["before_lang"], out["after_lang"] = ident.identify(before), ident.identify(after)
    return out

"""The evaluation suites: what each computes for one state, as rows (no store, no orchestration).

- `translation`: greedy (or seeded sampled) generations for the held-out pairs of each
  direction with the fine-tune's template; corpus chrF++ and BLEU (sacrebleu, 95%
  bootstrap), per-sentence chrF++, language fidelity and off-target rate (py3langid
  restricted to the data's languages) next to the identifier's accuracy on the held-out
  references of the target language (all of them, whatever the `limit`; fidelity withheld,
  NaN, below 90%). Only the held-out part of the split is ever read.
- `loss`: held-out translation loss (mean NLL per target token, EOS included) of each
  direction and the pivot's perplexity, with bootstrap intervals over sentences. A
  CC-Tuning state scores translation with its two-pass inference (connection at the last
  prompt token); perplexity of plain text has no response position, so it is the plain
  forward pass for every state.
- `lm-eval:<task>`: one lm-evaluation-harness task (`lmeval.run_task`).

Every suite returns `(eval_rows, generation_rows, info)`; rows carry every column of
the result tables except `state` (added by `run.evaluate`, so a cached row serves any label),
including `n`: the sentences (lm-eval: items) a value and its interval come from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from workbench.evaluation.generate import DecodingSpec, generate
from workbench.evaluation.langid import MIN_ACCURACY, Identifier, accuracy_on_references
from workbench.evaluation.lmeval import OFFLINE_TASK, run_task
from workbench.evaluation.losses import nll_per_example, perplexity_examples
from workbench.evaluation.metrics import bootstrap_ratio, corpus_bleu, corpus_chrf, finite_or_nan, sentence_chrf
from workbench.examples import (
    ParallelSplit,
    prompt_and_target,
    translation_examples,
)

__all__ = ["Advance", "SuiteOutput", "direction_name", "lmeval_suite", "loss_suite", "translation_suite"]

Advance = Callable[[int], None]
SuiteOutput = tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]


def direction_name(src: str, tgt: str) -> str:
    """The `direction` column of a translation direction: `src>tgt`."""
    return f"{src}>{tgt}"


def _row(suite: str, direction: str, metric: str, value: float, low: float = math.nan,
         high: float = math.nan, *, n: int) -> dict[str, Any]:
    """One eval row; `n`: the sentences (or items) the value and its interval are computed from."""
    return {"suite": suite, "direction": direction, "metric": metric, "value": float(value),
            "ci_low": float(low), "ci_high": float(high), "n": int(n)}


def heldout_pairs(split: ParallelSplit, src: str, tgt: str, limit: int | None) -> list[tuple[int, str, str]]:
    """(held-out index, source, reference) of the first `limit` held-out units."""
    pairs = split.pairs(src, tgt, "heldout")[:limit]
    return [(i, s, t) for i, (s, t) in enumerate(pairs)]


def pivot_of(split: ParallelSplit) -> str:
    """English when the data has it, else the data's first language."""
    return "en" if "en" in split.langs else split.langs[0]


def _fidelity_rows(outputs: list[str], tgt: str, split: ParallelSplit, d: str, n_boot: int,
                   seed: int) -> tuple[list[dict[str, Any]], list[str], str | None]:
    ident = Identifier(split.langs)
    langs = ident.identify(outputs)
    refs = split.column(tgt, "heldout")
    acc = accuracy_on_references(split.langs, tgt, refs)
    rows = [_row("translation", d, "langid_accuracy", acc, n=len(refs))]
    n = len(outputs)
    flag = None
    if not (acc >= MIN_ACCURACY):  # NaN (unsupported) counts as below
        flag = (f"{d}: language identification of {tgt!r} among {list(split.langs)} is "
                f"{'unsupported' if math.isnan(acc) else f'{acc:.0%} accurate'} on the references "
                f"(< {MIN_ACCURACY:.0%}); fidelity withheld")
        rows += [_row("translation", d, "fidelity", math.nan, n=n), _row("translation", d, "off_target", math.nan, n=n)]
        return rows, langs, flag
    hit = np.array([g == tgt for g in langs], dtype=np.float64)
    ci = bootstrap_ratio(hit, np.ones_like(hit), n_boot=n_boot, seed=seed)
    rows += [_row("translation", d, "fidelity", ci.value, ci.low, ci.high, n=n),
             _row("translation", d, "off_target", 1 - ci.value, 1 - ci.high, 1 - ci.low, n=n)]
    return rows, langs, flag


def translation_suite(state: Any, split: ParallelSplit, directions: Sequence[tuple[str, str]], *,
                      limit: int | None, decoding: DecodingSpec, advance: Advance,
                      n_boot: int, seed: int) -> SuiteOutput:
    """Generations, chrF++, BLEU and fidelity for each direction (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    gens: list[dict[str, Any]] = []
    info: dict[str, Any] = {"signatures": {}, "flags": []}
    for src, tgt in directions:
        d = direction_name(src, tgt)
        pairs = heldout_pairs(split, src, tgt, limit)
        prompts = [prompt_and_target(split.spec.template, split.names, src, tgt, s, r)[0] for _, s, r in pairs]
        outputs = generate(state, prompts, decoding, on_batch=advance)
        refs = [r for _, _, r in pairs]
        chrf, bleu = corpus_chrf(outputs, refs, n_boot=n_boot, seed=seed), corpus_bleu(outputs, refs, n_boot=n_boot,
                                                                                      seed=seed)
        info["signatures"] = {"chrf++": chrf.signature, "bleu": bleu.signature}
        rows += [_row("translation", d, "chrf++", chrf.value, chrf.low, chrf.high, n=len(refs)),
                 _row("translation", d, "bleu", bleu.value, bleu.low, bleu.high, n=len(refs))]
        frows, langs, flag = _fidelity_rows(outputs, tgt, split, d, n_boot, seed)
        rows += frows
        if flag:
            info["flags"].append(flag)
        for (i, s, r), out, lang, c in zip(pairs, outputs, langs, sentence_chrf(outputs, refs)):
            gens.append({"direction": d, "id": i, "source": s, "reference": r, "output": out, "output_lang": lang,
                         "chrf": c})
    return rows, gens, info


def loss_suite(state: Any, split: ParallelSplit, directions: Sequence[tuple[str, str]], *, limit: int | None,
               batch_size: int, advance: Advance, n_boot: int, seed: int) -> SuiteOutput:
    """Held-out translation loss of each direction and the pivot's perplexity, with intervals."""
    tok = state.tokenizer
    rows = []
    for src, tgt in directions:
        examples = translation_examples(tok, split, [(src, tgt)], "heldout")[:limit]
        sums, counts = nll_per_example(state, examples, tok.pad_token_id, batch_size=batch_size, on_batch=advance)
        ci = bootstrap_ratio(sums, counts, n_boot=n_boot, seed=seed)
        rows.append(_row("loss", direction_name(src, tgt), "loss", ci.value, ci.low, ci.high, n=len(examples)))
    pivot = pivot_of(split)
    texts = split.column(pivot, "heldout")[:limit]
    sums, counts = nll_per_example(state, perplexity_examples(tok, texts, split.spec.max_length),
                                   tok.pad_token_id, batch_size=batch_size, on_batch=advance)
    ci = bootstrap_ratio(sums, counts, transform=lambda x: finite_or_nan(math.exp(min(x, 700.0))), n_boot=n_boot,
                         seed=seed)
    rows.append(_row("loss", pivot, "ppl", ci.value, ci.low, ci.high, n=len(texts)))
    info = {"pivot": pivot, **({"ppl_connection": "plain forward pass (no response position in plain text)"}
                               if state.inference.needs_position else {})}
    return rows, [], info


def lmeval_suite(state: Any, task: str, split: ParallelSplit, directions: Sequence[tuple[str, str]], *,
                 limit: int | None, batch_size: int, advance: Advance, n_boot: int,
                 seed: int) -> SuiteOutput:
    """One lm-eval task: per direction for the offline task, per (sub)task for hub tasks."""
    suite = f"lm-eval:{task}"
    rows = []
    runs = [(direction_name(s, t), (s, t)) for s, t in directions] if task == OFFLINE_TASK else [("", None)]
    for label, direction in runs:
        for r in run_task(state, task, split=split, direction=direction, limit=limit, batch_size=batch_size,
                          on_batch=advance, n_boot=n_boot, seed=seed):
            d = label if task == OFFLINE_TASK else (r["task"] if r["task"] != task else "")
            rows.append(_row(suite, d, r["metric"], r["value"], r["ci_low"], r["ci_high"], n=r["n"]))
    return rows, [], {"task": task}

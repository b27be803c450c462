"""Benchmark: interventions on the bundled Gemma-3-270M (fp32 CPU), each against its baseline in the same run.

1. Hook overhead: a forward of 8 UDHR sentences (64 tokens) through the plain state and
   through intervened copies (LAPE-sized neuron sets on every block; a language vector on
   6 blocks), interleaved, median of the repeats. Target: ratio <= 1.10.
2. Deactivation matrix: 6 languages (LAPE from UDHR, all 50 units) x 50 held-out sentences
   (tatoeba:<lang>, English from tatoeba:sw), the random control row, the language shift
   (5 continuations x 24 tokens per language and row); base perplexities from the store
   after their first computation. Reported: a cold run (nothing stored but the recording)
   and the warm rerun (all from the store). Target: cold <= 3 min.
3. Steering preview: 5 prompts x 32 new tokens, before and after (`preview_generations`),
   the states loaded. Target: <= 10 s.

    python bench/interventions.py [--repeats 20] [--skip-matrix]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import torch

from workbench import models
from workbench.config import CorpusSpec, InterventionSpec, ModelSpec, RecordSpec
from workbench.corpus import load_corpus
from workbench.interventions import parse_intervention
from workbench.interventions.experiments import deactivation_matrix, preview_generations
from workbench.interventions.resolve import resolve_spec
from workbench.models.interventions import save_tensors

LANGS = ("en", "zh", "sw", "ar", "hi", "es")


def _with(base: ModelSpec, iv: InterventionSpec) -> ModelSpec:
    return dataclasses.replace(base, interventions=(iv,))


def _forward(state, batch) -> float:
    t = time.perf_counter()
    with torch.no_grad():
        state.model(**batch, use_cache=False)
    return time.perf_counter() - t


def overhead(base_spec: ModelSpec, repeats: int, n_texts: int, max_tokens: int) -> None:
    base = models.load(base_spec)
    tok = base.tokenizer
    texts = load_corpus("udhr").texts("en")[:n_texts]
    batch = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_tokens)
    g = torch.Generator().manual_seed(0)
    m = base.n_neurons
    neurons = save_tensors({f"layer.{i}.index": torch.randperm(m, generator=g)[: m // 100]
                            for i in range(base.n_layers)})
    vec = save_tensors({f"layer.{i}.{r}": torch.randn(base.d_model, generator=g)
                        for i in range(6, 12) for r in ("src", "tgt")})
    states = {"plain": base,
              "neurons zero (1%/block, all blocks)": models.load(
                  _with(base_spec, InterventionSpec(kind="neurons", file=neurons))),
              "vector (6 blocks)": models.load(_with(base_spec, InterventionSpec(kind="vector", file=vec,
                                                                                 strength=4.0)))}
    for st in states.values():
        _forward(st, batch)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in states}
    for _ in range(repeats):
        for k, st in states.items():  # interleaved: load changes hit every variant alike
            times[k].append(_forward(st, batch))
    plain = statistics.median(times["plain"])
    print(f"\n1. forward of {tuple(batch['input_ids'].shape)} tokens, median of {repeats}")
    for k, v in times.items():
        print(f"  {k:<38} {statistics.median(v) * 1000:8.1f} ms   ratio {statistics.median(v) / plain:.3f}")


def matrix(base_spec: ModelSpec, n_eval: int, n_gen: int) -> None:
    corpus, record = CorpusSpec("udhr", LANGS, None), RecordSpec(max_length=128)
    held = {j: load_corpus("tatoeba:sw" if j == "en" else f"tatoeba:{j}").texts(j)[:n_eval] for j in LANGS}
    t = time.perf_counter()
    resolve_spec(_with(base_spec, parse_intervention("neurons:lang=en")), corpus=corpus, record=record)
    rec_s = time.perf_counter() - t
    runs = []
    for label in ("cold", "warm (store)"):
        t = time.perf_counter()
        table, shift = deactivation_matrix(base_spec, corpus, record, held, n_gen=n_gen)
        runs.append((label, time.perf_counter() - t))
    own = table[table["row"] == table["lang"]]
    other = table[(table["row"] != table["lang"]) & (table["row"] != "random")]
    ctrl = table[table["row"] == "random"]
    tokens = sum(len(t.split()) for ts in held.values() for t in ts)
    print(f"\n2. deactivation matrix {len(LANGS)} x {n_eval} ({tokens} words held out, {n_gen} continuations per "
          f"language; recording + LAPE first: {rec_s:.1f} s)")
    for label, s in runs:
        print(f"  {label:<14} {s:7.1f} s")
    print(f"  diagonal mean ΔPPL {own['delta'].mean():+.2f}, off-diagonal {other['delta'].mean():+.2f}, "
          f"random control {ctrl['delta'].mean():+.2f}; neurons per row {sorted(set(table['neurons']))}")
    print(table.round(2).to_string(index=False))
    print(shift.pivot(index="row", columns="lang", values="kept").round(2).to_string())


def preview(base_spec: ModelSpec) -> None:
    corpus, record = CorpusSpec("udhr", LANGS, None), RecordSpec(max_length=128)
    spec = resolve_spec(_with(base_spec, parse_intervention("vector:src=en,tgt=sw,alpha=4,layers=6-11")),
                        corpus=corpus, record=record)
    models.load(spec)
    prompts = [" ".join(t.split()[:6]) for t in load_corpus("tatoeba:sw").texts("en")[:5]]
    t = time.perf_counter()
    out = preview_generations(base_spec, spec, prompts, max_new_tokens=32, langs=("en", "sw"))
    print(f"\n3. steering preview, 5 prompts x 32 tokens: {time.perf_counter() - t:.1f} s")
    print(out[["before_lang", "after_lang"]].value_counts().to_string())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--skip-matrix", action="store_true")
    p.add_argument("--skip-preview", action="store_true")
    p.add_argument("--texts", type=int, default=8, help="sentences in the overhead batch")
    p.add_argument("--tokens", type=int, default=64, help="tokens per sentence in the overhead batch")
    p.add_argument("--eval-n", type=int, default=50, help="held-out sentences per language")
    p.add_argument("--n-gen", type=int, default=5, help="continuations per language and row")
    a = p.parse_args()
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    base = ModelSpec(source="gemma-3-270m", device="cpu", dtype="float32")
    t = time.perf_counter()
    models.load(base)
    print(f"loaded in {time.perf_counter() - t:.1f} s")
    overhead(base, a.repeats, a.texts, a.tokens)
    if not a.skip_preview:
        preview(base)
    if not a.skip_matrix:
        matrix(base, a.eval_n, a.n_gen)
    print(f"\nload average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()

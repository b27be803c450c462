"""Benchmark: recording speed, padding and memory against two plain-transformers baselines.

On UDHR (10 languages x 50 units by default), all layers, mean pooling, Gemma-3-270M, fp32:
  workbench         `tracing.record` with its default batching (packed rows), FFN stats off
  workbench+ffn     the same with FFN statistics on (what `workbench record` stores by default)
  workbench padded  padded batches under the 5% padding budget (the non-default mode)
  plain@N           the base model only (no LM head), `output_hidden_states`, batches sorted
                    by length under a token budget N (no padding budget), for several N;
                    the best N is the baseline ("give the plain loop its fair chance")
  naive             the causal LM, one sentence at a time, `output_hidden_states` and logits
Each method runs in its own process (peak RSS = that process's ru_maxrss; all plain@N run in
one process). Real tokens, padded tokens (positions run through the blocks) and the padding
fraction are counted for each. Then the workbench runs on the doubled corpus (peak memory
must stay flat) and `record` of 8 languages x 10 units is timed in a fresh process.

    python bench/record.py [--langs 10] [--units 50] [--budgets 256,512,1024,4096] [--skip-naive]

Timing is noisy on a shared machine, so the script ends with a round-robin run: one process
(one model load) runs workbench, workbench padded and every plain@N in turn, `--repeats`
rounds, and prints min and median per method (the ratio to trust).

Targets: workbench <= 0.9 x the best plain loop, >= 4 x faster than naive, padding <= 5%,
peak RSS +<10% on the doubled corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

LANGS = ["en", "zh", "sw", "ar", "hi", "es", "fr", "ja", "de", "ru", "ko", "id", "vi", "th", "bn", "pt", "it",
         "tr", "fa", "ur"]


def _setup(n_langs: int, units: int):
    from workbench.corpus import load_corpus
    from workbench.models import load

    langs = LANGS[:n_langs]
    corpus = load_corpus("udhr").subset(langs, limit=units)
    state = load("gemma-3-270m")
    return state, corpus, langs


def _mean_pool(hs, mask):
    import torch

    m = mask.unsqueeze(-1).to(hs[0].dtype)
    return torch.stack([(h * m).sum(1) / m.sum(1) for h in hs])


def run_workbench(state, corpus, langs, spec, pack: bool) -> dict:
    """`tracing.record` into a fresh store; counts the padded positions of every batch."""
    from workbench.recordings import record
    from workbench.store import Store
    from workbench.tracing import Batching, recorder

    seen = {"padded": 0, "batches": 0}
    real_run = recorder._run_batch

    def counting(envoy, st, batch, plan):
        seen["padded"] += batch["input_ids"].numel()
        seen["batches"] += 1
        return real_run(envoy, st, batch, plan)

    recorder._run_batch = counting
    with tempfile.TemporaryDirectory() as d:
        record(state, corpus, langs, spec, store=Store(d), batching=Batching(pack=pack))
    return seen


def _lengths(state, corpus, langs) -> list[list[int]]:
    tok = state.tokenizer
    return [[len(tok(t, truncation=True, max_length=256)["input_ids"]) for t in corpus.texts(lang)] for lang in langs]


def run_plain(state, corpus, langs, budget: int | None) -> dict:
    """Plain transformers: the base model with output_hidden_states, or the naive causal-LM loop."""
    import torch

    from workbench.examples import make_batches

    tok = state.tokenizer
    tok.padding_side = "right"
    body = state.model.model if budget else state.model
    seen = {"padded": 0, "batches": 0}
    for lang, lengths in zip(langs, _lengths(state, corpus, langs)):
        texts = corpus.texts(lang)
        batches = make_batches(lengths, budget) if budget else [[i] for i in range(len(texts))]
        for idx in batches:
            enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True, max_length=256)
            with torch.inference_mode():
                hs = body(**enc, output_hidden_states=True).hidden_states
            _mean_pool(hs, enc["attention_mask"]).numpy()
            seen["padded"] += enc["input_ids"].numel()
            seen["batches"] += 1
    return seen


def child(method: str, n_langs: int, units: int, budgets: list[int], repeats: int = 3) -> None:
    """Run one method in this process and print JSON lines: seconds, tokens and peak RSS."""
    from workbench.config import RecordSpec

    t_load = time.perf_counter()
    state, corpus, langs = _setup(n_langs, units)
    load_s = time.perf_counter() - t_load
    real = sum(map(sum, _lengths(state, corpus, langs)))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runs: list[tuple[str, object]] = []
    if method == "record-quick":  # what the app's "first 10 units" records: the default spec
        runs = [(method, lambda: run_workbench(state, corpus, langs, RecordSpec(), pack=True))]
    elif method.startswith("workbench"):
        spec = RecordSpec(poolings=("mean",), ffn_stats="ffn" in method)
        runs = [(method, lambda: run_workbench(state, corpus, langs, spec, pack="padded" not in method))]
    elif method == "plain":
        runs = [(f"plain@{b}", lambda b=b: run_plain(state, corpus, langs, b)) for b in budgets]
    else:
        runs = [("naive", lambda: run_plain(state, corpus, langs, None))]
    if method == "rounds":  # every method in one process, round-robin: load changes hit all alike
        spec = RecordSpec(poolings=("mean",), ffn_stats=False)
        runs = [("workbench", lambda: run_workbench(state, corpus, langs, spec, pack=True)),
                ("workbench padded", lambda: run_workbench(state, corpus, langs, spec, pack=False))]
        runs += [(f"plain@{b}", lambda b=b: run_plain(state, corpus, langs, b)) for b in budgets]
        times: dict[str, list[float]] = {name: [] for name, _ in runs}
        for _ in range(repeats):
            for name, fn in runs:
                t = time.perf_counter()
                fn()  # type: ignore[operator]
                times[name].append(time.perf_counter() - t)
        print(json.dumps({"rounds": times}), flush=True)
        return
    for name, fn in runs:
        t = time.perf_counter()
        seen = fn()  # type: ignore[operator]
        secs = time.perf_counter() - t
        print(json.dumps({"method": name, "seconds": secs, "load_seconds": load_s, "real": real,
                          "padded": seen["padded"], "batches": seen["batches"],
                          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                          "rss_after_load_mb": rss0 / 1024, "sentences": len(corpus) * len(langs)}), flush=True)


def spawn(method: str, n_langs: int, units: int, budgets: list[int], repeats: int = 3) -> list[dict]:
    r = subprocess.run([sys.executable, __file__, "--child", method, "--langs", str(n_langs), "--units", str(units),
                        "--budgets", ",".join(map(str, budgets)), "--repeats", str(repeats)],
                       capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if r.returncode != 0:
        raise SystemExit(f"{method} failed:\n{r.stderr[-3000:]}")
    return [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--langs", type=int, default=10)
    p.add_argument("--units", type=int, default=50)
    p.add_argument("--budgets", default="256,512,1024,4096")
    p.add_argument("--skip-naive", action="store_true")
    p.add_argument("--repeats", type=int, default=3, help="rounds of the round-robin timing (0: skip it)")
    p.add_argument("--child", default=None)
    a = p.parse_args()
    budgets = [int(x) for x in a.budgets.split(",")]
    if a.child:
        child(a.child, a.langs, a.units, budgets, a.repeats)
        return
    res: dict[str, dict] = {}
    for m in ["workbench", "workbench+ffn", "workbench padded", "plain"] + ([] if a.skip_naive else ["naive"]):
        for r in spawn(m, a.langs, a.units, budgets):
            res[r["method"]] = r
    res["workbench x2 corpus"] = spawn("workbench", min(2 * a.langs, len(LANGS)), a.units, budgets)[0]
    quick = spawn("record-quick", 8, 10, budgets)[0]
    rounds = spawn("rounds", a.langs, a.units, budgets, a.repeats)[0]["rounds"] if a.repeats else {}
    print(f"\n{'method':<22}{'sentences':>10}{'real tok':>10}{'padded tok':>11}{'padding':>9}{'batches':>8}"
          f"{'seconds':>9}{'sent/s':>8}{'peak RSS MB':>12}")
    for m, r in res.items():
        print(f"{m:<22}{r['sentences']:>10}{r['real']:>10}{r['padded']:>11}{1 - r['real'] / r['padded']:>9.1%}"
              f"{r['batches']:>8}{r['seconds']:>9.1f}{r['sentences'] / r['seconds']:>8.1f}{r['peak_rss_mb']:>12.0f}")
    w = res["workbench"]
    best = min((r for m, r in res.items() if m.startswith("plain@")), key=lambda r: r["seconds"])
    print(f"\nworkbench / best plain loop ({best['method']}): {w['seconds'] / best['seconds']:.2f} (target <= 0.9)")
    if "naive" in res:
        print(f"naive / workbench speed-up: {res['naive']['seconds'] / w['seconds']:.2f}x (target >= 4)")
    print(f"workbench padding: {1 - w['real'] / w['padded']:.1%} (target <= 5%)")
    d = res["workbench x2 corpus"]
    print(f"peak RSS on 2x corpus: {d['peak_rss_mb']:.0f} MB vs {w['peak_rss_mb']:.0f} MB "
          f"({100 * (d['peak_rss_mb'] / w['peak_rss_mb'] - 1):+.1f}%, target < +10%)")
    print(f"record 8 languages x 10 units: {quick['seconds']:.1f} s (+ {quick['load_seconds']:.1f} s model load)")
    if rounds:
        print(f"\nround-robin in one process, {a.repeats} rounds (seconds: min / median):")
        for m, ts in rounds.items():
            print(f"  {m:<20}{min(ts):>8.1f}{sorted(ts)[len(ts) // 2]:>8.1f}")
        best_m = min((m for m in rounds if m.startswith("plain@")), key=lambda m: min(rounds[m]))
        print(f"workbench / best plain loop ({best_m}), min of rounds: "
              f"{min(rounds['workbench']) / min(rounds[best_m]):.2f}; median: "
              f"{sorted(rounds['workbench'])[a.repeats // 2] / sorted(rounds[best_m])[a.repeats // 2]:.2f}")


if __name__ == "__main__":
    main()

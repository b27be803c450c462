"""Benchmark: recording speed and memory against two plain-transformers baselines.

On UDHR (20 languages x 50 units by default), all layers, mean pooling, Gemma-3-270M, fp32:
  (a) workbench  — `tracing.record` (nnsight, stops after the last block, no logits), FFN stats off
  (a+) workbench with FFN statistics on (what `workbench record` stores by default)
  (b) naive      — the causal LM with output_hidden_states=True, batches of 10 in corpus order
  (c) tuned      — the base model only (no LM head), output_hidden_states, batches sorted by length
                   with the same token budget as (a)
Each runs in its own subprocess (peak RSS = that process's ru_maxrss). Then (a) is run again
on the doubled corpus (40 languages) to check that its peak memory does not grow with the corpus.

    python bench/record.py [--langs 20] [--units 50] [--skip-naive]

Targets: (a) <= 1.1 x (c) in time, (a) >= 4 x faster than (b), peak RSS of (a) +<10% on 2x corpus.
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
MORE = ["pl", "nl", "sv", "el", "he", "uk", "cs", "ro", "hu", "fi", "da", "ta", "te", "mr", "gu", "kn", "am",
        "ha", "yo", "zu"]


def _setup(n_langs: int, units: int):
    from workbench.corpus import load_corpus
    from workbench.models import load

    langs = (LANGS + MORE)[:n_langs]
    corpus = load_corpus("udhr").subset(langs, limit=units)
    state = load("gemma-3-270m")
    return state, corpus, langs


def _mean_pool(hs, mask):
    import torch

    m = mask.unsqueeze(-1).to(hs[0].dtype)
    return torch.stack([(h * m).sum(1) / m.sum(1) for h in hs])


def run_workbench(state, corpus, langs, ffn: bool) -> None:
    from workbench.config import RecordSpec
    from workbench.store import Store
    from workbench.tracing import record

    with tempfile.TemporaryDirectory() as d:
        record(state, corpus, langs, RecordSpec(poolings=("mean",), ffn_stats=ffn), store=Store(d))


def run_baseline(state, corpus, langs, tuned: bool) -> None:
    import torch

    from workbench.tracing import make_batches

    tok = state.tokenizer
    tok.padding_side = "right"
    body = state.model.model if tuned else state.model
    out = []
    for lang in langs:
        texts = corpus.texts(lang)
        if tuned:
            lengths = [len(tok(t, truncation=True, max_length=256)["input_ids"]) for t in texts]
            batches = make_batches(lengths, 4096)
        else:
            batches = [list(range(i, min(i + 10, len(texts)))) for i in range(0, len(texts), 10)]
        for idx in batches:
            enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True, max_length=256)
            with torch.inference_mode():
                hs = body(**enc, output_hidden_states=True).hidden_states
            out.append(_mean_pool(hs, enc["attention_mask"]).numpy())


def child(method: str, n_langs: int, units: int) -> None:
    """Run one method in this process and print JSON with seconds and peak RSS."""
    state, corpus, langs = _setup(n_langs, units)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if method in ("workbench", "workbench+ffn"):
        run_workbench(state, corpus, langs, ffn=method.endswith("ffn"))
    else:
        run_baseline(state, corpus, langs, tuned=method == "tuned")
    secs = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"method": method, "seconds": secs, "peak_rss_mb": rss / 1024,
                      "rss_after_load_mb": rss0 / 1024, "sentences": len(corpus) * len(langs)}))


def spawn(method: str, n_langs: int, units: int) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", method, "--langs", str(n_langs), "--units", str(units)],
                       capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if r.returncode != 0:
        raise SystemExit(f"{method} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--langs", type=int, default=20)
    p.add_argument("--units", type=int, default=50)
    p.add_argument("--skip-naive", action="store_true")
    p.add_argument("--child", default=None)
    a = p.parse_args()
    if a.child:
        child(a.child, a.langs, a.units)
        return
    methods = ["workbench", "workbench+ffn", "tuned"] + ([] if a.skip_naive else ["naive"])
    res = {m: spawn(m, a.langs, a.units) for m in methods}
    res["workbench x2 corpus"] = spawn("workbench", min(2 * a.langs, len(LANGS + MORE)), a.units)
    print(f"\n{'method':<22}{'sentences':>10}{'seconds':>10}{'sent/s':>9}{'peak RSS MB':>13}")
    for m, r in res.items():
        print(f"{m:<22}{r['sentences']:>10}{r['seconds']:>10.1f}{r['sentences'] / r['seconds']:>9.1f}"
              f"{r['peak_rss_mb']:>13.0f}")
    w, t = res["workbench"], res["tuned"]
    print(f"\n(a)/(c) time ratio: {w['seconds'] / t['seconds']:.3f}  (target <= 1.1)")
    if "naive" in res:
        print(f"(b)/(a) speed-up:   {res['naive']['seconds'] / w['seconds']:.2f}x (target >= 4)")
    d = res["workbench x2 corpus"]
    grow = (d["peak_rss_mb"] - d["rss_after_load_mb"]) / max(w["peak_rss_mb"] - w["rss_after_load_mb"], 1)
    print(f"peak RSS on 2x corpus: {d['peak_rss_mb']:.0f} MB vs {w['peak_rss_mb']:.0f} MB "
          f"({100 * (d['peak_rss_mb'] / w['peak_rss_mb'] - 1):+.1f}%, target < +10%); "
          f"recording's own growth above the loaded model x{grow:.2f}")


if __name__ == "__main__":
    main()

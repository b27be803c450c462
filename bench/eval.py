"""Benchmark: the evaluation's batched generation vs a plain `model.generate` loop; full evaluation time.

Gemma-3-270M (fp32 CPU unless a GPU is present), the bundled Tatoeba en–sw held-out
pairs with the fine-tune template. Both generators get the same prompts, greedy decoding,
the same `max_new_tokens` and the same stop tokens (EOS and every newline-bearing token:
the end of the template's answer line), so they do the same work except for batching.
Then the full evaluation of the base state (translation both ways, loss + English
perplexity, the offline lm-eval task) into an empty store, the same call again (served
from the store), and today's fine-tune before/after evaluation (`evaluate_model`) for
reference.

    WORKBENCH_CACHE=/work/main/cache python bench/eval.py [--prompts 16] [--limit N] [--skip-full]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import pandas as pd
import torch

from workbench.evaluation import DecodingSpec, evaluate
from workbench.evaluation.generate import generate, stop_token_ids
from workbench.evaluation.losses import evaluate_model
from workbench.examples import DataSpec, build_split, prompt_and_target
from workbench.models import load
from workbench.store import Store


def plain_loop(state, prompts, max_new_tokens):
    """One `model.generate` call per prompt (the baseline a script would write)."""
    tok, model = state.tokenizer, state.model
    stops = stop_token_ids(tok, stop_at_newline=True)
    out = []
    for p in prompts:
        ids = tok(p, return_tensors="pt").to(state.device)
        with torch.inference_mode():
            g = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
                               pad_token_id=tok.pad_token_id, temperature=None, top_p=None, top_k=None)
        text = tok.decode(g[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        out.append(text.split("\n", 1)[0].strip())
    return out


def timed(fn, *a, **kw):
    t = time.perf_counter()
    r = fn(*a, **kw)
    return r, time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--prompts", type=int, default=16, help="held-out en→sw prompts for the generation benchmark")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--limit", type=int, default=None, help="held-out units of the full evaluation (None: all)")
    p.add_argument("--skip-full", action="store_true", help="only the generation benchmark")
    p.add_argument("--skip-generation", action="store_true", help="only the full evaluation")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    state = load("gemma-3-270m")
    split = build_split(DataSpec(source="tatoeba:sw"), ("en", "sw"))
    pairs = split.pairs("en", "sw", "heldout")[: a.prompts]
    prompts = [prompt_and_target(split.spec.template, split.names, "en", "sw", s, t)[0] for s, t in pairs]
    dec = DecodingSpec(max_new_tokens=a.max_new_tokens, batch_size=a.batch_size)
    generate(state, prompts[:2], dec)  # warm-up (newline token table, first-call allocations)
    if not a.skip_generation:
        bench_generation(state, prompts, dec, a)
    if not a.skip_full:
        bench_full(state, split, a)


def bench_generation(state, prompts, dec, a) -> None:
    """Plain loop vs the workbench's batched generation on the same prompts."""
    plain, t_plain = timed(plain_loop, state, prompts, a.max_new_tokens)
    ours, t_ours = timed(generate, state, prompts, dec)
    same = sum(x == y for x, y in zip(plain, ours)) / len(prompts)
    print(f"\ngeneration, {len(prompts)} en→sw prompts, max_new_tokens={a.max_new_tokens}, device={state.device}")
    print(pd.DataFrame([{"method": "plain model.generate loop", "seconds": round(t_plain, 2)},
                        {"method": f"workbench generate (batch {a.batch_size})", "seconds": round(t_ours, 2)}])
          .to_string(index=False))
    print(f"ratio workbench/plain: {t_ours / t_plain:.2f} (target <= 1.1); identical outputs: {same:.0%}")


def bench_full(state, split, a) -> None:
    """The base state's full evaluation into an empty store, again from the store, and today's evaluate_model."""
    store = Store(tempfile.mkdtemp(prefix="bench-eval-"))
    suites = ["translation", "loss", "lm-eval:tatoeba_choice"]
    kw = dict(directions=["en:sw", "sw:en"], limit=a.limit, decoding=DecodingSpec(max_new_tokens=a.max_new_tokens),
              store=store, label="base")
    res, t_full = timed(evaluate, state, suites, split, **kw)
    _, t_again = timed(evaluate, state, suites, split, **kw)
    _, t_today = timed(evaluate_model, state.model, state.tokenizer, split)
    pd.set_option("display.width", 200)
    print(f"\nbase state, {len(split.heldout)} held-out units (limit {a.limit}):")
    print(res.eval.to_string(index=False))
    print({s: round(m.get("seconds", 0), 1) for s, m in res.manifest["base"].items()})
    print(f"full evaluation: {t_full:.1f} s; again (from the store): {t_again:.2f} s; "
          f"today's fine-tune before/after evaluate_model (loss + ppl only, 64 items): {t_today:.1f} s")
    for f in res.flags:
        print("flag:", f)


if __name__ == "__main__":
    main()

"""CC-Tuning's Fig. 8 on a real model in both inference modes: the seeded Gumbel sample (default) and the argmax.

    PYTHONPATH=. WORKBENCH_CACHE=... python bench/cctuning_modes.py [--embed position,mean] [--steps 10]

Trains CC-Tuning (LoRA, en–sw Tatoeba pairs, `dm_lr` 1e-2) for a few steps once per `embed`
(the Decision Maker's `e`: 'position', the authors' and the default; 'mean', the variant), then
prints the held-out layer distribution the job's report holds (`finetune.cctuning.report`), for
the real English input and the Transform Matrix, in both modes: `gumbel` (a hard Gumbel sample
per input, seed 0, what a state runs by default, as the authors' `llamawrapper_mlp.py` does in
every forward) and `argmax` (the deterministic variant). Extra seeds of the Gumbel draw
(`--seeds`) go through the state's own inference (`CCTuningInference`, the evaluation's door)
on the same held-out inputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any

import torch

from workbench.config import ModelSpec
from workbench.examples import DataSpec, build_split
from workbench.finetune.cctuning import collate_cc, train_cctuning
from workbench.finetune.cctuning.examples import _datasets
from workbench.finetune.cctuning.spec import CCTuningSpec
from workbench.models import load, state_from_model
from workbench.models.hooks.cctuning import cctuning_forward


def _progress(step: int, total: int, *_: Any) -> None:
    print(f"  step {step}/{total}", file=sys.stderr, flush=True)


def _hist(sel: list[int]) -> str:
    n = len(sel)
    return ", ".join(f"{k}: {v} ({v / n:.0%})" for k, v in sorted(Counter(sel).items(), key=lambda kv: -kv[1]))


def main() -> None:
    """Train once per `embed` and print the distributions."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--corpus", default="tatoeba:sw")
    ap.add_argument("--units", type=int, default=150, help="units of the corpus (0.2 held out)")
    ap.add_argument("--eval", type=int, default=30, help="held-out examples")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--embed", default="position,mean")
    ap.add_argument("--seeds", default="1,2", help="more Gumbel seeds, through the state's inference")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    state = load(ModelSpec(source=a.model, device="cpu", dtype="float32"))
    split = build_split(DataSpec(source=a.corpus, limit=a.units, max_length=a.max_length, heldout=0.2), ("en", "sw"))
    print(f"{a.model}: {state.n_layers} blocks, {len(split.train)} training pairs, {len(split.heldout)} held out; "
          f"{a.steps} steps of batch {a.batch_size}, dm_lr 1e-2, LoRA lr 1e-4")
    for embed in a.embed.split(","):
        spec = CCTuningSpec(lang="sw", pivot="en", train="lora", dm_lr=1e-2, embed=embed, max_steps=a.steps,
                            batch_size=a.batch_size, wt_pairs=len(split.train), eval_items=a.eval, curve_points=2)
        t0 = time.perf_counter()
        res = train_cctuning(state, split, spec, progress=_progress)
        rep = res.metrics["cctuning"]
        print(f"\nembed={embed}: trained in {time.perf_counter() - t0:.0f} s, |W_DM| {res.metrics['w_dm_norm']:.3f}, "
              f"training choices (Gumbel) per layer {res.metrics['train_selection']}")
        for mode, r in rep["modes"].items():
            print(f"  {mode:>6}, English input:   {_hist(r['selected']['english'])}")
            print(f"  {mode:>6}, Transform Matrix: {_hist(r['selected']['transform'])}  (agree {r['agree']:.2f}; "
                  f"held-out loss W_T {r['gap']['loss_transform']:.4f}, English {r['gap']['loss_english']:.4f}, "
                  f"none {r['gap']['loss_vanilla']:.4f})")
        tuned = state_from_model(res.model, state.tokenizer, name="tuned", fingerprint="bench")
        held = _datasets(state.tokenizer, split, spec)[1][: a.eval]
        cb = collate_cc(held, state.tokenizer.pad_token_id)
        for seed in [int(s) for s in a.seeds.split(",") if s]:
            with torch.no_grad():
                out = cctuning_forward(tuned, res.extra["w_dm"], res.extra["w_t"], cb.x, positions=cb.pos,
                                       embed=embed, decide="gumbel", seed=seed)
            print(f"  gumbel seed {seed}, Transform Matrix: {_hist(out.selected.tolist())}")


if __name__ == "__main__":
    main()

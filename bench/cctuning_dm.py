"""CC-Tuning's Decision Maker on a real model: does W_DM learn, for which learning rate and initialisation?

    PYTHONPATH=. WORKBENCH_CACHE=... python bench/cctuning_dm.py --examples 300 --dm-lr 1e-4,1e-2 --dm-init 0

Trains CC-Tuning (LoRA, translation pairs) once per (dm_lr, dm_init) on the same data and
prints, per run: loss at the start and end, ‖W_DM‖, the layers chosen during training
(Gumbel samples), and on held-out examples the layer chosen by argmax H with the real
English input and with the Transform Matrix (CC-Tuning Fig. 8), plus why a choice is
stable: the spread of the Decision Maker's input `x = mean_l f^en_l + e` across examples
(relative to its mean) and the gap between the two best scores of H.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections import Counter
from typing import Any

import numpy as np
import torch

from workbench.config import ModelSpec
from workbench.examples import DataSpec, build_split
from workbench.finetune.cctuning import collate_cc, collect_ffn_pairs, train_cctuning
from workbench.finetune.cctuning.examples import _datasets
from workbench.finetune.cctuning.spec import CCTuningSpec
from workbench.models import get_path, load
from workbench.models.hooks.cctuning import prompt_mask


def _dm_inputs(model: Any, arch: Any, tok: Any, examples: list, f_en: np.ndarray) -> np.ndarray:
    """`(N, d)` Decision Maker inputs `mean_l f^en_l + e` (e = masked mean embedding of the prompt)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(examples), 8):
            cb = collate_cc(examples[i:i + 8], tok.pad_token_id)
            h = get_path(model, arch.embed)(cb.x["input_ids"])
            m = prompt_mask(cb.x, cb.pos).to(h.dtype).unsqueeze(-1)
            e = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            out.append(e.float().numpy() + f_en[i:i + 8].mean(1))
    return np.concatenate(out)


def _progress(step: int, total: int, metrics: dict[str, float]) -> None:
    if step % 10 == 0 or step == total:
        print(f"  step {step}/{total} loss {metrics.get('loss', float('nan')):.3f}", file=sys.stderr, flush=True)


def _hist(sel: list[int]) -> str:
    c = Counter(sel)
    return " ".join(f"{k}:{v}" for k, v in sorted(c.items()))


def main() -> None:
    """Run the sweep and print one block per run."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--corpus", default="tatoeba:sw")
    ap.add_argument("--examples", type=int, default=300, help="training pairs (one epoch)")
    ap.add_argument("--eval", type=int, default=100, help="held-out examples")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--dm-lr", default="1e-2")
    ap.add_argument("--dm-init", default="0")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    state = load(ModelSpec(source=a.model, device="cpu", dtype="float32"))
    split = build_split(DataSpec(source=a.corpus, limit=a.examples, max_length=a.max_length, heldout=0.2),
                        ("en", "sw"))
    print(f"{a.model}: {state.n_layers} blocks, {len(split.train)} training pairs, {len(split.heldout)} held out")
    for dm_lr, dm_init in itertools.product([float(x) for x in a.dm_lr.split(",")],
                                            [float(x) for x in a.dm_init.split(",")]):
        spec = CCTuningSpec(lang="sw", pivot="en", train="lora", lr=a.lr, dm_lr=dm_lr, dm_init=dm_init, epochs=1.0,
                            batch_size=a.batch_size, wt_pairs=a.examples, eval_items=a.eval, curve_points=2)
        t0 = time.perf_counter()
        res = train_cctuning(state, split, spec, progress=_progress)
        secs = time.perf_counter() - t0
        m, rep = res.metrics, res.metrics["cctuning"]
        w = res.extra["w_dm"].numpy()
        train_sel = m["train_selection"]
        held = _datasets(state.tokenizer, split, spec)[1][: a.eval]
        f_en = collect_ffn_pairs(res.model, state.arch, held, state.tokenizer.pad_token_id)[1]
        x = _dm_inputs(res.model, state.arch, state.tokenizer, held, f_en)
        h = x @ w
        top2 = np.sort(h, axis=1)[:, -2:]
        spread = np.linalg.norm(x - x.mean(0), axis=1).mean() / np.linalg.norm(x.mean(0))
        print(f"\ndm_lr {dm_lr:g}, dm_init {dm_init:g}: {m['steps']} steps in {secs:.0f} s, "
              f"loss {m['loss_first']:.3f} -> {m['loss_last']:.3f}, |W_DM| {m['w_dm_norm']:.4f}")
        print(f"  training choices (Gumbel), per layer: {train_sel}")
        print(f"  held-out argmax H, English input:   {_hist(rep['selected']['english'])}")
        print(f"  held-out argmax H, Transform Matrix: {_hist(rep['selected']['transform'])} "
              f"(agree {rep['agree']:.2f})")
        print(f"  input spread |x - mean x| / |mean x| = {spread:.4f}; H top-1 minus top-2: median "
              f"{np.median(top2[:, 1] - top2[:, 0]):.4g}; std of H over examples (mean over layers) "
              f"{h.std(0).mean():.4g}; range of mean H over layers {np.ptp(h.mean(0)):.4g}")
        gap = rep["gap"]
        print(f"  held-out loss vanilla {gap['loss_vanilla']:.4f}, English {gap['loss_english']:.4f}, "
              f"transform {gap['loss_transform']:.4f}")


if __name__ == "__main__":
    main()

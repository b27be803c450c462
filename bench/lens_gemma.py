"""LENS on a real model: loss magnitudes at initialisation and after training, held-out agnostic distance.

    PYTHONPATH=. WORKBENCH_CACHE=... python bench/lens_gemma.py [--model gemma-3-270m] [--lr 1e-5] [--epochs 1]

Prints one table: the three LENS terms (official MSE formulation, post-final-norm
last-token states) on the first and last training step and on the held-out units
before and after training. `l1` on held-out data is the agnostic-subspace distance of
the target language to the central one; LENS should shrink it.
"""

from __future__ import annotations

import argparse
import time

import torch

from workbench.config import ModelSpec
from workbench.examples import DataSpec, build_split
from workbench.finetune.lens import LENSSpec, train_lens
from workbench.models import load


def main() -> None:
    """Run LENS once and print the loss table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--corpus", default="tatoeba:sw")
    ap.add_argument("--langs", default="en,sw")
    ap.add_argument("--samples", type=int, default=200, help="samples per language (paper: 200)")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    langs = tuple(a.langs.split(","))
    state = load(ModelSpec(source=a.model, device="cpu", dtype="float32"))
    split = build_split(DataSpec(source=a.corpus, limit=a.samples, max_length=a.max_length), langs)
    spec = LENSSpec(languages=langs, samples_per_lang=a.samples, lr=a.lr, epochs=a.epochs, batch_size=a.batch_size)
    t0 = time.perf_counter()
    res = train_lens(state, split, spec)
    secs = time.perf_counter() - t0
    m, h = res.metrics, res.history
    print(f"model {a.model}, {state.n_layers} blocks, train blocks >= {m['start_layer']}, "
          f"{m['samples_per_lang']} samples/lang, {len(h)} steps, lr {a.lr}, {secs:.0f} s, "
          f"|delta| {m['direction_norms']}")
    print(f"{'where':<22}{'l1 (agnostic)':>16}{'l2 (push)':>14}{'l3 (retain)':>14}{'loss':>12}")
    rows = [("train step 1", h[0]), (f"train step {len(h)}", h[-1]),
            (f"held-out init (n={m['heldout_init']['n']})", m["heldout_init"]),
            ("held-out after", m["heldout_final"])]
    for name, r in rows:
        print(f"{name:<22}{r['l1']:>16.4f}{r['l2']:>14.4f}{r['l3']:>14.4f}{r['loss']:>12.4f}")
    d0, d1 = m["heldout_init"]["l1"], m["heldout_final"]["l1"]
    print(f"held-out agnostic distance {d0:.4f} -> {d1:.4f} ({100 * (d1 - d0) / d0:+.1f}%)")


if __name__ == "__main__":
    main()

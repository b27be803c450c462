"""Benchmark: vectorised per-layer retrieval vs a per-pair loop; t-SNE / UMAP on 1,000 points.

Shapes as Gemma-3-270M on UDHR: 20 languages x 50 units x 19 layers (emb + 18) x d=640,
380 ordered pairs per layer. Synthetic vectors with planted translation structure (the
timing does not depend on the values). The baseline calls `retrieval_accuracy` once per
pair and layer, as a plain script would.

    python bench/analyses.py [--langs 20] [--units 50] [--layers 19] [--dim 640]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from workbench.analysis.embed2d import embed_2d
from workbench.analysis.retrieval import retrieval_accuracy, retrieval_by_layer


def per_pair_loop(vectors, method):
    langs = list(vectors)
    n_layers = next(iter(vectors.values())).shape[0]
    return [retrieval_accuracy(vectors[s][layer], vectors[t][layer], method=method)
            for layer in range(n_layers) for s in langs for t in langs if s != t]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--langs", type=int, default=20)
    p.add_argument("--units", type=int, default=50)
    p.add_argument("--layers", type=int, default=19)
    p.add_argument("--dim", type=int, default=640)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    base = rng.standard_normal((a.layers, a.units, a.dim)).astype(np.float32)
    vectors = {f"l{i}": base + rng.standard_normal(base.shape).astype(np.float32) * (0.5 + i / a.langs)
               for i in range(a.langs)}
    pairs = a.langs * (a.langs - 1)
    print(f"retrieval: {a.langs} languages x {a.units} units x {a.layers} layers x d={a.dim}, "
          f"{pairs} ordered pairs/layer")
    print(f"{'method':<8}{'vectorised s':>14}{'per-pair loop s':>17}{'speed-up':>10}")
    for method in ("cosine", "margin", "mexa"):
        t = time.perf_counter()
        df = retrieval_by_layer(vectors, method=method, pivot="l0")
        tv = time.perf_counter() - t
        t = time.perf_counter()
        loop = per_pair_loop(vectors, method)
        tl = time.perf_counter() - t
        assert np.allclose(np.sort(df["accuracy"].to_numpy()), np.sort(loop))
        print(f"{method:<8}{tv:>14.3f}{tl:>17.3f}{tl / tv:>9.1f}x")
    x = rng.standard_normal((1000, a.dim)).astype(np.float32)
    print("\n2-D maps of 1,000 points (d=%d):" % a.dim)
    for method in ("pca", "tsne", "umap"):
        t = time.perf_counter()
        embed_2d(x, method=method, random_state=0)
        first = time.perf_counter() - t
        t = time.perf_counter()
        embed_2d(x, method=method, random_state=0)
        print(f"  {method:<5} first call {first:6.2f} s, second {time.perf_counter() - t:6.2f} s")


if __name__ == "__main__":
    main()

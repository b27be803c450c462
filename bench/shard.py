"""Benchmark: sharded recording (N processes) against one process, and byte equality of the arrays.

    python bench/shard.py [--langs en,zh,sw,ar,hi,es] [--units 50] [--processes 2] [--threads 2]

One fresh process (`--threads` torch threads, like `workbench record`) records into a fresh
store; `ensure_recording(..., num_processes=N)` records the same into another; wall times
include process start and model load. Then every stored array is compared byte for byte.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.recordings import ensure_recording
from workbench.store import Store

ONE = ("from workbench.config import CorpusSpec, ModelSpec, RecordSpec; from workbench.recordings import "
       "ensure_recording; from workbench.store import Store; ensure_recording(ModelSpec({m!r}), "
       "CorpusSpec('udhr', {langs!r}, limit={units}), RecordSpec(), store=Store({root!r}))")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="gemma-3-270m")
    p.add_argument("--langs", default="en,zh,sw,ar,hi,es")
    p.add_argument("--units", type=int, default=50)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    langs = tuple(a.langs.split(","))
    model, corpus = ModelSpec(a.model), CorpusSpec("udhr", langs, limit=a.units)
    one_root, many_root = tempfile.mkdtemp(), tempfile.mkdtemp()
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", ONE.format(m=a.model, langs=langs, units=a.units, root=one_root)],
                   check=True, env={**os.environ, "OMP_NUM_THREADS": str(a.threads)})
    t_one = time.perf_counter() - t
    t = time.perf_counter()
    many = ensure_recording(model, corpus, RecordSpec(), store=Store(many_root), num_processes=a.processes)
    t_many = time.perf_counter() - t
    one = ensure_recording(model, corpus, RecordSpec(), store=Store(one_root))
    same = all(np.asarray(one.entries[u][k]).tobytes() == np.asarray(many.entries[u][k]).tobytes()
               for u in one.entries for k in one.entries[u].arrays)
    print(f"1 process ({a.threads} threads): {t_one:.1f} s; {a.processes} processes: {t_many:.1f} s; "
          f"arrays byte-identical: {same}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

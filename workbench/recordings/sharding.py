"""Recording on N processes (`accelerate launch`), stored byte-identical to one process.

`record_sharded` launches `python -m workbench.recordings.sharding <folder>` on N ranks. Every rank
loads the model, forms the batch plan one process would (`tracing.unit_groups`, then the
recorder's batches across the units of each group) and runs every N-th batch
(`tracing.record_shard`), saving only the rows it ran into the scratch folder, group by
group. The launching process holds the store's locks on every key meanwhile (a concurrent
recording waits rather than computing them twice) and stores each group as soon as every
rank has finished it (`tracing.merge_shards`): a failure later on keeps the groups already
stored. Each sentence runs in the batch it has in one process, so the stored arrays equal a
one-process recording byte for byte (same kernels and thread count).

The scratch folder lives under `<cache>/shards/` while its launcher holds `<folder>.lock`
and is removed on every way out (done, a rank's failure, an exception, SIGTERM, SIGINT,
SIGHUP); folders whose launcher was killed (SIGKILL) are removed by the next sharded
recording and by `workbench store gc` (`remove_abandoned`). The ranks die with their
launcher (`ranks.start`, `ranks.die_with_launcher`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout

from workbench import models, ranks, tracing
from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.corpus import load_corpus_spec
from workbench.errors import RecordError
from workbench.fileio import atomic_write_json, read_json_or_none
from workbench.paths import cache_root
from workbench.progress import Progress, StatusFn
from workbench.recordings.keys import find_entry, unit_key
from workbench.store import Store

log = logging.getLogger(__name__)

_ROWS = "__rows__"  # the rows a rank ran, saved beside them


def record_sharded(model: ModelSpec, corpus_spec: CorpusSpec, spec: RecordSpec, units: list[str] | tuple[str, ...],
                   num_processes: int, *, store: Store | None = None, progress: Progress | None = None,
                   status: StatusFn | None = None) -> None:
    """Record `units` on `num_processes` processes into the one store (module docstring).

    Raises:
        RecordError: a rank failed (its reason) or was killed; groups stored before stay.
    """
    store = store or Store()
    corpus = load_corpus_spec(corpus_spec)
    fp = models.fingerprint(model)
    assert fp is not None  # download=True: known or raised
    keys = {u: unit_key(fp, corpus, u, spec) for u in units}
    root = cache_root() / "shards"
    remove_abandoned(root)
    d = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    with FileLock(str(d) + ".lock"):
        d.mkdir(parents=True)
        try:
            with contextlib.ExitStack() as held:
                for k in sorted(set(keys.values())):
                    held.enter_context(store.lock(k))
                todo = [u for u in units if find_entry(store, fp, corpus, u, spec) is None]
                if todo:
                    stored: set[int] = set()

                    def store_finished_groups() -> None:
                        for g, group in enumerate(read_json_or_none(d / "groups.json") or []):
                            if g not in stored and all((d / f"done-{g}-{r}").exists() for r in range(num_processes)):
                                man = read_json_or_none(d / f"manifests-{g}.json") or {}
                                for i in group:
                                    files = [d / f"part-{r}-{i}.npz" for r in range(num_processes)]
                                    store.put(keys[todo[i]], tracing.merge_shards([_read_part(f) for f in files]),
                                              {**man[todo[i]], "num_processes": num_processes})
                                    for f in files:  # stored: its scratch is no longer needed
                                        f.unlink()
                                stored.add(g)

                    _launch_ranks(d, model, corpus_spec, spec, todo, num_processes, len(corpus), progress, status,
                                  store_finished_groups)
        finally:
            shutil.rmtree(d, ignore_errors=True)


def remove_abandoned(root: Path | None = None) -> list[str]:
    """Remove scratch folders whose launcher is gone (its lock is free): a killed run's leftovers.

    Returns:
        The names of the folders removed.
    """
    root = root or cache_root() / "shards"
    removed = []
    for lock_path in root.glob("*.lock") if root.is_dir() else []:
        lock = FileLock(str(lock_path), timeout=0)
        try:
            with lock:
                if lock_path.with_suffix("").exists():
                    removed.append(lock_path.with_suffix("").name)
                shutil.rmtree(lock_path.with_suffix(""), ignore_errors=True)
            lock_path.unlink(missing_ok=True)
        except Timeout:
            continue  # a running sharded recording
    return removed


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _launch_ranks(d: Path, model: ModelSpec, corpus_spec: CorpusSpec, spec: RecordSpec, units: list[str], n: int,
                  n_sentences: int, progress: Progress | None, status: StatusFn | None,
                  on_poll: Callable[[], None]) -> None:
    atomic_write_json(d / "request.json", {"model": model.to_dict(), "corpus": corpus_spec.to_dict(),
                                           "spec": spec.to_dict(), "units": units})
    if status:
        status(f"recording {len(units)} units on {n} processes")
    # SIGTERM (Slurm's scancel, `timeout`) and SIGHUP (a closed terminal) must stop the ranks too and remove
    # the scratch folder: they run in their own session
    main = threading.current_thread() is threading.main_thread()
    old = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)} if main else {}
    proc = ranks.start(ranks.launch_command(n, ["workbench.recordings.sharding", str(d)]),
                       stdin=subprocess.DEVNULL, start_new_session=True)
    total = len(units) * n_sentences
    try:
        while proc.poll() is None:
            time.sleep(0.5)
            on_poll()
            if progress:
                done = sum(int((read_json_or_none(f) or {}).get("done", 0)) for f in d.glob("progress-*.json"))
                progress(done, total, f"recording on {n} processes")
        on_poll()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        raise
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    _raise_failures(d, n, proc.returncode)


def _raise_failures(d: Path, n: int, returncode: int) -> None:
    """One line: the ranks' reasons (identical ones once), or how the launch ended (`ranks.summarize`)."""
    result = ranks.summarize(ranks.read_reports(d, n), returncode)
    if result["state"] != "done":
        raise RecordError(f"sharded recording failed: {result['reason']}")


def _save_part(path: Path, arrays: dict[str, np.ndarray], filled: np.ndarray) -> None:
    """The rows this rank ran (per-sentence arrays cut to them), beside their indices."""
    rows = np.flatnonzero(filled)
    np.savez(path, **{**tracing.compact_shard(arrays, rows), _ROWS: rows})  # type: ignore[arg-type]  # numpy's stub


def _read_part(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    rows = arrays.pop(_ROWS)
    filled = np.zeros(int(arrays["n_tokens"].shape[0]), bool)
    filled[rows] = True
    return arrays, filled


def _rank_main(d: Path) -> int:
    """One rank of `record_sharded`: run this rank's batches of every unit group, save its rows."""
    ranks.die_with_launcher()
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    req = read_json_or_none(d / "request.json") or {}
    try:
        model, corpus_spec = ModelSpec.from_dict(req["model"]), CorpusSpec.from_dict(req["corpus"])
        spec = RecordSpec.from_dict(req["spec"])
        units: list[str] = req["units"]
        corpus = load_corpus_spec(corpus_spec)
        done, last = [0], [0.0]

        def tick(k: int) -> None:
            done[0] += k
            if time.monotonic() - last[0] > 0.5:
                atomic_write_json(d / f"progress-{rank}.json", {"done": done[0]})
                last[0] = time.monotonic()

        if world > 1 and model.device in ("auto", "cuda") and torch.cuda.is_available():
            model = dataclasses.replace(model, device=f"cuda:{os.environ.get('LOCAL_RANK', '0')}")
        state = models.load(model)
        groups = tracing.unit_groups(state, corpus, units, spec)
        if rank == 0:
            atomic_write_json(d / "groups.json", [[units.index(u) for u in g] for g in groups])
        for g, group in enumerate(groups):
            t0 = time.perf_counter()
            parts = tracing.record_shard(state, corpus, group, spec, rank=rank, world=world, progress=tick)
            secs = round((time.perf_counter() - t0) / len(group), 3)
            for u, (arrays, filled) in parts.items():
                _save_part(d / f"part-{rank}-{units.index(u)}.npz", arrays, filled)
            if rank == 0:
                atomic_write_json(d / f"manifests-{g}.json", {
                    u: tracing.record_manifest(state, corpus, u, spec, seconds=secs, recorded_with=group)
                    for u in group})
            (d / f"done-{g}-{rank}").touch()
        atomic_write_json(d / f"progress-{rank}.json", {"done": done[0]})
    except Exception as e:  # noqa: BLE001 - reported to the launching process
        log.exception("rank %d failed", rank)
        why = (str(e).strip() or "no message").splitlines()[0][:300]
        ranks.write_report(d, rank, "failed", f"{type(e).__name__}: {why}")
        return 1
    ranks.write_report(d, rank, "done")
    return 0


if __name__ == "__main__":  # a rank of record_sharded (launched by accelerate)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(_rank_main(Path(sys.argv[1])))

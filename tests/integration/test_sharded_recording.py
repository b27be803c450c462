"""Sharded recording (2 processes through accelerate launch) and `--remote` without NDIF."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from nnsight import CONFIG

from workbench import models, tracing
from workbench.cli.main import main as cli
from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.corpus import load_corpus
from workbench.errors import RecordError
from workbench.recipes.build import needs
from workbench.recipes.commands import analyze_command
from workbench.recipes.settings import Settings
from workbench.recipes.spec import normalize_spec
from workbench.recordings import ensure_recording, remote_problems
from workbench.recordings.sharding import remove_abandoned
from workbench.store import Store
from workbench.tracing import Batching

LANGS = ["en", "fr", "de", "es"]


@pytest.mark.slow
def test_two_process_recording_equals_one_process_byte_for_byte(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    model, corpus = ModelSpec("tiny:llama"), CorpusSpec("udhr", tuple(LANGS), limit=10)
    spec = RecordSpec()
    one = ensure_recording(model, corpus, spec, store=Store(tmp_path / "one"))
    seen = []
    two = ensure_recording(model, corpus, spec, store=Store(tmp_path / "two"), num_processes=2,
                           progress=lambda done, total, *_: seen.append((done, total)))
    assert list(one.entries) == list(two.entries) == LANGS
    for u in LANGS:
        a, b = one.entries[u], two.entries[u]
        assert a.key == b.key
        assert a.manifest["unit"] == b.manifest["unit"] == u
        names = sorted(a.arrays)
        assert names == sorted(b.arrays) and "pooled_mean" in names and "ffn_pos_counts" in names
        for k in names:
            x, y = np.asarray(a[k]), np.asarray(b[k])
            assert x.dtype == y.dtype and x.shape == y.shape
            assert x.tobytes() == y.tobytes(), (u, k)  # each sentence ran in its one-process batch
        assert b.manifest["num_processes"] == 2 and "num_processes" not in a.manifest
    assert len(list((tmp_path / "two").rglob("manifest.json"))) == len(LANGS)
    assert seen and seen[-1][1] == len(LANGS) * 10


@pytest.mark.slow
def test_a_failing_rank_fails_the_recording_with_its_reason_and_stores_nothing(tmp_path):
    store = Store(tmp_path / "s")
    bad = RecordSpec(layers=(99,))  # only a rank (which loads the model) can know this is out of range
    with pytest.raises(RecordError, match=r"failed: ranks 0, 1: RecordError: layer\(s\) \[99\] out of range"):
        ensure_recording(ModelSpec("tiny:llama"), CorpusSpec("udhr", ("en", "fr"), limit=4), bad, store=store,
                         num_processes=2)
    assert not store.ls()


@pytest.mark.parametrize("world", [2, 3])
def test_shards_merged_equal_one_process_byte_for_byte(world):
    # In one process: every rank's share of the one-process batch plan, merged.
    state = models.load("tiny:llama")
    corpus = load_corpus("udhr").subset(LANGS, limit=12)
    spec, batching = RecordSpec(), Batching(max_tokens=64)  # several batches, spread over the ranks
    one = tracing.record_units(state, corpus, LANGS, spec, batching=batching)
    parts = [tracing.record_shard(state, corpus, LANGS, spec, rank=r, world=world, batching=batching)
             for r in range(world)]
    assert all(p[LANGS[0]][1].any() for p in parts)  # every rank ran something
    for u in LANGS:
        merged = tracing.merge_shards([p[u] for p in parts])
        # what the ranks save: only the rows they ran
        compact = [(tracing.compact_shard(a, np.flatnonzero(f)), f) for a, f in (p[u] for p in parts)]
        assert compact[0][0]["pooled_mean"].shape[1] == compact[0][1].sum() < len(compact[0][1])
        from_compact = tracing.merge_shards(compact)
        assert sorted(merged) == sorted(from_compact) == sorted(one[u])
        for k, x in one[u].items():
            assert merged[k].dtype == x.dtype and merged[k].tobytes() == x.tobytes(), (u, k)
            assert from_compact[k].tobytes() == x.tobytes(), (u, k)


def test_scratch_folders_of_killed_runs_are_removed_and_running_ones_kept(tmp_path):
    root = tmp_path / "shards"
    (root / "dead").mkdir(parents=True)
    (root / "dead" / "part-0-0.npz").write_bytes(b"x")
    (root / "dead.lock").touch()  # its launcher is gone: nobody holds the lock
    (root / "live").mkdir()
    with FileLock(str(root / "live.lock")):  # a running launcher holds its lock
        remove_abandoned(root)
        assert not (root / "dead").exists() and (root / "live").exists()


def test_merge_shards_takes_each_row_from_its_rank_and_sums_counts():
    a = {"pooled_mean": np.array([[[1.0], [0.0], [3.0]]], np.float32), "ffn_pos_counts": np.array([[2, 0]]),
         "ffn_layer_mean": np.array([[0.5], [np.nan], [0.7]], np.float32), "n_tokens": np.array([4, 5, 6])}
    b = {"pooled_mean": np.array([[[0.0], [2.0], [0.0]]], np.float32), "ffn_pos_counts": np.array([[1, 3]]),
         "ffn_layer_mean": np.array([[np.nan], [0.6], [np.nan]], np.float32), "n_tokens": np.array([4, 5, 6])}
    fa, fb = np.array([True, False, True]), np.array([False, True, False])
    m = tracing.merge_shards([(a, fa), (b, fb)])
    np.testing.assert_array_equal(m["pooled_mean"][0, :, 0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(m["ffn_layer_mean"][:, 0], np.array([0.5, 0.6, 0.7], np.float32))
    np.testing.assert_array_equal(m["ffn_pos_counts"], [[3, 3]])
    np.testing.assert_array_equal(m["n_tokens"], [4, 5, 6])
    with pytest.raises(RecordError, match="exactly once"):
        tracing.merge_shards([(a, fa), (b, fa)])  # row 1 by nobody, rows 0 and 2 twice


def _offline(monkeypatch):
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    monkeypatch.setattr(CONFIG.API, "APIKEY", None)
    monkeypatch.setattr(CONFIG.API, "HOST", "https://127.0.0.1:9")  # nothing listens there


def test_remote_without_key_or_network_names_what_is_missing(monkeypatch):
    _offline(monkeypatch)
    problems = remote_problems(ModelSpec("tiny:llama"))
    text = "; ".join(problems)
    assert "no NDIF API key (set NDIF_API_KEY" in text
    assert "'tiny:llama' is not a Hugging Face hub id" in text
    assert "cannot reach NDIF at https://127.0.0.1:9" in text
    monkeypatch.setenv("NDIF_API_KEY", "x")
    assert not any("API key" in p for p in remote_problems(ModelSpec("meta-llama/Llama-3.1-8B")))
    assert not any("hub id" in p for p in remote_problems(ModelSpec("meta-llama/Llama-3.1-8B")))


def test_remote_offline_is_a_clear_error_and_writes_nothing(monkeypatch, tmp_path, capsys):
    _offline(monkeypatch)
    store = Store()
    with pytest.raises(RecordError, match=r"cannot record on NDIF \(--remote\): no NDIF API key"):
        ensure_recording(ModelSpec("tiny:llama"), CorpusSpec("udhr", ("en", "sw"), limit=3), remote=True)
    rc = cli(["record", "--model", "tiny:llama", "--langs", "en,sw", "--limit", "3", "--remote"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "error: cannot record on NDIF (--remote): no NDIF API key" in err and "cannot reach NDIF" in err
    assert not store.ls()


def test_analyze_remote_offline_is_a_clear_error_not_a_silent_local_run(monkeypatch, tmp_path, capsys):
    _offline(monkeypatch)
    rc = cli(["analyze", "retrieval", "--model", "tiny:llama", "--langs", "en,sw", "--limit", "3", "--remote",
              "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "error: cannot record on NDIF (--remote): no NDIF API key" in capsys.readouterr().err
    assert not Store().ls() and not list((tmp_path / "out").glob("*.csv"))


def test_remote_travels_in_figure_specs_and_old_specs_stay_local():
    spec = {"analysis": "retrieval", "model": "meta-llama/Llama-3.1-8B", "langs": ["en", "sw"], "remote": True}
    canon = normalize_spec(spec)
    assert canon["remote"] is True and all(n.remote for n in needs(canon))
    assert "--remote" in analyze_command(canon)
    local = normalize_spec({**spec, "remote": False})
    assert "remote" not in local and not any(n.remote for n in needs(local))  # manifests of before: unchanged
    s = Settings(model=ModelSpec("meta-llama/Llama-3.1-8B"), corpus=CorpusSpec("udhr", ("en", "sw")), remote=True)
    assert s.figure_spec("retrieval", {})["remote"] is True
    assert "remote" not in Settings(model=ModelSpec("tiny:llama"), corpus=CorpusSpec("udhr", ("en",))).figure_spec(
        "retrieval", {})
    # a stale `remote=1` in the URL for a model NDIF cannot run is dropped, not obeyed
    assert not Settings(model=ModelSpec("tiny:llama"), remote=True).remote
    assert not Settings(model=ModelSpec("org/name", artifact="/tmp/a"), remote=True).remote


@pytest.mark.slow
def test_analyze_num_processes_records_on_two_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    rc = cli(["analyze", "retrieval", "--model", "tiny:llama", "--langs", "en,fr", "--limit", "4",
              "--num-processes", "2", "--out", str(tmp_path / "out")])
    assert rc == 0 and (tmp_path / "out" / "retrieval.csv").exists()
    store = Store()
    stored = [store.get(r["key"]) for r in store.ls() if r["kind"] == "record"]
    assert len(stored) == 2 and all(e.manifest.get("num_processes") == 2 for e in stored)


@pytest.mark.slow
def test_sigterm_to_the_launcher_stops_every_rank_and_leaves_no_scratch(tmp_path):
    script = ("from workbench.config import *; from workbench.recordings import ensure_recording; "
              "ensure_recording(ModelSpec('tiny:llama'), CorpusSpec('udhr', ('en', 'fr', 'de', 'es'), limit=200), "
              "RecordSpec(batch_tokens=256), num_processes=2)")
    env = {**os.environ, "WORKBENCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    shards = tmp_path / "cache" / "shards"
    deadline = time.monotonic() + 240
    while not list(shards.glob("*/progress-*.json")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "finished before it could be interrupted: make the corpus larger"
    ranks = _rank_pids(shards)
    assert ranks  # the ranks are running
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    time.sleep(2)
    assert not [p for p in ranks if _alive(p)], "ranks outlived their launcher"
    assert not [p for p in shards.iterdir() if p.is_dir()]  # the scratch folder is gone


def _rank_pids(shards):
    """Processes whose command line runs a rank of this test's scratch folder."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "workbench.recordings.sharding" in cmd and str(shards) in cmd and "accelerate" not in cmd:
                pids.append(int(p.name))
    return pids


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False

"""`store gc` against a writer in another process: a live writer's temporary folder survives,
a killed writer's is collected, and the entry the live writer finishes is intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from workbench.store import Store

REPO = Path(__file__).resolve().parents[2]
KEY = "ab" + "c" * 22

# The writer: a real `Store.put` whose np.save stops after the first array file, with the
# temporary folder on disk, until the test says go (or kills it).
WRITER = r"""
import pathlib, sys, time
import numpy as np
from workbench.store import Store

root, ready, go = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
real_save = np.save

def paused_save(f, a, **kw):
    real_save(f, a, **kw)
    ready.write_text(str(f))
    while not go.exists():
        time.sleep(0.02)

np.save = paused_save
entry = Store(root).put(sys.argv[4], {"x": np.arange(5), "y": np.ones((2, 3))}, {"kind": "test"})
print("wrote", entry.key)
"""


def _start_writer(tmp_path):
    ready, go = tmp_path / "ready", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "store"), str(ready), str(go), KEY],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120  # a wait for the child, not a timing assertion
    while not ready.exists():
        if proc.poll() is not None:
            pytest.fail(f"writer exited early: {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("writer never reached its first array")
        time.sleep(0.05)
    tmp_folder = Path(ready.read_text()).parent
    assert tmp_folder.name.startswith(".tmp-") and tmp_folder.is_dir()
    return proc, go, tmp_folder


def test_gc_in_this_process_leaves_the_temp_folder_of_a_live_writer(tmp_path):
    proc, go, tmp_folder = _start_writer(tmp_path)
    store = Store(tmp_path / "store")
    try:
        removed = store.gc()
        assert removed == [] and tmp_folder.is_dir() and any(tmp_folder.iterdir())
    finally:
        go.touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"wrote {KEY}" in out
    assert store.check(KEY) == []
    entry = store.get(KEY)
    np.testing.assert_array_equal(entry["x"], np.arange(5))
    np.testing.assert_array_equal(entry["y"], np.ones((2, 3)))
    assert not tmp_folder.exists() and store.gc() == []


def test_gc_removes_the_temp_folder_of_a_killed_writer(tmp_path):
    proc, _, tmp_folder = _start_writer(tmp_path)
    proc.send_signal(signal.SIGKILL)  # kill -9: no cleanup runs; the kernel drops its lock
    proc.communicate(timeout=60)
    store = Store(tmp_path / "store")
    assert tmp_folder.is_dir()
    assert store.gc() == [tmp_folder.name]
    assert not tmp_folder.exists() and list(store.keys()) == []
    assert not (store.root / ".locks" / f"{tmp_folder.name}.lock").exists()

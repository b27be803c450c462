"""Store: round trip, keys, integrity, atomicity, concurrency, housekeeping."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from workbench.config import RecordSpec
from workbench.store import Store, make_key


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "store")


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {"pooled_mean": rng.standard_normal((3, 5, 8)).astype(np.float32),
            "counts": rng.integers(0, 9, (2, 4))}


def test_round_trip_equal_and_memory_mapped(store):
    arrays = _arrays()
    key = make_key({"a": 1})
    store.put(key, arrays, {"kind": "test"})
    entry = store.get(key)
    assert entry is not None and entry.manifest["kind"] == "test"
    for name, arr in arrays.items():
        got = entry[name]
        assert isinstance(got, np.memmap)
        np.testing.assert_array_equal(got, arr)
        assert got.dtype == arr.dtype
    assert entry.arrays == sorted(arrays)


BASE = {"model": "fp1", "corpus": "c1", "unit": "en", "spec": RecordSpec().to_dict(), "format": 1}


@pytest.mark.parametrize("field,value", [
    ("model", "fp2"), ("corpus", "c2"), ("unit", "sw"), ("format", 2),
    ("spec", RecordSpec(poolings=("mean",)).to_dict()),
    ("spec", RecordSpec(max_length=128).to_dict()),
    ("spec", RecordSpec(layers=(0, 1)).to_dict()),
    ("spec", RecordSpec(template="Text: {text}").to_dict()),
    ("spec", RecordSpec(include_special=True).to_dict()),
    ("spec", RecordSpec(ffn_stats=False).to_dict()),
])
def test_any_key_field_changes_the_key(field, value):
    assert make_key(BASE) == make_key(dict(BASE))  # deterministic
    assert make_key({**BASE, field: value}) != make_key(BASE)


def test_every_record_spec_field_is_in_the_key():
    """A new RecordSpec field cannot silently be left out of the key."""
    spec = RecordSpec().to_dict()
    for name in spec:
        changed = dict(spec)
        changed[name] = "changed-value"
        assert make_key({**BASE, "spec": changed}) != make_key(BASE), name


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest"])
def test_damaged_entry_is_detected_removed_and_not_served(store, damage):
    key = make_key({"a": 2})
    entry = store.put(key, _arrays(), {})
    assert store.get(key) is not None  # verified once: the memo must not hide later damage
    f = entry.path / "pooled_mean.npy"
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[:-10])
    elif damage == "flip":
        b = bytearray(f.read_bytes())
        b[-1] ^= 0xFF
        f.write_bytes(bytes(b))
    elif damage == "delete":
        f.unlink()
    else:
        (entry.path / "manifest.json").write_text("{not json")
    assert store.verify(key) is not None
    assert store.get(key) is None
    assert not store.path(key).exists()  # removed, so it will be recomputed


def test_put_is_atomic_when_writing_fails(store, monkeypatch):
    key = make_key({"a": 3})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", boom)
    with pytest.raises(OSError):
        store.put(key, _arrays(), {})
    assert store.get(key) is None
    assert not any(p.name.startswith(".tmp-") for p in store.path(key).parent.iterdir())


def test_two_writers_same_key_leave_one_intact_entry(store):
    key = make_key({"a": 4})
    errors = []

    def write(seed):
        try:
            store.put(key, _arrays(0), {"writer": seed})
        except Exception as e:  # pragma: no cover - would fail the test
            errors.append(e)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.verify(key) is None
    np.testing.assert_array_equal(store.get(key)["counts"], _arrays(0)["counts"])


def test_ls_resolve_rm_gc(store):
    k1, k2 = make_key({"a": 5}), make_key({"a": 6})
    store.put(k1, _arrays(), {"kind": "record", "unit": "en"})
    store.put(k2, _arrays(), {"kind": "record", "unit": "sw"})
    rows = store.ls()
    assert {r["unit"] for r in rows} == {"en", "sw"}
    assert store.resolve(k1[:10]) == k1
    # a dead writer's leftover (its lock file is there, nobody holds it) and a damaged entry are collected
    (store.path(k1).parent / ".tmp-crashed").mkdir()
    (store.root / ".locks" / ".tmp-crashed.lock").touch()
    (store.path(k2) / "counts.npy").write_bytes(b"x")
    removed = store.gc()
    assert ".tmp-crashed" in removed and k2 in removed and k1 not in removed
    assert not (store.root / ".locks" / ".tmp-crashed.lock").exists()
    assert store.rm(k1) and store.get(k1) is None
    with pytest.raises(Exception, match="no store entry"):
        store.resolve(k1[:10])


def test_manifest_records_shapes_and_checksums(store):
    key = make_key({"a": 7})
    entry = store.put(key, _arrays(), {"kind": "x"})
    m = json.loads((entry.path / "manifest.json").read_text())
    assert m["arrays"]["pooled_mean"]["shape"] == [3, 5, 8]
    assert len(m["arrays"]["pooled_mean"]["sha256"]) == 64

"""Store integrity: every kind of damaged manifest or array is reported with its key and file,
never served, and removed by gc; temporary folders of live writers survive gc."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from filelock import FileLock

from workbench.errors import StoreError
from workbench.store import STORE_FORMAT, Store, make_key
from workbench.store.manifest import _manifest_digest


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "store")


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {"pooled_mean": rng.standard_normal((3, 5, 8)).astype(np.float32), "counts": rng.integers(0, 9, (2, 4))}


RECORD = {"kind": "record", "unit": "sw", "n_units": 5, "layer_labels": ["emb", 0, 1], "spec": {"max_length": 8},
          "model_name": "tiny"}


def _two_entries(store):
    """A good entry and the one to damage; both verified once (the memo must not hide damage)."""
    good, bad = make_key({"u": "en"}), make_key({"u": "sw"})
    store.put(good, _arrays(1), {**RECORD, "unit": "en"})
    store.put(bad, _arrays(2), RECORD)
    assert store.get(good) is not None and store.get(bad) is not None
    return good, bad


def _edit(path, change):
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))


def _write(text):
    return lambda f: f.write_text(text)


_MANIFEST_DAMAGE = {
    "binary": lambda f: f.write_bytes(bytes(range(256)) * 4),
    "invalid-json": _write('{"key": '),
    "[]": _write("[]"), "{}": _write("{}"), "null": _write("null"), "42": _write("42"),
    "arrays-empty": _write('{"arrays": {}}'),
    "missing-file": lambda f: f.unlink(),
    "missing-key": lambda f: _edit(f, lambda m: m.pop("layer_labels")),
    "missing-arrays": lambda f: _edit(f, lambda m: m.pop("arrays")),
    "wrong-type-bytes": lambda f: _edit(f, lambda m: m["arrays"]["counts"].update(bytes="many")),
    "wrong-type-shape": lambda f: _edit(f, lambda m: m["arrays"]["counts"].update(shape="2x4")),
    "wrong-type-n_units": lambda f: _edit(f, lambda m: m.update(n_units="five")),
    "wrong-type-arrays": lambda f: _edit(f, lambda m: m.update(arrays=["counts"])),
    # well typed and plausible, but not what was written
    "edited-value": lambda f: _edit(f, lambda m: m.update(unit="fr")),
    # the manifest forgets an array (its file is still there)
    "dropped-array": lambda f: _edit(f, lambda m: m["arrays"].pop("counts")),
    # a manifest copied from another entry
    "other-key": lambda f: _edit(f, lambda m: m.update(key="0" * 24)),
}


def _damage_manifest(d, how):
    _MANIFEST_DAMAGE[how](d / "manifest.json")


MANIFEST_DAMAGE = list(_MANIFEST_DAMAGE)


@pytest.mark.parametrize("how", MANIFEST_DAMAGE)
def test_damaged_manifest_is_reported_never_served_and_collected(store, how):
    good, bad = _two_entries(store)
    _damage_manifest(store.path(bad), how)
    manifest_file = str(store.path(bad) / "manifest.json")
    problems = store.check(bad, full=False)
    assert problems and all(p.startswith(manifest_file) for p in problems), problems
    # ls: never raises, flags exactly the damaged entry, names the file
    rows = {r["key"]: r for r in store.ls()}
    assert rows[good]["status"] == "ok" and rows[good]["problem"] == ""
    assert rows[bad]["status"] == "damaged" and manifest_file in rows[bad]["problem"]
    # info: the manifest as far as it parses, and the problems
    info = store.info(bad)
    assert info["problems"] == problems and info["key"] == bad
    assert info["manifest"] is None or isinstance(info["manifest"], dict)
    # the strict reader raises a StoreError naming key and file
    with pytest.raises(StoreError, match=f"store entry {bad} is damaged: {manifest_file}"):
        store.require_intact(bad)
    # gc removes it and only it
    assert store.gc() == [bad]
    assert not store.path(bad).exists() and store.check(good) == []
    np.testing.assert_array_equal(store.get(good)["counts"], _arrays(1)["counts"])


@pytest.mark.parametrize("how", MANIFEST_DAMAGE)
def test_get_never_serves_a_damaged_manifest(store, how):
    _, bad = _two_entries(store)
    _damage_manifest(store.path(bad), how)
    assert store.get(bad) is None  # the caller recomputes
    assert not store.path(bad).exists()


def _damage_array(d, how):
    f = d / "pooled_mean.npy"
    if how == "truncated":
        f.write_bytes(f.read_bytes()[:-64])
    elif how == "grown":
        f.write_bytes(f.read_bytes() + b"\0" * 16)
    elif how == "flipped":
        b = bytearray(f.read_bytes())
        b[-5] ^= 0xFF
        f.write_bytes(bytes(b))
    elif how == "missing":
        f.unlink()
    elif how == "empty":
        f.write_bytes(b"")
    elif how == "unlisted-file":
        np.save(d / "extra.npy", np.zeros(3))
    else:
        raise AssertionError(how)
    return d / ("extra.npy" if how == "unlisted-file" else "pooled_mean.npy")


@pytest.mark.parametrize("how", ["truncated", "grown", "flipped", "missing", "empty", "unlisted-file"])
def test_damaged_array_names_its_file_and_is_collected(store, how):
    good, bad = _two_entries(store)
    culprit = _damage_array(store.path(bad), how)
    problems = store.check(bad, full=False)
    assert problems and problems[0].startswith(f"{culprit}: "), problems
    assert {r["key"]: r["status"] for r in store.ls()} == {good: "ok", bad: "damaged"}
    with pytest.raises(StoreError, match=f"{bad} is damaged: {culprit}"):
        store.require_intact(bad)
    assert store.gc() == [bad] and store.check(good) == []


def test_a_flipped_byte_with_restored_mtime_is_still_caught_without_full(store):
    """The hash memo is keyed on size, mtime, inode and ctime: resetting mtime does not hide an edit."""
    key = make_key({"a": 1})
    entry = store.put(key, _arrays(), RECORD)
    assert store.check(key, full=False) == []  # hashed once, memo set
    f = entry.path / "pooled_mean.npy"
    st = f.stat()
    b = bytearray(f.read_bytes())
    b[-1] ^= 0x01
    time.sleep(0.01)  # ctime must tick; not an assertion on time
    f.write_bytes(bytes(b))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert "checksum mismatch" in store.check(key, full=False)[0]


def _legacy(store, key, manifest_change=None):
    """An entry as written before manifests carried their own checksum."""
    store.put(key, _arrays(), RECORD)
    f = store.path(key) / "manifest.json"
    _edit(f, lambda m: m.pop("manifest_sha256"))
    if manifest_change:
        _edit(f, manifest_change)


def test_a_well_formed_older_manifest_is_still_served(store):
    key = make_key({"legacy": 1})
    _legacy(store, key)
    assert store.check(key) == [] and store.get(key) is not None


def test_an_older_record_manifest_must_have_what_readers_index(store):
    key = make_key({"legacy": 2})
    _legacy(store, key, lambda m: m.pop("layer_labels"))
    assert store.check(key) == [f"{store.path(key) / 'manifest.json'}: missing field 'layer_labels' "
                                "(every record entry has it)"]


def test_an_older_manifest_whose_shape_disagrees_with_the_file_is_damaged(store):
    key = make_key({"legacy": 3})
    _legacy(store, key, lambda m: m["arrays"]["counts"].update(shape=[4, 2]))
    assert store.check(key) == [f"{store.path(key) / 'counts.npy'}: holds int64[2, 4], the manifest says "
                                "int64[4, 2]"]


def test_manifest_checksum_is_over_what_a_reader_parses(store):
    key = make_key({"a": 2})
    entry = store.put(key, _arrays(), {**RECORD, "path": store.root, "ratio": 0.1 + 0.2})  # non-JSON and float
    m = json.loads((entry.path / "manifest.json").read_text())
    assert m["manifest_sha256"] == _manifest_digest(m) and m["path"] == str(store.root)
    assert m["key"] == key and m["store_format"] == STORE_FORMAT and entry.manifest == m


@pytest.mark.parametrize("arrays,match", [({}, "nothing to write"), ({"../x": np.zeros(2)}, "not plain file names")])
def test_put_refuses_what_could_not_be_read_back(store, arrays, match):
    with pytest.raises(StoreError, match=match):
        store.put(make_key({"a": 3}), arrays, {})
    assert list(store.keys()) == []


def test_keys_ignore_folders_that_are_not_entries(store):
    key = make_key({"a": 4})
    store.put(key, _arrays(), RECORD)
    (store.root / key[:2] / "zz-not-this-shard").mkdir()
    (store.root / key[:2] / ".tmp-writer").mkdir()
    assert list(store.keys()) == [key]


# ------------------------------------------------------------------ temporary folders and gc


def _tmp_with_lock(store, name, *, hold):
    """A writer's temporary folder and its lock file; the lock held (live writer) or not (dead)."""
    shard = store.root / "ab"
    shard.mkdir(exist_ok=True)
    (store.root / ".locks").mkdir(exist_ok=True)
    lock = FileLock(str(store.root / ".locks" / f"{name}.lock"))
    if hold:
        lock.acquire()
    else:
        lock.acquire()
        lock.release()
    (shard / name).mkdir()
    np.save(shard / name / "x.npy", np.arange(3))
    return shard / name, lock


def test_gc_leaves_a_live_writers_temp_folder_and_removes_a_dead_ones(store):
    live, lock = _tmp_with_lock(store, ".tmp-live", hold=True)
    dead, _ = _tmp_with_lock(store, ".tmp-dead", hold=False)
    try:
        assert store.gc() == [".tmp-dead"]
        assert live.is_dir() and (live / "x.npy").is_file() and not dead.exists()
    finally:
        lock.release()
    assert store.gc() == [".tmp-live"]  # once its writer is gone


def test_gc_removes_a_lockless_temp_folder_only_when_old(store):
    shard = store.root / "cd"
    shard.mkdir()
    tmp = shard / ".tmp-old-writer"
    tmp.mkdir()
    (tmp / "a.npy").write_bytes(b"x")
    assert store.gc() == [] and tmp.exists()  # could be a writer of an older version, still running
    past = time.time() - 2 * 3600
    for p in (tmp / "a.npy", tmp):
        os.utime(p, (past, past))
    assert store.gc() == [".tmp-old-writer"] and not tmp.exists()


def test_gc_leaves_an_entry_that_is_being_recorded(store):
    key = make_key({"a": 5})
    store.put(key, _arrays(), RECORD)
    (store.path(key) / "counts.npy").write_bytes(b"x")
    with store.lock(key):  # a recorder holds the key: it will replace the entry itself
        assert store.gc() == []
    assert store.gc() == [key]


def test_put_leaves_no_temp_folder_or_lock_file(store):
    key = make_key({"a": 6})
    store.put(key, _arrays(), RECORD)
    assert [p.name for p in store.path(key).parent.iterdir()] == [key]
    assert not list((store.root / ".locks").glob(".tmp-*"))


def test_put_refuses_a_manifest_readers_would_reject(tmp_path):
    """A writer never stores an entry that every later read would call damaged (and recompute)."""
    import numpy as np
    import pytest

    from workbench.errors import StoreError

    store = Store(tmp_path)
    with pytest.raises(StoreError, match="n_units has the wrong type"):
        store.put(make_key({"x": 1}), {"a": np.zeros(2)}, {"kind": "evaluation", "n_units": None})
    assert list(store.keys()) == []

"""On-disk activation store: content-hash keys, a manifest per entry, atomic writes, locks.

Layout: `<root>/<key[:2]>/<key>/` holding one `.npy` file per array (memory-mappable) and
`manifest.json` (the key's parts, versions, timings, each array's size and sha256, and the
manifest's own sha256). An entry is written into a temporary sibling folder and renamed
into place, so a reader never sees half an entry; a per-key file lock stops two processes
computing the same entry twice; the writer holds a lock on its temporary folder for its
whole life, so `gc` removes only the folders of writers that died. An entry whose files do
not match its manifest, or whose manifest is damaged in any way (not UTF-8, not JSON, not
an object, missing or mistyped fields, edited after writing), is reported with its key and
the file at fault, never served, removed by `gc` and recomputed by the caller
(HOUSE_STYLE 7).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from workbench.config import stable_hash
from workbench.errors import CACHE_REMEDY, StoreError
from workbench.fileio import ensure_dir, file_sha256, writing
from workbench.paths import cache_root
from workbench.store.manifest import (
    _ARRAY_NAME,
    STORE_FORMAT,
    _is,
    _manifest_digest,
    damaged_error,
    manifest_problems,
)

log = logging.getLogger(__name__)

_MANIFEST = "manifest.json"
_TMP_PREFIX = ".tmp-"
_LOCKS = ".locks"

STALE_TMP_SECONDS = 3600.0
"""A temporary folder with no lock file (left by a writer older than the locks) is removed
by `gc` only when nothing in it changed for this long."""



def make_key(parts: dict[str, Any]) -> str:
    """The store key: a hash of every part that changes the stored bytes."""
    return stable_hash({"store_format": STORE_FORMAT, **parts}, n=24)


_VERIFIED: dict[str, tuple[str, tuple[tuple[int, ...], ...]]] = {}
"""entry folder -> (sha256 of the manifest bytes, identity of each array file) when last hashed intact here."""


@dataclass
class Entry:
    """One stored entry. Arrays load lazily and memory-mapped: `entry["pooled_mean"]`."""

    key: str
    path: Path
    manifest: dict[str, Any]

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.manifest["arrays"]:
            raise KeyError(f"entry {self.key} has no array {name!r}; it has {sorted(self.manifest['arrays'])}")
        return np.load(self.path / f"{name}.npy", mmap_mode="r")

    def __contains__(self, name: str) -> bool:
        return name in self.manifest["arrays"]

    @property
    def arrays(self) -> list[str]:
        """Names of the stored arrays."""
        return sorted(self.manifest["arrays"])

    @property
    def nbytes(self) -> int:
        """Total bytes of the array files."""
        return sum(a["bytes"] for a in self.manifest["arrays"].values())


class Store:
    """The activation store rooted at `root` (default `<cache>/store`). Safe across processes."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = ensure_dir(Path(root) if root is not None else cache_root() / "store", CACHE_REMEDY)

    # -- paths and locks
    def path(self, key: str) -> Path:
        """Directory of an entry."""
        return self.root / key[:2] / key

    def lock(self, key: str, timeout: float = -1) -> FileLock:
        """A cross-process lock for computing `key` (hold it while recording).

        Raises:
            WriteError: the lock file cannot be written (a read-only or full cache).
        """
        return FileLock(str(self._lock_file(self.root / _LOCKS / f"{key}.lock")), timeout=timeout)

    def _lock_file(self, path: Path) -> Path:
        """`path`, created if needed, so that a store that cannot take a lock says so in one line."""
        with writing(self.root, CACHE_REMEDY):
            path.parent.mkdir(exist_ok=True)
            with open(path, "a"):
                pass
        return path

    def _tmp_lock_path(self, name: str) -> Path:
        return self.root / _LOCKS / f"{name}.lock"

    @contextmanager
    def _temp_dir(self, parent: Path) -> Iterator[Path]:
        """A temporary folder in `parent`, locked for as long as it exists (gc leaves it alone).

        The lock is taken before the folder exists and released only after it is gone
        (renamed into place or removed), so a folder whose lock `gc` can take is abandoned.
        """
        name = f"{_TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        lock_path = self._lock_file(self._tmp_lock_path(name))
        lock = FileLock(str(lock_path))
        lock.acquire()
        tmp = parent / name
        try:
            tmp.mkdir()
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            lock.release()
            lock_path.unlink(missing_ok=True)

    # -- read
    def _load_manifest(self, key: str) -> tuple[dict[str, Any] | None, bytes, list[str]]:
        """(manifest or None, its raw bytes, problems naming the manifest file)."""
        f = self.path(key) / _MANIFEST
        try:
            raw = f.read_bytes()
        except FileNotFoundError:
            return None, b"", [f"{f}: missing"]
        except OSError as e:
            return None, b"", [f"{f}: unreadable ({e.strerror or e})"]
        try:
            parsed = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            return None, raw, [f"{f}: not UTF-8 text (bad byte at offset {e.start})"]
        except json.JSONDecodeError as e:
            return None, raw, [f"{f}: not valid JSON ({e.msg}, line {e.lineno} column {e.colno})"]
        except RecursionError:
            return None, raw, [f"{f}: not valid JSON (nested too deeply)"]
        problems = [f"{f}: {p}" for p in manifest_problems(key, parsed)]
        return (parsed if isinstance(parsed, dict) else None), raw, problems

    def _array_problems(self, key: str, manifest: dict[str, Any], raw: bytes, full: bool) -> list[str]:
        """Problems of the array files of a well-formed manifest, each naming its file."""
        d = self.path(key)
        arrays: dict[str, Any] = manifest["arrays"]
        expected = {_MANIFEST, *(f"{n}.npy" for n in arrays)}
        problems = [f"{p}: not written by the store (the manifest does not list it)"
                    for p in sorted(d.iterdir()) if p.name not in expected]
        stamps = []
        for name, meta in arrays.items():
            f = d / f"{name}.npy"
            try:
                st = f.stat()
            except FileNotFoundError:
                problems.append(f"{f}: missing")
                continue
            if st.st_size != meta["bytes"]:
                problems.append(f"{f}: {st.st_size} bytes, the manifest says {meta['bytes']} (truncated or "
                                "overwritten)")
            stamps.append((st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
        if problems:
            return problems
        memo = (hashlib.sha256(raw).hexdigest(), tuple(stamps))
        if not full and _VERIFIED.get(str(d)) == memo:
            return []
        for name, meta in arrays.items():
            problems += self._file_problems(d / f"{name}.npy", meta)
        if problems:
            _VERIFIED.pop(str(d), None)
        else:
            _VERIFIED[str(d)] = memo
        return problems

    @staticmethod
    def _file_problems(f: Path, meta: dict[str, Any]) -> list[str]:
        """Checksum, then the .npy header against the manifest's shape and dtype."""
        if file_sha256(f) != meta["sha256"]:
            return [f"{f}: checksum mismatch (its bytes changed after writing)"]
        try:
            arr = np.load(f, mmap_mode="r")
        except (ValueError, OSError, EOFError) as e:
            return [f"{f}: not a readable .npy file ({e})"]
        if list(arr.shape) != meta["shape"] or arr.dtype != np.dtype(meta["dtype"]):
            return [f"{f}: holds {arr.dtype}{list(arr.shape)}, the manifest says {meta['dtype']}{meta['shape']}"]
        return []

    def _inspect(self, key: str, full: bool) -> tuple[dict[str, Any] | None, list[str]]:
        """(the manifest as far as it parses to an object, every problem of the entry)."""
        d = self.path(key)
        if not d.is_dir():
            return None, [f"{d}: no such entry"]
        manifest, raw, problems = self._load_manifest(key)
        if problems or manifest is None:
            _VERIFIED.pop(str(d), None)
            return manifest, problems
        try:
            return manifest, self._array_problems(key, manifest, raw, full)
        except FileNotFoundError as e:  # removed by another process while we looked
            return manifest, [f"{e.filename or d}: vanished while being checked"]

    def check(self, key: str, *, full: bool = True) -> list[str]:
        """Everything wrong with entry `key`, one line per problem naming the file; [] if intact.

        Args:
            key: the full key.
            full: re-hash every array. Otherwise checksums are re-computed only when an
                array file's identity (size, mtime, inode, ctime) or the manifest changed
                since this process last hashed them, so reopening a view is cheap.
        """
        return self._inspect(key, full)[1]

    def verify(self, key: str, *, full: bool = False) -> str | None:
        """None if the entry is complete and intact, else why not (all problems, joined)."""
        problems = self.check(key, full=full)
        return "; ".join(problems) if problems else None

    def require_intact(self, key: str, *, full: bool = True) -> dict[str, Any]:
        """The manifest of an intact entry, or a StoreError naming the key and the file at fault."""
        manifest, problems = self._inspect(key, full)
        if problems or manifest is None:
            raise damaged_error(key, problems)
        return manifest

    def info(self, key: str, *, full: bool = True) -> dict[str, Any]:
        """For `store info`: {"key", "path", "manifest" (parsed JSON object, or None), "problems"}."""
        manifest, problems = self._inspect(key, full)
        return {"key": key, "path": str(self.path(key)), "manifest": manifest, "problems": problems}

    def get(self, key: str) -> Entry | None:
        """The entry for `key`, or None if absent. A damaged entry is removed and None returned.

        Something else in the entry's place (a plain file, a link) is not an entry: it is
        removed too, so the caller recomputes the entry there.
        """
        d = self.path(key)
        if not d.is_dir():
            if os.path.lexists(d):
                log.warning("%s is not a store entry (not a folder); removing it so the entry is recomputed", d)
                self.rm(key)
            return None
        manifest, problems = self._inspect(key, False)
        if problems or manifest is None:
            log.warning("store entry %s is damaged (%s); removing it so it is recomputed", key, "; ".join(problems))
            self.rm(key)
            return None
        return Entry(key, d, manifest)

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_dir() and (self.path(key) / _MANIFEST).is_file()

    # -- write
    def put(self, key: str, arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> Entry:
        """Write an entry atomically. If another process wrote the same key first, keep theirs."""
        bad = [n for n in arrays if not _ARRAY_NAME.fullmatch(n)]
        if not arrays or bad:
            raise StoreError(f"store entry {key}: " + (f"array names {bad} are not plain file names" if bad
                                                       else "nothing to write (no arrays)"))
        final = self.path(key)
        with writing(final, CACHE_REMEDY):
            return self._put(key, final, arrays, manifest)

    def _put(self, key: str, final: Path, arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> Entry:
        final.parent.mkdir(parents=True, exist_ok=True)
        with self._temp_dir(final.parent) as tmp:
            meta_arrays = {}
            for name, arr in arrays.items():
                f = tmp / f"{name}.npy"
                np.save(f, np.ascontiguousarray(arr), allow_pickle=False)
                meta_arrays[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype),
                                     "bytes": f.stat().st_size, "sha256": file_sha256(f)}
            full = {**manifest, "key": key, "store_format": STORE_FORMAT, "arrays": meta_arrays,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            full = json.loads(json.dumps(full, default=str))  # exactly what a reader will parse
            full["manifest_sha256"] = _manifest_digest(full)
            problems = manifest_problems(key, full)
            if problems:  # never write what a reader would reject as damaged (and recompute forever)
                raise StoreError(f"store entry {key}: refusing to write a manifest readers reject: {problems[0]}")
            (tmp / _MANIFEST).write_text(json.dumps(full, indent=1))
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            for _ in range(3):  # another writer may rename its folder into place at the same moment
                if os.path.lexists(final):
                    theirs = self.get(key)  # removes a damaged one, or a file in its place
                    if theirs is not None:
                        log.info("store entry %s was written by another process; keeping it", key)
                        return theirs
                    self.rm(key)
                try:
                    os.replace(tmp, final)
                    return Entry(key, final, full)
                except OSError as e:
                    if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
        raise StoreError(f"store entry {key}: could not move {tmp} into place at {final} (another writer kept "
                         "replacing it)")

    # -- housekeeping
    def _shards(self) -> Iterator[Path]:
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2 and not sub.name.startswith("."):
                yield sub

    def keys(self) -> Iterator[str]:
        """Keys of all entries (complete or not; temporary folders are not entries)."""
        for sub in self._shards():
            for d in sorted(sub.iterdir()):
                if d.is_dir() and not d.name.startswith(_TMP_PREFIX) and d.name[:2] == sub.name:
                    yield d.name

    def ls(self, *, full: bool = False) -> list[dict[str, Any]]:
        """One row per entry: key, kind, model, corpus, unit, n, mb, created, status, problem.

        Every entry is checked (`check(key, full=full)`): `status` is "ok" or "damaged", and
        `problem` names the file at fault ("" when intact). Manifest fields of a damaged
        entry are shown as far as they can be read.
        """
        rows = []
        for key in self.keys():
            manifest, problems = self._inspect(key, full)
            m = manifest or {}
            arrays = m.get("arrays")
            metas = list(arrays.values()) if isinstance(arrays, dict) else []
            size = sum(a["bytes"] for a in metas if isinstance(a, dict) and _is(a.get("bytes"), int))
            rows.append({"key": key, "kind": m.get("kind", "?"), "model": m.get("model_name", "?"),
                         "corpus": m.get("corpus_name", "?"), "unit": m.get("unit", "?"), "n": m.get("n_units"),
                         "mb": round(size / 2**20, 2), "created": m.get("created"),
                         "status": "damaged" if problems else "ok", "problem": "; ".join(problems)})
        return rows

    def resolve(self, prefix: str) -> str:
        """The full key for a unique prefix (as `git` does), or a StoreError."""
        hits = [k for k in self.keys() if k.startswith(prefix)]
        if len(hits) != 1:
            raise StoreError(f"no store entry matches {prefix!r}" if not hits else
                             f"{prefix!r} is ambiguous: {', '.join(hits[:5])}")
        return hits[0]

    def rm(self, key: str) -> bool:
        """Remove an entry; True if it existed."""
        d = self.path(key)
        _VERIFIED.pop(str(d), None)
        if d.is_dir() and not d.is_symlink():
            shutil.rmtree(d, ignore_errors=True)
            return True
        if os.path.lexists(d):  # a file or link in an entry's place
            d.unlink()
            return True
        return False

    def _gc_tmp(self, tmp: Path, stale_after_s: float) -> bool:
        """Remove a temporary folder if its writer is gone; True if removed."""
        lock_path = self._tmp_lock_path(tmp.name)
        if not lock_path.exists():  # a writer from before the locks: only an old folder is abandoned
            newest = max((p.stat().st_mtime for p in [tmp, *tmp.rglob("*")] if p.exists()), default=0.0)
            if time.time() - newest < stale_after_s:
                return False
            shutil.rmtree(tmp, ignore_errors=True)
            return True
        lock = FileLock(str(lock_path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            log.debug("temporary folder %s belongs to a running writer; left alone", tmp)
            return False
        try:
            if not tmp.exists():  # the writer finished between our listing and the lock
                return False
            shutil.rmtree(tmp, ignore_errors=True)
            return True
        finally:
            lock.release()
            lock_path.unlink(missing_ok=True)

    def _gc_entry(self, key: str, cutoff: float | None) -> bool:
        """Remove an entry if damaged (or older than `cutoff`) and nobody is writing it."""
        lock = self.lock(key, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            log.info("store entry %s is being written; gc leaves it alone", key)
            return False
        try:
            if not self.path(key).is_dir():  # removed meanwhile
                return False
            old = cutoff is not None and self.path(key).stat().st_mtime < cutoff
            problems = [] if old else self.check(key, full=True)
            if problems:
                log.warning("removing damaged store entry %s: %s", key, "; ".join(problems))
            return (old or bool(problems)) and self.rm(key)
        finally:
            lock.release()

    def gc(self, *, older_than_days: float | None = None, stale_after_s: float = STALE_TMP_SECONDS) -> list[str]:
        """Remove abandoned temporary folders, damaged entries and, optionally, old ones.

        A temporary folder is removed only when its writer is gone (its lock can be taken),
        or, for a folder without a lock file, when nothing in it changed for `stale_after_s`.
        An entry whose key lock is held (being recorded right now) is left alone.

        Returns:
            The names of the removed temporary folders and the keys of the removed entries.
        """
        removed = []
        for sub in self._shards():
            for d in sorted(sub.iterdir()):
                if d.is_dir() and d.name.startswith(_TMP_PREFIX) and self._gc_tmp(d, stale_after_s):
                    removed.append(d.name)
        cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
        removed += [key for key in list(self.keys()) if self._gc_entry(key, cutoff)]
        return removed

"""On-disk activation store: content-hash keys, a manifest per entry, atomic writes, locks.

Layout: `<root>/<key[:2]>/<key>/` holding one `.npy` file per array (memory-mappable) and
`manifest.json` (the key's parts, versions, timings, and each array's size and sha256).
An entry is written into a temporary sibling directory and renamed into place, so a
reader never sees half an entry; a per-key file lock stops two processes computing the
same entry twice; an entry whose files do not match its manifest is reported, removed and
recomputed, never served (HOUSE_STYLE 7).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from workbench.config import stable_hash
from workbench.errors import StoreError
from workbench.paths import cache_root

log = logging.getLogger(__name__)

STORE_FORMAT = 1
_MANIFEST = "manifest.json"
_TMP_PREFIX = ".tmp-"




def make_key(parts: dict[str, Any]) -> str:
    """The store key: a hash of every part that changes the stored bytes."""
    return stable_hash({"store_format": STORE_FORMAT, **parts}, n=24)


_VERIFIED: dict[str, tuple[tuple[int, int], ...]] = {}
"""key -> (size, mtime_ns) of its files when last verified in this process."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


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
        self.root = Path(root) if root is not None else cache_root() / "store"
        self.root.mkdir(parents=True, exist_ok=True)

    # -- paths and locks
    def path(self, key: str) -> Path:
        """Directory of an entry."""
        return self.root / key[:2] / key

    def lock(self, key: str, timeout: float = -1) -> FileLock:
        """A cross-process lock for computing `key` (hold it while recording)."""
        d = self.root / ".locks"
        d.mkdir(exist_ok=True)
        return FileLock(str(d / f"{key}.lock"), timeout=timeout)

    # -- read
    def verify(self, key: str, *, full: bool = False) -> str | None:
        """None if the entry is complete and intact, else why not.

        Sizes are always checked; checksums are re-computed only when a file's size or
        mtime changed since this process last verified it (or with `full=True`), so
        reopening a view does not re-hash every array.
        """
        d = self.path(key)
        try:
            manifest = json.loads((d / _MANIFEST).read_text())
        except (OSError, json.JSONDecodeError) as e:
            return f"manifest unreadable ({e})"
        stamps = []
        for name, meta in manifest.get("arrays", {}).items():
            f = d / f"{name}.npy"
            if not f.is_file():
                return f"array {name} missing"
            st = f.stat()
            if st.st_size != meta["bytes"]:
                return f"array {name} has {st.st_size} bytes, manifest says {meta['bytes']}"
            stamps.append((st.st_size, st.st_mtime_ns))
        if not full and _VERIFIED.get(key) == tuple(stamps):
            return None
        for name, meta in manifest.get("arrays", {}).items():
            if _sha256(d / f"{name}.npy") != meta["sha256"]:
                _VERIFIED.pop(key, None)
                return f"array {name} checksum mismatch"
        _VERIFIED[key] = tuple(stamps)
        return None

    def get(self, key: str) -> Entry | None:
        """The entry for `key`, or None if absent. A damaged entry is removed and None returned."""
        d = self.path(key)
        if not d.is_dir():
            return None
        problem = self.verify(key)
        if problem:
            log.warning("store entry %s is damaged (%s); removing it so it is recomputed", key, problem)
            self.rm(key)
            return None
        return Entry(key, d, json.loads((d / _MANIFEST).read_text()))

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_dir() and (self.path(key) / _MANIFEST).is_file()

    # -- write
    def put(self, key: str, arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> Entry:
        """Write an entry atomically. If another process wrote the same key first, keep theirs."""
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=_TMP_PREFIX))
        try:
            meta_arrays = {}
            for name, arr in arrays.items():
                f = tmp / f"{name}.npy"
                np.save(f, np.ascontiguousarray(arr), allow_pickle=False)
                meta_arrays[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype),
                                     "bytes": f.stat().st_size, "sha256": _sha256(f)}
            full = {**manifest, "key": key, "store_format": STORE_FORMAT, "arrays": meta_arrays,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            (tmp / _MANIFEST).write_text(json.dumps(full, indent=1, default=str))
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            if final.exists():
                if self.verify(key) is None:
                    log.info("store entry %s was written by another process; keeping it", key)
                    shutil.rmtree(tmp)
                    return self.get(key)  # type: ignore[return-value]  # verified just above
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return Entry(key, final, full)

    # -- housekeeping
    def keys(self) -> Iterator[str]:
        """Keys of all entries (complete or not)."""
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for d in sorted(sub.iterdir()):
                    if d.is_dir() and not d.name.startswith(_TMP_PREFIX):
                        yield d.name

    def ls(self) -> list[dict[str, Any]]:
        """One row per entry: key, kind, model, corpus, unit, arrays' size, created."""
        rows = []
        for key in self.keys():
            try:
                m = json.loads((self.path(key) / _MANIFEST).read_text())
            except (OSError, json.JSONDecodeError):
                rows.append({"key": key, "status": "damaged"})
                continue
            rows.append({"key": key, "kind": m.get("kind", "?"), "model": m.get("model_name", "?"),
                         "corpus": m.get("corpus_name", "?"), "unit": m.get("unit", "?"),
                         "n": m.get("n_units"), "mb": round(sum(a["bytes"] for a in m["arrays"].values()) / 2**20, 2),
                         "created": m.get("created"), "status": "ok"})
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
        if d.exists():
            shutil.rmtree(d, ignore_errors=True)
            return True
        return False

    def gc(self, *, older_than_days: float | None = None) -> list[str]:
        """Remove crash leftovers (temporary dirs), damaged entries and, optionally, old ones."""
        removed = []
        for sub in self.root.iterdir():
            if not (sub.is_dir() and len(sub.name) == 2):
                continue
            for d in sub.iterdir():
                if d.name.startswith(_TMP_PREFIX):
                    shutil.rmtree(d, ignore_errors=True)
                    removed.append(d.name)
        cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
        for key in list(self.keys()):
            old = cutoff is not None and self.path(key).stat().st_mtime < cutoff
            if old or self.verify(key, full=True) is not None:
                self.rm(key)
                removed.append(key)
        return removed

"""The one home of file I/O that must not lose or corrupt data: hashing and atomic writes.

Every writer (the store, model conversions, job status files, exports, the fingerprint
memo) writes to a temporary file in the same folder and renames it into place, so a
reader sees the old or the new content, never a mix; every reader of a JSON file that a
crash or a user may have damaged gets None instead of a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def file_sha256(path: Path) -> str:
    """sha256 hex digest of one file's bytes (read in 4 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def file_identity(path: Path) -> list[int]:
    """[size, mtime_ns, inode, ctime_ns] of a file: changes whenever its bytes may have.

    Any rewrite changes ctime, which no user tool can set back, so memoising a hash on this
    identity never serves a stale hash.
    """
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` so that readers see the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    """`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """`atomic_write_text` of indented JSON (non-JSON values as their str)."""
    atomic_write_text(path, json.dumps(obj, indent=1, default=str, ensure_ascii=False) + "\n")


def read_json_or_none(path: Path) -> Any:
    """The JSON content of `path`, or None when it is missing, unreadable, not UTF-8 or not JSON."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None

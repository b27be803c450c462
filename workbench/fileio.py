"""The one home of file I/O that must not lose or corrupt data: hashing, atomic writes, JSON checks.

Every writer (the store, model conversions, job status files, exports, the fingerprint
memo) writes to a temporary file in the same folder and renames it into place, so a
reader sees the old or the new content, never a mix; every reader of a JSON file that a
crash or a user may have damaged gets None instead of a traceback.

Every write of a user output or of the cache goes through `atomic_write_*`, `ensure_dir`
or `writing`: an `OSError` there (a read-only file system, no space left, a file where a
folder must be, /dev/full) becomes one `WriteError` line naming the path and the remedy
(another `--out`, or `WORKBENCH_CACHE`), and the temporary file is removed.

`schema_problems` checks a JSON document (a manifest, a job's status) against a small
schema (`Obj`, `ListOf`, `OneOf`, Python types) and names each bad field by its path.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import CACHE_REMEDY, OUTPUT_REMEDY, WriteError, write_error
from workbench.paths import cache_location


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


# --------------------------------------------------------------------------- writes


def remedy_for(path: str | Path) -> str:
    """What to do when `path` cannot be written: `CACHE_REMEDY` inside the cache, else `OUTPUT_REMEDY`."""
    try:
        inside = Path(path).resolve().is_relative_to(cache_location().resolve())
    except (OSError, RuntimeError):
        inside = False
    return CACHE_REMEDY if inside else OUTPUT_REMEDY


@contextmanager
def writing(path: str | Path, remedy: str | None = None) -> Iterator[None]:
    """Any `OSError` in the block becomes one `WriteError` line naming `path` and the remedy.

    Args:
        path: what the block writes, as the user knows it (a folder, an output file).
        remedy: what to do (default `remedy_for(path)`).
    """
    try:
        yield
    except WriteError:
        raise
    except OSError as e:
        raise write_error(e, path, remedy or remedy_for(path)) from e


def ensure_dir(path: str | Path, remedy: str | None = None) -> Path:
    """`path` as a folder, created with its parents if needed (`WriteError` if it cannot be)."""
    p = Path(path)
    with writing(p, remedy):
        p.mkdir(parents=True, exist_ok=True)
    return p


def writable_dir(path: str | Path, remedy: str | None = None) -> Path:
    """`ensure_dir(path)`, then a file created in it and removed: fail before the work, not after.

    Raises:
        WriteError: the folder cannot be made, or nothing can be written in it.
    """
    p = ensure_dir(path, remedy)
    with writing(p, remedy):
        fd, probe = tempfile.mkstemp(dir=p, prefix=".workbench-probe-")
        os.close(fd)
        os.unlink(probe)
    return p


def atomic_write_files(files: Mapping[Path, bytes], remedy: str | None = None) -> list[Path]:
    """Write several files all or nothing: each to a temporary file beside it, then all renamed into place.

    Every file's bytes are flushed to the device before the first rename, so a write that
    fails (a full disk, a read-only folder) leaves every old file as it was. Only a rename
    failing between two others (the same folder: next to impossible) would leave the earlier
    ones renamed. On any failure every temporary file is removed.

    Returns:
        The paths written, in the given order.

    Raises:
        WriteError: a file cannot be written (one line: the path, why, the remedy).
    """
    temps: dict[Path, str] = {}
    try:
        for path, data in files.items():
            path = Path(path)
            ensure_dir(path.parent, remedy or remedy_for(path))
            with writing(path, remedy):
                fd, temps[path] = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
        for path, tmp in temps.items():
            with writing(path, remedy):
                os.replace(tmp, path)
    finally:
        for tmp in temps.values():
            if os.path.lexists(tmp):
                os.unlink(tmp)
    return [Path(p) for p in files]


def atomic_write_bytes(path: Path, data: bytes, remedy: str | None = None) -> None:
    """Write `data` so that readers see the old or the new content, never a mix (`atomic_write_files`).

    Raises:
        WriteError: the file cannot be written (one line: the path, why, the remedy).
    """
    atomic_write_files({Path(path): data}, remedy)


def atomic_write_text(path: Path, text: str, remedy: str | None = None) -> None:
    """`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), remedy)


def atomic_write_json(path: Path, obj: Any, remedy: str | None = None) -> None:
    """`atomic_write_text` of indented JSON (non-JSON values as their str)."""
    atomic_write_text(path, json.dumps(obj, indent=1, default=str, ensure_ascii=False) + "\n", remedy)


_SPECIAL = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def not_a_regular_file(path: str | Path) -> str | None:
    """Why an input file must not be read ("is a named pipe (FIFO), not a regular file"), or None.

    Reading a FIFO or a device can block forever or never end: inputs are regular files
    (links to them count). A missing path or a folder is None here: callers say so themselves.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = next((name for test, name in _SPECIAL if test(mode)), "a special file")
    return f"is {kind}, not a regular file"


def read_json_or_none(path: Path) -> Any:
    """The JSON content of `path`, or None when it is missing, unreadable, not UTF-8 or not JSON."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


# --------------------------------------------------------------------------- JSON schemas


@dataclass(frozen=True)
class Obj:
    """Schema of a JSON object: each named field's schema (absent fields are fine unless `required`).

    Fields the schema does not name are left to the reader (a figure spec refuses unknown
    keys itself, with the list of known ones).
    """

    fields: Mapping[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListOf:
    """Schema of a JSON list whose items all have schema `item`."""

    item: Any


@dataclass(frozen=True)
class OneOf:
    """Any of these schemas (e.g. a model as text or as an object)."""

    options: tuple[Any, ...]


_NAMES = {str: "text", int: "an integer", float: "a number", bool: "true or false", type(None): "null",
          dict: "an object", list: "a list"}


def json_is(value: Any, kind: type | tuple[type, ...]) -> bool:
    """Whether a JSON value has one of these types: true/false are not numbers, an integer is a number."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds) or (float in kinds and isinstance(value, int))


def _describe(schema: Any) -> str:
    if isinstance(schema, Obj):
        return "an object"
    if isinstance(schema, ListOf):
        return f"a list of {_describe(schema.item).removeprefix('an ').removeprefix('a ')}"
    if isinstance(schema, OneOf):
        return " or ".join(_describe(o) for o in schema.options)
    kinds = schema if isinstance(schema, tuple) else (schema,)
    return " or ".join(_NAMES.get(k, k.__name__) for k in kinds)


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_of_problems(value: Any, schema: OneOf, path: str) -> list[str]:
    if any(not schema_problems(value, o, path) for o in schema.options):
        return []
    fitting = [o for o in schema.options if isinstance(o, Obj | ListOf) and
               json_is(value, dict if isinstance(o, Obj) else list)]
    if len(fitting) == 1:  # the right container with bad contents: say what inside is bad
        return schema_problems(value, fitting[0], path)
    return [f"{path or '(top level)'}: expected {_describe(schema)}, got {_shown(value)}"]


def _obj_problems(value: dict[str, Any], schema: Obj, path: str) -> list[str]:
    out = [f"{path + '.' if path else ''}{k}: missing" for k in schema.required if k not in value]
    for k, sub in schema.fields.items():
        if k in value:
            out += schema_problems(value[k], sub, f"{path}.{k}" if path else k)
    return out


def schema_problems(value: Any, schema: Any, path: str = "") -> list[str]:
    """Every place where `value` (parsed JSON) does not fit `schema`, as ``"a.b[2]: expected …, got …"``.

    Args:
        value: the parsed document (or part of it).
        schema: an `Obj`, `ListOf`, `OneOf`, a Python type or a tuple of types (`None`
            allowed as ``type(None)``); `dict`/`list` accept any object/list.
        path: where `value` sits in the document (the prefix of every problem).
    """
    if isinstance(schema, OneOf):
        return _one_of_problems(value, schema, path)
    container = dict if isinstance(schema, Obj) else list if isinstance(schema, ListOf) else None
    if not json_is(value, container or schema):
        return [f"{path or '(top level)'}: expected {_describe(schema)}, got {_shown(value)}"]
    if isinstance(schema, Obj):
        return _obj_problems(value, schema, path)
    if isinstance(schema, ListOf):
        return [p for i, v in enumerate(value) for p in schema_problems(v, schema.item, f"{path}[{i}]")]
    return []

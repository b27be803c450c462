"""The one error tree of the workbench, and `user_message()` for the CLI and the UI alike.

Every failure a user can act on is a `WorkbenchError`: its message is one line that names
the input at fault (file, line, language, layer, key...) and, where it helps, what to do.
The CLI prints it after ``error:`` and exits 2; the UI shows it in an error box; anything
else is a bug and keeps its traceback (in the log, and on the terminal with ``-v``).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class WorkbenchError(Exception):
    """Base of every user-facing error: the message is what the user reads."""


class ModelError(WorkbenchError, RuntimeError):
    """A model cannot be found, prepared, verified or understood; the message says what to do."""


class ArtifactError(WorkbenchError, RuntimeError):
    """A fine-tune artifact is missing, incomplete, damaged or does not fit the base model."""


class CorpusError(WorkbenchError, ValueError):
    """Bad corpus input; the message names the file, the 1-based line and the language.

    Attributes:
        path: The file, directory or bundled resource at fault, if any.
        line: 1-based line number at fault, if any.
        lang: Language code at fault, if any.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 lang: str | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = None if path is None else str(path)
        self.line = line
        self.lang = lang


class RecordError(WorkbenchError, ValueError):
    """Bad recording input (unknown language, out-of-range layer, empty span, ...)."""


class StoreError(WorkbenchError, RuntimeError):
    """A store entry is missing or damaged (the message names its key and file)."""


class ParamError(WorkbenchError, ValueError):
    """An analysis, fine-tune or evaluation parameter is invalid (the message names it)."""


class ExportError(WorkbenchError, ValueError):
    """A figure spec, export option or output path is invalid."""


class OverwriteError(ExportError, FileExistsError):
    """An output file exists and overwriting was not asked for."""


class ChromiumNotFoundError(ExportError):
    """Static export needs Chromium and none was found."""


class WriteError(WorkbenchError, OSError):
    """A file or folder cannot be written (read-only, no space, not a folder, ...).

    An `OSError` too (with the original `errno` and the path at fault as `filename`), so
    code that treats a failed best-effort write as an `OSError` keeps doing so; its text is
    the one line `write_error` composed.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.errno = code  # OSError's attributes, set after a one-argument init
        self.filename = None if path is None else str(path)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class JobError(WorkbenchError, ValueError):
    """A job cannot be started, found or controlled."""


class EvalError(WorkbenchError, ValueError):
    """An evaluation cannot run (unknown task, offline hub task, pair not in the data, ...)."""


class Cancelled(Exception):  # noqa: N818 - a state, not an error: a job was asked to stop
    """A long computation (recording, evaluation, fine-tune) was cancelled by its user."""


OUTPUT_REMEDY = "choose another output location (--out)"
"""What to do when a user output (a figure, a table, a report) cannot be written."""
CACHE_REMEDY = "point WORKBENCH_CACHE at a writable folder"
"""What to do when the cache (store, jobs, converted models) cannot be written."""

#: errno values only a write gives (read-only, full, exists): the place is at fault, which the user can change
WRITE_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EEXIST})


def _not_a_folder(path: Path) -> Path | None:
    """The first of `path` and its parents that exists and is not a folder (a file, a device), if any."""
    for p in (path, *path.parents):
        if os.path.lexists(p) and not p.is_dir():
            return p
    return None


def _short_write(e: OSError) -> bool:
    """A short write as numpy reports it ("N requested and M written", no errno): the device filled up."""
    text = str(e)
    return e.errno is None and "requested and" in text and "written" in text


def write_error(e: OSError, path: str | Path, remedy: str = OUTPUT_REMEDY) -> WriteError:
    """The one line for an `OSError` while writing `path`: the path, why, and the remedy.

    Args:
        e: the error (read-only file system, no space, a file where a folder must be, ...).
        path: what was being written, as the user knows it (the output or cache location,
            never a temporary file).
        remedy: what to do (`OUTPUT_REMEDY`, `CACHE_REMEDY`).
    """
    code = errno.ENOSPC if _short_write(e) else e.errno
    if code == errno.EROFS:
        why = "the file system is read-only"
    elif code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        why, remedy = "no space left on the device", f"free some space or {remedy}"
    elif code in (errno.ENOTDIR, errno.EEXIST):
        blocker = _not_a_folder(Path(path))
        why = f"{blocker} exists and is not a folder" if blocker else "a part of the path is not a folder"
    elif code == errno.EISDIR:
        why = f"{e.filename or path} is a folder"
    elif code in (errno.EACCES, errno.EPERM):
        why = "permission denied"
    else:
        why = e.strerror or str(e) or type(e).__name__
    return WriteError(f"cannot write {path}: {why}; {remedy}", path=path, code=code)


def user_message(e: BaseException) -> str:
    """One line a user can act on, for any exception (the traceback belongs in the log).

    `WorkbenchError`s are already written for users; a few common system errors are
    translated; anything else is reported as unexpected, with its type.
    """
    if isinstance(e, WorkbenchError):
        return str(e) or type(e).__name__
    if isinstance(e, Cancelled):
        return "cancelled"
    if type(e).__name__ == "OutOfMemoryError" or isinstance(e, MemoryError):
        return "out of memory: lower the max length or batch tokens, limit the units, or choose a smaller model"
    if isinstance(e, OSError) and (e.errno in WRITE_ERRNOS or _short_write(e)):  # a write outside `fileio`
        return str(write_error(e, e.filename or "a file", "choose a writable location"))
    if isinstance(e, PermissionError):
        return f"permission denied: {e.filename or e}: choose a writable location"
    if isinstance(e, FileNotFoundError):
        return f"file not found: {e.filename or e}"
    if isinstance(e, IsADirectoryError | NotADirectoryError):
        return f"not a file or not a directory: {e.filename or e}"
    if isinstance(e, OSError) and e.errno is not None:
        return f"{e.strerror or e}: {e.filename or ''}".rstrip(": ")
    return f"unexpected {type(e).__name__}: {e} (run with -v for the traceback)"


def is_user_error(e: BaseException) -> bool:
    """True for errors whose message is enough (no traceback needed): the CLI exits 2."""
    return (isinstance(e, WorkbenchError | PermissionError | FileNotFoundError | IsADirectoryError | NotADirectoryError)
            or (isinstance(e, OSError) and (e.errno in WRITE_ERRNOS or _short_write(e))))

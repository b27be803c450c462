"""The one error tree of the workbench, and `user_message()` for the CLI and the UI alike.

Every failure a user can act on is a `WorkbenchError`: its message is one line that names
the input at fault (file, line, language, layer, key...) and, where it helps, what to do.
The CLI prints it after ``error:`` and exits 2; the UI shows it in an error box; anything
else is a bug and keeps its traceback (in the log, and on the terminal with ``-v``).
"""

from __future__ import annotations

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


class JobError(WorkbenchError, ValueError):
    """A job cannot be started, found or controlled."""


class EvalError(WorkbenchError, ValueError):
    """An evaluation cannot run (unknown task, offline hub task, pair not in the data, ...)."""


class Cancelled(Exception):  # noqa: N818 - a state, not an error: a job was asked to stop
    """A long computation (recording, evaluation, fine-tune) was cancelled by its user."""


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
    return isinstance(e, WorkbenchError | PermissionError | FileNotFoundError | IsADirectoryError | NotADirectoryError)

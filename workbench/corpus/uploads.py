"""Corpus files uploaded in the browser: saved content-addressed under the cache, validated with the readers."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from workbench.corpus.parallel import ParallelCorpus
from workbench.corpus.readers import read_jsonl, read_tsv
from workbench.errors import CorpusError
from workbench.paths import cache_root

__all__ = ["UPLOAD_SUFFIXES", "is_upload", "read_upload", "save_upload"]

UPLOAD_SUFFIXES = (".tsv", ".tab", ".jsonl", ".ndjson")


def save_upload(name: str, data: bytes) -> Path:
    """Write an uploaded corpus file under the cache (content-addressed, so it stays valid).

    Raises:
        CorpusError: for a file type the readers do not take.
    """
    safe = Path(name).name or "upload.tsv"
    if Path(safe).suffix.lower() not in UPLOAD_SUFFIXES:
        raise CorpusError(f"unsupported file type {Path(safe).suffix or '(none)'!r}: upload a .tsv "
                          "(header row of language codes) or a .jsonl file (one object per line)", path=safe)
    path = cache_root() / "uploads" / hashlib.sha256(data).hexdigest()[:16] / safe
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def read_upload(path: Path, display_name: str | None = None) -> ParallelCorpus:
    """Parse and validate an uploaded corpus with `read_tsv`/`read_jsonl`.

    Raises:
        CorpusError: with the reader's message (file, line, language), the cache path
            replaced by `display_name`.
    """
    reader = read_jsonl if path.suffix.lower() in (".jsonl", ".ndjson") else read_tsv
    try:
        return reader(path)
    except CorpusError as e:
        if display_name is None:
            raise
        raise CorpusError(str(e).replace(str(path), display_name)) from e


def is_upload(source: str) -> bool:
    """True if a corpus source is a file saved by `save_upload`."""
    try:
        return Path(source).resolve().is_relative_to((cache_root() / "uploads").resolve())
    except OSError:
        return False

"""Fingerprints and integrity of model files: the weights' identity in every store key.

A fingerprint is a content hash of the weight and tokenizer files. Hashing a model reads
all of its bytes, so results are memoised on each file's *identity* (size, mtime_ns,
inode, ctime_ns): a rewrite of any byte changes ctime, which no user tool can set back,
so a changed file is always re-hashed. Converted bundled models record a checksum per
file at conversion; `verify_recorded` compares against it (cheaply when every identity is
unchanged, fully on request) and refuses a damaged file with a message naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from workbench.errors import ModelError
from workbench.fileio import atomic_write_text, file_identity, file_sha256, read_json_or_none
from workbench.paths import cache_root

log = logging.getLogger(__name__)

META = "workbench-model.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".model", ".txt", ".gguf")






def hash_files(files: list[Path], root: Path | None = None) -> str:
    """sha256 over (relative name, bytes) of the given files, in sorted order (20 hex digits)."""
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(str(f.relative_to(root) if root else f.name).encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()[:20]


def model_files(d: Path) -> list[Path]:
    """The files of a model directory that make up its identity (weights, configs, tokenizer)."""
    return sorted(p for p in d.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES and p.name != META
                  and not any(part.startswith(".") for part in p.relative_to(d).parts))






def _memo_path() -> Path:
    return cache_root() / "fingerprints.json"


def directory_fingerprint(d: Path) -> str:
    """Content fingerprint of a model directory, memoised on the identity of each of its files.

    A damaged memo file (garbage, wrong types) is ignored and rewritten, never trusted.
    """
    files = model_files(d)
    stat_key = hashlib.sha256(
        json.dumps([(str(f.resolve()), *file_identity(f)) for f in files]).encode()).hexdigest()
    memo = read_json_or_none(_memo_path())
    if not isinstance(memo, dict):
        memo = {}
    fp = memo.get(stat_key)
    if not isinstance(fp, str):
        fp = hash_files(files, d)
        memo = {k: v for k, v in memo.items() if isinstance(v, str)}
        memo[stat_key] = fp
        try:
            atomic_write_text(_memo_path(), json.dumps(memo, indent=1))
        except OSError as e:  # a read-only cache only costs the memo
            log.warning("could not write the fingerprint memo: %s", e)
    return fp


def tensor_fingerprint(model: Any, tokenizer: Any = None) -> str:
    """Fingerprint of the parameters held in memory (for models built in code, e.g. tiny models)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.detach().to("cpu").contiguous().view(-1).view(dtype=torch.uint8).numpy().tobytes())
    if tokenizer is not None:
        h.update(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode())
    return h.hexdigest()[:20]


# --------------------------------------------------------------------------- converted models


def write_meta(d: Path, **fields: Any) -> dict[str, Any]:
    """Record a converted directory's fingerprint and per-file checksums in its META file."""
    files = model_files(d)
    meta = {**fields, "fingerprint": hash_files(files, d),
            "files": {str(f.relative_to(d)): {"sha256": file_sha256(f), "identity": file_identity(f)}
                      for f in files}}
    atomic_write_text(d / META, json.dumps(meta, indent=1))
    return meta


def read_meta(d: Path) -> dict[str, Any]:
    """The META record of a converted directory.

    Raises:
        ModelError: missing or damaged record (naming the file and the repair).
    """
    meta = read_json_or_none(d / META)
    if not isinstance(meta, dict) or not isinstance(meta.get("fingerprint"), str):
        raise ModelError(f"{d / META} is missing or damaged; repair with `workbench models prepare --force "
                         f"{d.name}`")
    return meta


def damaged(d: Path, name: str, rel: str, why: str) -> ModelError:
    """The error for a damaged model file, naming it and the repair."""
    return ModelError(f"model file {d / rel} {why}: the model {name!r} is damaged; repair it with "
                      f"`workbench models prepare --force {name}`")


def verify_recorded(d: Path, name: str, *, full: bool = False) -> dict[str, Any]:
    """Check a converted directory against the checksums recorded at conversion.

    Cheap when no file's identity changed (stat only); a changed file is re-hashed, and a
    file whose bytes still match gets its new identity recorded. `full=True` re-hashes
    everything. A directory converted before checksums were recorded is checked against its
    fingerprint once and then upgraded.

    Returns:
        The META record.

    Raises:
        ModelError: a file is missing, unreadable or no longer matches its checksum.
    """
    meta = read_meta(d)
    files = meta.get("files")
    if not isinstance(files, dict):  # converted by an older version: check the whole-directory hash
        if hash_files(model_files(d), d) != meta["fingerprint"]:
            raise damaged(d, name, ".", "no longer matches the fingerprint recorded at conversion")
        return write_meta(d, **{k: v for k, v in meta.items() if k not in ("fingerprint", "files")})
    changed = False
    for rel, rec in files.items():
        path = d / rel
        if not path.is_file():
            raise damaged(d, name, rel, "is missing")
        ident = file_identity(path)
        if not full and isinstance(rec, dict) and rec.get("identity") == ident:
            continue
        try:
            sha = file_sha256(path)
        except OSError as e:
            raise damaged(d, name, rel, f"cannot be read ({e.strerror or e})") from e
        if not isinstance(rec, dict) or sha != rec.get("sha256"):
            raise damaged(d, name, rel, "no longer matches the checksum recorded at conversion")
        rec["identity"] = ident
        changed = True
    if changed:
        try:
            atomic_write_text(d / META, json.dumps(meta, indent=1))
        except OSError as e:
            log.warning("could not record new file identities in %s: %s", d / META, e)
    return meta


def identities_unchanged(d: Path) -> bool:
    """True when every recorded file of a converted directory has its recorded identity (stat only)."""
    meta = read_json_or_none(d / META)
    files = meta.get("files") if isinstance(meta, dict) else None
    if not isinstance(files, dict):
        return False
    try:
        return all(isinstance(r, dict) and r.get("identity") == file_identity(d / rel) for rel, r in files.items())
    except OSError:
        return False

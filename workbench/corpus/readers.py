"""Corpus readers: TSV, JSONL, a FLORES-200 directory and Hugging Face dataset rows.

Every reader validates its input once and raises `CorpusError` naming the file, the
1-based line and the language at fault. Text is NFC-normalised and stripped on read.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from workbench.corpus.languages import Language, _code_or_error, _make_language, normalize_lang
from workbench.corpus.parallel import ParallelCorpus
from workbench.errors import CorpusError
from workbench.fileio import not_a_regular_file

__all__ = ["FLORES_SPLITS", "read_flores_dir", "read_jsonl", "read_tsv"]

FLORES_SPLITS = ("dev", "devtest")
_HF_SPLITS = ("test", "devtest", "dev", "validation", "train")


def _read_bytes(path: str | Path) -> bytes:
    """A corpus file's bytes; only a regular file is read (a FIFO or a device could block forever)."""
    if not os.path.exists(path):
        raise CorpusError("no such file", path=path)
    if os.path.isdir(path):
        raise CorpusError("is a directory; expected a .tsv or .jsonl file", path=path)
    problem = not_a_regular_file(path)
    if problem:
        raise CorpusError(f"{problem}; give a .tsv or .jsonl file", path=path)
    return Path(path).read_bytes()


def _decode(data: bytes, label: str) -> list[tuple[int, str]]:
    """UTF-8 bytes -> (1-based line number, line) pairs, trailing blank lines dropped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        raise CorpusError(
            f"not valid UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start} "
            f"(column {exc.start - line_start + 1}); save the file as UTF-8",
            path=label,
            line=data.count(b"\n", 0, exc.start) + 1,
        ) from None
    lines = text.removeprefix("\ufeff").split("\n")  # not splitlines(): U+2028 may be text
    lines = [line.removesuffix("\r") for line in lines]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise CorpusError("file is empty", path=label)
    return list(enumerate(lines, start=1))


def _clean(text: str, *, path: str, line: int, lang: str) -> str:
    out = unicodedata.normalize("NFC", text).strip()
    if not out:
        raise CorpusError(f"empty text for language {lang!r}", path=path, line=line, lang=lang)
    return out


def _check_id(uid: str, seen: dict[str, int], *, path: str, line: int) -> None:
    if not uid:
        raise CorpusError("empty id", path=path, line=line)
    if uid in seen:
        raise CorpusError(f"duplicate id {uid!r} (first on line {seen[uid]})", path=path, line=line)
    seen[uid] = line


def _header_languages(
    raw: Sequence[str], *, path: str, line: int | None, where: Sequence[str]
) -> dict[str, Language]:
    """Normalised code -> `Language` for raw header codes; unknown or duplicates raise."""
    langs: dict[str, Language] = {}
    for cell, place in zip(raw, where):
        code = _code_or_error(cell, path=path, line=line, where=place)
        if code in langs:
            first = where[list(langs).index(code)]
            raise CorpusError(
                f"duplicate language {code!r}: {first} and {place}", path=path, line=line, lang=code
            )
        langs[code] = _make_language(cell)
    return langs


_Parsed = tuple[list[str], dict[str, list[str]], dict[str, Language]]


def _parse_tsv(data: bytes, label: str) -> _Parsed:
    """(ids, code -> texts, code -> Language) of TSV bytes; ``label`` names the file."""
    lines = _decode(data, label)
    header = lines[0][1].split("\t")
    has_id = header[0].strip().lower() == "id"
    raw = header[1:] if has_id else header
    if not raw:
        raise CorpusError("header has no language columns", path=label, line=1)
    first_col = 2 if has_id else 1
    where = [f"column {first_col + k} {cell!r}" for k, cell in enumerate(raw)]
    langs = _header_languages(raw, path=label, line=1, where=where)
    codes = list(langs)
    if len(lines) == 1:
        raise CorpusError("no rows after the header", path=label, line=1)
    ids: list[str] = []
    cols: dict[str, list[str]] = {code: [] for code in codes}
    seen: dict[str, int] = {}
    for lineno, line in lines[1:]:
        cells = line.split("\t")
        if len(cells) != len(header):
            raise _column_count_error(cells, header, codes, path=label, line=lineno)
        uid = cells[0].strip() if has_id else str(len(ids))
        _check_id(uid, seen, path=label, line=lineno)
        ids.append(uid)
        for code, cell in zip(codes, cells[1:] if has_id else cells):
            cols[code].append(_clean(cell, path=label, line=lineno, lang=code))
    return ids, cols, langs


def _column_count_error(
    cells: Sequence[str], header: Sequence[str], codes: Sequence[str], *, path: str, line: int
) -> CorpusError:
    shift = len(header) - len(codes)
    if len(cells) < len(header):
        lang = codes[len(cells) - shift] if len(cells) >= shift else codes[0]
        detail = f"no text for language {lang!r}"
    else:
        lang, detail = codes[-1], f"{len(cells) - len(header)} extra tab(s)"
    return CorpusError(
        f"expected {len(header)} tab-separated columns ({', '.join(header)}), found "
        f"{len(cells)}: {detail}",
        path=path,
        line=line,
        lang=lang,
    )


def read_tsv(path: str | Path) -> ParallelCorpus:
    """Read a tab-separated parallel corpus.

    The header row holds language codes, one column per language, with an optional
    leading ``id`` column (a *first* column named ``id`` is the id column, not Indonesian:
    write ``ind`` there). No quoting: a text may not contain a tab. UTF-8.

    Args:
        path: The ``.tsv`` file.

    Returns:
        The corpus, named after the file; ids ``"0", "1", ...`` when there is no id column.

    Raises:
        CorpusError: Missing, empty or non-UTF-8 file, unknown or duplicate language,
            wrong column count, empty text or duplicate id.
    """
    label = str(path)
    ids, cols, langs = _parse_tsv(_read_bytes(path), label)
    return ParallelCorpus(Path(path).name, ids, cols, languages=langs, source=label)


def _jsonl_record(line: str, *, path: str, lineno: int) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CorpusError(
            f"invalid JSON: {exc.msg} (column {exc.colno})", path=path, line=lineno
        ) from None
    if not isinstance(obj, dict):
        raise CorpusError(
            f"expected a JSON object, got {type(obj).__name__}", path=path, line=lineno
        )
    return obj


def _jsonl_row(
    obj: dict[str, Any], codes: dict[str, str], *, path: str, lineno: int
) -> dict[str, str]:
    """Texts of one JSONL record by language; ``codes`` maps raw keys to languages."""
    extra = [k for k in obj if k != "id" and k not in codes]
    if extra:
        raise CorpusError(
            f"unexpected key {extra[0]!r}: the first record has {', '.join(codes)}",
            path=path, line=lineno, lang=extra[0],
        )  # fmt: skip
    row = {}
    for key, code in codes.items():
        if key not in obj:
            raise CorpusError(
                f"no text for language {code!r} (key {key!r})", path=path, line=lineno, lang=code
            )
        if not isinstance(obj[key], str):
            raise CorpusError(
                f"text for language {code!r} must be a string, got {type(obj[key]).__name__}",
                path=path, line=lineno, lang=code,
            )  # fmt: skip
        row[code] = _clean(obj[key], path=path, line=lineno, lang=code)
    return row


def _parse_jsonl(data: bytes, label: str) -> _Parsed:
    """(ids, code -> texts, code -> Language) of JSONL bytes; ``label`` names the file."""
    records = [
        (n, _jsonl_record(s, path=label, lineno=n)) for n, s in _decode(data, label) if s.strip()
    ]
    first_line, first = records[0]
    raw = [k for k in first if k != "id"]
    if not raw:
        raise CorpusError("the first record has no language keys", path=label, line=first_line)
    where = [f"key {k!r}" for k in raw]
    langs = _header_languages(raw, path=label, line=first_line, where=where)
    codes = dict(zip(raw, langs))
    has_id = "id" in first
    ids: list[str] = []
    cols: dict[str, list[str]] = {code: [] for code in codes.values()}
    seen: dict[str, int] = {}
    for lineno, obj in records:
        if ("id" in obj) != has_id:
            state = "has" if has_id else "has no"
            raise CorpusError(
                f"the first record {state} an 'id'; this one differs", path=label, line=lineno
            )
        uid = str(obj["id"]).strip() if has_id else str(len(ids))
        _check_id(uid, seen, path=label, line=lineno)
        ids.append(uid)
        for code, text in _jsonl_row(obj, codes, path=label, lineno=lineno).items():
            cols[code].append(text)
    return ids, cols, langs


def read_jsonl(path: str | Path) -> ParallelCorpus:
    """Read a JSON-lines parallel corpus: ``{"id": ..., "en": ..., "sw": ...}`` per line.

    ``id`` is optional (then ids are ``"0", "1", ...``); every record must have the
    languages of the first one. Blank lines are skipped. UTF-8.

    Args:
        path: The ``.jsonl`` file.

    Returns:
        The corpus, named after the file.

    Raises:
        CorpusError: Missing, empty or non-UTF-8 file, invalid JSON, unknown, duplicate,
            missing or extra language, non-string or empty text, duplicate id.
    """
    label = str(path)
    ids, cols, langs = _parse_jsonl(_read_bytes(path), label)
    return ParallelCorpus(Path(path).name, ids, cols, languages=langs, source=label)


def _flores_files(root: Path, split: str) -> tuple[dict[str, Path], dict[str, Language]]:
    """Code -> ``<split>/<code>.<split>`` file of a FLORES-200 directory, and the languages."""
    if split not in FLORES_SPLITS:
        raise CorpusError(f"split must be one of {FLORES_SPLITS}, got {split!r}", path=root)
    if not root.is_dir():
        raise CorpusError(
            "no such directory" if not root.exists() else "not a directory", path=root
        )
    folder = root if root.name == split and not (root / split).is_dir() else root / split
    files = sorted(folder.glob(f"*.{split}"))
    if not files:
        raise CorpusError(
            f"no '*.{split}' files (expected {split}/eng_Latn.{split}, ...)", path=folder
        )
    where = [f"file {f.name}" for f in files]
    langs = _header_languages([f.stem for f in files], path=str(folder), line=None, where=where)
    return dict(zip(langs, files)), langs


def _read_flores_file(path: Path, code: str, expected: int | None) -> list[str]:
    label = str(path)
    lines = _decode(_read_bytes(path), label)
    if expected is not None and len(lines) != expected:
        raise CorpusError(
            f"{len(lines)} lines but the split's first file has {expected}: every language "
            f"must have one line per sentence (language {code!r})",
            path=label, line=min(len(lines), expected) + 1, lang=code,
        )  # fmt: skip
    return [_clean(text, path=label, line=n, lang=code) for n, text in lines]


def read_flores_dir(
    path: str | Path, split: str = "dev", *, langs: Sequence[str] | None = None
) -> ParallelCorpus:
    """Read a FLORES-200 directory: ``<split>/<lang>.<split>``, one sentence per line.

    Args:
        path: The dataset directory (holding ``dev/`` and ``devtest/``), or a split
            directory itself.
        split: ``"dev"`` or ``"devtest"``.
        langs: Read only these languages (any accepted codes); None reads all.

    Returns:
        The corpus, named ``"<dir>:<split>"``; ids are the 1-based sentence numbers
        (FLORES's own ``id``).

    Raises:
        CorpusError: Missing directory, no files, unknown or duplicate language, files of
            different line counts, empty line, non-UTF-8 bytes.
    """
    root = Path(path)
    files, languages = _flores_files(root, split)
    if langs is not None:
        probe = ParallelCorpus(root.name, [], {c: [] for c in files}, languages=languages)
        files = {code: files[code] for code in probe.check_langs(langs)}
    cols: dict[str, list[str]] = {}
    for code, file in files.items():
        cols[code] = _read_flores_file(file, code, len(next(iter(cols.values()))) if cols else None)
    n = len(next(iter(cols.values())))
    name = f"{(root.parent if root.name == split else root).name}:{split}"
    ids = [str(i) for i in range(1, n + 1)]
    return ParallelCorpus(
        name, ids, cols, languages={c: languages[c] for c in cols}, source=str(root)
    )


# ---------------------------------------------------------------------- Hugging Face rows


def _hf_columns(first: Mapping[str, Any]) -> dict[str, str]:
    """Column -> raw language code for a row of a Hub dataset (``sentence_eng_Latn``)."""
    cols = {}
    for key, value in first.items():
        raw = key.removeprefix("sentence_")
        # Lower-case codes with string values only: "URL" and "has_image" look like codes.
        if not isinstance(value, str) or not re.fullmatch(r"[a-z]{2,3}([-_]\w+)?", raw):
            continue
        with contextlib.suppress(CorpusError):
            normalize_lang(raw)
            cols[key] = raw
    return cols


def _hf_rows(rows: Iterable[Mapping[str, Any]]) -> list[tuple[Any, Mapping[str, Any]]]:
    """(id, columns) per row: its ``translation`` dict, or the row without ``id``."""
    out = []
    for row in rows:
        if isinstance(row.get("translation"), Mapping):
            out.append((row.get("id"), row["translation"]))  # an "id" key there is Indonesian
        else:
            out.append((row.get("id"), {k: v for k, v in row.items() if k != "id"}))
    return out


def _corpus_from_rows(rows: Iterable[Mapping[str, Any]], *, name: str) -> ParallelCorpus:
    """Rows of a Hub dataset -> corpus; "line" in errors is the 1-based row number."""
    table = _hf_rows(rows)
    cols = _hf_columns(table[0][1]) if table else {}
    if not cols:
        raise CorpusError(
            "no rows with language columns (e.g. 'en', 'sentence_eng_Latn')", path=name
        )
    where = [f"column {key!r}" for key in cols]
    langs = _header_languages(list(cols.values()), path=name, line=1, where=where)
    ids: list[str] = []
    texts: dict[str, list[str]] = {code: [] for code in langs}
    seen: dict[str, int] = {}
    for row_no, (uid, row) in enumerate(table, start=1):
        ids.append(str(row_no - 1 if uid is None else uid))
        _check_id(ids[-1], seen, path=name, line=row_no)
        for key, code in zip(cols, langs):
            if not isinstance(row.get(key), str):
                raise CorpusError(
                    f"no text for language {code!r}", path=name, line=row_no, lang=code
                )
            texts[code].append(_clean(row[key], path=name, line=row_no, lang=code))
    return ParallelCorpus(name, ids, texts, languages=langs, source=name)


def _load_hf(source: str) -> ParallelCorpus:
    """``hf:<dataset>[:<config>][@<split>]`` via the `datasets` package."""
    spec, _, split = source.removeprefix("hf:").partition("@")
    dataset, _, config = spec.partition(":")
    try:
        import datasets  # optional: only this path needs it
    except ImportError:
        raise CorpusError(
            f"{source!r} needs the Hugging Face `datasets` package and network access: "
            "pip install datasets"
        ) from None
    try:
        loaded = datasets.load_dataset(dataset, config or None, split=split or None)
    except Exception as exc:  # the hub raises many types; the message says what failed
        raise CorpusError(f"could not load {dataset!r} from the Hugging Face Hub: {exc}") from exc
    if not split:
        split = next((s for s in _HF_SPLITS if s in loaded), next(iter(loaded)))
        loaded = loaded[split]
    return _corpus_from_rows(loaded, name=source)
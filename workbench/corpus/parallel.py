"""`ParallelCorpus`: aligned units in several languages, subsets and the content hash.

``corpus.text("sw", i)`` translates ``corpus.text("en", i)``. `ParallelCorpus.content_hash`
is part of every store key, so its bytes (``_HASH_VERSION`` and the length-prefixed feed)
must not change without bumping the version.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from workbench.corpus.languages import Language, _make_language, _unknown_lang_error, normalize_lang
from workbench.errors import CorpusError

__all__ = ["ParallelCorpus"]

_HASH_VERSION = b"workbench.corpus.content/v1\n"


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

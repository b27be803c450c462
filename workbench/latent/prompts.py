"""Translation prompts for latent-language curves: Wendler et al.'s word prompt and a sentence variant.

**Word level** (`word_prompts`, preset `WENDLER_2024`), exactly the format of
epfl-dlab/llm-latent-language (``Translation.ipynb``, ``sample``): ``n_shots`` solved lines
then the query, read at the last position::

    Français: "nuage" - 中文: "云"
    Français: "sac" - 中文: "包"
    Français: "bouche" - 中文: "口"
    Français: "sol" - 中文: "土"
    Français: "fleur" - 中文: "

Their language names (`WENDLER_NAMES`: fr de ru en zh) are used, extended with
Butanium/llm-lang-agnostic's (es ko ja it nl et fi hi) and our ``sw`` = ``Kiswahili``; any
other code falls back to its English name. Their ``k = 5`` rows are 4 shots + the query.
Shots are drawn as their ``df.sample(k - 1)`` draws them after ``np.random.seed(42)``: one
``numpy.random.RandomState(seed)`` for the whole list, one ``choice(n - 1, n_shots,
replace=False)`` per candidate in order, over the other candidates (positions in the list
without the query), in the order drawn. Candidates are `items.candidate_concepts` (the
concepts that have the three words and pass the substring filter), so concepts dropped
later for their token sets still serve as shots, as in their code. Given their rows in their
order (their ``clean.csv`` files turned into one TSV), the prompts are theirs.

**Sentence level** (`sentence_prompts`, our own variant; METHODS §9): the same line format
over a parallel corpus with English (the bundled ``tatoeba:<lang>`` pairs), whole sentences
instead of words; the answer word of each language is the first word of its sentence
(`first_word`), the English one read for ``P(en)``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from workbench.config import Spec, spec_field
from workbench.corpus import ParallelCorpus, language_name
from workbench.errors import ParamError
from workbench.latent.items import LatentItems, Translations, candidate_concepts, latent_items
from workbench.latent.words import WordList

__all__ = ["PROMPT_NAMES", "WENDLER_2024", "WENDLER_NAMES", "PromptItem", "SentencePromptSpec",
           "WordPromptSpec", "first_word", "prompt_line", "prompt_name", "sentence_latent_items",
           "sentence_prompts", "word_latent_items", "word_prompts"]

WENDLER_NAMES = MappingProxyType({"fr": "Français", "de": "Deutsch", "ru": "Русский", "en": "English", "zh": "中文"})
"""The authors' ``lang2name``."""
PROMPT_NAMES = MappingProxyType({
    **WENDLER_NAMES, "es": "Español", "ko": "한국어", "ja": "日本語", "it": "Italiano", "nl": "Nederlands",
    "et": "Eesti", "fi": "Suomi", "hi": "हिन्दी", "sw": "Kiswahili",
})
"""Language names in prompts: Wendler et al.'s, Dumas et al.'s additions, and ``sw``."""
_CONNECTORS = frozenset("'’-‐")  # inside a word: l'eau, don't, Jean-Luc


def prompt_name(lang: str) -> str:
    """The name a prompt calls ``lang`` (its endonym where the authors give one, else its English name)."""
    return PROMPT_NAMES.get(lang) or language_name(lang)


def prompt_line(src_name: str, src: str, tgt_name: str, tgt: str | None = None) -> str:
    """One line of the format, ``Français: "fleur" - 中文: "花"`` and a newline; the open query if ``tgt`` is None."""
    head = f'{src_name}: "{src}" - {tgt_name}: "'
    return head if tgt is None else f'{head}{tgt}"\n'


@dataclass(frozen=True)
class PromptItem:
    """One prompt and its answer words.

    Attributes:
        concept: concept id (word list) or unit id (corpus).
        prompt: the prompt text, ending in the open quote of the answer.
        words: language -> answer word (source, target and English).
        shots: the concept ids of the solved lines, in prompt order.
    """

    concept: str
    prompt: str
    words: Mapping[str, str]
    shots: tuple[str, ...]


def _check_int(name: str, v: Any, lo: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise ParamError(f"{name} must be an integer ≥ {lo}; got {v!r}")


@dataclass(frozen=True)
class WordPromptSpec(Spec):
    """Few-shot word-translation prompts (Wendler et al. 2024)."""

    n_shots: int = spec_field("solved lines before the query (the authors: k = 5 rows = 4 shots)", 4)
    seed: int = spec_field("seed of the shot sampling (the authors: np.random.seed(42))", 42)
    drop_substring: bool = spec_field(
        "drop concepts whose English word is inside the target word (the authors' filter)", True)

    def __post_init__(self) -> None:
        _check_int("n_shots", self.n_shots, 0)
        _check_int("seed", self.seed, 0)


WENDLER_2024 = WordPromptSpec()
"""The authors' settings: 4 shots, seed 42, substring filter on."""


@dataclass(frozen=True)
class SentencePromptSpec(Spec):
    """Few-shot sentence-translation prompts (answer = the first word of the reference)."""

    n_shots: int = spec_field("solved sentence pairs before the query", 2)
    seed: int = spec_field("seed of the shot sampling and of the subsample", 0)
    limit: int | None = spec_field("use at most this many units (a seeded subsample, kept in corpus order); None: all",
                              None)

    def __post_init__(self) -> None:
        _check_int("n_shots", self.n_shots, 0)
        _check_int("seed", self.seed, 0)
        if self.limit is not None:
            _check_int("limit", self.limit, 1)


def _few_shot(
    rows: Sequence[tuple[str, str, str]], n_shots: int, seed: int, names: tuple[str, str]
) -> list[tuple[str, tuple[str, ...]]]:
    """(prompt, shot ids) per row of (id, source text, target text), shots drawn as the authors draw them."""
    if len(rows) < n_shots + 1:
        raise ParamError(f"{len(rows)} candidate(s) cannot give {n_shots} shots plus a query; "
                         "lower n_shots or give more data")
    rs = np.random.RandomState(seed)  # the legacy generator: the authors' np.random.seed + df.sample
    out = []
    for i, (_cid, src, _tgt) in enumerate(rows):
        others = [*rows[:i], *rows[i + 1:]]
        picks = rs.choice(len(others), size=n_shots, replace=False)
        shots = [others[int(p)] for p in picks]
        text = "".join(prompt_line(names[0], s[1], names[1], s[2]) for s in shots)
        out.append((text + prompt_line(names[0], src, names[1]), tuple(s[0] for s in shots)))
    return out


def _as_translations(words: Translations | WordList) -> Translations:
    return words.translations() if isinstance(words, WordList) else words


def word_prompts(
    translations: Translations | WordList, *, source: str, target: str, english: str = "en",
    spec: WordPromptSpec = WENDLER_2024,
) -> tuple[PromptItem, ...]:
    """Wendler et al.'s few-shot word-translation prompt for every candidate concept.

    Args:
        translations: concept id -> language -> word, or a `WordList`.
        source: the query word's language.
        target: the answer's language.
        english: the latent language (its word is kept with each item).
        spec: shots, seed, substring filter (`WENDLER_2024` by default).

    Returns:
        One `PromptItem` per candidate (`items.candidate_concepts`), in concept order.
    """
    translations = _as_translations(translations)
    kept, _ = candidate_concepts(translations, source=source, target=target, english=english,
                                 drop_substring=spec.drop_substring)
    rows = [(c, translations[c][source].strip(), translations[c][target].strip()) for c in kept]
    built = _few_shot(rows, spec.n_shots, spec.seed, (prompt_name(source), prompt_name(target)))
    langs = (source, target, english)
    return tuple(PromptItem(c, text, MappingProxyType({lang: translations[c][lang].strip() for lang in langs}), shots)
                 for c, (text, shots) in zip(kept, built))


def word_latent_items(
    translations: Translations | WordList, *, source: str, target: str, tokenizer: Any, english: str = "en",
    spec: WordPromptSpec = WENDLER_2024, byte_fallback: str = "non-latin",
) -> LatentItems:
    """Word-level latent-language items with Wendler et al.'s prompts (prompts, then token-set drops)."""
    translations = _as_translations(translations)
    prompts = word_prompts(translations, source=source, target=target, english=english, spec=spec)
    return latent_items(translations, source=source, target=target, tokenizer=tokenizer, english=english,
                        prompts={p.concept: p.prompt for p in prompts}, byte_fallback=byte_fallback,
                        drop_substring=spec.drop_substring)


def first_word(text: str) -> str:
    """The first word of a sentence: leading punctuation skipped, up to a space or a punctuation mark.

    Apostrophes and hyphens inside a word are kept (``L'union``, ``Jean-Luc``). Scripts
    written without spaces (zh, ja, th) give the run up to the first punctuation mark
    (``我在学西班牙语。`` -> ``我在学西班牙语``): every token that starts it starts the answer.
    Empty when the text has no letter or digit.
    """
    t = unicodedata.normalize("NFC", text).strip()
    i = 0
    while i < len(t) and not (t[i].isalnum() or unicodedata.category(t[i]).startswith("M")):
        i += 1
    j = i
    while j < len(t) and not t[j].isspace() and (
        t[j] in _CONNECTORS or not unicodedata.category(t[j]).startswith(("P", "S"))
    ):
        j += 1
    return t[i:j].rstrip("".join(_CONNECTORS))


def _selected_words(
    corpus: ParallelCorpus, langs: Sequence[str], spec: SentencePromptSpec
) -> dict[str, dict[str, str]]:
    """Unit id -> language -> first word, for the units `spec` selects (an empty dict: a language has none)."""
    idx = list(range(len(corpus)))
    if spec.limit is not None and spec.limit < len(idx):
        idx = sorted(np.random.RandomState(spec.seed).choice(len(idx), size=spec.limit, replace=False).tolist())
    out = {}
    for i in idx:
        w = {lang: first_word(corpus.text(lang, i)) for lang in langs}
        out[corpus.ids[i]] = w if all(w.values()) else {}
    return out


def sentence_prompts(
    corpus: ParallelCorpus, *, source: str, target: str, english: str = "en",
    spec: SentencePromptSpec | None = None,
) -> tuple[PromptItem, ...]:
    """Few-shot sentence-translation prompts over a parallel corpus with English (e.g. ``tatoeba:sw``).

    Args:
        corpus: a corpus holding ``source``, ``target`` and ``english`` (the bundled
            ``tatoeba:<lang>`` corpora pair English with one language, so one of the two
            must be English there).
        source: the query sentence's language.
        target: the answer's language.
        english: the latent language.
        spec: shots, seed, subsample (`SentencePromptSpec()` by default).

    Returns:
        One `PromptItem` per selected unit (``concept`` = unit id), in corpus order, whose
        ``words`` are the first words of the unit's sentences; units without a first word in
        one language are skipped (`sentence_latent_items` counts them as ``missing``).
    """
    spec = spec or SentencePromptSpec()
    langs = corpus.check_langs([source, target, english])
    words = {uid: w for uid, w in _selected_words(corpus, langs, spec).items() if w}
    pos = {uid: i for i, uid in enumerate(corpus.ids)}
    rows = [(uid, corpus.text(source, pos[uid]), corpus.text(target, pos[uid])) for uid in words]
    built = _few_shot(rows, spec.n_shots, spec.seed, (prompt_name(source), prompt_name(target)))
    return tuple(PromptItem(r[0], text, MappingProxyType(words[r[0]]), shots) for r, (text, shots) in zip(rows, built))


def sentence_latent_items(
    corpus: ParallelCorpus, *, source: str, target: str, tokenizer: Any, english: str = "en",
    spec: SentencePromptSpec | None = None, byte_fallback: str = "non-latin",
) -> LatentItems:
    """Sentence-level latent-language items (answer words = first words; no substring filter).

    Args:
        corpus: see `sentence_prompts`.
        source: the query sentence's language.
        target: the answer's language.
        tokenizer: a Hugging Face tokenizer or a `tokens.TokenIndex`.
        english: the latent language.
        spec: shots, seed, subsample.
        byte_fallback: token-set byte rule (`tokens.BYTE_FALLBACK`).

    Returns:
        The kept items with their prompts, and the dropped units counted per reason.
    """
    spec = spec or SentencePromptSpec()
    langs = corpus.check_langs([source, target, english])
    translations = _selected_words(corpus, langs, spec)
    prompts = sentence_prompts(corpus, source=source, target=target, english=english, spec=spec)
    return latent_items(translations, source=source, target=target, tokenizer=tokenizer, english=english,
                        prompts={p.concept: p.prompt for p in prompts}, byte_fallback=byte_fallback,
                        drop_substring=False)

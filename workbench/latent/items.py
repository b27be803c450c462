"""Latent-language items: a concept's words with their three token sets, and what was dropped.

An item is one query of a latent-language curve (METHODS §9): the concept's word in the
target, English and source languages, each with its token set (`tokens.token_set`). The
lens reads ``P_l(role) = Σ_{t ∈ T(word)} p_l(t)`` for the roles of `ROLES`, in that order.

Items are dropped, and counted per reason (never silently), as the authors' code drops them
(epfl-dlab/llm-latent-language ``Translation.ipynb``):

- ``missing``: the concept has no word in one of the three languages (their inner merge);
- ``english_in_target``: the English word is contained in the target word, case-folded
  (their "delete all rows where en is contained in" filter; ``drop_substring``); skipped
  when the target is English;
- ``empty``: the target or the English token set is empty;
- ``overlap``: the English and target token sets intersect (skipped when the target is
  English: the sets are then the same word's).

An item counts under its first failing reason, in the order above (theirs: the merge, the
substring filter, then one check of both sets). The source set is not checked: their
translation notebook never reads it; a source word with no token only gives ``P(source) = 0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from workbench.errors import ParamError
from workbench.latent.tokens import token_index

__all__ = ["DROP_REASONS", "ROLES", "LatentItem", "LatentItems", "candidate_concepts", "latent_items"]

ROLES = ("target", "en", "source")
"""Order of the three token sets (and of the last axis of the lens masses)."""
DROP_REASONS = ("missing", "english_in_target", "empty", "overlap")

Translations = Mapping[str, Mapping[str, str]]
"""Concept id -> language code -> word."""


@dataclass(frozen=True)
class LatentItem:
    """One concept's query.

    Attributes:
        concept: concept id (a word-list id or a sentence id).
        words: role (`ROLES`) -> word.
        langs: role -> language code.
        token_sets: role -> sorted unique token ids.
        prompt: the prompt text, if built with one (else empty).
    """

    concept: str
    words: Mapping[str, str]
    langs: Mapping[str, str]
    token_sets: Mapping[str, tuple[int, ...]]
    prompt: str = ""

    def __post_init__(self) -> None:
        for name in ("words", "langs", "token_sets"):
            if tuple(getattr(self, name)) != ROLES:
                raise ParamError(f"LatentItem.{name} must have the roles {ROLES} in order")


@dataclass(frozen=True)
class LatentItems:
    """The kept items of one (source, target) pair and the dropped ones, counted.

    Attributes:
        source: source language code.
        target: target language code.
        english: the latent language (``"en"``).
        items: the kept items, in concept order.
        n_candidates: concepts looked at (kept + dropped).
        dropped: reason (`DROP_REASONS`) -> number of concepts dropped for it.
        dropped_concepts: reason -> the concept ids dropped for it.
        byte_fallback: the token-set byte rule used (`tokens.BYTE_FALLBACK`).
    """

    source: str
    target: str
    english: str
    items: tuple[LatentItem, ...]
    n_candidates: int
    dropped: Mapping[str, int]
    dropped_concepts: Mapping[str, tuple[str, ...]] = field(repr=False)
    byte_fallback: str = "non-latin"

    def __post_init__(self) -> None:
        if len(self.items) + sum(self.dropped.values()) != self.n_candidates:
            raise ParamError("LatentItems: kept + dropped must equal the candidates")

    def __len__(self) -> int:
        return len(self.items)

    def token_sets(self) -> list[tuple[tuple[int, ...], ...]]:
        """Per item, its token sets in `ROLES` order (what the lens sums over)."""
        return [tuple(it.token_sets[r] for r in ROLES) for it in self.items]

    def named_token_sets(self) -> dict[str, tuple[int, ...]]:
        """``"<role>:<concept>"`` -> token ids of every item: the named sets a lens readout sums."""
        return {f"{r}:{it.concept}": it.token_sets[r] for it in self.items for r in ROLES}

    def gather_masses(self, set_mass: Mapping[str, np.ndarray], rows: Sequence[int] | None = None) -> np.ndarray:
        """Each item's masses on its own three sets, from a readout's per-set arrays.

        Args:
            set_mass: ``"<role>:<concept>"`` (`named_token_sets`) -> ``(n_reads, n_layers)``
                probability mass of that set at every read.
            rows: the read of each item (default: read ``i`` is item ``i``, one read per
                prompt, prompts in item order).

        Returns:
            ``(n_items, n_layers, 3)``, roles in `ROLES` order: the input of
            ``analysis.latent_curves.latent_curves``.
        """
        rows = list(range(len(self.items))) if rows is None else list(rows)
        if len(rows) != len(self.items):
            raise ParamError(f"rows has {len(rows)} reads for {len(self.items)} items")
        try:
            out = [[np.asarray(set_mass[f"{r}:{it.concept}"])[row] for r in ROLES] for it, row in zip(self.items, rows)]
        except KeyError as exc:
            raise ParamError(f"no mass for token set {exc.args[0]!r}; read with named_token_sets()") from None
        return np.stack([np.stack(m, axis=-1) for m in out]) if out else np.zeros((0, 0, len(ROLES)))

    def summary(self) -> str:
        """One line: how many were kept and why the others were dropped."""
        why = ", ".join(f"{n} {r}" for r, n in self.dropped.items() if n)
        return (f"{self.source}→{self.target}: kept {len(self.items)} of {self.n_candidates}"
                + (f" (dropped {why})" if why else ""))


def _check_langs(source: str, target: str, english: str) -> None:
    if source == target:
        raise ParamError(f"source and target are the same language ({source!r})")
    for name, v in (("source", source), ("target", target), ("english", english)):
        if not isinstance(v, str) or not v:
            raise ParamError(f"{name} must be a language code; got {v!r}")


def candidate_concepts(
    translations: Translations, *, source: str, target: str, english: str = "en", drop_substring: bool = True
) -> tuple[list[str], dict[str, list[str]]]:
    """Concepts that have all three words (and pass the substring filter), and those that do not.

    The one home of the ``missing`` and ``english_in_target`` rules: prompt builders draw
    their shots from exactly these candidates, as the authors' code does.

    Returns:
        (candidate concept ids in order, {"missing": [...], "english_in_target": [...]}).
    """
    _check_langs(source, target, english)
    kept: list[str] = []
    dropped: dict[str, list[str]] = {"missing": [], "english_in_target": []}
    for concept, row in translations.items():
        words = [str(row.get(lang) or "").strip() for lang in (target, english, source)]
        if not all(words):
            dropped["missing"].append(concept)
        elif drop_substring and target != english and words[1].casefold() in words[0].casefold():
            dropped["english_in_target"].append(concept)
        else:
            kept.append(concept)
    return kept, dropped


def latent_items(
    translations: Translations,
    *,
    source: str,
    target: str,
    tokenizer: Any,
    english: str = "en",
    prompts: Mapping[str, str] | None = None,
    byte_fallback: str = "non-latin",
    drop_substring: bool = True,
) -> LatentItems:
    """Build the items of a (source, target) pair with their token sets; drop and count the unusable.

    Args:
        translations: concept id -> language -> word (e.g. `WordList.translations()`).
        source: language of the prompt's query word.
        target: language the model is asked to answer in.
        tokenizer: a Hugging Face tokenizer or a `tokens.TokenIndex`.
        english: the latent language whose token set is read (default ``"en"``).
        prompts: concept id -> prompt text, attached to each kept item (every kept concept
            must have one).
        byte_fallback: token-set byte rule (`tokens.BYTE_FALLBACK`).
        drop_substring: apply the authors' "English word inside the target word" filter.

    Returns:
        The kept items and the per-reason counts of the dropped ones.

    Raises:
        ParamError: equal source and target, or a kept concept without a prompt.
    """
    index = token_index(tokenizer)
    kept, pre = candidate_concepts(translations, source=source, target=target, english=english,
                                   drop_substring=drop_substring)
    dropped: dict[str, list[str]] = {**pre, "empty": [], "overlap": []}
    langs = {"target": target, "en": english, "source": source}
    items = []
    for concept in kept:
        words = {role: str(translations[concept][lang]).strip() for role, lang in langs.items()}
        sets = {role: index.token_set(w, byte_fallback=byte_fallback) for role, w in words.items()}
        if not sets["target"] or not sets["en"]:
            dropped["empty"].append(concept)
            continue
        if target != english and set(sets["target"]) & set(sets["en"]):
            dropped["overlap"].append(concept)
            continue
        prompt = ""
        if prompts is not None:
            if concept not in prompts:
                raise ParamError(f"no prompt for concept {concept!r}")
            prompt = prompts[concept]
        items.append(LatentItem(concept, MappingProxyType(words), MappingProxyType(dict(langs)),
                                MappingProxyType(sets), prompt))
    return LatentItems(
        source, target, english, tuple(items), len(translations),
        MappingProxyType({r: len(dropped[r]) for r in DROP_REASONS}),
        MappingProxyType({r: tuple(dropped[r]) for r in DROP_REASONS}),
        byte_fallback,
    )

"""Pairs of parallel word prompts for cross-lingual activation patching (Dumas et al. 2024; METHODS §10).

A pair joins a *source* run, concept C1 asked in language L1 (``source``), and a *target*
run, another concept C2 asked in L2 (``target``); both are Wendler et al.'s few-shot word
prompts (`prompts.word_prompts`: ``Deutsch: "chien" - Français: "``). The patch copies the
source run's state into the target run; what is read is the target's next token, through
three token sets (`tokens.token_set`, METHODS §9), in `PATCH_ROLES` order:

- ``c1_in_target``: C1's word in L2 (the concept moved, the language kept),
- ``c2_in_target``: C2's word in L2 (the target's own answer),
- ``c1_in_source``: C1's word in L1 (the source's own answer).

As the authors (Butanium/llm-lang-agnostic, ``patchscope_shifted_translation`` and
``obj_patch_translation``): the input language of each prompt differs from its output
language, C1 ≠ C2, and a pair is dropped when two of its three sets share a token (their
``has_no_collisions``). Several source input languages give the *mean-over-languages*
variant: one source prompt of C1 per input language, all answering in L1, whose states are
averaged before the patch (their ``object_patching``: ``hiddens.mean(dim=1)``).

Pairing (ours, deterministic): the kept concepts in a seeded order, C2 = the next concept
in that order (a cyclic shift, so every concept is a source once and a target once). The
authors shuffle the product of all concept pairs and take the first 200 without
collisions; with a 50-word list that product is what a shift samples from, without repeats.

Position ``object`` (their ObjPatch): each source prompt is cut after its query word
(``'"'.join(prompt.split('"')[:-2])``, theirs) and patched into the target's last token of
its own query word, found as their ``get_obj_id`` finds it (`object_offset`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from workbench.errors import ParamError
from workbench.latent.prompts import WENDLER_2024, WordPromptSpec, word_prompts
from workbench.latent.tokens import token_index
from workbench.latent.words import WordList

__all__ = ["PATCH_DROPS", "PATCH_ROLES", "UNPATCHED", "VARIANTS", "PatchItem", "PatchItems", "cut_at_object",
           "object_offset", "patch_items"]

PATCH_ROLES = ("c1_in_target", "c2_in_target", "c1_in_source")
"""Order of the three token sets of a pair (and of the last axis of the patching masses)."""
PATCH_DROPS = ("empty", "collision")
VARIANTS = ("single", "from")
"""``single``: the state at layer l only; ``from``: at every layer ≥ l, each with the source's state at that layer
(light here: the CLI's help path and the pages read them without torch; `lenses.PatchSpec` checks them)."""
UNPATCHED = "unpatched"
"""The layer label of the target's own, unpatched run (the last row of a patching readout)."""


@dataclass(frozen=True)
class PatchItem:
    """One patching pair.

    Attributes:
        source_concept: C1 (a word-list concept id).
        target_concept: C2.
        source_prompts: the source run's prompts of C1, one per source input language, all
            answering in L1 (more than one: the mean-over-languages variant).
        target_prompt: the target run's prompt of C2, answering in L2.
        words: role (`PATCH_ROLES`) -> word.
        token_sets: role -> sorted unique token ids.
    """

    source_concept: str
    target_concept: str
    source_prompts: tuple[str, ...]
    target_prompt: str
    words: Mapping[str, str]
    token_sets: Mapping[str, tuple[int, ...]]

    @property
    def name(self) -> str:
        """``"C1>C2"``: names the pair's token sets in a readout."""
        return f"{self.source_concept}>{self.target_concept}"


@dataclass(frozen=True)
class PatchItems:
    """The kept pairs of one (source languages → L1, target language → L2) setting, and the dropped ones, counted."""

    source: str
    target: str
    source_from: tuple[str, ...]
    target_from: str
    items: tuple[PatchItem, ...]
    n_candidates: int
    dropped: Mapping[str, int]

    def __post_init__(self) -> None:
        if len(self.items) + sum(self.dropped.values()) != self.n_candidates:
            raise ParamError("PatchItems: kept + dropped must equal the candidates")

    def __len__(self) -> int:
        return len(self.items)

    def named_token_sets(self) -> dict[str, tuple[int, ...]]:
        """``"<role>:<C1>><C2>"`` -> token ids, for every pair: the sets a patching readout sums."""
        return {f"{r}:{it.name}": it.token_sets[r] for it in self.items for r in PATCH_ROLES}

    def summary(self) -> str:
        """One line: the setting, how many pairs were kept and why the others were dropped."""
        why = ", ".join(f"{n} {r}" for r, n in self.dropped.items() if n) or "none"
        return (f"{'+'.join(self.source_from)}→{self.source} into {self.target_from}→{self.target}: kept "
                f"{len(self.items)} of {self.n_candidates} pairs (dropped: {why})")


def cut_at_object(prompt: str) -> str:
    """A word prompt cut right after its query word (the authors' ``'"'.join(p.split('"')[:-2])``)."""
    parts = prompt.split('"')
    if len(parts) < 3:
        raise ParamError(f"not a word-translation prompt (fewer than two quotes): {prompt[-40:]!r}")
    return '"'.join(parts[:-2])


def object_offset(tokenizer: Any, prompt: str) -> int | None:
    """The query word's last token, as a negative offset from the prompt's end (the authors' ``get_obj_id``).

    Returns None when the prompt does not tokenise as its cut prefix followed by the rest
    (the authors raise there; we drop the pair).
    """
    start = cut_at_object(prompt)
    end = prompt[len(start):]
    a = list(tokenizer(start, add_special_tokens=False)["input_ids"])
    b = list(tokenizer(end, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    return -len(b) - 1 if a + b == full and a else None


def _check(source: str, target: str, source_from: Sequence[str], target_from: str, words: WordList) -> None:
    if not source_from:
        raise ParamError("patching needs at least one source input language")
    if len(set(source_from)) != len(source_from):
        raise ParamError(f"source input languages repeat: {list(source_from)}")
    for lang in (source, target, target_from, *source_from):
        words.check_lang(lang)
    if source in source_from:
        raise ParamError(f"a source prompt would translate {source!r} into itself; choose other source inputs")
    if target_from == target:
        raise ParamError(f"the target prompt would translate {target!r} into itself; choose another target input")


def patch_items(
    words: WordList, *, source: str, target: str, source_from: Sequence[str], target_from: str, tokenizer: Any,
    spec: WordPromptSpec = WENDLER_2024, byte_fallback: str = "non-latin", seed: int = 0,
) -> PatchItems:
    """The patching pairs of a word list: prompts, three token sets per pair, drops counted.

    Args:
        words: the word list (every concept has every language).
        source: L1, the source prompts' answer language.
        target: L2, the target prompt's answer language.
        source_from: the source prompts' input languages (one: the plain variant; several:
            the mean over languages).
        target_from: the target prompt's input language.
        tokenizer: a Hugging Face tokenizer (or a `tokens.TokenIndex`).
        spec: shots and seed of the prompts (`WENDLER_2024`; the substring filter is not
            used: no English set is read here).
        byte_fallback: token-set byte rule (`tokens.BYTE_FALLBACK`).
        seed: seed of the pairing order.

    Returns:
        The kept pairs (source concept order = the seeded order) and the drop counts.

    Raises:
        ParamError: an unknown language, a prompt into its own language, fewer than two concepts.
    """
    _check(source, target, source_from, target_from, words)
    table = words.translations()
    spec = WordPromptSpec(n_shots=spec.n_shots, seed=spec.seed, drop_substring=False)

    def prompts(inp: str, out: str) -> dict[str, str]:
        # `english` only picks which words the prompt items carry; nothing is filtered on it
        return {p.concept: p.prompt for p in word_prompts(table, source=inp, target=out, english=out, spec=spec)}

    src = [prompts(x, source) for x in source_from]
    tgt = prompts(target_from, target)
    concepts = [c for c in words.concepts if c in tgt and all(c in s for s in src)]
    if len(concepts) < 2:
        raise ParamError(f"word list {words.name}: {len(concepts)} usable concept(s); patching needs two")
    order = [concepts[i] for i in np.random.default_rng(seed).permutation(len(concepts))]
    index = token_index(tokenizer)
    dropped = {r: 0 for r in PATCH_DROPS}
    items = []
    for i, c1 in enumerate(order):
        c2 = order[(i + 1) % len(order)]
        w = {"c1_in_target": table[c1][target].strip(), "c2_in_target": table[c2][target].strip(),
             "c1_in_source": table[c1][source].strip()}
        sets = {r: index.token_set(x, byte_fallback=byte_fallback) for r, x in w.items()}
        if not all(sets.values()):
            dropped["empty"] += 1
            continue
        roles = list(PATCH_ROLES) if source != target else ["c1_in_target", "c2_in_target"]
        if any(set(sets[a]) & set(sets[b]) for j, a in enumerate(roles) for b in roles[j + 1:]):
            dropped["collision"] += 1
            continue
        items.append(PatchItem(c1, c2, tuple(s[c1] for s in src), tgt[c2], MappingProxyType(w),
                               MappingProxyType(sets)))
    return PatchItems(source, target, tuple(source_from), target_from, tuple(items), len(order),
                      MappingProxyType(dropped))

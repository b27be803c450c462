"""Inputs of the lens views: word lists, token sets of words, translation prompts, latent-language items.

Pure data and prompt side of METHODS §9 (the model side, which decodes each layer and sums
the probability of these token sets, is in ``workbench.tracing``). One job per module
(imports go down this list only):

- `tokens`: `token_set(word, tokenizer)` and the per-tokenizer `TokenIndex` it uses.
- `words`: `WordList`, `load_words` (the bundled ``basic-nouns`` list, a user's TSV).
- `items`: `latent_items` (three token sets per concept; drops counted per reason).
- `prompts`: Wendler et al.'s word prompt (`WENDLER_2024`), the Tatoeba sentence variant.
- `patching`: pairs of word prompts for cross-lingual activation patching (`patch_items`, METHODS §10).

Why a package of its own: token sets take a tokenizer and prompts read corpora, so they are
not `analysis` (arrays in, arrays out); the curves over the lens's masses are, and live in
``workbench.analysis.latent_curves``.
"""

from workbench.latent.items import DROP_REASONS, ROLES, LatentItem, LatentItems, latent_items
from workbench.latent.prompts import (
    WENDLER_2024,
    PromptItem,
    SentencePromptSpec,
    WordPromptSpec,
    first_word,
    sentence_latent_items,
    sentence_prompts,
    word_latent_items,
    word_prompts,
)
from workbench.latent.tokens import TokenIndex, token_index, token_set
from workbench.latent.words import WordList, load_words

__all__ = [
    "DROP_REASONS",
    "ROLES",
    "WENDLER_2024",
    "LatentItem",
    "LatentItems",
    "PromptItem",
    "SentencePromptSpec",
    "TokenIndex",
    "WordList",
    "WordPromptSpec",
    "first_word",
    "latent_items",
    "load_words",
    "sentence_latent_items",
    "sentence_prompts",
    "token_index",
    "token_set",
    "word_latent_items",
    "word_prompts",
]

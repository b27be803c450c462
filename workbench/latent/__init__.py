"""Inputs of the lens views: token sets of words and word lists (more modules follow).

- `tokens`: `token_set(word, tokenizer)` and the per-tokenizer `TokenIndex` it uses.
- `words`: `WordList`, `load_words` (the bundled ``basic-nouns`` list, a user's TSV).
"""

from workbench.latent.tokens import TokenIndex, token_index, token_set
from workbench.latent.words import WordList, load_words

__all__ = ["TokenIndex", "WordList", "load_words", "token_index", "token_set"]

"""Inputs of the lens views: token sets of words (more modules follow).

- `tokens`: `token_set(word, tokenizer)` and the per-tokenizer `TokenIndex` it uses.
"""

from workbench.latent.tokens import TokenIndex, token_index, token_set

__all__ = ["TokenIndex", "token_index", "token_set"]

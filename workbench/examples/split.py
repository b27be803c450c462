"""The seeded train/held-out split of a parallel corpus that fine-tunes and evaluations share.

`DataSpec` says where the parallel data comes from and how it is split and tokenised;
`build_split` turns a corpus into parallel tuples (one text per language, in the requested
order) with a held-out part, seeded and independent of any training seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.config import SILP_TEMPLATE, Spec, spec_field, stable_hash
from workbench.corpus import load_corpus
from workbench.errors import ParamError

__all__ = ["DataSpec", "ParallelSplit", "build_split"]


@dataclass(frozen=True)
class DataSpec(Spec):
    """Where the parallel data comes from and how it is split and tokenised."""

    source: str = spec_field("corpus: tatoeba:sw, udhr, a TSV/JSONL file or a FLORES dir", "tatoeba:sw")
    heldout: float = spec_field("fraction of units held out for evaluation (at least 1 unit)", 0.1)
    limit: int | None = spec_field("use at most N training units (after holding out); None = all", None)
    split_seed: int = spec_field("seed of the train/held-out split and of the unit order", 0)
    max_length: int = spec_field("truncate prompt+target to this many tokens", 128)
    template: str = spec_field("translation prompt with {src_name} {tgt_name} {src_text} {tgt_text}; "
                          "the loss is on {tgt_text} (+EOS) only, so it must come last",
                          SILP_TEMPLATE)

    def __post_init__(self) -> None:
        if not 0 < self.heldout < 1:
            raise ParamError(f"DataSpec: heldout must be a fraction in (0, 1), got {self.heldout}")
        if self.limit is not None and self.limit < 1:
            raise ParamError(f"DataSpec: limit must be >= 1 or None, got {self.limit}")
        if self.max_length < 8:
            raise ParamError(f"DataSpec: max_length must be >= 8, got {self.max_length}")
        for key in ("{src_text}", "{tgt_text}"):
            if key not in self.template:
                raise ParamError(f"DataSpec: template must contain {key}")
        if not self.template.rstrip().endswith("{tgt_text}"):
            raise ParamError("DataSpec: template must end with {tgt_text} (the target is what is learned)")


@dataclass(frozen=True)
class ParallelSplit:
    """Parallel units split into train and held-out parts.

    `train[i]` / `heldout[i]` is a tuple of texts, one per language of `langs`.
    """

    langs: tuple[str, ...]
    names: dict[str, str]
    """language code -> display name (for the prompt template)."""
    train: list[tuple[str, ...]]
    heldout: list[tuple[str, ...]]
    data_hash: str
    """Hash of the corpus content of `langs` and the DataSpec: what the manifest records."""
    spec: DataSpec = field(default_factory=DataSpec)

    def __post_init__(self) -> None:
        n = len(self.langs)
        for part in (self.train, self.heldout):
            if any(len(u) != n for u in part):
                raise ValueError(f"every unit must have {n} texts (one per language of {self.langs})")

    def column(self, lang: str, part: str = "train") -> list[str]:
        """The texts of one language in `part` ('train' or 'heldout')."""
        i = self.langs.index(lang)
        return [u[i] for u in (self.train if part == "train" else self.heldout)]

    def pairs(self, src: str, tgt: str, part: str = "train") -> list[tuple[str, str]]:
        """(src text, tgt text) pairs of `part`."""
        return list(zip(self.column(src, part), self.column(tgt, part)))


def build_split(spec: DataSpec, langs: Sequence[str], corpus: Any = None) -> ParallelSplit:
    """Load the corpus of `spec` and split its units, seeded by `spec.split_seed`.

    Args:
        spec: corpus source, held-out fraction, limit, split seed.
        langs: language codes to keep, in this order (checked against the corpus).
        corpus: an already loaded `ParallelCorpus` (else `load_corpus(spec.source)`).

    Returns:
        The split: a seeded permutation of the units; the first `max(1, round(heldout·n))`
        are held out, the rest (at most `limit`) are for training.

    Raises:
        CorpusError: unknown corpus or language (the message lists what exists).
        ValueError: too few units or an empty text.
    """
    corpus = corpus if corpus is not None else load_corpus(spec.source)
    codes = corpus.check_langs(list(langs))
    columns = [corpus.texts(c) for c in codes]
    n = len(corpus)
    if n < 2:
        raise ValueError(f"corpus {corpus.name} has {n} unit(s); a fine-tune needs at least 2")
    for c, col in zip(codes, columns):
        empty = [i for i, t in enumerate(col) if not t.strip()]
        if empty:
            raise ValueError(f"corpus {corpus.name}: {len(empty)} empty text(s) in {c!r} "
                             f"(first: unit {corpus.ids[empty[0]]!r})")
    order = np.random.RandomState(spec.split_seed).permutation(n)
    n_held = min(n - 1, max(1, round(spec.heldout * n)))
    units = [tuple(col[i] for col in columns) for i in order]
    train = units[n_held:]
    if spec.limit is not None:
        train = train[: spec.limit]
    data_hash = stable_hash({"corpus": corpus.content_hash(codes), "langs": codes, "spec": spec.to_dict()})
    names = {c: corpus.languages[c].name for c in codes}
    return ParallelSplit(tuple(codes), names, train, units[:n_held], data_hash, spec)

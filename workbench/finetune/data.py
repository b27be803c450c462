"""Fine-tune data: a seeded train/held-out split of a parallel corpus, tokenisation, batches.

- `build_split` turns a corpus into parallel tuples (one text per language, in the
  requested order) with a held-out part, seeded and independent of the training seed.
- `encode_translation` tokenises a translation prompt and its target; the labels are
  -100 on the prompt and on padding, so the loss is on the target tokens (+EOS) only.
- `encode_texts` tokenises plain sentences (alignment, LENS, perplexity) with a mask of the
  tokens that count (real, non-special).
- `collate` pads explicitly on the right (`padding_side` is never left to a default).
- `epoch_batches` gives the deterministic data order: a seeded permutation per epoch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.config import stable_hash
from workbench.corpus import load_corpus
from workbench.finetune import distributed
from workbench.finetune.specs import DataSpec

__all__ = [
    "Example",
    "ParallelSplit",
    "build_split",
    "collate",
    "encode_texts",
    "encode_translation",
    "epoch_batches",
    "prompt_and_target",
    "translation_examples",
]

IGNORE = -100
"""Label value that the loss ignores (PyTorch's cross-entropy default)."""


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


# --------------------------------------------------------------------------- tokenisation


@dataclass(frozen=True)
class Example:
    """One tokenised sequence (unpadded).

    `labels[t]` is the token to learn at position t (-100 = no loss); `count[t]` marks the
    tokens that count for pooling (real, non-special).
    """

    ids: tuple[int, ...]
    labels: tuple[int, ...]
    count: tuple[bool, ...]

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.labels) == len(self.count)) or not self.ids:
            raise ValueError("Example: ids, labels and count must have one equal, non-zero length")


def prompt_and_target(template: str, names: dict[str, str], src: str, tgt: str,
                      src_text: str, tgt_text: str) -> tuple[str, str]:
    """Split a formatted translation template into (prompt, target text)."""
    head = template[: template.rindex("{tgt_text}")]
    values = {"src_name": names.get(src, src), "tgt_name": names.get(tgt, tgt), "src_text": src_text}
    return head.format(**values), tgt_text


def encode_translation(tokenizer: Any, prompt: str, target: str, max_length: int) -> Example:
    """Tokenise prompt (with the tokenizer's special prefix, e.g. BOS) + target + EOS.

    The prompt and target are tokenised separately (as LLaMA-Factory does), so the
    boundary never merges into one token. Labels are -100 on the prompt. Over
    `max_length`: the target keeps at least `max_length // 2` tokens (or all of them) and
    the prompt is cut on the right.
    """
    p = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    t = list(tokenizer(target, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None:
        t.append(int(tokenizer.eos_token_id))
    if len(p) + len(t) > max_length:
        t = t[: max(max_length - len(p), max_length // 2)]
        p = p[: max_length - len(t)]
    special = set(tokenizer.all_special_ids)
    ids = p + t
    return Example(tuple(ids), tuple([IGNORE] * len(p) + t), tuple(i not in special for i in ids))


def translation_examples(tokenizer: Any, split: ParallelSplit, directions: Sequence[tuple[str, str]],
                         part: str = "train") -> list[Example]:
    """Examples for each unit of `part` in each direction (unit-major order)."""
    spec = split.spec
    out = []
    for unit in (split.train if part == "train" else split.heldout):
        for s, t in directions:
            si, ti = split.langs.index(s), split.langs.index(t)
            prompt, target = prompt_and_target(spec.template, split.names, s, t, unit[si], unit[ti])
            out.append(encode_translation(tokenizer, prompt, target, spec.max_length))
    return out


def encode_texts(tokenizer: Any, texts: Sequence[str], max_length: int, *,
                 chat_template: bool = False) -> list[Example]:
    """Tokenise plain sentences; labels are the ids (for perplexity), count excludes specials.

    With `chat_template` (and a tokenizer that has one) each text becomes a user turn
    followed by the generation prompt, as LENS feeds its probing samples.
    """
    special = set(tokenizer.all_special_ids)
    use_chat = chat_template and getattr(tokenizer, "chat_template", None)
    out = []
    for text in texts:
        if use_chat:
            wrapped = tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                                    tokenize=False, add_generation_prompt=True)
            ids = list(tokenizer(wrapped, add_special_tokens=False)["input_ids"])
        else:
            ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
        # keep the end of a chat-templated prompt (LENS reads the last token), the start otherwise
        ids = ids[-max_length:] if use_chat else ids[:max_length]
        count = tuple(i not in special for i in ids)
        if not any(count):
            raise ValueError(f"text {text[:40]!r} has no real tokens")
        out.append(Example(tuple(ids), tuple(ids), count))
    return out


def collate(examples: Sequence[Example], pad_id: int, device: Any = "cpu") -> dict[str, Any]:
    """Right-padded tensors: input_ids, attention_mask, labels (-100 on padding), count.

    Inside a training step of N > 1 processes, only this rank's shard of `examples`
    (`distributed.shard_examples`; all of them otherwise).
    """
    examples = distributed.shard_examples(examples)
    width = max(len(e.ids) for e in examples)
    fill = [width - len(e.ids) for e in examples]
    pad = int(pad_id)
    ids = torch.tensor([[*e.ids, *[pad] * f] for e, f in zip(examples, fill)], dtype=torch.long)
    attn = torch.tensor([[1] * len(e.ids) + [0] * f for e, f in zip(examples, fill)], dtype=torch.long)
    labels = torch.tensor([[*e.labels, *[IGNORE] * f] for e, f in zip(examples, fill)], dtype=torch.long)
    count = torch.tensor([[*e.count, *[False] * f] for e, f in zip(examples, fill)], dtype=torch.bool)
    return {"input_ids": ids.to(device), "attention_mask": attn.to(device),
            "labels": labels.to(device), "count": count.to(device)}


def epoch_batches(n: int, batch_size: int, epochs: float, seed: int) -> Iterator[list[int]]:
    """Indices of each batch: epoch e uses a permutation seeded by `(seed, e)` (PCG64).

    Fractional epochs stop after `ceil(epochs · ceil(n / batch_size))` batches. The last
    batch of an epoch may be short (never empty).
    """
    if n < 1:
        raise ValueError("no training examples")
    per_epoch = math.ceil(n / batch_size)
    total = math.ceil(epochs * per_epoch)
    done, e = 0, 0
    while done < total:
        perm = np.random.Generator(np.random.PCG64([seed, e])).permutation(n)
        for b in range(per_epoch):
            if done >= total:
                return
            yield [int(i) for i in perm[b * batch_size: (b + 1) * batch_size]]
            done += 1
        e += 1


def n_batches(n: int, batch_size: int, epochs: float) -> int:
    """How many batches `epoch_batches` yields."""
    return math.ceil(epochs * math.ceil(n / batch_size))


def jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(1-based line number, parsed object) of each non-blank line of a JSONL file.

    Raises:
        ValueError: a line that is not JSON, naming the file and line.
    """
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: not JSON ({e.msg})") from None

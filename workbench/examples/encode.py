"""Tokenised examples: translation prompts with their targets, plain sentences, and their collation.

- `encode_translation` tokenises a translation prompt and its target; the labels are
  -100 on the prompt and on padding, so the loss is on the target tokens (+EOS) only.
- `encode_texts` tokenises plain sentences (alignment, LENS, perplexity) with a mask of the
  tokens that count (real, non-special).
- `collate` pads explicitly on the right (`padding_side` is never left to a default).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workbench.examples.split import ParallelSplit
from workbench.fileio import not_a_regular_file

__all__ = ["IGNORE", "Example", "collate", "encode_texts", "encode_translation", "jsonl_records",
           "prompt_and_target", "translation_examples"]

IGNORE = -100
"""Label value that the loss ignores (PyTorch's cross-entropy default)."""


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

    (A training step of N > 1 processes collates its rank's shard: `finetune.data.collate`.)
    """
    width = max(len(e.ids) for e in examples)
    fill = [width - len(e.ids) for e in examples]
    pad = int(pad_id)
    ids = torch.tensor([[*e.ids, *[pad] * f] for e, f in zip(examples, fill)], dtype=torch.long)
    attn = torch.tensor([[1] * len(e.ids) + [0] * f for e, f in zip(examples, fill)], dtype=torch.long)
    labels = torch.tensor([[*e.labels, *[IGNORE] * f] for e, f in zip(examples, fill)], dtype=torch.long)
    count = torch.tensor([[*e.count, *[False] * f] for e, f in zip(examples, fill)], dtype=torch.bool)
    return {"input_ids": ids.to(device), "attention_mask": attn.to(device),
            "labels": labels.to(device), "count": count.to(device)}


def jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(1-based line number, parsed object) of each non-blank line of a JSONL file.

    Raises:
        ValueError: a line that is not JSON, naming the file and line.
    """
    problem = not_a_regular_file(path)
    if problem:  # a FIFO or a device would block here
        raise ValueError(f"{path}: {problem}; give a .jsonl file")
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: not JSON ({e.msg})") from None

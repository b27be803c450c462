"""CC-Tuning examples: the non-English sequence `x`, its connection position and the English prompt `x^en`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.examples import IGNORE, Example, ParallelSplit, encode_translation, jsonl_records, prompt_and_target
from workbench.finetune.cctuning.spec import CCTuningSpec
from workbench.finetune.data import collate

__all__ = ["CCBatch", "CCExample", "cc_examples", "collate_cc", "instruction_examples"]



@dataclass(frozen=True)
class CCExample:
    """One example: the non-English sequence `x` (prompt + response) and the English prompt `x^en`.

    `x.labels` are -100 on the prompt; `pos` is the connection position in `x` (its last
    prompt token); `en` holds only the English prompt's ids, whose last token is where
    `F^en` is read.
    """

    x: Example
    pos: int
    en: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.pos < len(self.x.ids) or not self.en:
            raise ValueError(f"CCExample: pos {self.pos} outside x ({len(self.x.ids)} tokens) or empty en")


def _encode(tokenizer: Any, prompt: str, prompt_en: str, response: str, max_length: int) -> CCExample:
    """`x` = prompt + response + EOS as `encode_translation` makes it (labels on the response), and the English prompt.

    An English prompt over `max_length` is cut on the right, as `x`'s prompt is.
    """
    x = encode_translation(tokenizer, prompt, response, max_length)
    n_prompt = next((i for i, lab in enumerate(x.labels) if lab != IGNORE), len(x.labels))
    en = list(tokenizer(prompt_en, add_special_tokens=True)["input_ids"])[:max_length]
    return CCExample(x, n_prompt - 1, tuple(en))


def cc_examples(tokenizer: Any, split: ParallelSplit, spec: CCTuningSpec, part: str = "train") -> list[CCExample]:
    """Translation examples of `part`: `x` = template(N → response language), `x^en` = `x` with the English source."""
    ds = split.spec
    out = []
    for src, en, resp in zip(split.column(spec.lang, part), split.column(spec.pivot, part),
                             split.column(spec.response_lang, part)):
        prompt, _ = prompt_and_target(ds.template, split.names, spec.lang, spec.response_lang, src, resp)
        prompt_en, _ = prompt_and_target(ds.template, split.names, spec.lang, spec.response_lang, en, resp)
        out.append(_encode(tokenizer, prompt, prompt_en, resp, ds.max_length))
    return out


def instruction_examples(path: str | Path, tokenizer: Any, max_length: int) -> list[CCExample]:
    """Rows `{"instruction", "instruction_en", "output"}` of a JSONL file (prompt = instruction + newline).

    Raises:
        ValueError: unreadable line or missing fields (with the 1-based line number).
    """
    out = []
    p = Path(path)
    for lineno, rec in jsonl_records(p):
        fields = [rec.get(k) for k in ("instruction", "instruction_en", "output")]
        if not all(isinstance(f, str) and f for f in fields):
            raise ValueError(f"{p}:{lineno}: needs non-empty string fields instruction, instruction_en, output")
        out.append(_encode(tokenizer, fields[0] + "\n", fields[1] + "\n", fields[2], max_length))
    return out


def _datasets(tokenizer: Any, split: ParallelSplit, spec: CCTuningSpec) -> tuple[list[CCExample], list[CCExample]]:
    """(training, held-out) examples: the translation split, or the instruction file split like a DataSpec."""
    if not spec.instruction_file:
        return cc_examples(tokenizer, split, spec, "train"), cc_examples(tokenizer, split, spec, "heldout")
    rows = instruction_examples(spec.instruction_file, tokenizer, split.spec.max_length)
    if len(rows) < 2:
        raise ValueError(f"{spec.instruction_file}: CC-Tuning needs at least 2 instruction rows")
    order = np.random.RandomState(split.spec.split_seed).permutation(len(rows))
    n_held = min(len(rows) - 1, max(1, round(split.spec.heldout * len(rows))))
    return [rows[i] for i in order[n_held:]], [rows[i] for i in order[:n_held]]


@dataclass
class CCBatch:
    """A right-padded batch: `x` (collate of the `x` examples), `pos` `(B,)`, `en` (collate of the English prompts)."""

    x: dict[str, torch.Tensor]
    pos: torch.Tensor
    en: dict[str, torch.Tensor]


def collate_cc(examples: Sequence[CCExample], pad_id: int, device: Any = "cpu") -> CCBatch:
    """Right-padded tensors for the non-English sequences and the English prompts."""
    en = [Example(e.en, e.en, tuple(True for _ in e.en)) for e in examples]
    return CCBatch(collate([e.x for e in examples], pad_id, device),
                   torch.tensor([e.pos for e in examples], dtype=torch.long, device=device),
                   collate(en, pad_id, device))


def _last(attention_mask: torch.Tensor) -> torch.Tensor:
    return attention_mask.sum(1) - 1

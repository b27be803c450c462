"""Batched generation for evaluation: length-sorted batches, left padding, the KV cache (HF `generate`).

- `DecodingSpec`: greedy by default, or seeded sampling; the answer-line stop.
- `generate`: texts of a list of prompts. Prompts are tokenised as the fine-tune data
  tokenises them (`add_special_tokens=True`: BOS first), sorted by length so a batch
  wastes little padding, left-padded so every row continues from its last column, and
  decoded with `model.generate` (KV cache on). A row stops at EOS and, with
  `stop_at_newline`, at the first token whose text contains a newline (the end of the
  template's answer line); the text is cut at that newline.
- Every batch goes through the state's inference (`state.inference.generate`,
  `models.hooks`): the plain `model.generate`, or what the state changes at inference
  (CC-Tuning's two-pass connection), without this module naming a method.

Sampling is seeded per batch (`torch.manual_seed(seed + batch index)`), so a run is
reproducible for the same prompts and `batch_size`; greedy output does not depend on the
seed. Batched greedy decoding can differ from one-at-a-time decoding in the last float
bits (padding changes the matmul shapes), which is why `batch_size` is part of the
store key.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from workbench.config import Spec, spec_field
from workbench.errors import ParamError
from workbench.progress import Advance

__all__ = ["DecodingSpec", "generate", "newline_token_ids", "stop_token_ids"]


@dataclass(frozen=True)
class DecodingSpec(Spec):
    """How outputs are decoded (part of the store key of every suite that generates)."""

    max_new_tokens: int = spec_field("most new tokens per output", 64)
    do_sample: bool = spec_field("sample instead of greedy decoding", False)
    temperature: float = spec_field("sampling temperature (do_sample only)", 1.0)
    top_p: float = spec_field("nucleus sampling mass (do_sample only)", 1.0)
    seed: int = spec_field("seed of sampling (per batch: seed + batch index)", 0)
    stop_at_newline: bool = spec_field("stop at the end of the template's answer line", True)
    batch_size: int = spec_field("prompts per generate call (sorted by length)", 16)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ParamError(f"DecodingSpec: max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ParamError(f"DecodingSpec: batch_size must be >= 1, got {self.batch_size}")
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ParamError("DecodingSpec: sampling needs temperature > 0 and 0 < top_p <= 1")


@functools.lru_cache(maxsize=8)
def _newline_ids(tokenizer: Any) -> tuple[int, ...]:
    vocab = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(vocab)])
    return tuple(i for i, t in enumerate(texts) if "\n" in t)


def newline_token_ids(tokenizer: Any) -> tuple[int, ...]:
    """Ids of every token whose text contains a newline (cached per tokenizer object)."""
    return _newline_ids(tokenizer)


def stop_token_ids(tokenizer: Any, *, stop_at_newline: bool) -> list[int]:
    """EOS (if any) plus, with `stop_at_newline`, every newline-bearing token."""
    ids = [] if tokenizer.eos_token_id is None else [int(tokenizer.eos_token_id)]
    if stop_at_newline:
        ids += [i for i in newline_token_ids(tokenizer) if i not in ids]
    return ids


def _encode(tokenizer: Any, prompts: Sequence[str]) -> list[list[int]]:
    return [list(tokenizer(p, add_special_tokens=True)["input_ids"]) for p in prompts]


def _decode(tokenizer: Any, new: Sequence[int], stop_at_newline: bool, raw: bool) -> str:
    text = tokenizer.decode(list(new), skip_special_tokens=True)
    if raw:
        return text
    return text.split("\n", 1)[0].strip() if stop_at_newline else text.strip()


def _batch(state: Any, ids: list[list[int]], pad: int, stops: list[int], decoding: DecodingSpec) -> list[list[int]]:
    dev = next(state.model.parameters()).device
    width = max(len(p) for p in ids)
    x = torch.tensor([[pad] * (width - len(p)) + p for p in ids], dtype=torch.long, device=dev)
    attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in ids], dtype=torch.long, device=dev)
    kw: dict[str, Any] = dict(max_new_tokens=decoding.max_new_tokens, do_sample=decoding.do_sample,
                              pad_token_id=pad, eos_token_id=stops or None, use_cache=True)
    if decoding.do_sample:
        kw.update(temperature=decoding.temperature, top_p=decoding.top_p, top_k=0)
    else:
        kw.update(temperature=None, top_p=None, top_k=None)  # greedy: silence the config's sampling defaults
    with torch.inference_mode():
        out = state.inference.generate(state, x, attn, **kw)
    return [row[width:].tolist() for row in out]


def _trim(new: list[int], eos: int | None) -> list[int]:
    """New tokens before the first EOS (a newline-bearing stop token is kept: its text may start the line)."""
    return new[: new.index(eos)] if eos is not None and eos in new else new


def generate(state: Any, prompts: Sequence[str], decoding: DecodingSpec | None = None, *,
             on_batch: Advance | None = None,
             raw: bool = False) -> list[str]:
    """Outputs of `state` for `prompts`, in the order of `prompts`.

    Args:
        state: a ModelState (`.model`, `.tokenizer`, `.inference`).
        prompts: prompt texts (e.g. the translation template up to `{tgt_text}`).
        decoding: decoding settings (default: greedy, 64 new tokens, stop at the newline).
        on_batch: called with the number of prompts after each batch (progress; may raise
            `Cancelled` to stop).
        raw: return the decoded new tokens as they are (no newline cut, no strip; for
            lm-eval, which applies its own stop strings).

    Returns:
        One text per prompt: the new tokens decoded without special tokens, cut at the
        first newline when `decoding.stop_at_newline`, stripped (unless `raw`).
    """
    decoding = decoding or DecodingSpec()
    tok = state.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    stops = stop_token_ids(tok, stop_at_newline=decoding.stop_at_newline)
    ids = _encode(tok, prompts)
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    out: list[str] = [""] * len(ids)
    for b, start in enumerate(range(0, len(order), decoding.batch_size)):
        chunk = order[start:start + decoding.batch_size]
        batch = [ids[i] for i in chunk]
        if decoding.do_sample:
            torch.manual_seed(decoding.seed + b)
        new = _batch(state, batch, pad, stops, decoding)
        for i, row in zip(chunk, new):
            out[i] = _decode(tok, _trim(row, tok.eos_token_id), decoding.stop_at_newline, raw)
        if on_batch is not None:
            on_batch(len(chunk))
    return out

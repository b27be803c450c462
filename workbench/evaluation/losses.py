"""Held-out translation loss and pivot perplexity.

- `nll_per_example`: summed NLL and scored-token count of each example (for bootstrap
  intervals of the token-weighted means below).
- `translation_loss`: mean negative log-likelihood per target token (the tokens a
  translation fine-tune learns, EOS included) over held-out pairs, one direction.
- `perplexity`: `exp` of the mean next-token NLL over the real tokens of plain sentences
  (the first token, predicted from nothing, is not scored).
- `evaluate_model`: both directions between the pivot and every other language of the
  split, and the pivot language's perplexity (METHODS §7: English retention).

The fine-tune runner's before/after numbers and the evaluation suites call these: one
computation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from workbench.examples import (
    IGNORE,
    MAX_PADDING,
    DataSpec,
    Example,
    ParallelSplit,
    build_split,
    collate,
    encode_texts,
    scoring_batches,
    translation_examples,
)
from workbench.progress import Advance

__all__ = ["eval_compare", "evaluate_model", "evaluate_state", "nll", "nll_per_example", "perplexity",
           "perplexity_examples", "token_nll", "translation_loss"]


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: summed next-token NLL of the labelled tokens `(B,)` and their count `(B,)`.

    `labels` are moved to the logits' device (with `device_map="auto"` over several GPUs
    the LM head may sit on another device than the batch; a no-op on one device).
    """
    labels = labels[:, 1:].to(logits.device)
    tok = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels.clamp(min=0), reduction="none")
    mask = labels != IGNORE
    return (tok * mask).sum(1), mask.sum(1)


def nll_per_example(model: Any, examples: Sequence[Example], pad_id: int, *, batch_size: int = 8,
                    on_batch: Advance | None = None, max_tokens: int | None = None,
                    max_padding: float = MAX_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """Summed NLL `(N,)` float64 and scored-token count `(N,)` int64 of each example's labels, in input order.

    Examples are grouped by length (`scoring_batches`: token budget `max_tokens`, default
    `batch_size` x the longest example, and padding budget `max_padding`), right-padded
    (`collate`), and their results scattered back to input order; a result equals the one
    of any other batching to float rounding. `on_batch(n)` is called after each batch of
    `n` examples (progress and cancellation hook: it may raise to stop).

    `model` is a plain HF model, or a ModelState: then every batch runs through its
    inference (`state.inference.logits`, `models.hooks`) with each example's last prompt
    token as the response position (none for plain text, whose labels start at once).
    """
    state = model if hasattr(model, "inference") else None
    model = state.model if state is not None else model
    dev = next(model.parameters()).device
    sums = np.zeros(len(examples), dtype=np.float64)
    counts = np.zeros(len(examples), dtype=np.int64)
    groups = scoring_batches([len(e.ids) for e in examples], batch_size=batch_size, max_tokens=max_tokens,
                             max_padding=max_padding)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for idx in groups:
                chunk = [examples[i] for i in idx]
                b = collate(chunk, pad_id, dev)
                if state is None:
                    logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], use_cache=False).logits
                else:
                    logits = state.inference.logits(state, b["input_ids"], b["attention_mask"], _positions(chunk, dev))
                s, c = token_nll(logits, b["labels"])
                sums[idx] = s.double().cpu().numpy()
                counts[idx] = c.cpu().numpy()
                if on_batch is not None:
                    on_batch(len(idx))
    finally:
        model.train(was_training)
    return sums, counts


def _positions(examples: Sequence[Example], device: Any) -> torch.Tensor | None:
    """`(B,)` last prompt token of each example (the response position), or None for plain text."""
    first = [next((t for t, x in enumerate(e.labels) if x != IGNORE), 0) for e in examples]
    if not any(first):
        return None
    return torch.tensor([max(f - 1, 0) for f in first], dtype=torch.long, device=device)


def nll(model: Any, examples: Sequence[Example], pad_id: int, *, batch_size: int = 8) -> tuple[float, int]:
    """(summed NLL, number of scored tokens) of `examples`' labels under `model`."""
    sums, counts = nll_per_example(model, examples, pad_id, batch_size=batch_size)
    return float(sums.sum()), int(counts.sum())


def translation_loss(model: Any, tokenizer: Any, split: ParallelSplit, src: str, tgt: str, *,
                     part: str = "heldout", max_items: int | None = 64, batch_size: int = 8) -> float:
    """Mean NLL per target token of `src → tgt` translation on `part` of the split."""
    examples = translation_examples(tokenizer, split, [(src, tgt)], part)[:max_items]
    total, count = nll(model, examples, tokenizer.pad_token_id, batch_size=batch_size)
    return total / max(count, 1)


def perplexity_examples(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[Example]:
    """Plain sentences as examples whose special tokens are inputs but never scored."""
    examples = encode_texts(tokenizer, texts, max_length)
    special = set(tokenizer.all_special_ids)
    return [Example(e.ids, tuple(i if i not in special else IGNORE for i in e.labels), e.count) for e in examples]


def perplexity(model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int = 128,
               batch_size: int = 8) -> float:
    """Perplexity of plain `texts` (special tokens are inputs but never scored)."""
    scored = perplexity_examples(tokenizer, texts, max_length)
    total, count = nll(model, scored, tokenizer.pad_token_id, batch_size=batch_size)
    return math.exp(total / max(count, 1))


def evaluate_model(model: Any, tokenizer: Any, split: ParallelSplit, *, pivot: str = "en",
                   max_items: int | None = 64, batch_size: int = 8) -> dict[str, float]:
    """Held-out translation loss in both directions and the pivot's perplexity.

    Returns:
        `{"loss_<a>><b>": …, "loss_<b>><a>": …, "ppl_<pivot>": …}` for the pivot `a`
        (the split's first language when `pivot` is not in it) and every other language `b`.
    """
    pivot = pivot if pivot in split.langs else split.langs[0]
    out: dict[str, float] = {}
    for other in (x for x in split.langs if x != pivot):
        for s, t in ((pivot, other), (other, pivot)):
            out[f"loss_{s}>{t}"] = translation_loss(model, tokenizer, split, s, t, max_items=max_items,
                                                    batch_size=batch_size)
    texts = split.column(pivot, "heldout")[:max_items]
    out[f"ppl_{pivot}"] = perplexity(model, tokenizer, texts, max_length=split.spec.max_length, batch_size=batch_size)
    return out


def evaluate_state(state: Any, split: ParallelSplit, **kw: Any) -> dict[str, float]:
    """`evaluate_model` for a ModelState (base, or base + artifact)."""
    return evaluate_model(state.model, state.tokenizer, split, **kw)


def _metric_row(name: str) -> dict[str, str]:
    """``loss_en>sw`` -> translation loss en → sw; ``ppl_en`` -> perplexity of en."""
    if name.startswith("loss_"):
        src, _, tgt = name[len("loss_"):].partition(">")
        return {"kind": "translation loss", "what": f"{src} → {tgt}"}
    if name.startswith("ppl_"):
        return {"kind": "perplexity", "what": name[len("ppl_"):]}
    return {"kind": name, "what": ""}


def eval_compare(state_a: Any, state_b: Any, data: Any, languages: Sequence[str], *, pivot: str = "en",
                 max_items: int | None = 64) -> pd.DataFrame:
    """Held-out translation loss (both directions) and pivot perplexity of two states.

    Args:
        state_a: loaded ModelState A.
        state_b: loaded ModelState B.
        data: the DataSpec (or its dict) whose held-out split is scored, e.g. the tuned
            job's own, so the units were never trained on.
        languages: the split's languages (pivot included).
        pivot: the perplexity language and one side of every direction.
        max_items: held-out units scored per direction.

    Returns:
        One row per metric (``loss_<src>><tgt>`` in nats per target token, ``ppl_<pivot>``):
        measure, kind, what, a, b, diff (= b − a; negative = B is better).
    """
    spec = data if isinstance(data, DataSpec) else DataSpec.from_dict(dict(data))
    split = build_split(spec, list(languages))
    ea = evaluate_state(state_a, split, pivot=pivot, max_items=max_items)
    eb = evaluate_state(state_b, split, pivot=pivot, max_items=max_items)
    rows = [{"measure": m, **_metric_row(m), "a": float(ea[m]), "b": float(eb.get(m, np.nan))} for m in ea]
    out = pd.DataFrame(rows, columns=["measure", "kind", "what", "a", "b"])
    out["diff"] = out["b"] - out["a"]
    out.attrs.update(pivot=pivot, n_heldout=len(split.heldout), data_hash=split.data_hash)
    return out

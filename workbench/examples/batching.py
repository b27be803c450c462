"""Batches: the one home of grouping sequences for forward passes, and of the training data order.

`length_batches` turns token lengths into batches bounded by a token budget (memory) and a
padding budget (wasted compute); every loop that runs many sentences through a model
calls it (the recorder, scoring, lm-eval, fits). `pack_rows` / `packed_batches` bin-pack
sentences into rows for sequence packing. `scoring_batches` is `length_batches` with a
budget matching fixed chunks of `batch_size`. `epoch_batches` is the deterministic
training order (a seeded permutation per epoch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["MAX_PADDING", "PACK_WIDTH", "epoch_batches", "length_batches", "make_batches", "n_batches",
           "pack_rows", "packed_batches", "scoring_batches"]

#: Default padding budget: a batch is cut before its padded positions pass 5% of it.
MAX_PADDING = 0.05

#: Widest packed row (tokens) unless one sentence is longer.
PACK_WIDTH = 512


def length_batches(lengths: Sequence[int], *, max_tokens: int, max_padding: float = MAX_PADDING) -> list[list[int]]:
    """Indices grouped into padded batches bounded by a token budget and a padding budget.

    Sentences are sorted longest first (ties by index), so the batch most likely to run out
    of memory comes first. A batch is cut before adding a sentence would make its padded
    size `len(batch) * longest` exceed `max_tokens`, or its padding fraction
    `1 - sum(lengths) / padded size` exceed `max_padding`. A single sentence is always a
    batch of its own, whatever its length. Pure: any code that runs many sentences through
    a model (scoring, fits) can call it with its own lengths.

    Args:
        lengths: tokens per sentence (each >= 1).
        max_tokens: padded-token budget per batch (memory bound).
        max_padding: padding budget per batch, a fraction in [0, 1]; 1 = token budget only.

    Returns:
        Batches of indices into `lengths`; every index exactly once, each batch longest first.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    real = 0
    for i in order:
        if cur:
            width = lengths[cur[0]]
            padded = (len(cur) + 1) * width
            if padded > max_tokens or real + lengths[i] < (1.0 - max_padding) * padded:
                batches.append(cur)
                cur, real = [], 0
        cur.append(i)
        real += lengths[i]
    if cur:
        batches.append(cur)
    return batches


def make_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Length-sorted batches under a token budget only (no padding budget).

    Kept for callers of the old recorder; `length_batches` with its padding budget is the
    one to use.
    """
    return length_batches(lengths, max_tokens=batch_tokens, max_padding=1.0)


def pack_rows(lengths: Sequence[int], width: int) -> list[list[int]]:
    """First-fit-decreasing bin packing of sentences into rows of at most `width` tokens.

    Returns:
        Rows of indices into `lengths`, fullest first; every index exactly once. A sentence
        longer than `width` gets a row of its own.
    """
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(width - lengths[i])
    return rows


def packed_batches(lengths: Sequence[int], *, max_tokens: int, width: int | None = None,
                   max_padding: float = MAX_PADDING) -> list[list[list[int]]]:
    """Sentences packed into rows (`pack_rows`), the rows grouped by `length_batches`.

    Rows are as wide as the longest sentence, at most `width` (default `PACK_WIDTH`), so
    the attention computed across neighbouring sentences (masked, but computed) stays a
    small part of a row's cost.

    Returns:
        Batches of rows of indices into `lengths`; every index exactly once.
    """
    if not lengths:
        return []
    rows = pack_rows(lengths, min(max(lengths), width or PACK_WIDTH))
    used = [sum(lengths[i] for i in row) for row in rows]
    return [[rows[j] for j in g] for g in length_batches(used, max_tokens=max_tokens, max_padding=max_padding)]


def scoring_batches(lengths: Sequence[int], *, batch_size: int = 8, max_tokens: int | None = None,
                    max_padding: float = MAX_PADDING) -> list[list[int]]:
    """Indices of `lengths` grouped for scoring: `length_batches` under a token budget.

    The default budget, `batch_size` times the longest length, is the padded size of the
    largest batch that fixed chunks of `batch_size` could form, so memory never exceeds
    theirs; short sequences share a batch with more rows instead of with long ones.

    Args:
        lengths: tokens per sequence (each >= 1).
        batch_size: sequences per batch that the default budget allows at the longest length.
        max_tokens: padded-token budget per batch (overrides the default).
        max_padding: padding budget per batch (fraction; 1 = token budget only).

    Returns:
        Batches of indices, longest first; every index exactly once.
    """
    if not lengths:
        return []
    budget = max_tokens if max_tokens is not None else max(1, batch_size) * max(lengths)
    return length_batches(lengths, max_tokens=budget, max_padding=max_padding)


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

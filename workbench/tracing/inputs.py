"""Recorder inputs: templates, tokenising, and grouping sentences into forward batches.

Nothing here runs the model. `length_batches` is the one pure function that turns token
lengths into batches bounded by a token budget (memory) and a padding budget (wasted
compute); any code that runs many sentences through a model can call it. `pack_rows`
bin-packs sentences into rows for sequence packing. `make_batch` builds the tensors of
one batch, padded (one sentence per row) or packed (several per row), together with the
flat indices the recorder pools with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from workbench.config import RecordSpec, spec_field
from workbench.errors import ParamError, RecordError
from workbench.examples.batching import MAX_PADDING, length_batches, packed_batches

#: On a CUDA device the default token budget is this many times `RecordSpec.batch_tokens`'s
#: default: GPUs want larger batches (the padding budget keeps them dense; a batch that
#: runs out of memory is halved and retried).
GPU_BUDGET_SCALE = 4


@dataclass(frozen=True)
class Batching:
    """How the recorder groups sentences into forward passes. Never changes the recorded bytes.

    Left out of the store key: batches change only the order of float additions (results
    agree to float rounding, which the tests pin), never which tokens count.
    """

    max_padding: float = spec_field("padding budget: a padded batch is cut before padding passes this fraction",
                               MAX_PADDING)
    pack: bool = spec_field("sequence packing: several sentences per row, position ids restart per sentence, "
                       "block-diagonal causal mask (padded batches if the model cannot)", True)
    max_tokens: int | None = spec_field("padded tokens per forward batch; None = the spec's batch_tokens", None)

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_padding <= 1.0:
            raise ParamError(f"max_padding must be in [0, 1], got {self.max_padding}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ParamError(f"max_tokens must be >= 1, got {self.max_tokens}")


def token_budget(batch_tokens: int, device: Any, explicit: int | None = None) -> int:
    """Padded tokens per forward batch.

    `explicit` if given; else the spec's `batch_tokens`, scaled by `GPU_BUDGET_SCALE` on
    CUDA when it is the default (a budget the user chose is kept as chosen).
    """
    if explicit:
        return explicit
    default = RecordSpec.__dataclass_fields__["batch_tokens"].default
    on_gpu = str(device).startswith("cuda")
    return batch_tokens * GPU_BUDGET_SCALE if on_gpu and batch_tokens == default else batch_tokens


# --------------------------------------------------------------------------- texts and tokens


@dataclass
class Encoded:
    """Tokenised inputs of one unit, unpadded. `count[i]` marks the tokens that count."""

    ids: list[list[int]]
    count: list[list[bool]]


def _span_offsets(template: str, values: dict[str, str]) -> tuple[str, dict[str, tuple[int, int]]]:
    """Format `template`, returning the text and char spans of {src_text} and {tgt_text}."""
    spans: dict[str, tuple[int, int]] = {}
    out = ""
    rest = template
    while True:
        cut = [(rest.find("{" + k + "}"), k) for k in ("src_text", "tgt_text") if "{" + k + "}" in rest]
        if not cut:
            return out + rest.format(**values), spans
        pos, k = min(cut)
        out += rest[:pos].format(**values)
        spans[k.split("_")[0]] = (len(out), len(out) + len(values[k]))
        out += values[k]
        rest = rest[pos + len(k) + 2:]


def build_texts(corpus: Any, unit: str, spec: RecordSpec) -> tuple[list[str], list[tuple[int, int] | None]]:
    """The strings to run for one unit, and the char span that counts (None = all)."""
    if ">" in unit:
        src, tgt = unit.split(">")
        names = {"src_name": corpus.languages[src].name, "tgt_name": corpus.languages[tgt].name}
        texts, spans = [], []
        for s, t in zip(corpus.texts(src), corpus.texts(tgt)):
            text, sp = _span_offsets(spec.template or "", {**names, "src_text": s, "tgt_text": t})
            texts.append(text)
            spans.append(None if spec.token_span == "all" else sp[{"source": "src", "target": "tgt"}[spec.token_span]])
        return texts, spans
    raw = corpus.texts(unit)
    if spec.template:
        texts = [spec.template.replace("{text}", t) for t in raw]
        spans = [(spec.template.index("{text}"), spec.template.index("{text}") + len(t)) for t in raw]
        return texts, [None] * len(texts) if spec.token_span == "all" else spans
    return list(raw), [None] * len(raw)


def encode(tokenizer: Any, texts: Sequence[str], spans: Sequence[tuple[int, int] | None],
           spec: RecordSpec) -> Encoded:
    """Tokenise each text alone (no padding), with the mask of tokens that count.

    Raises:
        RecordError: `spec.chat_template` and the tokenizer has none; an empty text or span.
    """
    if spec.chat_template and not getattr(tokenizer, "chat_template", None):
        raise RecordError("chat_template (--chat-template, the lens preset) is on, but this model's tokenizer has "
                          "no chat template: choose a model whose tokenizer has one (an instruct or chat model) "
                          "or record without it")
    ids_all, count_all = [], []
    for i, (text, span) in enumerate(zip(texts, spans)):
        shift = 0
        if spec.chat_template:
            wrapped = tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                                    tokenize=False, add_generation_prompt=True)
            shift, text = wrapped.index(text), wrapped
        enc = tokenizer(text, truncation=True, max_length=spec.max_length,
                        add_special_tokens=not spec.chat_template, return_special_tokens_mask=True,
                        return_offsets_mapping=span is not None)
        ids = list(enc["input_ids"])
        keep = [True] * len(ids) if spec.include_special else [not s for s in enc["special_tokens_mask"]]
        if spec.chat_template and not spec.include_special:
            special = set(tokenizer.all_special_ids)
            keep = [t not in special for t in ids]
        if span is not None:
            a, b = span[0] + shift, span[1] + shift
            keep = [k and (e > a and s < b) for k, (s, e) in zip(keep, enc["offset_mapping"])]
        if not any(keep):
            raise RecordError(f"sentence {i} has no tokens to count (empty text, or the span was cut by "
                              f"max_length={spec.max_length})")
        ids_all.append(ids)
        count_all.append(keep)
    return Encoded(ids_all, count_all)


# --------------------------------------------------------------------------- batches


def plan_batches(lengths: list[int], spec: RecordSpec, batching: Batching, device: Any) -> list[list[list[int]]]:
    """The recorder's batches: rows of item indices (a padded batch has one item per row).

    Packed rows (`packed_batches`) or padded batches (`length_batches`) under the token
    budget (`token_budget`) and the padding budget of `batching`.
    """
    max_tokens = token_budget(spec.batch_tokens, device, batching.max_tokens)
    if batching.pack:
        return packed_batches(lengths, max_tokens=max_tokens, max_padding=batching.max_padding)
    return [[[i] for i in b] for b in length_batches(lengths, max_tokens=max_tokens,
                                                     max_padding=batching.max_padding)]


def split_batch(rows: list[list[int]]) -> list[list[list[int]]]:
    """Two halves of a batch that ran out of memory (a lone packed row is unpacked first)."""
    if len(rows) == 1:
        rows = [[i] for i in rows[0]]
    return [rows[: len(rows) // 2], rows[len(rows) // 2:]]


def batch_tokens(rows: Sequence[Sequence[int]], lengths: Sequence[int]) -> tuple[int, int]:
    """(real tokens, padded tokens) of one batch of rows (a padded batch has one sentence per row)."""
    real = sum(lengths[i] for row in rows for i in row)
    width = max(sum(lengths[i] for i in row) for row in rows)
    return real, width * len(rows)


def make_batch(ids: Sequence[Sequence[int]], count: Sequence[Sequence[bool]], rows: Sequence[Sequence[int]],
               pad_id: int, side: str, device: Any) -> dict[str, Any]:
    """The tensors of one batch and the flat indices the recorder pools with.

    Each row holds one sentence (padded batch) or several (packed batch, `side` ignored:
    sentences follow each other from the left, the tail is padding). Position ids restart
    at 0 for every sentence and count real tokens only, so padding side and packing do
    not change any position. A packed batch carries no attention mask: transformers reads
    the restarts of `position_ids` as packed sequences and builds a block-diagonal causal
    mask (per-sequence sliding windows included).

    Returns:
        `input_ids`, `position_ids` `(R, T)`; `attention_mask` `(R, T)` or None (packed);
        `count` `(R, T)` bool; `cidx` `(Nc,)` flat positions of counted tokens, `cseg`
        `(Nc,)` their sentence (0…B-1, in `order`), `cw` `(Nc,)` their weight 1…T' within
        the sentence, `n` `(B,)` counted tokens, `wsum` `(B,)` sum of weights, `last` `(B,)`
        flat position of the last counted token; `order` the sentence indices in batch
        order; `packed` bool.
    """
    if side not in ("left", "right"):
        raise ValueError(f"padding side must be 'left' or 'right', not {side!r}")
    packed = any(len(r) > 1 for r in rows)
    width = max(sum(len(ids[i]) for i in row) for row in rows)
    R = len(rows)
    tok = torch.full((R, width), pad_id, dtype=torch.long)
    attn = torch.zeros((R, width), dtype=torch.long)
    pos = torch.zeros((R, width), dtype=torch.long)
    cnt = torch.zeros((R, width), dtype=torch.bool)
    cidx: list[int] = []
    cseg: list[int] = []
    cw: list[int] = []
    order: list[int] = []
    for r, row in enumerate(rows):
        used = sum(len(ids[i]) for i in row)
        start = width - used if side == "left" and not packed else 0
        for i in row:
            n = len(ids[i])
            tok[r, start:start + n] = torch.tensor(ids[i])
            attn[r, start:start + n] = 1
            pos[r, start:start + n] = torch.arange(n)
            cnt[r, start:start + n] = torch.tensor(count[i])
            k = 0
            for t, c in enumerate(count[i]):
                if c:
                    k += 1
                    cidx.append(r * width + start + t)
                    cseg.append(len(order))
                    cw.append(k)
            order.append(i)
            start += n
        if packed and start < width:  # the tail: its own sequence, positions restart at 0
            pos[r, start:] = torch.arange(width - start)
    seg = torch.tensor(cseg, dtype=torch.long)
    w = torch.tensor(cw, dtype=torch.float32)
    n_b = torch.bincount(seg, minlength=len(order))
    wsum = torch.zeros(len(order)).index_add_(0, seg, w)
    last = torch.zeros(len(order), dtype=torch.long).scatter_reduce_(
        0, seg, torch.tensor(cidx, dtype=torch.long), reduce="amax", include_self=False)
    out: dict[str, Any] = {
        "input_ids": tok, "attention_mask": None if packed else attn, "position_ids": pos, "count": cnt,
        "cidx": torch.tensor(cidx, dtype=torch.long), "cseg": seg, "cw": w, "n": n_b, "wsum": wsum, "last": last}
    out = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in out.items()}
    out.update(order=order, packed=packed)
    return out


def pad_batch(enc: Encoded, idx: Sequence[int], pad_id: int, side: str, device: Any) -> dict[str, Any]:
    """A padded batch of sentences `idx` of one unit (one sentence per row); see `make_batch`."""
    return make_batch(enc.ids, enc.count, [[i] for i in idx], pad_id, side, device)

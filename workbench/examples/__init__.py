"""Examples: the parallel data split, tokenised examples, and batches (shared by evaluation and fine-tunes).

- `split`: `DataSpec`, `ParallelSplit`, `build_split` (seeded train/held-out parts);
- `encode`: `Example`, translation prompts and targets, plain sentences, `collate`;
- `batching`: `length_batches` (THE batching of every forward loop), packing, `scoring_batches`,
  the training order `epoch_batches`.
"""

from workbench.examples.batching import (
    MAX_PADDING,
    PACK_WIDTH,
    epoch_batches,
    length_batches,
    make_batches,
    n_batches,
    pack_rows,
    packed_batches,
    scoring_batches,
)
from workbench.examples.encode import (
    IGNORE,
    Example,
    collate,
    encode_texts,
    encode_translation,
    jsonl_records,
    prompt_and_target,
    translation_examples,
)
from workbench.examples.split import DataSpec, ParallelSplit, build_split

__all__ = ["IGNORE", "MAX_PADDING", "PACK_WIDTH", "DataSpec", "Example", "ParallelSplit", "build_split", "collate",
           "encode_texts", "encode_translation", "epoch_batches", "jsonl_records", "length_batches", "make_batches",
           "n_batches", "pack_rows", "packed_batches", "prompt_and_target", "scoring_batches",
           "translation_examples"]

"""The tracing core: records per-layer representations and FFN statistics into the store.

- `inputs`: templates, tokenising, and grouping sentences into batches (`length_batches`);
- `recorder`: the recorder, with `lens` the only modules of the workbench that import nnsight;
- `lens`: the lens readout (what each layer predicts); import it from `workbench.tracing.lens`
  (not re-exported: it reads `lenses`, whose tuned lens batches with `tracing.inputs`);
- `accumulate`: one unit's result arrays, filled batch by batch, and merging of shards;
- `recording`: the `Recording` result, store keys and look-up (no model needed).

Every name other modules import from `workbench.tracing` is re-exported here.
"""

from workbench.errors import RecordError
from workbench.tracing.accumulate import compact_shard, merge_shards
from workbench.tracing.inputs import (
    GPU_BUDGET_SCALE,
    MAX_PADDING,
    PACK_WIDTH,
    Batching,
    Encoded,
    batch_tokens,
    build_texts,
    encode,
    length_batches,
    make_batch,
    make_batches,
    pack_rows,
    packed_batches,
    pad_batch,
    plan_batches,
    split_batch,
    token_budget,
)
from workbench.tracing.recorder import (
    ProgressFn,
    packing_works,
    pool,
    record,
    record_manifest,
    record_shard,
    record_unit,
    record_units,
    traced,
    unit_groups,
)
from workbench.tracing.recording import (
    FINAL,
    Recording,
    find_entry,
    layer_labels,
    legacy_unit_key,
    lookup,
    unit_key,
    units_for,
)

__all__ = [
    "Batching", "Encoded", "FINAL", "GPU_BUDGET_SCALE", "MAX_PADDING", "PACK_WIDTH", "ProgressFn", "RecordError",
    "Recording", "batch_tokens", "build_texts", "compact_shard", "encode", "find_entry", "layer_labels",
    "legacy_unit_key",
    "length_batches", "lookup", "make_batch", "make_batches", "merge_shards", "pack_rows", "packed_batches",
    "packing_works", "pad_batch", "plan_batches", "pool", "record", "record_manifest", "record_shard",
    "record_unit", "record_units", "split_batch", "token_budget", "traced", "unit_groups", "unit_key", "units_for",
]

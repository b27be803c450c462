"""The tracing core: computes per-layer representations and FFN statistics of a corpus with a loaded state.

- `inputs`: templates, tokenising, and grouping sentences into batches (`length_batches`);
- `recorder`: the recorder, with `lens` the only modules of the workbench that import nnsight;
- `lens`: the lens readout (what each layer predicts); import it from `workbench.tracing.lens`
  (not re-exported: it reads `lenses`, whose tuned lens batches with `tracing.inputs`);
- `accumulate`: one unit's result arrays, filled batch by batch, and merging of shards;
- `units`: the layer axis and the units of a recording (pure).

It computes and never looks up or stores: that is `workbench.recordings`. Every name
other modules import from `workbench.tracing` is re-exported here.
"""

from workbench.errors import RecordError
from workbench.tracing.accumulate import compact_shard, merge_shards
from workbench.tracing.inputs import (
    GPU_BUDGET_SCALE,
    Batching,
    Encoded,
    batch_tokens,
    build_texts,
    encode,
    make_batch,
    pad_batch,
    plan_batches,
    split_batch,
    token_budget,
)
from workbench.tracing.recorder import (
    checked_labels,
    packing_works,
    pool,
    record_manifest,
    record_shard,
    record_unit,
    record_units,
    traced,
    unit_groups,
)
from workbench.tracing.units import FINAL, layer_labels, units_for

__all__ = [
    "FINAL", "GPU_BUDGET_SCALE", "Batching", "Encoded", "RecordError", "batch_tokens", "build_texts", "checked_labels",
    "compact_shard", "encode", "layer_labels", "make_batch", "merge_shards", "packing_works", "pad_batch",
    "plan_batches", "pool", "record_manifest", "record_shard", "record_unit", "record_units", "split_batch",
    "token_budget", "traced", "unit_groups", "units_for",
]

"""The one home of "give me this recording": store first, then record in one process, N processes or on NDIF.

- `ensure`: `ensure_recording` (compute what the store lacks: here, `num_processes=N`
  ranks, or `remote=True` on NDIF), `store_status` / `stored_recording` (look without
  loading any model), `start_recording` (the same as a background job), NDIF checks;
- `record`: with a loaded state in this process (per-key locks, the recorder, the store);
- `sharding`: on N processes (`accelerate launch -m workbench.recordings.sharding`), byte-identical;
- `keys`: store keys and look-up of recorded units; `recording`: the `Recording` result;
- `lens`: lens readouts (`ensure_lens`, `stored_lens`, `start_lens`: store first, per-key
  locks, `tracing.lens_readout` for what is missing), `tokenizer_for` (no weights);
- `tuned_lens`: training a tuned lens as a job (`start_tuned_lens`), saved once per request.

`tracing` computes (model in, arrays out) and never touches the store.
"""

from workbench.recordings.ensure import (
    StoreStatus,
    ensure_recording,
    job_key,
    job_label,
    record_job,
    record_job_args,
    recording_rows,
    remote_problems,
    start_recording,
    store_status,
    stored_by_fingerprint,
    stored_recording,
)
from workbench.recordings.keys import find_entry, legacy_unit_key, lookup, unit_key
from workbench.recordings.lens import LensRequest, StoredLens, ensure_lens, start_lens, stored_lens
from workbench.recordings.record import record
from workbench.recordings.recording import Recording

__all__ = ["LensRequest", "Recording", "StoreStatus", "StoredLens", "ensure_lens", "ensure_recording", "find_entry",
           "job_key", "job_label", "legacy_unit_key", "lookup", "record", "record_job", "record_job_args",
           "recording_rows", "remote_problems", "start_lens", "start_recording", "store_status",
           "stored_by_fingerprint", "stored_lens", "stored_recording", "unit_key"]

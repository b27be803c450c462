"""Training batches: `collate` inside a training step shards the global batch over N processes.

Everything else about the data (split, tokenised examples, batching, order) lives in
`workbench.examples`, which evaluation shares without importing the fine-tune code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.examples import encode
from workbench.examples.encode import Example
from workbench.finetune import distributed

__all__ = ["collate"]


def collate(examples: Sequence[Example], pad_id: int, device: Any = "cpu") -> dict[str, Any]:
    """`examples.collate` of this rank's shard of a training step's global batch.

    Inside a training step of N > 1 processes, only this rank's shard of `examples`
    (`distributed.shard_examples`; all of them otherwise).
    """
    return encode.collate(distributed.shard_examples(examples), pad_id, device)

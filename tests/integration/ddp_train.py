"""One rank of a data-parallel fine-tune on the tiny model (run by test_distributed.py).

`python ddp_train.py METHOD SPEC_JSON OUT` with torchrun's environment (RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT) or none (one process). Rank 0 saves the trained parameters and
the history to OUT (torch.save).
"""

from __future__ import annotations

import json
import sys

import torch

from workbench import models
from workbench.examples import DataSpec, build_split
from workbench.finetune import distributed
from workbench.finetune.methods import languages_for, spec_for
from workbench.finetune.runner import train


def main() -> None:
    method, spec_json, out = sys.argv[1:4]
    d = distributed.init_from_env()
    spec = spec_for(method, json.loads(spec_json))
    split = build_split(DataSpec(limit=16, max_length=48), languages_for(method, spec))
    state = models.load("tiny:llama", fresh=True)
    result = train(method, state, split, spec, inplace=True)
    if d.main:
        params = {n: p.detach().clone() for n, p in result.model.named_parameters() if n in set(result.trainable)}
        torch.save({"params": params, "history": result.history, "world": d.world}, out)
    distributed.shutdown()


if __name__ == "__main__":
    main()

"""The pieces of a data-parallel step, in one process with a pretend rank (no process group)."""

from __future__ import annotations

import pytest
import torch

from workbench.examples import IGNORE, Example
from workbench.finetune import distributed
from workbench.finetune.data import collate


def _ex(n_prompt: int, n_target: int) -> Example:
    ids = tuple(range(5, 5 + n_prompt + n_target))
    return Example(ids, (IGNORE,) * n_prompt + ids[n_prompt:], (True,) * len(ids))


@pytest.fixture
def rank1(monkeypatch):
    monkeypatch.setattr(distributed, "current", lambda: distributed.Dist(rank=1, world=2))
    yield
    distributed.end_step()


def test_a_step_shards_the_batch_and_weights_by_label_tokens(rank1):
    # label tokens counted by a causal-LM loss (labels after position 0): 3, 1, 4, 2 → 10
    batch = [_ex(2, 3), _ex(3, 1), _ex(1, 4), _ex(4, 2)]
    assert collate(batch, 0)["input_ids"].shape[0] == 4  # outside a step: the whole batch
    mine = collate(batch[2:], 0)["input_ids"].tolist()  # rank 1 of 2: rows 2, 3
    distributed.begin_step()
    assert collate(batch, 0)["input_ids"].tolist() == mine
    assert distributed.loss_weight() == pytest.approx((4 + 2) / 10)
    assert distributed.metric_weight() == pytest.approx(0.6)
    distributed.end_step()
    assert collate(batch, 0)["input_ids"].shape[0] == 4


def test_an_empty_shard_gets_a_placeholder_with_weight_zero(rank1):
    distributed.begin_step()
    out = collate([_ex(2, 3)], 0)  # one example for two ranks: rank 1 has none
    assert out["input_ids"].shape[0] == 1
    assert distributed.loss_weight() == 0.0


def test_gather_leaves_tensors_alone_outside_a_sharded_step(rank1):
    x = torch.ones(2, 3)
    assert distributed.gather_rows(x) is x
    distributed.begin_step()
    collate([_ex(1, 2)] * 4, 0)
    y = torch.ones(5, 3)  # not this rank's batch (2 rows): untouched
    assert distributed.gather_rows(y) is y


def test_one_process_is_a_no_op():
    assert distributed.current() == distributed.Dist()
    distributed.begin_step()
    batch = [_ex(2, 3), _ex(3, 1)]
    assert collate(batch, 0)["input_ids"].shape[0] == 2
    assert distributed.loss_weight() == 1.0
    distributed.end_step()

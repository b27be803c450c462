"""Loaded states within a memory budget (least recently used out), and tuned states sharing their base's weights."""

from __future__ import annotations

import pytest
import torch

from workbench import models
from workbench.config import ModelSpec
from workbench.finetune import artifact_io
from workbench.models import state


@pytest.fixture(autouse=True)
def _fresh_memo():
    """An empty memo for each test; the session's memoised states (other tests' fixtures) come back after."""
    kept = dict(state._STATES)
    models.forget()
    yield
    models.set_memory_budget(None)
    models.forget()
    with state._LOCK:
        state._STATES.update(kept)


def _bytes(state):
    return sum(t.untyped_storage().nbytes() for t in (*state.model.parameters(), *state.model.buffers()))


def test_least_recently_used_states_leave_past_the_budget():
    a = models.load("tiny:llama")
    b = models.load("tiny:qwen2")
    assert [m.source for m in models.loaded_states()] == ["tiny:llama", "tiny:qwen2"]
    models.load("tiny:llama")  # used again: now the most recent
    models.set_memory_budget(int(max(_bytes(a), _bytes(b)) * 1.5))  # room for one of them
    assert [m.source for m in models.loaded_states()] == ["tiny:llama"]
    models.load("tiny:gpt2")  # the one loaded last always stays, the older one leaves
    assert [m.source for m in models.loaded_states()] == ["tiny:gpt2"]
    models.set_memory_budget(None)
    models.load("tiny:llama")
    assert len(models.loaded_states()) == 2  # no budget: nothing leaves


def test_a_tuned_state_shares_the_unchanged_weights_of_its_base(tmp_path):
    base = models.load("tiny:llama")
    tuned_model = models.load("tiny:llama", fresh=True).model
    name = "model.layers.1.mlp.down_proj.weight"
    with torch.no_grad():
        dict(tuned_model.named_parameters())[name].add_(0.5)
    path = artifact_io.write_artifact(tmp_path / "art", base, tuned_model, {"method": "test"})
    tuned = models.load(ModelSpec(source="tiny:llama", artifact=str(path)))
    bp, tp = dict(base.model.named_parameters()), dict(tuned.model.named_parameters())
    shared = [n for n in bp if bp[n].data_ptr() == tp[n].data_ptr()]
    assert set(bp) - set(shared) == {name}  # only the changed tensor has its own storage
    assert torch.equal(tp[name], bp[name] + 0.5) and not torch.equal(tp[name], bp[name])
    logits = {s: st.model(torch.tensor([[1, 5, 9]])).logits for s, st in (("base", base), ("tuned", tuned))}
    assert not torch.equal(logits["base"], logits["tuned"])  # the base is untouched, the tuned state changed
    assert models.memory_in_use() < _bytes(base) + _bytes(tuned) // 2  # the shared tensors count once

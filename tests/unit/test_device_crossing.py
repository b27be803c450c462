"""A model split over GPUs (`device_map="auto"`) hands out tensors on several devices.

CPU-only machines have one real device, but PyTorch's `meta` device is a second one that
refuses to mix with CPU tensors exactly as `cuda:1` refuses `cuda:0` ones. Each function
that reads a block's output gets that output on `meta` and its indices, projections or
labels on the CPU: before the fix each raised "expected ... on the same device". Values
are checked on the CPU with planted numbers; the GPU test (tests/integration/test_multi_gpu.py)
checks split-vs-single equality on two real GPUs.
"""

from __future__ import annotations

import math

import torch
from accelerate.hooks import AlignDevicesHook, add_hook_to_module
from conftest import tiny_model, tiny_tokenizer

from workbench import models, tracing
from workbench.config import RecordSpec
from workbench.corpus import ParallelCorpus
from workbench.evaluation.losses import token_nll
from workbench.examples import IGNORE
from workbench.finetune.lens import lens_losses
from workbench.models.hooks.cctuning import decision_maker
from workbench.tracing import make_batch, pool
from workbench.tracing.recorder import _ffn_stats

META = torch.device("meta")


def _batch():
    # two sentences, right-padded; the third token of sentence 0 does not count
    return make_batch([[5, 6, 7], [8, 9]], [[True, True, False], [True, True]], [[0], [1]], 0, "right", "cpu")


def test_pool_on_the_same_device_is_unchanged_and_moves_nothing():
    b = _batch()
    h = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)  # rows [0,1],[2,3],[4,5] / [6,7],[8,9],..
    out = pool(h, b, ["mean", "last", "weighted"])
    torch.testing.assert_close(out["mean"], torch.tensor([[1.0, 2.0], [7.0, 8.0]]))
    torch.testing.assert_close(out["last"], torch.tensor([[2.0, 3.0], [8.0, 9.0]]))
    # weights 1, 2 over the two counted tokens: (1·x0 + 2·x1) / 3
    torch.testing.assert_close(out["weighted"], torch.tensor([[4 / 3, 7 / 3], [22 / 3, 25 / 3]]))
    assert "_index_on" not in b


def test_pool_and_ffn_stats_read_a_block_output_on_another_device():
    b = _batch()
    h = torch.zeros(2, 3, 4, device=META)
    out = pool(h, b, ["mean", "last", "weighted"])
    assert {k: (v.device, tuple(v.shape)) for k, v in out.items()} == {
        "mean": (META, (2, 4)), "last": (META, (2, 4)), "weighted": (META, (2, 4))}
    moved = b["_index_on"][META]
    assert {k: v.device for k, v in moved.items()} == dict.fromkeys(("cidx", "cseg", "n", "cw", "wsum", "last"), META)
    assert b["cidx"].device.type == "cpu"  # the batch's own tensors stay where they were
    pos, sent, mean, diff = _ffn_stats(torch.zeros(2, 3, 6, device=META), b, torch.zeros(2, 6))  # prev on CPU
    assert [t.device for t in (pos, sent, mean, diff)] == [META] * 4
    assert (tuple(pos.shape), tuple(mean.shape), tuple(diff.shape)) == ((2, 6), (2,), (2,))
    assert b["_index_on"][META] is moved  # moved once per device, then reused


def test_lens_losses_live_on_the_states_device():
    d = 4
    out = lens_losses(torch.zeros(2, 3, d, device=META), torch.zeros(3, d), torch.zeros(2, 3, d), torch.zeros(3, d),
                      torch.zeros(3, d), p_a=torch.eye(d), p_s=torch.eye(d), delta=torch.ones(2, d), lam=1.0)
    assert {k: v.device for k, v in out.items()} == dict.fromkeys(("l1", "l2", "l3", "loss"), META)


def test_decision_maker_follows_f_en_device():
    f_sel, onehot = decision_maker(torch.zeros(3, 5, 4, device=META), torch.zeros(3, 4), torch.zeros(4, 5),
                                   sample=False)
    assert (f_sel.device, onehot.device) == (META, META)
    assert tuple(f_sel.shape) == (3, 4) and tuple(onehot.shape) == (3, 5)


def test_token_nll_planted_and_across_devices():
    v = 11
    labels = torch.tensor([[IGNORE, 3, 4, IGNORE], [IGNORE, IGNORE, 7, 1]])
    s, c = token_nll(torch.zeros(2, 4, v), labels)  # uniform logits: log(11) per scored token
    torch.testing.assert_close(s, torch.tensor([2 * math.log(v), 2 * math.log(v)]))
    assert c.tolist() == [2, 2]
    s, c = token_nll(torch.zeros(2, 4, v, device=META), labels)  # the LM head on another device
    assert (s.device, c.device) == (META, META)


def test_recording_leaves_accelerates_forward_wrappers_in_place():
    model = tiny_model("llama")
    for block in model.model.layers:  # what device_map="auto" installs on every module it places
        add_hook_to_module(block, AlignDevicesHook(execution_device="cpu"))
    before = {name: m.__dict__.get("forward") for name, m in model.named_modules()}
    assert sum(f is not None for f in before.values()) == len(model.model.layers)
    state = models.state_from_model(model, tiny_tokenizer(), name="hooked", fingerprint="hooked")
    corpus = ParallelCorpus("g", ["0"], {"en": ["All human beings are born free."]})
    tracing.record_unit(state, corpus, "en", RecordSpec())
    after = {name: m.__dict__.get("forward") for name, m in model.named_modules()}
    assert after == before

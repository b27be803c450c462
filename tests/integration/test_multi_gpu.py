"""A model split over two GPUs (`device_map`, as `device="cuda"` loads a large model) gives the
numbers of the same model on one GPU: recording, nll scoring, a LENS run, a CC-Tuning step.

Needs at least two CUDA devices; skipped otherwise (CPU machines and one-GPU machines).
The split puts the embedding and the first half of the blocks on the first device, the
other blocks, the final norm and the LM head on the second: every block output, FFN
activation and the logits of the second half live on another device than the batch.
The comparisons run in float32 on both sides.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_model, tiny_tokenizer

from workbench import models, tracing
from workbench.config import RecordSpec
from workbench.corpus import ParallelCorpus
from workbench.evaluation.losses import nll_per_example
from workbench.examples import translation_examples
from workbench.finetune.cctuning import cc_examples, cc_loss, collate_cc, collect_ffn_pairs
from workbench.finetune.cctuning.spec import CCTuningSpec
from workbench.finetune.lens import LENSSpec, train_lens
from workbench.models.hooks.cctuning import cctuning_forward

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")]

DEVICES = ("cuda:0", "cuda:1")
TOL = {"rtol": 1e-4, "atol": 1e-4}


def split_model(model, devices):
    """`model` dispatched by accelerate with its blocks halved over `devices` (as device_map="auto" does)."""
    from accelerate import dispatch_model  # only this test needs accelerate's dispatch

    n = model.config.num_hidden_layers
    dmap = {"model.embed_tokens": devices[0], "model.rotary_emb": devices[0],
            **{f"model.layers.{i}": devices[0] if i < n // 2 else devices[1] for i in range(n)},
            "model.norm": devices[1], "lm_head": devices[1]}
    return dispatch_model(model, device_map=dmap)


def states(devices=DEVICES):
    """(one-device state, split state) of the same tiny Llama weights."""
    tok = tiny_tokenizer()
    one = models.state_from_model(tiny_model("llama").to(devices[0]), tok, name="one", fingerprint="one")
    two = models.state_from_model(split_model(tiny_model("llama"), devices), tok, name="two", fingerprint="two")
    return one, two


def _corpus():
    return ParallelCorpus("g", ["0", "1", "2"], {
        "en": ["All human beings are born free and equal in dignity and rights.", "Everyone has rights.", "Hi."],
        "sw": ["Watu wote wamezaliwa huru.", "Kila mtu ana haki.", "Habari za asubuhi, rafiki yangu mpendwa."]})


def check_recording(devices=DEVICES):
    one, two = states(devices)
    assert {p.device for p in two.model.parameters()} == {torch.device(d) for d in devices}
    spec = RecordSpec(poolings=("mean", "last", "weighted"), embeddings=True, final_norm=True, ffn_stats=True)
    a = tracing.record_units(one, _corpus(), ["en", "sw"], spec)
    b = tracing.record_units(two, _corpus(), ["en", "sw"], spec)
    for unit in a:
        assert set(a[unit]) == set(b[unit])
        for k in a[unit]:
            np.testing.assert_allclose(b[unit][k], a[unit][k], err_msg=f"{unit} {k}", **TOL)


def check_plain_forward_after_recording(devices=DEVICES):
    _, two = states(devices)
    tracing.record_unit(two, _corpus(), "en", RecordSpec())
    ids = torch.tensor([[5, 6, 7, 8]], device=devices[0])
    logits = two.model(input_ids=ids).logits  # accelerate's device moves must survive the recorder's unwrap
    assert logits.shape[:2] == (1, 4)


def check_nll(split, devices=DEVICES):
    one, two = states(devices)
    ex = translation_examples(one.tokenizer, split, [("en", "sw"), ("sw", "en")], "train")
    a = nll_per_example(one.model, ex, one.tokenizer.pad_token_id, batch_size=4)
    b = nll_per_example(two.model, ex, two.tokenizer.pad_token_id, batch_size=4)
    np.testing.assert_array_equal(b[1], a[1])
    np.testing.assert_allclose(b[0], a[0], **TOL)


def check_lens(split, devices=DEVICES):
    one, two = states(devices)
    spec = LENSSpec(languages=("en", "sw"), samples_per_lang=8, max_steps=2, batch_size=4, lr=1e-3,
                    chat_template=False)
    a, b = train_lens(one, split, spec), train_lens(two, split, spec)
    for k in ("l1", "l2", "l3", "loss"):
        np.testing.assert_allclose([h[k] for h in b.history], [h[k] for h in a.history], **TOL)
        if "heldout_final" in a.metrics:
            np.testing.assert_allclose(b.metrics["heldout_final"][k], a.metrics["heldout_final"][k], **TOL)


def check_cctuning(split, devices=DEVICES):
    one, two = states(devices)
    examples = cc_examples(one.tokenizer, split, CCTuningSpec())[:6]
    pad, d, n_layers = one.tokenizer.pad_token_id, one.d_model, one.n_layers
    pairs = [collect_ffn_pairs(s.model, s.arch, examples, pad) for s in (one, two)]
    for x, y in zip(*pairs):
        np.testing.assert_allclose(y, x, **TOL)
    gen = torch.Generator().manual_seed(0)
    w_dm0, w_t = torch.randn(d, n_layers, generator=gen) * 0.1, torch.eye(d) + 0.01 * torch.randn(d, d, generator=gen)
    got = []
    for s in (one, two):
        batch = collate_cc(examples, pad, s.device)
        out = cctuning_forward(s, w_dm0.to(s.device), w_t.to(s.device), batch.x, positions=batch.pos)
        w_dm = torch.nn.Parameter(w_dm0.to(s.device))
        torch.manual_seed(0)
        loss, selected = cc_loss(s.model, s.arch, batch, w_dm)
        loss.backward()
        got.append((out.logits.float().cpu(), out.selected.cpu(), float(loss.detach()), selected.cpu(),
                    w_dm.grad.cpu()))
    (la, sa, lossa, sela, ga), (lb, sb, lossb, selb, gb) = got
    torch.testing.assert_close(lb, la, **TOL)
    assert torch.equal(sa, sb) and torch.equal(sela, selb)
    np.testing.assert_allclose(lossb, lossa, **TOL)
    torch.testing.assert_close(gb, ga, rtol=1e-3, atol=1e-5)


def test_recording_split_over_two_gpus_equals_one_gpu():
    check_recording()


def test_recording_leaves_accelerates_device_moves_in_place():
    check_plain_forward_after_recording()


def test_nll_split_over_two_gpus_equals_one_gpu(split):
    check_nll(split)


def test_lens_split_over_two_gpus_equals_one_gpu(split):
    check_lens(split)


def test_cctuning_split_over_two_gpus_equals_one_gpu(split):
    check_cctuning(split)

"""The tuned lens (Belrose et al. 2023) on tiny models: the objective is the paper's formula, identity
translators are the logit lens, a short training lowers the KL on held-out text, training is
deterministic, cancellable and reports progress, and the artifact round-trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from workbench import models
from workbench.corpus import load_corpus
from workbench.errors import ArtifactError, Cancelled
from workbench.lenses import LensSpec, TunedLens, lens_kl, load_tuned_lens, save_tuned_lens, train_tuned_lens
from workbench.lenses import tuned as tuned_mod
from workbench.models import ARCHITECTURES, get_path
from workbench.tracing.lens import lens_readout

pytestmark = pytest.mark.usefixtures("one_thread")

LANGS = ("en", "fr", "de", "sw", "es", "ru")
FAST = dict(max_length=64, batch_tokens=512)


@pytest.fixture(scope="module")
def texts():
    c = load_corpus("udhr")
    return ([t for lang in LANGS for t in c.texts(lang)[:40]],  # training
            [t for lang in LANGS for t in c.texts(lang)[40:50]])  # held out


@pytest.fixture(scope="module")
def trained(tiny_state, texts):
    snapshot = {n: p.detach().clone() for n, p in tiny_state.model.named_parameters()}
    lens = train_tuned_lens(tiny_state, texts[0], steps=30, **FAST)
    return lens, snapshot


def planted_translators(state, seed=0):
    lens = TunedLens.identity(state)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in lens.translators:
            t.weight.copy_(0.3 * torch.randn(t.weight.shape, generator=g))
            t.bias.copy_(0.5 * torch.randn(t.bias.shape, generator=g))
    return lens


def test_the_objective_is_the_papers_kl_of_the_final_layer_to_each_translated_layer(tiny_state, texts):
    lens = planted_translators(tiny_state)
    sample = texts[1][:3]
    got = lens_kl(tiny_state, sample, lens, **FAST)
    # the formula, written out: p_l = softmax(U · N(A_l h_l + b_l)), A_l = I + W_l; KL(p_final ‖ p_l), mean over tokens
    m, arch = tiny_state.model, tiny_state.arch
    norm, head = get_path(m, arch.norm), m.get_output_embeddings()
    total, n = np.zeros(tiny_state.n_layers), 0
    for s in sample:
        ids = tiny_state.tokenizer(s, truncation=True, max_length=64, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = m(input_ids=ids, output_hidden_states=True)
            logp_final = torch.log_softmax(out.logits[0].double(), -1)
            for i, t in enumerate(lens.translators):
                a = torch.eye(tiny_state.d_model) + t.weight
                h = out.hidden_states[i][0] @ a.T + t.bias  # hidden_states[0] = emb, [l+1] = block l
                logp = torch.log_softmax(head(norm(h)).double(), -1)
                total[i] += (logp_final.exp() * (logp_final - logp)).sum().item()
        n += ids.shape[1]
    np.testing.assert_allclose(got, total / n, rtol=1e-5)
    assert (got > lens_kl(tiny_state, sample, None, **FAST)).all()  # random translators are worse than none


def test_identity_translators_are_exactly_the_logit_lens(tiny_state, texts):
    ident = TunedLens.identity(tiny_state)
    h = torch.randn(7, tiny_state.d_model)
    assert all(torch.equal(ident.translate(h, label), h) for label in ident.labels)
    assert ident.labels == ("emb", 0, 1, 2) and ident.translate(h, 3) is h  # the last block has no translator
    np.testing.assert_array_equal(lens_kl(tiny_state, texts[1][:4], ident, **FAST),
                                  lens_kl(tiny_state, texts[1][:4], None, **FAST))


def test_a_short_training_lowers_the_kl_on_held_out_text(tiny_state, texts, trained):
    lens, snapshot = trained
    before = lens_kl(tiny_state, texts[1], None, **FAST)
    after = lens_kl(tiny_state, texts[1], lens, **FAST)
    assert (after < 0.8 * before).all(), (before, after)  # every translated layer, held-out text
    first, last = lens.metrics["kl_first"], lens.metrics["kl_last"]
    assert len(first) == len(last) == 4 and np.mean(last) < np.mean(first)
    # the lens readout reads through the translators: lower KL to the final layer at every position
    spec = LensSpec(positions="all", embeddings=True)
    logit = lens_readout(tiny_state, texts[1][:12], spec)
    tuned = lens_readout(tiny_state, texts[1][:12], spec, translator=lens)
    assert (tuned.kl_to_final[:, :-1].mean(0) < logit.kl_to_final[:, :-1].mean(0)).all()
    np.testing.assert_array_equal(tuned.top_ids[:, -1], logit.top_ids[:, -1])  # the last block: the model's own
    # the base model was never changed
    assert all(torch.equal(p, snapshot[n]) for n, p in tiny_state.model.named_parameters())


def test_training_is_deterministic_cancellable_and_reports_progress(tiny_state, texts):
    calls = []
    a = train_tuned_lens(tiny_state, texts[0], steps=4, seed=3, progress=lambda *c: calls.append(c), **FAST)
    b = train_tuned_lens(tiny_state, texts[0], steps=4, seed=3, **FAST)
    c = train_tuned_lens(tiny_state, texts[0], steps=4, seed=4, **FAST)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and a.fingerprint == b.fingerprint
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)  # another seed, another batch order
    assert [x[:2] for x in calls] == [(i, 4) for i in range(1, 5)]
    assert all(np.isfinite(x[3]["kl"]) and len(x[3]["kl_per_layer"]) == 4 for x in calls)
    asked = []
    with pytest.raises(Cancelled, match="step 2/4"):
        train_tuned_lens(tiny_state, texts[0], steps=4, should_stop=lambda: asked.append(1) or len(asked) > 2, **FAST)


@pytest.mark.parametrize("model_type", sorted(ARCHITECTURES))
def test_training_runs_on_every_architecture(model_type, texts):
    state = models.load(f"tiny:{model_type}")
    lens = train_tuned_lens(state, texts[0][:8], steps=2, lr=4.0, **FAST)
    assert all(np.isfinite(lens.metrics["kl_last"]))
    assert all(t.weight.abs().sum() > 0 for t in lens.translators)  # every translator was trained


def test_artifact_round_trip_and_base_check(tiny_state, trained, texts, tmp_path):
    lens, _ = trained
    d = save_tuned_lens(lens, tmp_path / "lens")
    manifest = json.loads((d / tuned_mod.MANIFEST).read_text())
    assert manifest["base_fingerprint"] == tiny_state.fingerprint and manifest["spec"]["steps"] == 30
    back = load_tuned_lens(d, tiny_state)
    assert back.fingerprint == lens.fingerprint == manifest["fingerprint"] and back.spec == lens.spec
    assert back.metrics == json.loads(json.dumps(lens.metrics))
    for k, v in lens.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    r1 = lens_readout(tiny_state, texts[1][:3], translator=lens)
    r2 = lens_readout(tiny_state, texts[1][:3], translator=back)
    for k, v in r1.arrays().items():
        np.testing.assert_array_equal(r2.arrays()[k], v, err_msg=k)
    with pytest.raises(ArtifactError, match="trained on"):
        load_tuned_lens(d, models.load("tiny:qwen2"))
    (d / tuned_mod.TENSORS).write_bytes((d / tuned_mod.TENSORS).read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        load_tuned_lens(d)
    with pytest.raises(ArtifactError, match="not a tuned lens"):
        load_tuned_lens(tmp_path)

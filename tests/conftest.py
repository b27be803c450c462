"""Shared fixtures: a tiny random-init model with a local tokenizer, an isolated cache."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
TINY_TOKENIZER = FIXTURES / "tiny-tokenizer"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache root unless it asks for the shared one."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))


def tiny_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TINY_TOKENIZER))


def tiny_model(model_type: str = "llama", seed: int = 0, n_layers: int = 4):
    """A random-init causal LM of the given family, small enough for seconds-long tests."""
    import torch
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, GPT2Config, LlamaConfig, Qwen2Config

    common = dict(vocab_size=2000, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if model_type == "gpt2":
        cfg = GPT2Config(n_embd=64, n_layer=n_layers, n_head=4, n_positions=512, **common)
    else:
        kw = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=n_layers, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, **common)
        if model_type == "gemma3_text":
            cfg = Gemma3TextConfig(head_dim=16, sliding_window=8, **kw)
        elif model_type == "qwen2":
            cfg = Qwen2Config(**kw)
        else:
            cfg = LlamaConfig(**kw)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_state():
    """A read-only ModelState around a tiny Llama (shared; never mutate it)."""
    from workbench.models import state_from_model

    return state_from_model(tiny_model("llama"), tiny_tokenizer(), name="tiny-llama")


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

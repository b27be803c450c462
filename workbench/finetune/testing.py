"""Tiny random-init models for tests and smoke runs: the model source `tiny-test:<type>[:<layers>]`.

Mirrors `tests/conftest.py` exactly (same configs, same seed handling), so a job's worker
builds bit-for-bit the model a test builds in process. The tokenizer is the local BPE
fixture in `tests/fixtures/tiny-tokenizer` of the source checkout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["TINY_PREFIX", "TINY_TOKENIZER", "is_tiny", "tiny_model", "tiny_state", "tiny_state_for", "tiny_tokenizer"]

TINY_PREFIX = "tiny-test:"
TINY_TOKENIZER = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "tiny-tokenizer"


def tiny_tokenizer() -> Any:
    """The fixture BPE tokenizer (bos/eos/pad), from the source checkout."""
    from transformers import AutoTokenizer

    if not TINY_TOKENIZER.is_dir():
        raise FileNotFoundError(f"tiny-test models need the source checkout's {TINY_TOKENIZER}")
    return AutoTokenizer.from_pretrained(str(TINY_TOKENIZER))


def tiny_model(model_type: str = "llama", seed: int = 0, n_layers: int = 4) -> Any:
    """A random-init causal LM of the given family (config as in tests/conftest.py)."""
    import torch
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, GPT2Config, LlamaConfig, Qwen2Config

    common: dict[str, Any] = dict(vocab_size=2000, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if model_type == "gpt2":
        cfg: Any = GPT2Config(n_embd=64, n_layer=n_layers, n_head=4, n_positions=512, **common)
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


def is_tiny(source: str) -> bool:
    """True for a `tiny-test:...` model source."""
    return source.startswith(TINY_PREFIX)


def tiny_state(model_type: str = "llama", seed: int = 0, n_layers: int = 4) -> Any:
    """A ModelState around `tiny_model(...)` and `tiny_tokenizer()`."""
    from workbench.config import ModelSpec
    from workbench.models import state_from_model

    name = f"{TINY_PREFIX}{model_type}" + (f":{n_layers}" if n_layers != 4 else "")
    return state_from_model(tiny_model(model_type, seed, n_layers), tiny_tokenizer(), name=name,
                            spec=ModelSpec(source=name, device="cpu", dtype="float32"))


def tiny_state_for(source: str) -> Any:
    """The state of a `tiny-test:<type>[:<n_layers>]` source (seed 0).

    Raises:
        ValueError: not a tiny-test source, or a bad layer count.
    """
    if not is_tiny(source):
        raise ValueError(f"{source!r} is not a {TINY_PREFIX}<type> source")
    parts = source[len(TINY_PREFIX):].split(":")
    model_type = parts[0] or "llama"
    if model_type not in ("llama", "qwen2", "gemma3_text", "gpt2"):
        raise ValueError(f"unknown tiny-test model type {model_type!r}; use llama, qwen2, gemma3_text or gpt2")
    try:
        n_layers = int(parts[1]) if len(parts) > 1 else 4
    except ValueError:
        raise ValueError(f"bad layer count in {source!r}") from None
    return tiny_state(model_type, 0, n_layers)

"""Tiny random-init models of real architectures: the model source `tiny:<type>[:<layers>]`.

An ordinary model source like a hub id or a directory (`--model tiny:llama` works in every
command), for tests, demos and smoke runs in seconds. The weights are made from a fixed
config and seed, so every process (tests, the UI, job workers) builds bit-for-bit the same
model; the tokenizer is a small byte-level BPE shipped in `workbench/data/tiny-tokenizer`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Gemma3TextConfig, GPT2Config, LlamaConfig, Qwen2Config

from workbench.errors import ModelError

TINY_PREFIX = "tiny:"
TINY_TYPES = ("llama", "qwen2", "gemma3_text", "gpt2")
TINY_DEFAULT = "tiny:llama"
TINY_TOKENIZER = Path(__file__).resolve().parents[1] / "data" / "tiny-tokenizer"


def tiny_tokenizer() -> Any:
    """The shipped tiny BPE tokenizer (bos/eos/pad, a chat template)."""
    return AutoTokenizer.from_pretrained(str(TINY_TOKENIZER))


def tiny_model(model_type: str = "llama", seed: int = 0, n_layers: int = 4) -> Any:
    """A random-init causal LM of the given family (d=64, 4 heads, vocabulary 2,000), in eval mode."""
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
    """True for a `tiny:...` model source."""
    return source.startswith(TINY_PREFIX)


def parse_tiny(source: str) -> tuple[str, int]:
    """(model type, number of blocks) of a `tiny:<type>[:<layers>]` source.

    Raises:
        ModelError: not a tiny source, an unknown type or a bad layer count.
    """
    if not is_tiny(source):
        raise ModelError(f"{source!r} is not a {TINY_PREFIX}<type> source")
    parts = source[len(TINY_PREFIX):].split(":")
    model_type = parts[0] or "llama"
    if model_type not in TINY_TYPES or len(parts) > 2:
        raise ModelError(f"unknown tiny model {source!r}; use tiny:<type>[:<layers>] with type one of "
                         f"{', '.join(TINY_TYPES)}")
    try:
        n_layers = int(parts[1]) if len(parts) > 1 else 4
    except ValueError:
        raise ModelError(f"bad layer count in {source!r}: use e.g. tiny:{model_type}:6") from None
    if not 1 <= n_layers <= 64:
        raise ModelError(f"bad layer count in {source!r}: 1 to 64 blocks")
    return model_type, n_layers


def tiny_name(model_type: str = "llama", n_layers: int = 4) -> str:
    """The canonical source name of a tiny model (`tiny:llama`, `tiny:gpt2:6`)."""
    return f"{TINY_PREFIX}{model_type}" + (f":{n_layers}" if n_layers != 4 else "")


def build_tiny(source: str) -> tuple[Any, Any]:
    """(model, tokenizer) of a tiny source (seed 0)."""
    model_type, n_layers = parse_tiny(source)
    return tiny_model(model_type, 0, n_layers), tiny_tokenizer()

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
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BloomConfig,
    CohereConfig,
    Gemma2Config,
    Gemma3TextConfig,
    GemmaConfig,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    Olmo2Config,
    Phi3Config,
    Qwen2Config,
    Qwen3Config,
    XGLMConfig,
)

from workbench.errors import ModelError

TINY_PREFIX = "tiny:"
TINY_TYPES = ("llama", "qwen2", "gemma3_text", "gpt2", "bloom", "cohere", "xglm", "phi3", "olmo2",
              "mistral", "qwen3", "gemma", "gemma2")
TINY_DEFAULT = "tiny:llama"
TINY_TOKENIZER = Path(__file__).resolve().parents[1] / "data" / "tiny-tokenizer"

_COMMON: dict[str, Any] = dict(vocab_size=2000, bos_token_id=1, eos_token_id=2, pad_token_id=0)
_LLAMA_KW: dict[str, Any] = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4,
                                 num_key_value_heads=2, max_position_embeddings=512)


def _config(model_type: str, n_layers: int) -> Any:
    """The config of a tiny model: d=64, 4 heads, FFN width 128 (GPT-2, BLOOM: 4d), vocabulary 2,000."""
    if model_type == "gpt2":
        return GPT2Config(n_embd=64, n_layer=n_layers, n_head=4, n_positions=512, **_COMMON)
    if model_type == "bloom":  # alibi, no position embeddings; FFN 4d wide
        return BloomConfig(hidden_size=64, n_layer=n_layers, n_head=4, **_COMMON)
    if model_type == "xglm":  # scaled token embeddings + sinusoidal positions, pre-LN, GELU FFN
        return XGLMConfig(d_model=64, ffn_dim=128, num_layers=n_layers, attention_heads=4,
                          max_position_embeddings=512, **_COMMON)
    kw = dict(num_hidden_layers=n_layers, **_LLAMA_KW, **_COMMON)
    if model_type in ("gemma3_text", "gemma2", "qwen3", "gemma"):
        kw["head_dim"] = 16  # their defaults (128, 256) are not hidden_size / heads
    if model_type in ("gemma3_text", "gemma2"):
        kw["sliding_window"] = 8
    return _LLAMA_LIKE_CONFIGS[model_type](**kw)


_LLAMA_LIKE_CONFIGS: dict[str, Any] = {
    "llama": LlamaConfig, "qwen2": Qwen2Config, "qwen3": Qwen3Config, "mistral": MistralConfig, "gemma": GemmaConfig,
    "gemma2": Gemma2Config, "gemma3_text": Gemma3TextConfig, "cohere": CohereConfig, "phi3": Phi3Config,
    "olmo2": Olmo2Config}


def tiny_tokenizer() -> Any:
    """The shipped tiny BPE tokenizer (bos/eos/pad, a chat template)."""
    return AutoTokenizer.from_pretrained(str(TINY_TOKENIZER))


def tiny_model(model_type: str = "llama", seed: int = 0, n_layers: int = 4) -> Any:
    """A random-init causal LM of the given family (d=64, 4 heads, vocabulary 2,000), in eval mode."""
    if model_type not in TINY_TYPES:
        raise ModelError(f"no tiny model of type {model_type!r}; one of {', '.join(TINY_TYPES)}")
    cfg = _config(model_type, n_layers)
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

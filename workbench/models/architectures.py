"""The one architecture table: where the parts of each decoder-only family live.

Keyed by `config.model_type` (HOUSE_STYLE 3). The HF model is wrapped, never
re-implemented: the recorder and the trainers find blocks, MLPs and norms through here.
To support a new family, add one `ArchEntry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.errors import ModelError

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The default LoRA target modules in Llama names (Mid-align App. D.1: q, k, v, o, gate, up, down)."""


@dataclass(frozen=True)
class ArchEntry:
    """Where the parts of a decoder-only model live (attribute paths, dotted).

    `layers` is relative to the causal-LM object; the others except `norm`/`embed`/`base`
    are relative to one decoder block.
    """

    base: str  # the body without the LM head (runs all blocks, never computes logits)
    embed: str  # module whose output is hidden_states[0]
    layers: str  # ModuleList of decoder blocks
    norm: str  # final norm, applied after the last block
    mlp: str  # the block's MLP
    act: str  # module whose output is the neuron activation A (METHODS: act_fn(gate_proj(x)))
    down: str  # the FFN's output projection (its output is the FFN output vector)
    ffn_params: tuple[str, ...]  # the FFN weight modules (SiLP trains these)
    lora_targets: tuple[str, ...] = LORA_TARGETS  # default LoRA modules (Mid-align App. D.1's set, this family's names)


_LLAMA_LIKE = ArchEntry(base="model", embed="model.embed_tokens", layers="model.layers", norm="model.norm",
                        mlp="mlp", act="mlp.act_fn", down="mlp.down_proj",
                        ffn_params=("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"))

#: The one architecture table, keyed by `config.model_type`.
ARCHITECTURES: dict[str, ArchEntry] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "gemma2": _LLAMA_LIKE,
    "gemma3_text": _LLAMA_LIKE,
    "gpt2": ArchEntry(base="transformer", embed="transformer.drop", layers="transformer.h",
                      norm="transformer.ln_f", mlp="mlp", act="mlp.act", down="mlp.c_proj",
                      ffn_params=("mlp.c_fc", "mlp.c_proj"), lora_targets=("c_attn", "c_proj", "c_fc")),
}


def get_path(obj: Any, dotted: str) -> Any:
    """Follow a dotted attribute path (`model.layers`)."""
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def architecture_for(model: Any) -> ArchEntry:
    """The table entry for a loaded HF model, or a clear error listing its modules."""
    model_type = getattr(model.config, "model_type", None)
    entry = ARCHITECTURES.get(str(model_type))
    if entry is None:
        names = [n for n, _ in model.named_modules() if n][:40]
        raise ModelError(
            f"unknown architecture {model_type!r} (known: {sorted(ARCHITECTURES)}). Add an entry to "
            f"workbench.models.ARCHITECTURES naming its parts; the model's first modules are:\n  "
            + "\n  ".join(names)
        )
    try:
        get_path(model, entry.layers)
        get_path(model, entry.norm)
    except AttributeError as e:
        raise ModelError(f"architecture {model_type!r}: table entry does not match the model ({e})") from e
    return entry

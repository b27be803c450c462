"""The one architecture table: where the parts of each decoder-only family live.

Keyed by `config.model_type` (HOUSE_STYLE 3). The HF model is wrapped, never
re-implemented: the recorder and the trainers find blocks, MLPs and norms through here.
To support a new family, add one `ArchEntry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from workbench.errors import ModelError

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The default LoRA target modules in Llama names (Mid-align App. D.1: q, k, v, o, gate, up, down)."""


@dataclass(frozen=True)
class ArchEntry:
    """Where the parts of a decoder-only model live (attribute paths, dotted).

    `layers` is relative to the causal-LM object; the others except `norm`/`embed`/`base`/
    `unembed` are relative to one decoder block. The last four fields say how the model
    turns a residual into logits (`models.unembed.lens_logits` follows them): `norm`, then
    `unembed` (tied to the input embedding where the model ties them), then the logit
    post-processing its forward applies, read from the model at call time.
    """

    base: str  # the body without the LM head (runs all blocks, never computes logits)
    embed: str  # module whose output is hidden_states[0]
    layers: str  # ModuleList of decoder blocks
    norm: str  # final norm, applied after the last block
    mlp: str  # the block's MLP ("" where the FFN's modules sit in the block itself, as in XGLM)
    act: str  # module whose output is the neuron activation A (METHODS: act_fn(gate_proj(x)))
    down: str  # the FFN's output projection (its output is the FFN output vector)
    ffn_params: tuple[str, ...]  # the FFN weight modules (SiLP trains these)
    lora_targets: tuple[str, ...] = LORA_TARGETS  # default LoRA modules (Mid-align App. D.1's set, this family's names)
    unembed: str = "lm_head"  # the LM head module (its output is the logits before any post-processing)
    logit_scale: str | None = None  # attribute of the causal LM the logits are multiplied by (Cohere)
    softcap: str | None = None  # config attribute c of a final soft-cap `c * tanh(logits / c)`, applied if set
    embed_input: bool = False  # hidden_states[0] is the *input* of `embed` (XGLM: no module outputs it)


_LLAMA_LIKE = ArchEntry(base="model", embed="model.embed_tokens", layers="model.layers", norm="model.norm",
                        mlp="mlp", act="mlp.act_fn", down="mlp.down_proj",
                        ffn_params=("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"))

# Gemma-2/3 forwards: `logits = tanh(logits / c) * c` with c = config.final_logit_softcapping when it is set.
_GEMMA_CAPPED = replace(_LLAMA_LIKE, softcap="final_logit_softcapping")

#: The one architecture table, keyed by `config.model_type`.
ARCHITECTURES: dict[str, ArchEntry] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "gemma2": _GEMMA_CAPPED,
    "gemma3_text": _GEMMA_CAPPED,
    "olmo2": _LLAMA_LIKE,  # post-norms inside the block; the final norm and head as Llama's
    "cohere": replace(_LLAMA_LIKE, logit_scale="logit_scale"),  # parallel attention + MLP; logits * logit_scale
    # Phi-3 fuses gate and up: gate, up = gate_up_proj(x).chunk(2); its activation_fn's output is A exactly
    "phi3": replace(_LLAMA_LIKE, act="mlp.activation_fn", ffn_params=("mlp.gate_up_proj", "mlp.down_proj"),
                    lora_targets=("qkv_proj", "o_proj", "gate_up_proj", "down_proj")),
    "gpt2": ArchEntry(base="transformer", embed="transformer.drop", layers="transformer.h",
                      norm="transformer.ln_f", mlp="mlp", act="mlp.act", down="mlp.c_proj",
                      ffn_params=("mlp.c_fc", "mlp.c_proj"), lora_targets=("c_attn", "c_proj", "c_fc")),
    # hidden_states[0] is the embedding LayerNorm's output (alibi: no position embeddings)
    "bloom": ArchEntry(base="transformer", embed="transformer.word_embeddings_layernorm", layers="transformer.h",
                       norm="transformer.ln_f", mlp="mlp", act="mlp.gelu_impl", down="mlp.dense_4h_to_h",
                       ffn_params=("mlp.dense_h_to_4h", "mlp.dense_4h_to_h"),
                       lora_targets=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")),
    # hidden_states[0] = scaled token embeddings + sinusoidal positions, summed inline: block 0's input
    "xglm": ArchEntry(base="model", embed="model.layers.0", embed_input=True, layers="model.layers",
                      norm="model.layer_norm", mlp="", act="activation_fn", down="fc2", ffn_params=("fc1", "fc2"),
                      lora_targets=("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")),
}


def get_path(obj: Any, dotted: str) -> Any:
    """Follow a dotted attribute path (`model.layers`); the empty path is `obj` itself."""
    for part in filter(None, dotted.split(".")):
        obj = getattr(obj, part)
    return obj


def hook_hidden0(model: Any, arch: ArchEntry, fn: Callable[[Any], None]) -> Any:
    """Call `fn(hidden_states[0])` in each forward pass of `model`; returns the hook's handle (`.remove()`).

    A forward hook on `arch.embed`'s output, or (`arch.embed_input`, as XGLM's block 0) a
    pre-hook on its input: the first positional argument, else `hidden_states`.
    """
    module = get_path(model, arch.embed)
    if arch.embed_input:
        return module.register_forward_pre_hook(
            lambda _m, args, kwargs: fn(args[0] if args else kwargs["hidden_states"]), with_kwargs=True)
    return module.register_forward_hook(lambda _m, _args, out: fn(out[0] if isinstance(out, tuple) else out))


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
        get_path(model, entry.unembed)
    except AttributeError as e:
        raise ModelError(f"architecture {model_type!r}: table entry does not match the model ({e})") from e
    return entry

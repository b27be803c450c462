"""LoRA through peft, for every method that trains an adapter (Mid-align, CC-Tuning): one config, one merge.

peft is imported inside the functions (an allowed exception of the import test: it
takes about a second to import and only LoRA training needs it, not `workbench --help`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from workbench.models import architecture_for
from workbench.models.architectures import LORA_TARGETS

__all__ = ["LORA_TARGETS", "apply_adapter", "get_peft_model", "lora_config", "merge_lora"]


def lora_config(model: Any, *, r: int, alpha: int, dropout: float, targets: Sequence[str]) -> Any:
    """Peft's LoraConfig for `model`; the default Llama-named `targets` map to the architecture's `lora_targets`."""
    from peft import LoraConfig  # start-up time: see the module docstring

    names = list(targets)
    if tuple(names) == LORA_TARGETS:  # the paper's default set, in this family's module names
        names = list(architecture_for(model).lora_targets)
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, bias="none",
                      task_type="CAUSAL_LM")


def get_peft_model(model: Any, config: Any) -> Any:
    """Peft's model with LoRA layers injected (trainable)."""
    from peft import get_peft_model as inject  # start-up time: see the module docstring

    return inject(model, config)


def merge_lora(peft_model: Any) -> tuple[Any, dict[str, torch.Tensor], dict[str, Any], list[str]]:
    """(the merged plain model, the adapter state (copied, CPU), its config dict, the merged weights' names)."""
    from peft import get_peft_model_state_dict  # start-up time: see the module docstring

    adapter = {k: v.detach().clone().cpu() for k, v in get_peft_model_state_dict(peft_model).items()}
    cfg = peft_model.peft_config["default"].to_dict()
    cfg = {k: (sorted(v) if isinstance(v, set) else v) for k, v in cfg.items()}
    lora_modules = [n for n, m in peft_model.base_model.model.named_modules() if hasattr(m, "lora_A")]
    merged = peft_model.merge_and_unload()
    names = {n for n, _ in merged.named_parameters()}
    changed = sorted(f"{m}.weight" for m in lora_modules if f"{m}.weight" in names)
    return merged, adapter, cfg, changed


def apply_adapter(model: Any, adapter: dict[str, torch.Tensor], config: dict[str, Any]) -> Any:
    """Merge a LoRA (peft `config` dict, `adapter` tensors) into `model`; return the plain model."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict  # start-up time: the module docstring

    known = set(LoraConfig.__dataclass_fields__)
    cfg = LoraConfig(**{k: v for k, v in config.items() if k in known and k != "peft_type"})
    peft_model = get_peft_model(model, cfg)
    result = set_peft_model_state_dict(peft_model, adapter)
    unexpected = list(getattr(result, "unexpected_keys", None) or [])
    if unexpected:
        raise ValueError(f"adapter tensors not in the model: {unexpected[:5]}")
    return peft_model.merge_and_unload()

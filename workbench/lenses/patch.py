"""What a patching readout patches: `PatchSpec` (cross-lingual activation patching, METHODS §10).

A patching readout runs, for each target prompt, its source prompts and the target prompt
once per patched layer; what it keeps is the target's next-token distribution at its last
position, reduced as a lens readout is (`readout.decode_stats`), one "layer" per patched
layer (`tracing.patching`). This spec names the source prompts of each target, where the
state is copied into the target (an offset from its end: ``-1`` = the last token) and which
layers are patched (`VARIANTS`). It is part of the readout's store key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from workbench.config import Spec, spec_field
from workbench.errors import ParamError
from workbench.latent.patching import UNPATCHED, VARIANTS

__all__ = ["UNPATCHED", "VARIANTS", "PatchSpec"]


@dataclass(frozen=True)
class PatchSpec(Spec):
    """Source prompts per target prompt, where their last-token state goes, and which layers are patched."""

    FORMAT_VERSION: ClassVar[int] = 1

    sources: tuple[tuple[str, ...], ...] = spec_field(
        "per target prompt, its source prompts (several: their states are averaged, the mean-over-languages "
        "variant); the state read is each source prompt's last token", ())
    target_offsets: tuple[int, ...] = spec_field(
        "per target prompt, the position patched as an offset from its end (-1: the last token)", ())
    variant: str = spec_field("single (layer l only) or from (every layer >= l, as the authors' object_lens)",
                              "single", choices=VARIANTS)

    def __post_init__(self) -> None:
        srcs = tuple(tuple(s) for s in self.sources)
        object.__setattr__(self, "sources", srcs)
        object.__setattr__(self, "target_offsets", tuple(self.target_offsets))
        if not srcs or not all(s and all(isinstance(p, str) and p for p in s) for s in srcs):
            raise ParamError("PatchSpec.sources: every target prompt needs at least one non-empty source prompt")
        if len(self.target_offsets) != len(srcs) or not all(
                isinstance(o, int) and not isinstance(o, bool) and o < 0 for o in self.target_offsets):
            raise ParamError("PatchSpec.target_offsets: one negative offset per target prompt")
        if self.variant not in VARIANTS:
            raise ParamError(f"PatchSpec.variant must be one of {', '.join(VARIANTS)}; got {self.variant!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (nested lists)."""
        return {"sources": [list(s) for s in self.sources], "target_offsets": list(self.target_offsets),
                "variant": self.variant}

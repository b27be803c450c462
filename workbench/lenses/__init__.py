"""Reading what a layer predicts (METHODS §9): lens specs, readout reductions, the tuned lens.

- `spec`: `LensSpec` (what a readout decodes) and `TunedLensSpec` (a tuned-lens training);
- `readout`: pure reductions of decoded distributions (top-k, entropy, KL to the final
  layer, token-set mass) and the `LensReadout` result;
- `tuned`: the tuned lens's translators, their training, and their artifact on disk;
- `patch`: `PatchSpec` (what a cross-lingual patching readout copies where, METHODS §10).

Decoding itself is `models.unembed.lens_logits`; running prompts through the model under
nnsight is `tracing.lens.lens_readout`. A tuned lens reads a model state without changing
it, so it lives here rather than in `finetune/` (whose artifacts change the weights and
make a new state).
"""

from workbench.lenses.patch import UNPATCHED, PatchSpec
from workbench.lenses.readout import LensReadout, decode_stats, entropy, kl_to_final, token_set_tensors
from workbench.lenses.spec import LensSpec, TunedLensSpec
from workbench.lenses.tuned import TunedLens, lens_kl, load_tuned_lens, save_tuned_lens, train_tuned_lens

__all__ = [
    "UNPATCHED", "LensReadout", "LensSpec", "PatchSpec",
    "TunedLens", "TunedLensSpec", "decode_stats", "entropy", "kl_to_final", "lens_kl",
    "load_tuned_lens", "save_tuned_lens", "token_set_tensors", "train_tuned_lens",
]

"""CC-Tuning: a cross-lingual connection of FFN outputs, chosen by a Decision Maker (METHODS §6; CC-Tuning §3.2).

Definitions this module follows (METHODS §6 is the spec; where it and the paper are silent,
the choice is written here):

- **FFN output vector** `f_l` of block `l`: the output of `arch.down` (`down_proj`; GPT-2
  `c_proj`), i.e. before Gemma's post-feed-forward norm. Read and changed with forward hooks
  on the wrapped HF model; the forward is never re-implemented.
- **Connection position** ("just before the response", the paper's "right before the
  [output] token"): the **last prompt token**. For translation pairs the prompt is the
  DataSpec template (SiLP-style) formatted up to `{tgt_text}`, so the position is the token
  whose next-token prediction is the response's first token; for instruction rows the
  prompt is the instruction followed by a newline.
- **Example** (translation data, pair `en`–`N`): the non-English input `x` is the template
  with source language `N` and the `N` sentence, the response `y` is the sentence in
  `spec.response_lang` (default: the English pivot). The English parallel `x^en` is `x` with
  its source sentence replaced by the English one (the instruction words are English
  already; the language names are kept), i.e. the English translation of `x`. With
  response language English, `x^en` contains the answer: the |Δ| below measures how much of
  that a Transform Matrix recovers from `x` alone. Use a third language (`target`) or an
  instruction file for a set-up without that leak.
- **Decision Maker** (Eq. 3–4): `H = mean_l(f^en_l + e) W_DM = (mean_l f^en_l + e) W_DM`,
  `W_DM ∈ R^{d×L}` (no bias; initialised to zero, so training starts from uniform random
  layer choice, the paper's "Random Pooling"). `e` (the paper's "embedding activations
  e_i ∈ R^d of x_i") is the output of the embedding module (`hidden_states[0]`, Gemma's
  √d scale included) of the **non-English** input at the connection position
  (`embed="position"`, default: the authors' code, `llamawrapper_mlp.py`, adds
  `hidden_states[k, idx]`, the embedding at the connection position, to every `f^en_l`), or
  averaged over the real non-special prompt tokens (`embed="mean"`, a named variant). The
  connection position is the same template token in every example, so under "position" `e`
  is a constant bias and the Decision Maker's input varies only through `F^en`; "mean" lets it
  see `x`. Training: `onehot = gumbel_softmax(H, τ, hard=True)` (straight-through).
  Inference: the authors' code samples the same hard Gumbel choice in every forward pass
  that connects (τ = 1), inference included; a state's inference does so by default, seeded
  per prompt (`decide="gumbel"`, `models.hooks.cctuning`), and `decide="argmax"` (the mode of
  that distribution, "the layer with the highest probability of being selected") is the
  deterministic variant. Fig. 8 (the held-out layer distribution) is reported for both.
- **Connection** (Eq. 5): `f_sel = onehot · F^en` is added to block 0's FFN output at the
  connection position of the non-English pass; everything after it changes, nothing
  before it. The English pass runs without gradients (the paper's 1.12–1.16× training
  cost fits a forward-only English pass; the model learns through the non-English pass).
- **Transform Matrix** (Eq. 6–7): `W_T = argmin ‖A W_T − B‖²` with `numpy.linalg.lstsq`
  (never an explicit inverse), `A`/`B` = the stacked `(N·L, d)` FFN outputs at the
  connection position of `x` / `x^en` for `N` training pairs, from the tuned model without
  the connection. Inference on monolingual input: first pass → `F` → `F̂^en = F W_T` →
  Decision Maker → second pass with the connection.

The package: `examples` (data), `model` (hooks, connection, Decision Maker, inference),
`report` (Transform Matrix and held-out numbers), `train` and `artifact`.
"""

from __future__ import annotations

from workbench.analysis.cctuning import (
    fit_transform_matrix,
    layer_distribution,
    parallel_gap,
    transform_fit_curve,
    transform_mse,
)
from workbench.finetune.cctuning.artifact import CCTuned, load_cctuning, write_artifact_with_files
from workbench.finetune.cctuning.examples import (
    CCBatch,
    CCExample,
    cc_examples,
    collate_cc,
    instruction_examples,
)
from workbench.finetune.cctuning.report import cctuning_evaluate, collect_ffn_pairs, fit_and_report
from workbench.finetune.cctuning.spec import CCTuningSpec
from workbench.finetune.cctuning.train import cc_loss, init_decision_maker, lora_config, train_cctuning
from workbench.finetune.method import Method
from workbench.models.hooks.cctuning import (
    CC_FILE,
    CCOutput,
    cctuning_forward,
    cctuning_generate,
    decision_maker,
    ffn_connection,
    ffn_outputs,
)

__all__ = [
    "CC_FILE",
    "CCTuningSpec",
    "METHOD",
    "CCBatch",
    "CCExample",
    "CCOutput",
    "CCTuned",
    "cc_examples",
    "cc_loss",
    "cctuning_evaluate",
    "cctuning_forward",
    "cctuning_generate",
    "collate_cc",
    "collect_ffn_pairs",
    "decision_maker",
    "ffn_connection",
    "ffn_outputs",
    "fit_and_report",
    "fit_transform_matrix",
    "init_decision_maker",
    "instruction_examples",
    "layer_distribution",
    "load_cctuning",
    "lora_config",
    "parallel_gap",
    "train_cctuning",
    "transform_fit_curve",
    "transform_mse",
    "write_artifact_with_files",
]


METHOD = Method(
    name="cctuning", label="CC-Tuning",
    caption="English FFN outputs connected into block 0 by a Decision Maker; W_T at inference",
    spec=CCTuningSpec, train=train_cctuning,
    languages=lambda s: (s.pivot, s.lang) + ((s.target,) if s.target not in (None, s.pivot) else ()),
    pivot=lambda s: s.pivot,
    from_langs=lambda langs: {"pivot": langs[0], "lang": langs[1]},  # English parallels connect into the target's pass
    lang_fields=("pivot", "lang"),
    inference="cctuning",  # its artifacts run the two-pass connection at inference (`models.hooks.cctuning`)
    aliases={"instructions": "instruction_file"},
)
"""CC-Tuning's record (registered in `finetune.methods`)."""

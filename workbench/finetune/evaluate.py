"""Before/after numbers for a fine-tune: a re-export of `workbench.evaluation.losses`.

The functions moved to the evaluation package (one home for every evaluation); this
module keeps `workbench.finetune.evaluate.<name>` importable for existing callers.
"""

from __future__ import annotations

from workbench.evaluation.losses import evaluate_model, evaluate_state, nll, perplexity, translation_loss

__all__ = ["evaluate_model", "evaluate_state", "nll", "perplexity", "translation_loss"]

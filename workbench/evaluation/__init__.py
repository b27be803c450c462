"""Did the fine-tune help? Outcome evaluation of model states, computed once and kept in the store.

- `generate`: batched generation (length-sorted, left-padded, KV cache; CC-Tuning two-pass);
- `metrics`: sacrebleu chrF++/BLEU, per-sentence chrF++, bootstrap intervals;
- `langid`: language identification of outputs (py3langid restricted to the data's
  languages) and its validation on references;
- `losses`: held-out translation loss and perplexity;
- `lmeval`: lm-evaluation-harness model class, hub tasks and the offline task;
- `suites`: what each suite computes; `cache`: results in the store;
- `run.evaluate`: the one entry point; `tables`: N-state comparisons.
"""

from workbench.evaluation.generate import DecodingSpec
from workbench.evaluation.run import EVAL_COLUMNS, GENERATION_COLUMNS, EvalResult, evaluate
from workbench.evaluation.tables import combine, compare_scores, evaluate_many, filter_generations, side_by_side

__all__ = ["EVAL_COLUMNS", "GENERATION_COLUMNS", "DecodingSpec", "EvalResult", "combine", "compare_scores",
           "evaluate", "evaluate_many", "filter_generations", "side_by_side"]

"""The registry of analyses: one definition of each view, whichever door the user comes in by.

- `analysis`: the `Analysis` record (Params, needs, build, report, its two-state `Compare`);
- `registry`: `register_analysis`, `get_analysis`, `PARAMS`, `ANALYSES` (defaults);
- one module per analysis family: `retrieval`, `sensitivity`, `neurons`, `maps`, `subspace`,
  `outcomes`, each with its `Params`, builders and `ANALYSES` records;
- `params`: the parameter groups analyses share; `spec`: figure specs in canonical form;
- `tables`: Recording -> the view's table (THE best layer, SiLP pass and allocation table);
- `compare`: `side_by_side`, the two-state join; `context`: the build context;
- `build`: `build_figure(spec) -> (figure, table, provenance)`, the one place that records
  or evaluates for a view; `commands`: the `workbench analyze` command equivalent to a spec;
- `settings`: the Setup page's choices as specs (`Settings`).

The pages, `workbench analyze`, `workbench export`, `workbench report` and figure sets all
call `recipes.build.build_figure` or the `tables` functions it composes. This package's face
is light (no recorder, no evaluator): `workbench analyze --help` and the pages' registry
reads import it; `recipes.build` is the heavy side.
"""

from workbench.recipes.commands import analyze_command
from workbench.recipes.params import params_for
from workbench.recipes.registry import ANALYSES, PARAMS, get_analysis, register_analysis
from workbench.recipes.spec import DEFAULT_LANGS, EXPORT_KEYS, SPEC_KEYS, normalize_spec, record_spec
from workbench.recipes.tables import best_layer, best_layer_of

__all__ = ["ANALYSES", "DEFAULT_LANGS", "EXPORT_KEYS", "PARAMS", "SPEC_KEYS", "analyze_command", "best_layer",
           "best_layer_of", "get_analysis", "normalize_spec", "params_for", "record_spec", "register_analysis"]

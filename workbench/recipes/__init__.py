"""The registry of analyses: one definition of each view, whichever door the user comes in by.

- `params`: each analysis's parameters as a frozen dataclass (`PARAMS`, defaults `ANALYSES`);
- `spec`: figure specs in canonical form (`normalize_spec`);
- `tables`: Recording -> the view's table (THE best layer, SiLP pass and allocation table);
- `build`: `build_figure(spec) -> (figure, table, provenance)`, the builders (`BUILDERS`);
- `commands`: the `workbench analyze` command equivalent to a spec.

The pages, `workbench analyze`, `workbench export`, `workbench report` and figure sets all
call `build_figure` or the `tables` functions it composes.
"""

from workbench.recipes.build import BUILDERS, build_figure, provenance
from workbench.recipes.commands import analyze_command
from workbench.recipes.params import ANALYSES, PARAMS, params_for
from workbench.recipes.spec import DEFAULT_LANGS, EXPORT_KEYS, SPEC_KEYS, normalize_spec, record_spec
from workbench.recipes.tables import best_layer, best_layer_of

__all__ = ["ANALYSES", "BUILDERS", "DEFAULT_LANGS", "EXPORT_KEYS", "PARAMS", "SPEC_KEYS", "analyze_command",
           "best_layer", "best_layer_of", "build_figure", "normalize_spec", "params_for", "provenance",
           "record_spec"]

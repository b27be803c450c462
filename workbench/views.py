"""Recording -> tables for each view: the one glue layer the CLI and the UI both call.

So the numbers the UI shows equal what `workbench analyze` prints for the same settings.
Every function is a thin composition of `workbench.analysis` pure functions.
"""

from workbench.ui_support import (  # noqa: F401 - re-exported; bodies move here
    ffn_layer_labels,
    map_points,
    overlap_table,
    retrieval_matrix_at,
    retrieval_tables,
    sensitivity_scores,
    separation_table,
    specific_counts,
    subspace_view,
)

"""Plotly figure builders and the paper theme (figures are returned, never rendered)."""

from workbench.viz import figures, theme
from workbench.viz.figures import (
    map_figure,
    overlap_figure,
    retrieval_by_layer_figure,
    retrieval_heatmap,
    sensitivity_figure,
    separation_figure,
    specific_neurons_figure,
    subspace_figure,
)
from workbench.viz.theme import language_color, paper_layout

__all__ = [
    "figures",
    "language_color",
    "map_figure",
    "overlap_figure",
    "paper_layout",
    "retrieval_by_layer_figure",
    "retrieval_heatmap",
    "separation_figure",
    "sensitivity_figure",
    "specific_neurons_figure",
    "subspace_figure",
    "theme",
]

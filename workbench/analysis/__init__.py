"""Pure analysis functions: arrays in, arrays or DataFrames out (no model, no I/O, no UI).

Modules: :mod:`retrieval` (translation retrieval), :mod:`sensitivity` (SiLP projection
sensitivity and layer allocation), :mod:`overlap` (neuron overlap, LAPE), :mod:`subspace`
(LENS language subspaces), :mod:`embed2d` (PCA / t-SNE / UMAP maps).
"""

from workbench.analysis import embed2d, overlap, retrieval, sensitivity, subspace

__all__ = ["embed2d", "overlap", "retrieval", "sensitivity", "subspace"]

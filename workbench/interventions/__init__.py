"""Interventions above the recordings: where an intervention's neurons, vectors or basis come from.

`models.interventions` applies a concrete `InterventionSpec` (hooks on a parameter-sharing
copy; tensors read by content hash). This package makes concrete ones:

- `requests`: the `--intervention KIND:key=value,...` syntax -> an unresolved spec (light:
  no torch, so `workbench analyze --help` stays fast);
- `neuron_pth`: RUCAIBox Language-Specific-Neurons' `.neuron.pth` masks, read and written;
- `resolve`: `resolve_spec(model, corpus=..., record=...)`: LAPE neurons of a language
  from a recording (or a `.neuron.pth`, or a random control of the same per-layer size),
  a language's mean activations, mean `h_l` of a language from a recording, LENS's basis
  -> tensors written content-addressed, the concrete spec returned with its `source`;
- `experiments`: the deactivation matrix, the steering curve and the before/after
  preview (`preview_generations`), each intervened state evaluated through the store.
"""

from workbench.interventions.requests import SYNTAX, parse_intervention

__all__ = ["SYNTAX", "parse_intervention"]

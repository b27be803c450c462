"""Fine-tunes (METHODS.md §6): SiLP, Mid-align and LENS, run as jobs in separate processes.

- `specs`: frozen configs (`DataSpec`, `SiLPSpec`, `MidAlignSpec`, `LENSSpec`);
- `data`: seeded train/held-out split, tokenisation with the loss on targets only;
- `silp`, `midalign`, `lens`: pure training functions (a copy of the model in, a
  `TrainResult` out) and their losses as pure functions;
- `artifact_io`: artifacts of only the changed tensors (plus the raw LoRA adapter);
- `evaluate`: held-out translation loss and pivot perplexity, before/after;
- `runner`: one fine-tune end to end; `jobs` + `worker`: the separate processes;
- `testing`: tiny models for tests (`tiny:llama`).

Importing this package is light: torch, transformers and peft load with the submodules.
"""

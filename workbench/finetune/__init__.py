"""Fine-tunes (METHODS.md §6): SiLP, Mid-align, LENS and CC-Tuning, run as jobs in separate processes.

- `method`: the `Method` record; `methods`: the registry (`register_method`, `get_method`);
- one module per method, each with its frozen spec, trainer and `METHOD`: `silp`,
  `midalign`, `lens`, `cctuning/` (a package: examples, train, report, artifact);
- `specs`: what every spec shares (schedules, common checks); `train`: `Stepper`, hooks;
  `data`: the training `collate` (sharded over N processes); `lora`: peft config and merge;
- `artifact_io`: an artifact's contents from a tuned model (the layout: `models.artifacts`);
- `distributed`: data-parallel steps on N processes; `runner`: one fine-tune end to end;
  `jobs` + `worker`: the job processes, and the states finished jobs made (`tuned_states`).

Importing this package is light: torch, transformers and peft load with the submodules.
"""

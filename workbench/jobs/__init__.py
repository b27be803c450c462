"""The one job system: recordings and evaluations in threads, fine-tunes in processes.

- `progress`: the `Progress` protocol every long computation reports through, `Snapshot`
  (the one view of a job) and `RateMeter` (rate and ETA from the running rate).
- `threads`: in-process jobs keyed by what they compute (`JOBS`), shared by every tab.
- `processes`: worker processes with their state in `<cache>/jobs/<id>/` (start, cancel,
  list, wait), which survive an app restart; `worker` is their entry point.

Cancellation raises `workbench.errors.Cancelled` inside the work. (No imports here: the
submodules import the fine-tune code, which itself reports through `progress`.)
"""

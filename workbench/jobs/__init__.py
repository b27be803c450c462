"""The job system: long work with progress, ETA, cancel, and jobs that survive a page reload.

- `threads`: in-process jobs keyed by what they compute (`JOBS`), shared by every tab
  (recordings, evaluations: `recordings.start_recording`, `evaluation.jobs`).

The progress protocol they report through is `workbench.progress`; fine-tunes run as
worker processes beside their method registry (`finetune.jobs`, `finetune.worker`).
Cancellation raises `workbench.errors.Cancelled` inside the work.
"""

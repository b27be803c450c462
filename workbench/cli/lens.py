"""`workbench lens train | ls`: tuned lenses (Belrose et al. 2023) of a model state, headless.

    workbench lens train --model gemma-3-270m --corpus udhr --langs en,fr,de,zh,ja,sw [--limit N] [--steps 250]
    workbench lens ls [--model M]

`train` runs the tuned-lens job (`recordings.tuned_lens`: the same work as the Layer
predictions page's, here in the foreground with a progress bar; Ctrl-C cancels it and saves
nothing) and prints the lens id; the id is the `--lens` of `workbench analyze latent|tokens`.
A second identical request prints the saved lens without training.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
from typing import Any

from workbench.cli._args import ProgressBar, add_field_args, add_model_args, csv_list, model_spec, spec_from_args
from workbench.config import CorpusSpec
from workbench.errors import JobError
from workbench.jobs.threads import JOBS
from workbench.lenses import TunedLensSpec
from workbench.lenses.artifacts import list_lenses
from workbench.models import fingerprint
from workbench.recordings.tuned_lens import start_tuned_lens

__all__ = ["add_lens_parser", "cmd_lens_ls", "cmd_lens_train"]


def _row_line(r: dict[str, Any]) -> str:
    kl = (f"held-out KL {r['kl_logit']:.3f} → {r['kl_tuned']:.3f} nats" if r["kl_logit"] is not None
          and r["kl_tuned"] is not None else "held-out KL not measured")
    data = r["data"] or {}
    when = _dt.datetime.fromtimestamp(r["created"]).strftime("%Y-%m-%d %H:%M")
    return (f"{r['id']}  {r['base_name']} ({r['base_fingerprint']})  {r['steps']} steps  {kl}  "
            f"{data.get('corpus', '?')} {','.join(data.get('langs') or [])}  {when}")


def cmd_lens_train(a: argparse.Namespace) -> int:
    """Train a tuned lens (or find the saved one of the same request) and print its id."""
    spec = TunedLensSpec.from_dict(spec_from_args(a, dataclasses.fields(TunedLensSpec)))
    model = model_spec(a)
    job = start_tuned_lens(model, CorpusSpec(source=a.corpus, langs=tuple(a.langs), limit=a.limit), spec,
                           registry=JOBS)  # in the foreground: this process trains it
    bar = ProgressBar(a.progress)
    try:
        while not job.wait(0.5):
            s = job.snapshot()
            if s.total:
                bar(s.done, s.total, f"{s.message} kl {s.metrics.get('kl', float('nan')):.3f}")
    except KeyboardInterrupt:  # stop the job at its next step; the CLI reports the interrupt (exit 130)
        job.cancel()
        job.wait()
        raise
    finally:
        bar.close()
    s = job.snapshot()
    if s.state != "done":
        raise JobError(f"tuned-lens training {s.state}: {s.error or s.message}")
    row = s.result
    print(_row_line(row))
    print(f"lens id {row['id']} (saved in {row['path']}); use it as --lens {row['id']} with "
          "`workbench analyze latent|tokens`")
    if a.json:
        print(json.dumps(row, default=str))
    return 0


def cmd_lens_ls(a: argparse.Namespace) -> int:
    """List saved tuned lenses (of one model state with --model)."""
    fp = fingerprint(model_spec(a), download=False) if a.model else None
    rows = list_lenses(fp) if a.model is None or fp is not None else []
    for r in rows:
        print(_row_line(r))
    if not rows:
        print("no tuned lens saved" + (f" for {a.model}" if a.model else "") + "; `workbench lens train` makes one")
    return 0


def add_lens_parser(sub: Any) -> None:
    """Add `workbench lens train` and `workbench lens ls`."""
    p = sub.add_parser("lens", help="train or list tuned lenses (the lens of the latent and token views)")
    lsub = p.add_subparsers(dest="lens_command", required=True, metavar="COMMAND")
    t = lsub.add_parser("train", help="train a tuned lens of a model state on a corpus's text (a job)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_args(t)
    d = t.add_argument_group("training text (every tenth unit held out)")
    d.add_argument("--corpus", default="udhr", help="udhr, tatoeba:sw, or a TSV/JSONL file or FLORES dir")
    d.add_argument("--langs", type=csv_list, default=csv_list("en,fr,de,es,zh,ja,sw,hi,ru"),
                   help="the languages whose sentences are trained on")
    d.add_argument("--limit", type=int, default=None, help="only the first N units per language")
    add_field_args(t.add_argument_group("tuned lens (TunedLensSpec; unset = tuned-lens's defaults)"),
                   dataclasses.fields(TunedLensSpec), keep_defaults=False)
    t.add_argument("--progress", action="store_true", help="show a progress bar")
    t.add_argument("--json", action="store_true", help="also print the lens's row as JSON")
    t.set_defaults(func=cmd_lens_train)
    ls = lsub.add_parser("ls", help="list saved tuned lenses")
    ls.add_argument("--model", default=None, help="only the lenses of this model state")
    ls.add_argument("--artifact", default=None, help="with --model: a fine-tune artifact on top of it")
    ls.add_argument("--device", default="auto")
    ls.add_argument("--dtype", default="auto")
    ls.add_argument("--trust-remote-code", action="store_true")
    ls.set_defaults(func=cmd_lens_ls)

"""CLI for fine-tunes and jobs: `workbench finetune <method> ...` (every registered method) and `workbench jobs ...`.

`add_finetune_parser(subparsers)` adds both commands to the main parser. A fine-tune
always runs as a job (a separate worker process); `--wait` follows its progress and
prints the artifact path when it is done.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from workbench import ranks
from workbench.cli._args import add_field_args, spec_from_args
from workbench.cli._args import csv_list as _csv
from workbench.cli._args import key_value as _kv
from workbench.finetune import jobs
from workbench.finetune.method import Method
from workbench.finetune.methods import METHODS, get_method

__all__ = ["add_finetune_parser", "cmd_finetune", "cmd_jobs"]

EXAMPLES = """examples:
  workbench finetune silp --model gemma-3-270m --pair en:sw --steps 200 --wait
  workbench finetune midalign --pair en:sw --steps 100 --set tau=1.5 --set align_layer=9
  workbench finetune lens --langs en,sw,zh --corpus udhr --steps 50
  workbench finetune cctuning --model gemma-3-270m --pair en:sw --steps 20 --set wt_pairs=300
  workbench jobs ls
  workbench jobs show silp-20250101-120000-ab12cd
  workbench jobs cancel silp-20250101-120000-ab12cd
"""


def _pair(s: str) -> tuple[str, str]:
    if s.count(":") != 1 or not all(s.split(":")):
        raise argparse.ArgumentTypeError(f"a pair is PIVOT:TARGET (e.g. en:sw), got {s!r}")
    a, b = s.split(":")
    return a.strip(), b.strip()


def _common(p: argparse.ArgumentParser, method: Method) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default="gemma-3-270m",
                   help="bundled name, hub id, local dir, .gguf, or tiny:llama (tests) (default: %(default)s)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda")
    g.add_argument("--dtype", default="auto", help="auto trains in float32; float32, bfloat16")
    g.add_argument("--trust-remote-code", action="store_true", help="allow custom model code from the hub")
    d = p.add_argument_group("data")
    d.add_argument("--corpus", default="tatoeba:sw", help="tatoeba:sw, udhr, a TSV/JSONL file or FLORES dir "
                                                          "(default: %(default)s)")
    d.add_argument("--pair", type=_pair, default=("en", "sw"), 
                   help="PIVOT:TARGET languages, e.g. en:sw (default en:sw)")
    if method.many_languages:
        d.add_argument("--langs", type=_csv, default=None, help="languages incl. the central one (default: the pair)")
    d.add_argument("--heldout", type=float, default=0.1, help="held-out fraction (default 0.1)")
    d.add_argument("--limit", type=int, default=None, help="at most N training units")
    d.add_argument("--split-seed", type=int, default=0, help="seed of the train/held-out split")
    d.add_argument("--max-length", type=int, default=128, help="tokens per example (default 128)")
    t = p.add_argument_group(f"{method.label} (fields of {method.spec.__name__}; unset = the paper's default"
                             + (f"; --steps caps each stage: {', '.join(method.stages)})" if method.stages else ")"))
    add_field_args(t, method.own_fields(), keep_defaults=False, aliases={**COMMON_ALIASES, **method.aliases})
    t.add_argument("--set", type=_kv, action="append", default=[], metavar="FIELD=VALUE",
                   help="any field of the method's spec (JSON values), repeatable")
    j = p.add_argument_group("job")
    j.add_argument("--no-eval", action="store_true", help="skip held-out loss / perplexity before and after")
    j.add_argument("--num-processes", type=int, default=1, metavar="N",
                   help="data-parallel training processes (accelerate launch; one per GPU, gloo on CPU); the "
                        "global batch is split over them" + ("" if method.shardable else
                                                             f" (not for {method.label}: 1 only)"))
    j.add_argument(ranks.FORCE_FLAG, dest="force_processes", action="store_true",
                   help="start --num-processes N even above this machine's GPUs or CPU cores")
    p.add_argument("--wait", action="store_true", help="follow the job and print the artifact path")


COMMON_ALIASES = {"steps": "max_steps"}
"""Short flags every method has (`--steps` = `--max-steps`, a cap on steps: per stage for SiLP)."""


def _method_spec(a: argparse.Namespace) -> dict[str, Any]:
    """The spec dict of the parsed `finetune <method>` arguments: languages, the flags given, then `--set`."""
    method = get_method(a.method)
    pivot, target = a.pair
    langs: list[str] = list(getattr(a, "langs", None) or [pivot, target])
    if pivot in langs:  # the pivot (central language) first
        langs = [pivot, *[x for x in langs if x != pivot]]
    spec: dict[str, Any] = {**method.from_langs(langs), **spec_from_args(a, method.own_fields())}
    spec.update(dict(a.set))
    return spec


def _line(status: dict[str, Any]) -> str:
    step, total = status.get("step") or 0, status.get("total")
    hist = status.get("history") or []
    loss = hist[-1].get("loss") if hist else None
    parts = [f"[{status.get('state')}]", f"step {step}/{total if total is not None else '?'}"]
    if status.get("stage"):
        parts.append(str(status["stage"]))
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    if status.get("eta_s") is not None:
        parts.append(f"eta {status['eta_s']:.0f}s")
    if status.get("message") and not loss:
        parts.append(str(status["message"]))
    return "  ".join(parts)


def _follow(job_id: str) -> int:

    shown = {"line": ""}

    def show(status: dict[str, Any]) -> None:
        line = _line(status)
        if line != shown["line"]:
            print(line, file=sys.stderr)
            shown["line"] = line

    try:
        status = jobs.wait_job(job_id, on_update=show, poll_s=0.5)
    except KeyboardInterrupt:
        print(f"interrupted: cancelling job {job_id}", file=sys.stderr)
        status = jobs.cancel_job(job_id, grace_s=2.0)
        print(f"job {job_id}: {status.get('state')}", file=sys.stderr)
        return 130
    if status.get("state") == "done":
        print(status["artifact"])
        return 0
    print(f"job {job_id} {status.get('state')}: {status.get('reason')}", file=sys.stderr)
    return 1


def cmd_finetune(a: argparse.Namespace) -> int:
    """Start a fine-tune job (and follow it with --wait)."""
    model = {"source": a.model, "device": a.device, "dtype": a.dtype, "trust_remote_code": a.trust_remote_code}
    data = {"source": a.corpus, "heldout": a.heldout, "limit": a.limit, "split_seed": a.split_seed,
            "max_length": a.max_length}
    job_id = jobs.start_job(a.method, model, data, _method_spec(a), evaluate=not a.no_eval,
                            num_processes=a.num_processes, force_processes=a.force_processes)
    print(f"started job {job_id} (log: {jobs.job_dir(job_id) / 'log.txt'})", file=sys.stderr)
    if a.wait:
        return _follow(job_id)
    print(job_id)
    return 0


def _ls() -> int:

    rows = jobs.list_jobs()
    if not rows:
        print("(no jobs)")
        return 0
    cols = ["id", "state", "progress", "loss", "created", "note"]
    table = []
    for r in rows:
        note = r.get("reason") if r.get("state") in ("failed", "cancelled", jobs.DAMAGED) else (
            r.get("artifact") if r.get("state") == "done" else r.get("message"))
        loss = r.get("loss")
        progress = f"{r.get('step') or 0}/{r.get('total') or '?'}"
        table.append({"id": r["id"], "state": r.get("state"), "progress": progress,
                      "loss": f"{loss:.4f}" if isinstance(loss, float) else "", "created": r.get("created", ""),
                      "note": str(note or "")[:100]})
    width = {c: max(len(c), *(len(str(t[c])) for t in table)) for c in cols}
    print("  ".join(c.ljust(width[c]) for c in cols))
    for t in table:
        print("  ".join(str(t[c]).ljust(width[c]) for c in cols))
    return 0


def cmd_jobs(a: argparse.Namespace) -> int:
    """List, show or cancel jobs."""
    if a.action == "ls":
        return _ls()
    if a.action == "cancel":  # the state the request leads to: cancelling (still stopping) or cancelled
        status = jobs.cancel_job(a.id)
        print(f"{a.id}: {status.get('state')}" + (f" ({status['reason']})" if status.get("reason") else ""))
        return 0
    status = jobs.job_status(a.id)
    hist = status.pop("history", None) or []
    status["history_len"] = len(hist)
    status["last_steps"] = hist[-5:]
    print(json.dumps(status, indent=1, default=str))
    log_path = jobs.job_dir(a.id) / "log.txt"
    if a.log and log_path.is_file():
        lines = log_path.read_text(errors="replace").splitlines()[-a.log:]
        print("\n-- log.txt (last %d lines) --" % len(lines))
        print("\n".join(lines))
    return 0


def add_finetune_parser(sub: Any) -> None:
    """Add `finetune <method>` (one per registered method) and `jobs {ls,show,cancel}` to the main subparsers."""
    names = ", ".join(m.label for m in METHODS.values())
    f = sub.add_parser("finetune", help=f"start a fine-tune job ({names})", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    fsub = f.add_subparsers(dest="method", required=True)
    for method in METHODS.values():
        text = f"{method.label}: {method.caption}"
        p = fsub.add_parser(method.name, help=text, description=text)
        _common(p, method)
        p.set_defaults(func=cmd_finetune)

    j = sub.add_parser("jobs", help="list, show or cancel fine-tune jobs")
    jsub = j.add_subparsers(dest="action", required=True)
    jsub.add_parser("ls", help="all jobs, newest first (finished, failed and cancelled included)")
    js = jsub.add_parser("show", help="a job's status (JSON) and the end of its log")
    js.add_argument("id")
    js.add_argument("--log", type=int, default=20, help="lines of log.txt to show (0: none)")
    jc = jsub.add_parser("cancel", help="cancel a queued or running job")
    jc.add_argument("id")
    j.set_defaults(func=cmd_jobs)

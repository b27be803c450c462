"""CLI for fine-tunes and jobs: `workbench finetune silp|midalign|lens|cctuning ...` and `workbench jobs ...`.

`add_finetune_parser(subparsers)` adds both commands to the main parser. A fine-tune
always runs as a job (a separate worker process); `--wait` follows its progress and
prints the artifact path when it is done.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from workbench.cli._args import csv_list as _csv
from workbench.cli._args import int_list as _ints
from workbench.cli._args import key_value as _kv
from workbench.jobs import processes as jobs

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


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default="gemma-3-270m",
                   help="bundled name, hub id, local dir, .gguf, or tiny:llama (tests)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda")
    g.add_argument("--dtype", default="auto", help="auto trains in float32; float32, bfloat16")
    g.add_argument("--trust-remote-code", action="store_true", help="allow custom model code from the hub")
    d = p.add_argument_group("data")
    d.add_argument("--corpus", default="tatoeba:sw", help="tatoeba:sw, udhr, a TSV/JSONL file or FLORES dir")
    d.add_argument("--pair", type=_pair, default=("en", "sw"), help="PIVOT:TARGET languages, e.g. en:sw")
    d.add_argument("--heldout", type=float, default=0.1, help="held-out fraction")
    d.add_argument("--limit", type=int, default=None, help="at most N training units")
    d.add_argument("--split-seed", type=int, default=0, help="seed of the train/held-out split")
    d.add_argument("--max-length", type=int, default=128, help="tokens per example")
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=int, default=None, help="cap on steps (per stage for SiLP)")
    t.add_argument("--epochs", type=float, default=None, help="epochs (default: the paper's)")
    t.add_argument("--lr", type=float, default=None, help="learning rate (default: the paper's)")
    t.add_argument("--batch-size", type=int, default=None, help="examples per step")
    t.add_argument("--seed", type=int, default=0, help="training seed")
    t.add_argument("--set", type=_kv, action="append", default=[], metavar="FIELD=VALUE",
                   help="any other field of the method's spec (JSON values), repeatable")
    t.add_argument("--no-eval", action="store_true", help="skip held-out loss / perplexity before and after")
    t.add_argument("--num-processes", type=int, default=1, metavar="N",
                   help="data-parallel training processes (accelerate launch; one per GPU, gloo on CPU); "
                        "the global batch is split over them (silp, midalign, lens)")
    p.add_argument("--wait", action="store_true", help="follow the job and print the artifact path")


def _method_args(method: str, p: argparse.ArgumentParser) -> None:
    if method == "silp":
        p.add_argument("--n2d", type=_ints, default=None, help="N2D blocks (default: SiLP allocation)")
        p.add_argument("--d2n", type=_ints, default=None, help="D2N blocks (default: SiLP allocation)")
        p.add_argument("--tft", default=None, help="JSONL instruction file for stage TFT (in the target language)")
    elif method == "midalign":
        p.add_argument("--layer", type=int, default=None,
                       help="aligned block i (default L//2 − 1: the paper's middle layer L/2, counted from "
                            "the embeddings)")
        p.add_argument("--tau", type=float, default=None, help="contrastive temperature (default 0.1)")
        p.add_argument("--no-task", action="store_true", help="alignment loss only (an alignment adapter)")
        p.add_argument("--no-align", action="store_true", help="task loss only (plain LoRA)")
    elif method == "cctuning":
        p.add_argument("--train", choices=("lora", "ffn", "full"), default=None,
                       help="what the SFT loss trains besides the Decision Maker (default lora)")
        p.add_argument("--wt-pairs", type=int, default=None, help="pairs the Transform Matrix is fitted on (1000)")
        p.add_argument("--target", default=None, help="response language (default: the pivot)")
        p.add_argument("--instructions", default=None,
                       help="JSONL of instruction / instruction_en / output rows (instead of the pairs)")
    else:
        p.add_argument("--langs", type=_csv, default=None, help="languages incl. the central one (default: the pair)")
        p.add_argument("--start-layer", type=int, default=None, help="train blocks >= this (default L-2)")
        p.add_argument("--push", type=float, default=None, help="λ_l for every target language (default 1)")


def _method_spec(a: argparse.Namespace) -> dict[str, Any]:
    pivot, target = a.pair
    spec: dict[str, Any] = {"seed": a.seed}
    if a.method == "silp":
        spec.update(src=target, tgt=pivot, n2d_layers=a.n2d, d2n_layers=a.d2n, tft_file=a.tft)
    elif a.method == "midalign":
        spec.update(src=pivot, tgt=target, align_layer=a.layer, task_loss=not a.no_task, align_loss=not a.no_align)
        if a.tau is not None:
            spec["tau"] = a.tau
    elif a.method == "cctuning":
        spec.update(pivot=pivot, lang=target, target=a.target, instruction_file=a.instructions)
        for key, arg in (("train", a.train), ("wt_pairs", a.wt_pairs)):
            if arg is not None:
                spec[key] = arg
    else:
        langs = a.langs or [pivot, target]
        spec.update(languages=langs, central=pivot if pivot in langs else langs[0], start_layer=a.start_layer)
        if a.push is not None:
            spec["push"] = a.push
    for key, arg in (("max_steps", a.steps), ("epochs", a.epochs), ("lr", a.lr), ("batch_size", a.batch_size)):
        if arg is not None:
            spec[key] = arg
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
                            num_processes=a.num_processes)
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
        note = r.get("reason") if r.get("state") in ("failed", "cancelled") else (
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
    if a.action == "cancel":
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
    """Add `finetune {silp,midalign,lens,cctuning}` and `jobs {ls,show,cancel}` to the main subparsers."""
    f = sub.add_parser("finetune", help="start a fine-tune job (SiLP, Mid-align, LENS, CC-Tuning)", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    fsub = f.add_subparsers(dest="method", required=True)
    helps = {"silp": "SiLP: FFN of projection-sensitive layers, N2D then D2N",
             "midalign": "Mid-align: LoRA with middle-layer contrastive alignment",
             "lens": "LENS: pull/push/retain in language subspaces, top layers",
             "cctuning": "CC-Tuning: English FFN outputs connected into block 0, Decision Maker, Transform Matrix"}
    for method, text in helps.items():
        p = fsub.add_parser(method, help=text, description=text,
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        _common(p)
        _method_args(method, p)
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

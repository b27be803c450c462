"""`workbench eval` and `workbench compare`: did the fine-tune help?

    workbench eval --model M [--artifact DIR] --corpus tatoeba:sw --pairs en:sw \
        --suite translation [--suite loss] [--suite lm-eval:TASK] [--limit N] --out DIR
    workbench compare --model M --states base,JOB_ID,JOB_ID --corpus tatoeba:sw --pairs en:sw --out DIR
    workbench compare --states base,CC_JOB,CC_JOB@decide=argmax ...    # a CC-Tuning state in both inference modes

Both evaluate through `workbench.evaluation.evaluate`: every (state, suite, data, decoding)
result is computed once and served from the store afterwards (the fine-tune jobs' own
before/after evaluation lands there too). They write `eval.csv` (state, suite, direction,
metric, value, ci_low, ci_high, n) and `generations.csv` (state, direction, id, source,
reference, output, output_lang, chrf); `compare` adds `scores.csv` (n, one column per state
with its interval, empty below n = 5, and its difference to the reference) and `outputs.csv`
(generations side by side).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.cli._args import ProgressBar, add_model_args, csv_list, key_value, model_spec
from workbench.config import ModelSpec
from workbench.errors import OUTPUT_REMEDY, EvalError, OverwriteError
from workbench.evaluation import DecodingSpec, EvalResult, compare_scores, evaluate, side_by_side
from workbench.evaluation.run import both_directions
from workbench.evaluation.tables import combine
from workbench.examples import DataSpec
from workbench.fileio import atomic_write_files, writable_dir
from workbench.finetune import jobs as finetune_jobs
from workbench.interventions.resolve import resolve_spec
from workbench.models import artifacts
from workbench.models.hooks import describe_inference, inference_kind

DEFAULT_SUITES = ("translation", "loss")


def _data(a: argparse.Namespace) -> DataSpec:
    return DataSpec(source=a.corpus, heldout=a.heldout, split_seed=a.split_seed, max_length=a.max_length)


def _decoding(a: argparse.Namespace) -> DecodingSpec:
    return DecodingSpec(max_new_tokens=a.max_new_tokens, do_sample=a.sample, temperature=a.temperature,
                        seed=a.seed)


def _out(a: argparse.Namespace, names: list[str]) -> Path:
    out = Path(a.out)
    taken = [str(out / n) for n in names if (out / n).exists()]
    if taken and not a.overwrite:
        raise OverwriteError(f"{taken[0]} exists; pass --overwrite or another --out")
    return writable_dir(out, OUTPUT_REMEDY)  # before any evaluation


def _run(a: argparse.Namespace, states: dict[str, ModelSpec]) -> EvalResult:
    for spec in states.values():  # bad inference options: one line before any state is evaluated
        describe_inference(spec.artifact, spec.inference)
    bar = ProgressBar(a.progress)
    parts = []
    try:
        for label, spec in states.items():
            print(f"evaluating {label} ({spec.source}{' + ' + spec.artifact if spec.artifact else ''})",
                  file=sys.stderr)
            parts.append(evaluate(spec, a.suite or list(DEFAULT_SUITES), _data(a), directions=both_directions(a.pairs),
                                  limit=a.limit, decoding=_decoding(a), label=label, seed=a.seed, progress=bar))
    finally:
        bar.close()
    return combine(parts)


def _summary(result: EvalResult, states: list[str], reference: str | None = None) -> None:
    scores = compare_scores(result.eval, reference=reference)
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(scores.to_string())
    for flag in dict.fromkeys(result.flags):
        print(f"warning: {flag}", file=sys.stderr)


def _csv(table: pd.DataFrame) -> bytes:
    return table.to_csv(index=False).encode("utf-8")


def _write(out: Path, result: EvalResult, extra: dict[str, pd.DataFrame] | None = None) -> list[Path]:
    """eval.csv, generations.csv, eval.manifest.json and `extra` (name -> table), all or nothing."""
    files = {out / "eval.csv": _csv(result.eval), out / "generations.csv": _csv(result.generations),
             out / "eval.manifest.json": (json.dumps(result.manifest, indent=1, default=str) + "\n").encode("utf-8"),
             **{out / name: _csv(table) for name, table in (extra or {}).items()}}
    return atomic_write_files(files, OUTPUT_REMEDY)


def cmd_eval(a: argparse.Namespace) -> int:
    """Evaluate one model state."""
    out = _out(a, ["eval.csv", "generations.csv"])
    spec = resolve_spec(model_spec(a), status=lambda m: print(m, file=sys.stderr))
    label = a.label or (_artifact_label(Path(spec.artifact)) if spec.artifact else Path(spec.source).name)
    result = _run(a, {label: spec})
    _summary(result, [label])
    for p in _write(out, result):
        print(p)
    return 0


def _artifact_label(path: Path) -> str:
    """A job's artifact is `<job id>/artifact`: name it by the job; any other directory by its name."""
    return path.parent.name if path.name == "artifact" else path.name


def _resolve_states(a: argparse.Namespace) -> dict[str, ModelSpec]:
    """Base → the --model; a job id (or its last 6 characters) → that job's tuned state; a path → an artifact.

    `NAME@KEY=VALUE[@KEY=VALUE]` gives that state its own inference options (e.g. both of a
    CC-Tuning state's modes: `JOB,JOB@decide=argmax`); `--inference` goes to every tuned state
    whose inference kind takes options.
    """
    asked = dataclasses.replace(model_spec(a), inference=())
    base = dataclasses.replace(asked, interventions=())
    if asked.interventions and "intervened" not in a.states:
        a.states = [*a.states, "intervened"]
    tuned = {t["job_id"]: t for t in finetune_jobs.tuned_states()}
    out: dict[str, ModelSpec] = {}
    for item in a.states:
        name, *opts = item.split("@")
        if name == "base":
            spec, label = base, item
        elif name == "intervened":  # the --model with its --intervention (resolved on the default corpus)
            if not asked.interventions:
                raise EvalError("--states intervened: give the intervention with --intervention KIND:KEY=VALUE,...")
            spec, label = resolve_spec(asked, status=lambda m: print(m, file=sys.stderr)), item
        elif len(match := [t for j, t in tuned.items() if j == name or j.endswith(name)]) == 1:
            # custom model code only as this command allows it, never as the job's files say
            spec = ModelSpec.from_dict({**match[0]["model"], "trust_remote_code": base.trust_remote_code})
            label = item
        elif Path(name).is_dir():  # an artifact directory: the `--artifact` door's check and message
            artifacts.read_manifest(name)
            spec = ModelSpec.from_dict({**base.to_dict(), "artifact": str(Path(name))})
            label = "@".join([_artifact_label(Path(name)), *opts])
        else:
            known = ", ".join(["base", *tuned]) or "base (no finished fine-tune jobs)"
            raise EvalError(f"unknown state {name!r} in --states; use base, a finished job id or an artifact "
                            f"directory (known: {known})")
        given = dict(_key_value(o) for o in opts) or (dict(a.inference or ()) if _takes_options(spec) else {})
        out[label] = dataclasses.replace(spec, inference=tuple(given.items()))
    if a.inference and not any(_takes_options(s) for s in out.values()):
        raise EvalError("--inference: none of the states has an inference kind that takes options "
                        "(a CC-Tuning state's does)")
    return out


def _key_value(s: str) -> tuple[str, Any]:
    try:
        return key_value(s)
    except argparse.ArgumentTypeError as e:
        raise EvalError(f"--states: {e} after '@'") from None


def _takes_options(spec: ModelSpec) -> bool:
    """Whether the state's inference kind takes options (an artifact whose kind is not plain)."""
    return spec.artifact is not None and inference_kind(spec.artifact) != "plain"


def cmd_compare(a: argparse.Namespace) -> int:
    """Evaluate several states on the same data; scores side by side with differences."""
    out = _out(a, ["eval.csv", "generations.csv", "scores.csv", "outputs.csv"])
    states = _resolve_states(a)
    reference = a.reference or next(iter(states))
    if reference not in states:
        raise EvalError(f"--reference {reference!r} is not one of the states ({', '.join(states)})")
    result = _run(a, states)
    _summary(result, list(states), reference)
    paths = _write(out, result, {"scores.csv": compare_scores(result.eval, reference=reference,
                                                              intervals=True).reset_index(),
                                 "outputs.csv": side_by_side(result.generations)})
    for p in paths:
        print(p)
    return 0


def _pairs(s: str) -> list[str]:
    pairs = csv_list(s)
    for p in pairs:
        src, sep, tgt = p.partition(":")
        if not sep or not src or not tgt or src == tgt:
            raise argparse.ArgumentTypeError(f"pairs are src:tgt with two different languages, got {p!r}")
    return pairs


def _common(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    g = p.add_argument_group("data")
    g.add_argument("--corpus", default="tatoeba:sw", help="parallel data (its seeded held-out part is scored)")
    g.add_argument("--pairs", type=_pairs, default=["en:sw"], help="language pairs, both directions (en:sw)")
    g.add_argument("--heldout", type=float, default=DataSpec().heldout, help="held-out fraction (as the fine-tune)")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the held-out split (as the fine-tune)")
    g.add_argument("--max-length", type=int, default=DataSpec().max_length, help="tokens of prompt + target")
    g.add_argument("--limit", type=int, default=None, help="score the first N held-out units only")
    e = p.add_argument_group("evaluation")
    e.add_argument("--suite", action="append", default=None, metavar="SUITE",
                   help="translation (outputs, chrF++, BLEU, fidelity), loss (held-out loss, perplexity), "
                        "lm-eval:TASK (e.g. lm-eval:tatoeba_choice offline); repeatable; default translation+loss")
    e.add_argument("--max-new-tokens", type=int, default=64)
    e.add_argument("--sample", action="store_true", help="sample (seeded) instead of greedy decoding")
    e.add_argument("--temperature", type=float, default=1.0)
    e.add_argument("--seed", type=int, default=0, help="seed of sampling, bootstrap and lm-eval")
    e.add_argument("--inference", action="append", type=key_value, default=None, metavar="KEY=VALUE",
                   help="an option of the tuned state's inference kind, repeatable; CC-Tuning: decide=gumbel|argmax "
                        "(default gumbel, the authors'), embed=position|mean (default: as trained), seed=N "
                        "(the Gumbel draw, default 0); part of the store key")
    p.add_argument("--out", default="out/eval", help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--progress", action="store_true", help="show a progress bar")


def add_eval_parser(sub: Any) -> None:
    """Add `workbench eval` and `workbench compare`."""
    e = sub.add_parser("eval", help="evaluate a model state: generations, chrF++/BLEU, fidelity, loss, lm-eval",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _common(e)
    e.add_argument("--label", default=None, help="the state's name in the tables")
    e.set_defaults(func=cmd_eval)
    c = sub.add_parser("compare", help="evaluate several states side by side (base, fine-tune jobs, artifacts)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _common(c)
    c.add_argument("--states", type=csv_list, required=True,
                   help="comma-separated: base (the --model), intervened (the --model with its --intervention; "
                        "added when --intervention is given), finished job ids, or artifact directories")
    c.add_argument("--reference", default=None, help="the state differences are taken against (default: the first)")
    c.set_defaults(func=cmd_compare, out="out/compare")

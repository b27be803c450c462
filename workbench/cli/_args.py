"""Arguments and helpers shared by every `workbench` command group (no command lives here)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from workbench.config import SILP_TEMPLATE, CorpusSpec, ModelSpec, RecordSpec
from workbench.interventions.requests import SYNTAX, parse_intervention
from workbench.presets import apply_preset, preset_names
from workbench.ranks import FORCE_FLAG
from workbench.recipes.commands import param_flag
from workbench.recipes.registry import get_analysis


def csv_list(s: str) -> list[str]:
    """Comma-separated values, stripped, empty ones dropped."""
    return [x.strip() for x in s.split(",") if x.strip()]


def int_list(s: str) -> list[int]:
    """Comma-separated block indices."""
    try:
        return [int(x) for x in csv_list(s)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated block indices, got {s!r}") from None


def float_list(s: str) -> tuple[float, ...]:
    """Comma-separated numbers (e.g. steering strengths 0,1,2,4,8)."""
    try:
        return tuple(float(x) for x in csv_list(s))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None


def key_value(s: str) -> tuple[str, Any]:
    """``KEY=VALUE``; the value is read as JSON when it parses (numbers, true, null, lists), else text.

    The spec it fills checks it against the field's type before use (`config.check_field_values`,
    through `Spec.from_dict` and `recipes.params_for`): ``--set tau=abc`` is one line naming
    ``MidAlignSpec.tau``, never a traceback.
    """
    if "=" not in s:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {s!r}")
    k, v = s.split("=", 1)
    try:
        return k.strip(), json.loads(v)
    except json.JSONDecodeError:
        return k.strip(), v


def _pairs(s: str) -> list[tuple[str, str]]:
    out = []
    for p in csv_list(s):
        if ":" not in p:
            raise argparse.ArgumentTypeError(f"a pair is SRC:TGT (e.g. en:sw), got {p!r}")
        a, b = p.split(":", 1)
        out.append((a, b))
    return out


# --------------------------------------------------------------------------- shared options


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model, --device, --dtype, --artifact, --trust-remote-code."""
    g = p.add_argument_group("model")
    g.add_argument("--model", default="gemma-3-270m",
                   help="bundled name, hub id, local dir or .gguf (default: %(default)s)")
    g.add_argument("--artifact", default=None, help="fine-tune artifact directory applied on top of the model")
    g.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda (default: %(default)s)")
    g.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16")
    g.add_argument("--trust-remote-code", action="store_true", help="allow custom model code from the hub")
    g.add_argument("--intervention", action="append", default=None, metavar="KIND:KEY=VALUE,...",
                   help=f"an intervention on the state (repeatable, applied in order): {SYNTAX}; see "
                        "workbench.interventions.requests")


def add_record_args(p: argparse.ArgumentParser, *, langs_default: str = "en,zh,sw,ar,hi,es,fr,ja") -> None:
    """Corpus and recording options shared by `record` and `analyze`."""
    g = p.add_argument_group("corpus")
    g.add_argument("--corpus", default="udhr", help="udhr, tatoeba:sw, or a TSV/JSONL file or FLORES dir")
    g.add_argument("--langs", type=csv_list, default=csv_list(langs_default), 
                   help="comma-separated codes (default: %(default)s)")
    g.add_argument("--limit", type=int, default=None, help="only the first N units per language (quick looks)")
    r = p.add_argument_group("recording")
    r.add_argument("--preset", default=None, choices=preset_names(),
                   help="reproduce a paper's pipeline exactly: its pooling, special tokens, top layer and "
                        "analysis settings (see `workbench.presets`); written into manifests")
    r.add_argument("--poolings", type=csv_list, default=["mean", "last", "weighted"], help="mean,last,weighted")
    r.add_argument("--max-length", type=int, default=256, help="truncate inputs to N tokens (default: %(default)s)")
    r.add_argument("--layers", type=int_list, default=None, help="blocks to record, e.g. 0,4,8 (default: all)")
    r.add_argument("--template", default=None,
                   help="text template with {text}, or 'silp' / a pair template with {src_text} {tgt_text}")
    r.add_argument("--chat-template", action="store_true", help="wrap inputs in the tokenizer's chat template")
    r.add_argument("--token-span", default="all", choices=["all", "source", "target"], help="pair templates only")
    r.add_argument("--no-ffn", action="store_true", help="skip FFN neuron statistics")
    r.add_argument("--batch-tokens", type=int, default=4096,
                   help="padded tokens per batch (memory bound; the default 4096 is 4x on a GPU)")
    r.add_argument("--progress", action="store_true", help="show a progress bar")
    r.add_argument("--num-processes", type=int, default=1, metavar="N",
                   help="record the missing units on N processes (accelerate launch), one store; at most the "
                        "units and this machine's GPUs (else CPU cores)")
    r.add_argument(FORCE_FLAG, dest="force_processes", action="store_true",
                   help="start --num-processes N even above this machine's GPUs or CPU cores")
    r.add_argument("--remote", action="store_true",
                   help="run the trace on NDIF through nnsight (needs NDIF_API_KEY, a network, a hub model)")


def model_spec(a: argparse.Namespace) -> ModelSpec:
    """ModelSpec from parsed arguments (`--inference KEY=VALUE` where the command has it).

    `--intervention` requests come back unresolved (parsing needs no model); the command
    resolves them (`interventions.resolve.resolve_spec`) on its corpus before any load.
    A bad value raises ParamError: one line, exit 2.
    """
    return ModelSpec(source=a.model, device=a.device, dtype=a.dtype, artifact=a.artifact,
                     trust_remote_code=a.trust_remote_code, inference=tuple(getattr(a, "inference", None) or ()),
                     interventions=tuple(parse_intervention(t) for t in getattr(a, "intervention", None) or ()))


def record_spec(a: argparse.Namespace, **override: Any) -> RecordSpec:
    """RecordSpec from parsed arguments."""
    template = SILP_TEMPLATE if a.template == "silp" else a.template
    kw = dict(poolings=tuple(a.poolings), max_length=a.max_length, template=template,
              chat_template=a.chat_template, token_span=a.token_span, ffn_stats=not a.no_ffn,
              layers=tuple(a.layers) if a.layers else None, batch_tokens=a.batch_tokens)
    kw.update(override)
    spec = RecordSpec(**kw)  # type: ignore[arg-type]  # kwargs built from typed args
    return apply_preset(a.preset, spec) if getattr(a, "preset", None) else spec


def corpus_spec(a: argparse.Namespace, langs: Sequence[str] | None = None) -> CorpusSpec:
    """CorpusSpec from parsed arguments."""
    return CorpusSpec(source=a.corpus, langs=tuple(langs or a.langs), limit=a.limit)


class ProgressBar:
    """A tqdm bar on stderr driven by progress(done, total, message) callbacks (only if enabled).

    A new total (the next recording of a multi-recording command) starts a new bar.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __call__(self, done: int, total: int, message: str = "", metrics: Any = None) -> None:
        """Advance the bar to `done` of `total`."""
        if not self.enabled:
            return
        if self.bar is None or self.bar.total != total:
            self.close()
            self.bar = tqdm(total=total, unit="sent", file=sys.stderr, dynamic_ncols=True)
        self.bar.set_description(message)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        """Finish the current bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def layer_arg(s: str) -> Any:
    """A --layer value: a block index, 'emb', 'final' or 'best'."""
    if s in ("emb", "final", "best"):
        return s
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"layer must be a block index, 'emb', 'final' or 'best'; got {s!r}") from None


def json_value(s: str) -> Any:
    """A flag's JSON value (objects and lists: a model state, several states, pairs)."""
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(f"expected JSON (e.g. '{{\"artifact\": \"DIR\"}}'), got {s!r}") from None


def _field_kind(f: dataclasses.Field[Any]) -> tuple[Any, str]:
    """(argparse type, base annotation) of a spec field: scalars, comma lists, JSON for nested values."""
    ann = str(f.type).replace(" | None", "").strip()
    kinds: dict[str, Any] = {"int": int, "float": float, "str": str, "bool": bool,
                             "tuple[int, ...]": lambda v: tuple(int_list(v)),
                             "tuple[str, ...]": lambda v: tuple(csv_list(v)),
                             "tuple[float, ...]": float_list}
    if f.name == "layer":
        return layer_arg, ann
    if ann.startswith(("dict", "tuple[dict", "tuple[tuple")):
        return json_value, "JSON"
    return kinds.get(ann), ann


def add_field_args(g: Any, fields: Sequence[dataclasses.Field[Any]], *, keep_defaults: bool = True,
                   aliases: dict[str, str] | None = None, flag: Any = None) -> None:
    """One flag per field of a frozen spec (type, default, choices and help from the field).

    `keep_defaults=False`: every flag defaults to None ("the spec's default") and a boolean
    gets both `--x` and `--no-x`, so only what a user gives reaches the spec
    (`spec_from_args`). `keep_defaults=True`: the field's default, and a boolean gets the one
    flag that changes it. `aliases` adds short flags (`{"n2d": "n2d_layers"}`). Fields of
    nested types (pairs of values) have no flag: they go through `--set FIELD=JSON`.
    """
    short = {v: k for k, v in (aliases or {}).items()}
    for f in fields:
        kind, ann = _field_kind(f)
        if kind is None:
            continue
        main = flag(f.name)[2:] if flag is not None else f.name.replace("_", "-")
        dest = _param_dest(f.name) if main.startswith("param-") else f.name  # not the taken flag's dest
        stems = [main] + ([short[f.name]] if f.name in short else [])
        helptext = f.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
        if kind is bool:
            if keep_defaults:
                neg = f.default is True
                g.add_argument(*[f"--{'no-' if neg else ''}{x}" for x in stems], dest=dest,
                               action="store_false" if neg else "store_true", help=helptext)
            else:
                g.add_argument(*[f"--{x}" for x in stems], dest=dest, action="store_true", default=None,
                               help=f"{helptext} (default {f.default})")
                g.add_argument(*[f"--no-{x}" for x in stems], dest=dest, action="store_false", default=None,
                               help=argparse.SUPPRESS)
            continue
        choices = f.metadata.get("choices") if not ann.startswith("tuple") else None  # members, not the value
        g.add_argument(*[f"--{x}" for x in stems], dest=dest, type=kind,
                       default=f.default if keep_defaults else None, choices=choices,
                       metavar=None if choices else ann.split("[")[0].upper(),
                       help=helptext if keep_defaults else f"{helptext} (default {f.default})")


def spec_from_args(a: argparse.Namespace, fields: Sequence[dataclasses.Field[Any]]) -> dict[str, Any]:
    """The fields whose flags were given (`add_field_args(keep_defaults=False)`)."""
    return {f.name: getattr(a, f.name) for f in fields if getattr(a, f.name, None) is not None}


def add_params_args(p: argparse.ArgumentParser, cls: Any, *, skip: Sequence[str] = ()) -> None:
    """One flag per field of an analysis's Params dataclass (type, default and help from the field)."""
    add_field_args(p.add_argument_group("analysis parameters (a name the command has already: --param-NAME)"),
                   [f for f in dataclasses.fields(cls) if f.name not in skip], flag=param_flag)


def _param_dest(name: str) -> str:
    """Where `--param-NAME` lands: a field named like a fixed flag (`layers`, `limit`) must not share its dest."""
    return f"param_{name}"


def params_from_args(a: argparse.Namespace, cls: Any) -> dict[str, Any]:
    """The Params fields that the parsed arguments carry (`--param-NAME` ones under their own dest)."""
    out = {}
    for f in dataclasses.fields(cls):
        dest = _param_dest(f.name) if hasattr(a, _param_dest(f.name)) else f.name
        if hasattr(a, dest):
            out[f.name] = getattr(a, dest)
    return out


def figure_spec(a: argparse.Namespace, analysis: str, params: dict[str, Any],
                langs: Sequence[str] | None = None) -> dict[str, Any]:
    """The registry's figure spec for parsed `analyze` arguments (model, corpus, recording, params)."""
    rec = record_spec(a).to_dict()
    default = RecordSpec().to_dict()
    preset = getattr(a, "preset", None)
    if preset:  # the preset's analysis settings win over flags left at their defaults
        defaults = get_analysis(analysis).defaults()
        params = {k: v for k, v in params.items() if k not in defaults or v != defaults[k]}
    return {"analysis": analysis, "model": model_spec(a).to_dict(), "corpus": a.corpus,
            "langs": list(langs or a.langs), "limit": a.limit, "preset": preset,
            "record": {k: v for k, v in rec.items() if v != default[k]}, "params": params,
            **({"remote": True} if getattr(a, "remote", False) else {})}

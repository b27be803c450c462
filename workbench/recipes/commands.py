"""The `workbench analyze` command equivalent to a figure spec (written into manifests)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any

from workbench.config import SILP_TEMPLATE
from workbench.interventions.requests import request_text
from workbench.recipes.registry import get_analysis
from workbench.recipes.spec import normalize_spec

_RECORD_FLAGS = {"poolings": "--poolings", "max_length": "--max-length", "layers": "--layers",
                 "template": "--template", "token_span": "--token-span", "batch_tokens": "--batch-tokens"}
FIXED_FLAGS = frozenset({"model", "artifact", "device", "dtype", "trust-remote-code", "corpus", "langs", "limit",
                         "preset", "poolings", "max-length", "layers", "template", "chat-template", "token-span",
                         "no-ffn", "batch-tokens", "progress", "num-processes", "remote", "out", "overwrite",
                         "intervention"})
"""The flags every `workbench analyze` sub-command has (model, corpus, recording, output)."""


def param_flag(name: str) -> str:
    """The `workbench analyze` flag of an analysis parameter: `--<name>`, or `--param-<name>` where that is taken."""
    stem = name.replace("_", "-")
    return f"--param-{stem}" if stem in FIXED_FLAGS else f"--{stem}"


def _flag_value(v: Any) -> str:
    return ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v)


def _model_flags(m: Mapping[str, Any]) -> list[str]:
    argv = ["--model", str(m["source"])]
    for key, flag in (("artifact", "--artifact"), ("device", "--device"), ("dtype", "--dtype")):
        if m.get(key) not in (None, "auto"):
            argv += [flag, str(m[key])]
    argv += [x for iv in m.get("interventions") or () for x in ("--intervention", request_text(iv))]
    return argv + (["--trust-remote-code"] if m.get("trust_remote_code") else [])


def _record_flags(rec: Mapping[str, Any]) -> list[str]:
    argv: list[str] = []
    for key, flag in _RECORD_FLAGS.items():
        if rec.get(key) is not None:
            argv += [flag, "silp" if rec[key] == SILP_TEMPLATE else _flag_value(rec[key])]
    argv += ["--chat-template"] if rec.get("chat_template") else []
    return argv + (["--no-ffn"] if rec.get("ffn_stats") is False else [])


def _param_flags(s: Mapping[str, Any]) -> list[str]:
    """A flag per parameter that differs from its default (`cli._args.add_field_args` reads them back)."""
    defaults = get_analysis(s["analysis"]).defaults()
    argv: list[str] = []
    for key, v in s["params"].items():
        if v == defaults.get(key) or (isinstance(v, list) and tuple(v) == defaults.get(key)):
            continue
        flag = param_flag(key)
        if isinstance(v, bool):
            argv.append(flag if v else "--no-" + flag[2:])
        elif isinstance(v, dict) or (isinstance(v, (list, tuple)) and any(isinstance(x, (dict, list)) for x in v)):
            argv += [flag, json.dumps(v, sort_keys=True)]
        elif v is not None:
            argv += [flag, _flag_value(v)]
    return argv


def analyze_command(spec: Mapping[str, Any], out: str | None = None) -> str:
    """The ``workbench analyze <analysis> …`` command computing the same table (every registered analysis)."""
    s = normalize_spec(spec)
    name = s["analysis"]
    argv = ["workbench", "analyze", name, *_model_flags(s["model"]), "--corpus", s["corpus"], "--langs",
            ",".join(s["langs"])]
    if s["limit"] is not None:
        argv += ["--limit", str(s["limit"])]
    argv += _record_flags(s["record"]) + _param_flags(s)
    argv += ["--remote"] if s.get("remote") else []
    argv += ["--out", out or f"out/{name}"]
    return shlex.join(argv)

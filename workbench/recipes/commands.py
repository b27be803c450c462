"""The `workbench analyze` command equivalent to a figure spec (written into manifests)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from workbench.config import SILP_TEMPLATE
from workbench.recipes.spec import normalize_spec

_RECORD_FLAGS = {"poolings": "--poolings", "max_length": "--max-length", "layers": "--layers",
                 "template": "--template", "token_span": "--token-span", "batch_tokens": "--batch-tokens"}
_PARAM_FLAGS = {
    "retrieval": ("retrieval", {"pooling": "--pooling", "method": "--method", "k": "--k", "pivot": "--pivot"}),
    "sensitivity": ("sensitivity", {"src": "--src", "tgt": "--tgt", "split": "--split", "k1": "--k1", "k2": "--k2",
                                    "variant": "--variant"}),
    "overlap": ("overlap", {"pivot": "--pivot", "top_frac": "--top-frac"}),
    "subspace": ("subspace", {"pooling": "--pooling", "layer": "--layer", "rank": "--rank", "central": "--central"}),
    "separation": ("subspace", {"pooling": "--pooling", "rank": "--rank", "central": "--central"}),
    "map": ("map", {"pooling": "--pooling", "layer": "--layer", "method": "--method", "seed": "--seed"}),
}


def _flag_value(v: Any) -> str:
    return ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v)


def _model_flags(m: Mapping[str, Any]) -> list[str]:
    argv = ["--model", str(m["source"])]
    for key, flag in (("artifact", "--artifact"), ("device", "--device"), ("dtype", "--dtype")):
        if m.get(key) not in (None, "auto"):
            argv += [flag, str(m[key])]
    return argv + (["--trust-remote-code"] if m.get("trust_remote_code") else [])


def _record_flags(rec: Mapping[str, Any]) -> list[str]:
    argv: list[str] = []
    for key, flag in _RECORD_FLAGS.items():
        if rec.get(key) is not None:
            argv += [flag, "silp" if rec[key] == SILP_TEMPLATE else _flag_value(rec[key])]
    argv += ["--chat-template"] if rec.get("chat_template") else []
    return argv + (["--no-ffn"] if rec.get("ffn_stats") is False else [])


def analyze_command(spec: Mapping[str, Any], out: str | None = None) -> str | None:
    """The ``workbench analyze …`` command computing the same table, or None if there is none.

    ``separation`` maps to ``analyze subspace`` (its ``subspace.csv`` is the separation
    table, held-out variant); ``retrieval_heatmap``, ``specific_neurons`` and
    ``retrieval_compare`` have no ``analyze`` command.
    """
    s = normalize_spec(spec)
    if s["analysis"] not in _PARAM_FLAGS or (s["analysis"] == "separation" and not s["params"]["holdout"]):
        return None
    sub, flags = _PARAM_FLAGS[s["analysis"]]
    p = s["params"]
    langs = [p["src"], p["tgt"]] if sub == "sensitivity" else s["langs"]
    argv = ["workbench", "analyze", sub, *_model_flags(s["model"]), "--corpus", s["corpus"], "--langs", ",".join(langs)]
    if s["limit"] is not None:
        argv += ["--limit", str(s["limit"])]
    argv += _record_flags(s["record"])
    for key, flag in flags.items():
        if p.get(key) is not None and p[key] != "best":
            argv += [flag, str(p[key])]
    if sub == "subspace" and s["analysis"] == "separation":
        argv += ["--layer", "0"]  # any recorded layer: the separation table covers all of them
    argv += ["--center"] if p.get("center") else []
    argv += ["--links"] if p.get("links") else []
    argv += ["--remote"] if s.get("remote") else []
    argv += ["--out", out or f"out/{sub}"]
    return shlex.join(argv)



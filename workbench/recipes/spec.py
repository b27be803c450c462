"""Figure specs: the canonical form (every default filled in, unknown keys refused), their schema, their switches.

A figure spec names an analysis, the model state, the corpus and languages, recording
options and the analysis's parameters (declared once, in the analysis's `Params`).

A spec read from a file (a manifest, a figure set) is data, never authority: a switch that
runs code or reaches the network (`CODE_SWITCHES`: `trust_remote_code` in any model of the
spec, `remote`) is refused unless the user's own command line allows it
(`refuse_code_switches`), and its structure is checked once against `SPEC_SCHEMA`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from workbench.config import ModelSpec, RecordSpec
from workbench.errors import ExportError, ParamError
from workbench.fileio import ListOf, Obj, OneOf, schema_problems
from workbench.presets import analysis_overrides, get_preset
from workbench.recipes.analysis import record_spec
from workbench.recipes.params import params_for
from workbench.recipes.registry import ALIASES, ANALYSES, get_analysis

__all__ = ["CODE_SWITCHES", "DEFAULT_LANGS", "EXPORT_KEYS", "SPEC_KEYS", "SPEC_SCHEMA", "code_switches", "langs_of",
           "normalize_spec", "record_spec", "refuse_code_switches", "spec_problems"]

DEFAULT_LANGS = ("en", "zh", "sw", "ar", "hi", "es", "fr", "ja")
"""Languages when a spec names none (those of ``workbench analyze``)."""


SPEC_KEYS = ("analysis", "model", "artifact", "corpus", "langs", "limit", "record", "params", "title", "preset",
             "remote")
EXPORT_KEYS = ("name", "width", "width_in", "height_in", "formats", "dpi", "caption")
"""Keys of a figure-set entry that are export options, not part of the figure spec."""

_NONE = type(None)
MODEL_SCHEMA = Obj({"source": str, "revision": (str, _NONE), "device": str, "dtype": str, "trust_remote_code": bool,
                    "artifact": (str, _NONE), "interventions": ListOf(dict)})
"""A model state in a spec (`ModelSpec.to_dict`); a bare source string is one too."""
SPEC_SCHEMA = Obj({"analysis": str, "model": OneOf((str, MODEL_SCHEMA)), "artifact": (str, _NONE), "corpus": str,
                   "langs": OneOf((str, ListOf(str), _NONE)), "limit": (int, _NONE), "record": (dict, _NONE),
                   "params": (dict, _NONE), "title": (str, _NONE), "preset": (str, _NONE), "remote": bool})
"""The structure of a figure spec (types and nesting); values are checked by the specs they fill."""

CODE_SWITCHES = {
    "trust_remote_code": ("runs the model folder's own Python code", "--trust-remote-code"),
    "remote": ("sends the model's inputs to NDIF over the network", "--remote"),
}
"""Spec keys that run code or reach the network -> (what it does, the command-line flag that allows it)."""


def spec_problems(spec: Any, path: str = "") -> list[str]:
    """Where a figure spec's structure is wrong (`SPEC_SCHEMA`), each as ``"<path>.field: expected …, got …"``."""
    return schema_problems(spec, SPEC_SCHEMA, path)


def code_switches(spec: Any, path: str = "") -> list[tuple[str, str]]:
    """(where, switch) of every `CODE_SWITCHES` key set (anything but false/null) anywhere in `spec`.

    Anywhere: the spec's model, a comparison's `params.state_b`, a list of states.
    """
    out: list[tuple[str, str]] = []
    if isinstance(spec, Mapping):
        for k, v in spec.items():
            where = f"{path}.{k}" if path else str(k)
            if k in CODE_SWITCHES and v is not False and v is not None:
                out.append((where, str(k)))
            else:
                out += code_switches(v, where)
    elif isinstance(spec, list | tuple):
        for i, v in enumerate(spec):
            out += code_switches(v, f"{path}[{i}]")
    return out


def refuse_code_switches(spec: Any, *, source: str, allow: Collection[str] = (), path: str = "") -> None:
    """Raise `ExportError` if a spec read from a file sets a switch its reader's command line did not allow.

    Args:
        spec: the spec (or the entry of a figure set) as read.
        source: the file (and entry) it came from, for the message.
        allow: the switches the user passed on the command line (`"trust_remote_code"`, `"remote"`).
        path: where `spec` sits in the file (``"spec"`` in a manifest).
    """
    for where, key in code_switches(spec, path):
        if key not in allow:
            what, flag = CODE_SWITCHES[key]
            raise ExportError(f"{source}: {where} is set, which {what}; a file cannot allow that: pass {flag} "
                              "on the command line if you trust it")


# --------------------------------------------------------------------------- specs


def langs_of(value: Any) -> list[str]:
    """A spec's languages as a list (a comma-separated string or a list; None = the defaults)."""
    if value is None:
        return list(DEFAULT_LANGS)
    if isinstance(value, str):
        value = [x for x in (s.strip() for s in value.split(",")) if x]
    langs = [str(x) for x in value]
    if not langs:
        raise ExportError("a figure spec needs at least one language in 'langs'")
    return langs


def _layer(value: Any) -> Any:
    if value in ("best", "emb", "final") or value is None:  # 'final': the post-norm top (the lens preset's layer)
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    raise ExportError(f"layer must be a block index, 'emb', 'final' or 'best', got {value!r}")


def _model_dict(model: Any, artifact: Any) -> dict[str, Any]:
    d = {"source": model} if isinstance(model, str) else dict(model or {})
    if artifact is not None:
        d["artifact"] = str(artifact)
    try:
        return ModelSpec.from_dict(d).to_dict()
    except (TypeError, ValueError) as e:
        raise ExportError(f"bad 'model' in figure spec: {e}") from None


def _params(analysis: str, given: Mapping[str, Any]) -> dict[str, Any]:
    try:
        params = params_for(get_analysis(analysis).params, dict(given), analysis).to_dict()
    except ParamError as e:
        raise ExportError(str(e)) from None
    if "layer" in params:
        params["layer"] = _layer(params["layer"])
    return params


def _legacy(s: dict[str, Any]) -> dict[str, Any]:
    """Old analysis names as today's: `retrieval_compare` (before/after an artifact) is `compare_retrieval`."""
    analysis = s.get("analysis")
    if analysis == "retrieval_compare":
        params = dict(s.get("params") or {})
        artifact = params.pop("artifact", None) or s.pop("params_artifact", None)
        if not artifact:
            raise ExportError("analysis 'retrieval_compare' needs params.artifact (a fine-tune artifact directory)")
        params.setdefault("state_b", {"artifact": str(artifact)})
        params.setdefault("labels", ("before", "after"))
        params.setdefault("series", ("all_pairs", "pivot"))
        return {**s, "analysis": "compare_retrieval", "params": params}
    if analysis in ALIASES:
        return {**s, "analysis": ALIASES[analysis]}
    return s


def normalize_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical form of a figure spec: every default filled in, unknown keys refused.

    Analysis parameters may be given under ``params`` or at the top level.

    Raises:
        ExportError: a spec of the wrong structure (`SPEC_SCHEMA`), unknown analysis, key or
            parameter; bad model or layer.
    """
    problems = spec_problems(spec if not isinstance(spec, Mapping) else dict(spec))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ExportError(f"bad figure spec: {problems[0]}{more}")
    s = _legacy(dict(spec))
    analysis = s.pop("analysis", None)
    if analysis not in ANALYSES:
        raise ExportError(f"figure spec needs 'analysis', one of {sorted(ANALYSES)}; got {analysis!r}")
    given = dict(s.pop("params", None) or {})
    for key in [k for k in s if k in ANALYSES[analysis] and k not in SPEC_KEYS]:
        given[key] = s.pop(key)
    unknown = sorted(set(s) - set(SPEC_KEYS))
    if unknown:
        raise ExportError(f"unknown key(s) {unknown} in figure spec; spec keys: {list(SPEC_KEYS)}, "
                          f"parameters of {analysis!r}: {sorted(ANALYSES[analysis])}")
    record = dict(s.get("record") or {})
    bad = sorted(set(record) - set(RecordSpec.help()))
    if bad:
        raise ExportError(f"unknown record option(s) {bad}; known: {sorted(RecordSpec.help())}")
    preset = s.get("preset")
    if preset:  # a paper's pipeline: its recording fields, then its analysis parameters the analysis takes
        record = {**{k: list(v) if isinstance(v, tuple) else v for k, v in get_preset(preset).record.items()},
                  **record}
        given = {**{k: v for k, v in analysis_overrides(preset).items() if k in ANALYSES[analysis]}, **given}
        pools = get_preset(preset).record.get("poolings")
        if pools and len(pools) == 1 and "pooling" in ANALYSES[analysis]:
            given.setdefault("pooling", pools[0])  # the one pooling the preset records
    limit = s.get("limit")
    return {
        "analysis": analysis,
        "model": _model_dict(s.get("model", "gemma-3-270m"), s.get("artifact")),
        "corpus": str(s.get("corpus", "udhr")),
        "langs": langs_of(s.get("langs")),
        "limit": None if limit is None else int(limit),
        "record": {k: record[k] for k in sorted(record)},
        "params": _params(analysis, given),
        "title": s.get("title"),
        "preset": preset or None,
        **({"remote": True} if s.get("remote") else {}),  # recorded on NDIF (its own fingerprint); absent: local
    }

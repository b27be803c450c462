"""Figure specs: the canonical form (every default filled in, unknown keys refused).

A figure spec names an analysis, the model state, the corpus and languages, recording
options and the analysis's parameters (declared once, in the analysis's `Params`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from workbench.config import ModelSpec, RecordSpec
from workbench.errors import ExportError, ParamError
from workbench.presets import analysis_overrides, get_preset
from workbench.recipes.analysis import record_spec
from workbench.recipes.params import params_for
from workbench.recipes.registry import ALIASES, ANALYSES, get_analysis

__all__ = ["DEFAULT_LANGS", "EXPORT_KEYS", "SPEC_KEYS", "langs_of", "normalize_spec", "record_spec"]

DEFAULT_LANGS = ("en", "zh", "sw", "ar", "hi", "es", "fr", "ja")
"""Languages when a spec names none (those of ``workbench analyze``)."""


SPEC_KEYS = ("analysis", "model", "artifact", "corpus", "langs", "limit", "record", "params", "title", "preset",
             "remote")
EXPORT_KEYS = ("name", "width", "width_in", "height_in", "formats", "dpi", "caption")
"""Keys of a figure-set entry that are export options, not part of the figure spec."""


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
        ExportError: unknown analysis, key or parameter; bad model or layer.
    """
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

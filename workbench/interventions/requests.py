"""The `--intervention` syntax: `KIND:key=value,key=value` -> an unresolved `InterventionSpec`.

    neurons:lang=sw,mode=zero                      LAPE neurons of sw (from the recording) set to 0
    neurons:lang=sw,random=0                       a random control: as many neurons per layer, seed 0
    neurons:file=llama.neuron.pth,index=1          a RUCAIBox mask, language 1 (or lang=zh,file_langs=en+zh+...)
    neurons:lang=sw,mode=mean,strength=0.5         half-way to sw's mean activation
    vector:src=en,tgt=sw,alpha=4,layers=6-12       h <- h - 4 v_en + 4 v_sw at blocks 6..12
    subspace:lang=sw,mode=remove,layers=10-17      LENS's language-specific component removed

Spec keys: `layers` (`6-12`, `3+5+7`), `positions` (all, last, from:K), `strength` (alias
`alpha`). Kind options: neurons `mode`, `factor`; vector `beta`, `norm`; subspace `mode`.
Every other key says where the tensors come from (`source`) and is read by
`interventions.resolve`; `corpus=udhr,langs=en+sw+fr,limit=50` name the recording they are
computed from (default: the command's own corpus, languages and limit). Values are numbers, true/false, or text.
"""

from __future__ import annotations

import json
from typing import Any

from workbench.config import INTERVENTION_KINDS, InterventionSpec
from workbench.errors import ParamError

__all__ = ["SOURCE_KEYS", "SYNTAX", "parse_intervention", "request_text"]

SYNTAX = "KIND:key=value,... e.g. neurons:lang=sw,mode=zero or vector:src=en,tgt=sw,alpha=4,layers=6-12"
OPTION_KEYS = {"neurons": ("mode", "factor"), "vector": ("beta", "norm"), "subspace": ("mode",)}
CORPUS_KEYS = ("corpus", "langs", "limit")
"""Source keys naming the recording the tensors come from (default: the command's corpus)."""
SOURCE_KEYS = {
    "neurons": ("lang", "random", "file", "index", "file_langs", "entropy_quantile", "prob_quantile", "mean_lang",
                *CORPUS_KEYS),
    "vector": ("src", "tgt", "file", "lens", "central", *CORPUS_KEYS),
    "subspace": ("lang", "tgt", "rank", "file", *CORPUS_KEYS),
}
"""Keys of `source` each kind's resolver reads (`interventions.resolve`)."""


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_layers(text: Any) -> tuple[int, ...]:
    """`6-12` (inclusive), `3+5+7`, `4` -> block indices.

    Raises:
        ParamError: anything else.
    """
    out: list[int] = []
    try:
        for part in str(text).split("+"):
            a, sep, b = part.partition("-")
            out += list(range(int(a), int(b) + 1)) if sep else [int(a)]
    except ValueError:
        raise ParamError(f"--intervention layers={text}: use a range 6-12 or blocks 3+5+7") from None
    if not out:
        raise ParamError(f"--intervention layers={text}: no block named")
    return tuple(out)


def _one_pair(text: str, kind: str, pair: str, spec: dict[str, Any], options: list[tuple[str, Any]],
              source: list[tuple[str, Any]]) -> None:
    """File one `key=value` of a request under the spec's fields, its kind options or its source."""
    key, eq, raw = pair.partition("=")
    key = key.strip()
    if not eq or not key:
        raise ParamError(f"--intervention {text!r}: {pair!r} is not key=value; use {SYNTAX}")
    value = _value(raw.strip())
    if key == "layers":
        spec["layers"] = parse_layers(raw.strip())
    elif key == "positions":
        spec["positions"] = str(raw.strip())
    elif key in ("strength", "alpha"):
        spec["strength"] = value
    elif key in OPTION_KEYS[kind]:
        options.append((key, value))
    elif key in SOURCE_KEYS[kind]:
        source.append((key, value))
    else:
        known = ("layers", "positions", "strength", *OPTION_KEYS[kind], *SOURCE_KEYS[kind])
        raise ParamError(f"--intervention {text!r}: unknown key {key!r} for {kind}; keys: {', '.join(known)}")


def parse_intervention(text: str) -> InterventionSpec:
    """`KIND:key=value,...` -> an unresolved InterventionSpec (see the module docstring).

    Raises:
        ParamError: an unknown kind or key, a malformed pair or value (one line).
    """
    kind, sep, rest = str(text).partition(":")
    kind = kind.strip()
    if kind not in INTERVENTION_KINDS:
        raise ParamError(f"--intervention {text!r}: unknown kind {kind!r}; use {SYNTAX}")
    spec: dict[str, Any] = {"kind": kind}
    options: list[tuple[str, Any]] = []
    source: list[tuple[str, Any]] = []
    for pair in filter(None, (p.strip() for p in rest.split(","))) if sep else ():
        _one_pair(text, kind, pair, spec, options, source)
    if not source:
        need = {"neurons": "lang=, random= or file=", "vector": "src= and/or tgt=", "subspace": "lang= or tgt="}[kind]
        raise ParamError(f"--intervention {text!r}: say where its tensors come from ({need})")
    try:
        return InterventionSpec(**spec, options=tuple(options), source=tuple(source))
    except TypeError as e:
        raise ParamError(f"--intervention {text!r}: {e}") from None


def request_text(iv: InterventionSpec | dict[str, Any]) -> str:
    """The `--intervention` text that resolves to `iv` again (its spec fields, options and request keys).

    Provenance keys `resolve` added (the recording's hash) are left out: the command
    recomputes them. `parse_intervention(request_text(iv))` has `iv`'s fields, unresolved.
    """
    iv = iv if isinstance(iv, InterventionSpec) else InterventionSpec.from_dict(dict(iv))
    parts = []
    if iv.layers is not None:
        parts.append("layers=" + "+".join(str(x) for x in iv.layers))
    if iv.positions != "all":
        parts.append(f"positions={iv.positions}")
    if iv.strength != 1.0:
        parts.append(f"strength={iv.strength:g}")
    parts += [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in (*iv.options, *iv.source)
              if k in OPTION_KEYS[iv.kind] or k in SOURCE_KEYS[iv.kind]]
    return f"{iv.kind}:{','.join(parts)}"

"""Cross-lingual activation patching (Dumas et al. 2024; METHODS §10) as a registered analysis.

Two parallel word prompts per pair: the source run asks for concept C1 in L1 (``source``),
the target run for another concept C2 in L2 (``target``), each from its own input language
(`latent.patch_items`). The source run's state at its last token is copied into the target
run at layer l (``variant=single``) or at every layer ≥ l, each layer's own source state
(``variant=from``, the authors' ``object_lens``); per patched layer the figure shows the mean
over pairs, with 95% bands, of the target's next-token probability of C1 in L2, of C2 in L2
and of C1 in L1 (token sets of METHODS §9), and the unpatched target's values for reference.

- ``position=last`` (METHODS §10; the authors' ``patchscope_shifted_translation``, their
  Fig. 2): full source prompts, their last token into the target's last token. Note that in
  the ``from`` variant this copies the source's last block too, so the target then answers
  exactly as the source does at every l: the variant is meant for ``position=object``.
- ``position=object`` (their ``obj_patch_translation``, Fig. 3): the source prompts cut after
  their query word, its last token into the last token of the target's query word.
- Several ``source_from`` languages: the mean-over-languages variant (the source states of
  C1 asked from each input language, averaged before the patch).

Deliberate differences from their code: Wendler et al.'s prompt format and language names
of `latent.prompts` (theirs is the same line format), the bundled 9-language word list
instead of their BabelNet lists (one word per language: token sets from that word only,
where theirs take every BabelNet synonym), pairs by a seeded cyclic shift (theirs: the first
200 collision-free pairs of a shuffled product). The readouts come from the store
(`Ctx.lens_readout`, `recordings.lens` with a `lenses.PatchSpec`): this module loads no model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.analysis.latent_curves import BAND_METHODS
from workbench.analysis.patching import PATCH_QUANTITIES, patching_curves
from workbench.config import ModelSpec, spec_field
from workbench.errors import ParamError
from workbench.latent import WordPromptSpec, load_words
from workbench.latent.patching import (
    PATCH_ROLES,
    UNPATCHED,
    VARIANTS,
    PatchItem,
    PatchItems,
    cut_at_object,
    object_offset,
    patch_items,
)
from workbench.latent.tokens import BYTE_FALLBACK
from workbench.recipes.analysis import Analysis, LensNeed, Report, sparkline
from workbench.recipes.context import Ctx
from workbench.recipes.params import Params, choice
from workbench.viz.patch_figures import patching_figure

__all__ = ["ANALYSES", "PatchParams", "patch_inputs", "resolved_inputs"]

POSITIONS = ("last", "object")
_SOURCE_FROM = ("de", "es", "ru")
_TARGET_FROM = ("fr", "es", "ru", "de")


@dataclass(frozen=True)
class PatchParams(Params):
    """Cross-lingual activation patching: P(C1 in L2), P(C2 in L2), P(C1 in L1) per patched layer (Dumas et al.)."""

    source: str = spec_field("L1: the language the source prompts answer in (concept C1)", "fr")
    target: str = spec_field("L2: the language the target prompt answers in (concept C2)", "zh")
    source_from: tuple[str, ...] = spec_field(
        "input language(s) of the source prompts; several = the mean-over-languages variant (default: de, or es "
        "when L1 is de)", ())
    target_from: str | None = spec_field("input language of the target prompt (default: the first of fr, es, ru, de "
                                         "that is neither L2, L1 nor a source input)", None)
    words: str = spec_field("'basic-nouns' (bundled, 9 languages) or a TSV (header = language codes)", "basic-nouns")
    position: str = spec_field("last (last token into last token; METHODS) or object (the query word's last token, "
                               "the authors' ObjPatch)", "last", choices=POSITIONS)
    variant: str = spec_field("single (patch layer l only) or from (every layer >= l)", "single", choices=VARIANTS)
    n_shots: int = spec_field("solved lines before each query (the authors: 5)", 5)
    seed: int = spec_field("seed of the shots and of the pairing", 0)
    max_items: int | None = spec_field("patch at most N pairs (the first N kept); default: all", None)
    byte_fallback: str = spec_field("when the first byte token joins a word's set: non-latin, non-ascii or never",
                                    "non-latin", choices=BYTE_FALLBACK)
    band: str = spec_field("bootstrap (95% percentile band over pairs) or gaussian (mean ± 1.96 σ/√n)", "bootstrap",
                           choices=BAND_METHODS)
    n_boot: int = spec_field("bootstrap resamples", 9999)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, options in (("position", POSITIONS), ("variant", VARIANTS), ("byte_fallback", BYTE_FALLBACK),
                              ("band", BAND_METHODS)):
            choice(name, getattr(self, name), options)
        for name in ("source", "target"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ParamError(f"{name} must be a language code; got {getattr(self, name)!r}")
        for name, lo in (("n_shots", 0), ("seed", 0), ("n_boot", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ParamError(f"{name} must be an integer ≥ {lo}; got {v!r}")
        if self.max_items is not None and (not isinstance(self.max_items, int) or self.max_items < 1):
            raise ParamError(f"max_items must be a positive integer or None; got {self.max_items!r}")


def resolved_inputs(p: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    """The source prompts' input languages and the target prompt's, defaults filled in (see `PatchParams`)."""
    src = tuple(p["source_from"]) or (next(x for x in _SOURCE_FROM if x != p["source"]),)
    tgt = p["target_from"] or next((x for x in _TARGET_FROM if x not in {p["target"], p["source"], *src}), None)
    if tgt is None:
        raise ParamError("no default target input language is left; give target_from")
    return src, tgt


def patch_inputs(c: Ctx, model: ModelSpec) -> tuple[PatchItems, tuple[PatchItem, ...], LensNeed]:
    """The pairs of a spec, those read (`max_items`), and the readout need that patches them."""
    p = c.p
    tok = c.tokenizer_of(model)
    words = load_words(p["words"])
    src, tgt = resolved_inputs(p)
    items = patch_items(words, source=p["source"], target=p["target"], source_from=src, target_from=tgt,
                        tokenizer=tok, spec=WordPromptSpec(n_shots=p["n_shots"], seed=p["seed"], drop_substring=False),
                        byte_fallback=p["byte_fallback"], seed=p["seed"])
    kept = items.items if p["max_items"] is None else items.items[:p["max_items"]]
    if p["position"] == "object":
        offsets = [object_offset(tok, it.target_prompt) for it in kept]
        kept = tuple(it for it, o in zip(kept, offsets) if o is not None)
        offs = tuple(o for o in offsets if o is not None)
        sources = tuple(tuple(cut_at_object(s) for s in it.source_prompts) for it in kept)
    else:
        offs, sources = tuple(-1 for _ in kept), tuple(it.source_prompts for it in kept)
    if not kept:
        raise ParamError(f"{items.summary()}: no pair left to patch; choose other languages or another word list")
    sets = tuple((f"{r}:{it.name}", tuple(it.token_sets[r])) for it in kept for r in PATCH_ROLES)
    about = {"view": "patching", "pair": f"{'+'.join(src)}>{p['source']} into {tgt}>{p['target']}",
             "data": words.name, "data_hash": words.content_hash(), "position": p["position"],
             "prompt_spec": {"n_shots": p["n_shots"], "seed": p["seed"]}, "byte_fallback": p["byte_fallback"],
             "unit": f"patching {'+'.join(src)}>{p['source']} into {tgt}>{p['target']}"}
    need = LensNeed("main", model, tuple(it.target_prompt for it in kept), sets, {"positions": "last", "top_k": 5},
                    "logit", about, {"sources": [list(s) for s in sources], "target_offsets": list(offs),
                                     "variant": p["variant"]})
    return items, kept, need


def _lens_needs(c: Ctx) -> list[LensNeed]:
    return [patch_inputs(c, ModelSpec.from_dict(c.spec["model"]))[2]]


def pair_masses(set_mass: Mapping[str, np.ndarray], kept: tuple[PatchItem, ...]) -> np.ndarray:
    """`(n_pairs, n_layers, 3)`: each pair's masses on its own three sets (read i = pair i)."""
    return np.stack([np.stack([np.asarray(set_mass[f"{r}:{it.name}"])[i] for r in PATCH_ROLES], axis=-1)
                     for i, it in enumerate(kept)])


def pairs_table(kept: tuple[PatchItem, ...]) -> pd.DataFrame:
    """One row per pair read: the concepts, the three words and their set sizes."""
    return pd.DataFrame([{"c1": it.source_concept, "c2": it.target_concept,
                          **{f"{r}_word": it.words[r] for r in PATCH_ROLES},
                          **{f"{r}_tokens": len(it.token_sets[r]) for r in PATCH_ROLES}} for it in kept])


def _patching(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    items, kept, need = patch_inputs(c, ModelSpec.from_dict(c.spec["model"]))
    r = c.lens_readout(need).readout
    if r.n_reads != len(kept) or r.layer_labels[-1] != UNPATCHED:
        raise ParamError(f"patching readout has {r.n_reads} reads for {len(kept)} pairs")
    table = patching_curves(pair_masses(r.set_mass, kept), r.entropy, layers=list(r.layer_labels),
                            n_boot=p["n_boot"], method=p["band"], random_state=0)
    src, tgt = resolved_inputs(p)
    c.facts["patching"] = {"summary": items.summary(), "read": len(kept), "candidates": items.n_candidates,
                           "dropped": dict(items.dropped), "source_from": list(src), "target_from": tgt}
    c.facts["languages"] = list(dict.fromkeys([*src, p["source"], tgt, p["target"]]))
    c.extra["pairs"] = pairs_table(kept)
    mean = f", mean over {'+'.join(src)}" if len(src) > 1 else ""
    title = c.spec["title"] or (f"Patching {'+'.join(src)}→{p['source']} (C1) into {tgt}→{p['target']} (C2): "
                                f"{p['position']} token, {p['variant']}{mean} (n = {len(kept)})"
                                f"<br><sup>{items.summary()}</sup>")
    return patching_figure(table, source=p["source"], target=p["target"], title=title), table


def _report(built: Any, rebuild: Callable[..., Any]) -> Report:
    p, f = built.info["params"], built.info["patching"]
    t = built.table[built.table["layer"].astype(str) != UNPATCHED]
    base = built.table[built.table["layer"].astype(str) == UNPATCHED]
    lines = [f"patching ({p['position']} token, {p['variant']}): {f['summary']}"]
    names = {"p_c1_in_target": f"P(C1 {p['target']})", "p_c2_in_target": f"P(C2 {p['target']})",
             "p_c1_in_source": f"P(C1 {p['source']})"}
    for q in PATCH_QUANTITIES:
        peak = t.loc[t[q].idxmax()]
        lines.append(f"  {names[q]}".ljust(16) + sparkline(t[q], list(t["layer"]))
                     + f"; peak {peak[q]:.3f} [{peak[q + '_lo']:.3f}, {peak[q + '_hi']:.3f}] at layer {peak['layer']}"
                     + (f"; unpatched {float(base[q].iloc[0]):.3f}" if len(base) else ""))
    return Report(lines, {"": built.table, "pairs": built.extra["pairs"]})


def _no_recordings(canon: Mapping[str, Any]) -> list[Any]:
    return []  # reads patching readouts (`lens_needs`), not recordings


ANALYSES = (
    Analysis("patching", "cross-lingual activation patching: P(C1 in L2), P(C2 in L2), P(C1 in L1) per patched "
             "layer with 95% bands (Dumas et al. 2024)", PatchParams, _patching, needs=_no_recordings,
             report=_report, extras=("pairs",), lens_needs=_lens_needs),
)

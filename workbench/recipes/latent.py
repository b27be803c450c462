"""Latent-language curves (Wendler et al. 2024; METHODS §9) as a registered analysis, for N model states.

Per layer: the mean probability that the next token starts the answer in the target language,
in English and in the source language, and the entropy, each with a 95% band over items
(`analysis.latent_curves`), read by the lens at the last prompt token. Two prompt kinds:

- ``words``: Wendler et al.'s few-shot word translation (`latent.WENDLER_2024`: 4 shots,
  seed 42, their substring filter) over the bundled ``basic-nouns`` list or a user's TSV;
- ``sentences``: the same line format over a parallel corpus with English (default
  ``tatoeba:<the non-English language>``), the answer word being the first word of the
  reference (and of its English side for P(en)).

Items whose English and target token sets overlap (and the other reasons of
`latent.DROP_REASONS`) are dropped and counted: the counts are in the figure, the CLI summary,
the ``items`` side table and the manifest. ``max_items`` keeps the first N kept word items (a
seeded subsample of units for sentences). The lens is ``"logit"`` or a tuned-lens id; the
``others`` parameter adds states (base, tuned, another lens: ``{"lens": ID}`` is the spec's
model read through that lens) whose curves share one figure.

The prompts and token sets need the tokenizer (`Ctx.tokenizer_of`); the readouts come from
the store through `Ctx.lens_readout` (`recipes.lens_fetch`): this module loads no model.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.analysis.latent_curves import BAND_METHODS, latent_curves, latent_summary
from workbench.config import ModelSpec, spec_field
from workbench.corpus import load_corpus
from workbench.errors import ParamError
from workbench.latent import (
    DROP_REASONS,
    ROLES,
    LatentItem,
    LatentItems,
    SentencePromptSpec,
    WordPromptSpec,
    load_words,
    sentence_latent_items,
    word_latent_items,
)
from workbench.latent.tokens import BYTE_FALLBACK
from workbench.recipes.analysis import Analysis, LensNeed, Report, sparkline
from workbench.recipes.context import Ctx
from workbench.recipes.params import Params, choice
from workbench.viz.lens_figures import latent_compare_figure, latent_curves_figure

__all__ = ["ANALYSES", "LatentParams", "LensChoice", "PromptSource", "latent_inputs", "lens_name", "state_list"]

PROMPT_KINDS = ("words", "sentences")
_LENS = re.compile(r"logit|[0-9a-f]{16}")
ENGLISH = "en"


@dataclass(frozen=True)
class LensChoice(Params):
    """Which lens reads the layers."""

    lens: str = spec_field("'logit' (the logit lens) or a tuned-lens id of this model state (`workbench lens ls`)",
                           "logit")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.lens, str) or not _LENS.fullmatch(self.lens):
            raise ParamError(f"lens must be 'logit' or a tuned-lens id (16 hex digits); got {self.lens!r}")


@dataclass(frozen=True)
class PromptSource(LensChoice):
    """Translation prompts: a language pair, the word list or sentence corpus, the shots."""

    source: str = spec_field("source language (of the query word or sentence)", "fr")
    target: str = spec_field("target language (of the answer)", "zh")
    words: str = spec_field("word prompts: 'basic-nouns' (bundled, 9 languages) or a TSV (header = language codes)",
                            "basic-nouns")
    sentence_corpus: str | None = spec_field(
        "sentence prompts: a parallel corpus with source, target and English (default: tatoeba:<the non-English "
        "language>)", None)
    n_shots: int | None = spec_field("solved lines before the query (default: words 4, Wendler et al.; sentences 2)",
                                     None)
    seed: int | None = spec_field("seed of the shot sampling (default: words 42, the authors'; sentences 0)", None)
    drop_substring: bool = spec_field("words: drop concepts whose English word is inside the target word "
                                      "(the authors' filter)", True)
    byte_fallback: str = spec_field("when the first byte token joins a word's set: non-latin (the authors' rule), "
                                    "non-ascii or never", "non-latin", choices=BYTE_FALLBACK)

    def __post_init__(self) -> None:
        super().__post_init__()
        choice("byte_fallback", self.byte_fallback, BYTE_FALLBACK)
        if self.source == self.target:
            raise ParamError(f"source and target must differ; got {self.source!r} twice")
        for name in ("n_shots", "seed"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ParamError(f"{name} must be a non-negative integer or None; got {v!r}")


@dataclass(frozen=True)
class LatentParams(PromptSource):
    """Latent-language curves: P(target), P(en), P(source) and entropy per layer, 95% bands (Wendler et al. 2024)."""

    prompts: str = spec_field("words (Wendler et al.'s few-shot word translation) or sentences (Tatoeba pairs; "
                              "answer = the reference's first word)", "words", choices=PROMPT_KINDS)
    max_items: int | None = spec_field("read at most N items (words: the first N kept; sentences: a seeded "
                                       "subsample of units); default: all", None)
    band: str = spec_field("bootstrap (95% percentile band over items) or gaussian (mean ± 1.96 σ/√n, the "
                           "authors' figure)", "bootstrap", choices=BAND_METHODS)
    n_boot: int = spec_field("bootstrap resamples", 9999)
    others: tuple[dict[str, Any], ...] = spec_field(
        "more states as ModelSpec dicts (without 'source': the spec's model); a 'lens' key reads that state "
        "through another lens", ())
    labels: tuple[str, ...] = spec_field("a name per state (the spec's model first)", ())

    def __post_init__(self) -> None:
        super().__post_init__()
        choice("prompts", self.prompts, PROMPT_KINDS)
        choice("band", self.band, BAND_METHODS)
        if self.max_items is not None and (not isinstance(self.max_items, int) or self.max_items < 1):
            raise ParamError(f"max_items must be a positive integer or None; got {self.max_items!r}")
        if not isinstance(self.n_boot, int) or self.n_boot < 1:
            raise ParamError(f"n_boot must be a positive integer; got {self.n_boot!r}")
        if self.labels and len(self.labels) != len(self.others) + 1:
            raise ParamError(f"labels must name every state ({len(self.others) + 1}), got {len(self.labels)}")


# --------------------------------------------------------------------------- inputs


def lens_name(lens: str) -> str:
    """How a figure names a lens: 'logit lens' or 'tuned lens <id[:8]>'."""
    return "logit lens" if lens == "logit" else f"tuned lens {lens[:8]}"


def _sentence_corpus(p: Mapping[str, Any]) -> str:
    if p["sentence_corpus"]:
        return str(p["sentence_corpus"])
    other = [x for x in (p["source"], p["target"]) if x != ENGLISH]
    if len(other) != 1:
        raise ParamError(f"sentence prompts {p['source']}→{p['target']}: the bundled Tatoeba corpora pair English with "
                         "one language; give sentence_corpus (a corpus with both languages and English)")
    return f"tatoeba:{other[0]}"


def latent_inputs(c: Ctx, p: Mapping[str, Any], kind: str, model: ModelSpec,
                  limit: int | None = None) -> tuple[LatentItems, dict[str, Any]]:
    """The latent items of a prompt kind for one model state's tokenizer, and how they were made (`about`)."""
    tok = c.tokenizer_of(model)
    src, tgt = p["source"], p["target"]
    if kind == "words":
        words = load_words(p["words"])
        spec: Any = WordPromptSpec(n_shots=4 if p["n_shots"] is None else p["n_shots"],
                                   seed=42 if p["seed"] is None else p["seed"], drop_substring=p["drop_substring"])
        items = word_latent_items(words, source=src, target=tgt, tokenizer=tok, english=ENGLISH, spec=spec,
                                  byte_fallback=p["byte_fallback"])
        data, data_hash = words.name, words.content_hash()
    else:
        name = _sentence_corpus(p)
        corpus = load_corpus(name)
        spec = SentencePromptSpec(n_shots=2 if p["n_shots"] is None else p["n_shots"],
                                  seed=0 if p["seed"] is None else p["seed"], limit=limit)
        items = sentence_latent_items(corpus, source=src, target=tgt, tokenizer=tok, english=ENGLISH, spec=spec,
                                      byte_fallback=p["byte_fallback"])
        data, data_hash = name, corpus.content_hash(corpus.check_langs(list(dict.fromkeys([src, tgt, ENGLISH]))))
    about = {"prompts": kind, "pair": f"{src}>{tgt}", "english": ENGLISH, "data": data, "data_hash": data_hash,
             "prompt_spec": spec.to_dict(), "byte_fallback": p["byte_fallback"], "unit": f"{src}>{tgt} {kind}"}
    return items, about


def _label(model: ModelSpec, lens: str) -> str:
    name = Path(model.artifact).parent.name if model.artifact else Path(model.source).name
    return name + ("" if lens == "logit" else f" · {lens_name(lens)}")


def state_list(c: Ctx) -> list[tuple[str, ModelSpec, str]]:
    """(label, model, lens) of every state of a spec: its model with `lens`, then each of `others`."""
    p = c.p
    states = [(ModelSpec.from_dict(c.spec["model"]), str(p["lens"]))]
    for o in p.get("others") or ():
        d = dict(o)
        lens = str(d.pop("lens", p["lens"]))
        LensChoice(lens=lens)  # the same check as the main lens
        base = dict(c.spec["model"]) if "source" not in d else {}
        states.append((ModelSpec.from_dict({**base, **d}), lens))
    labels = [str(x) for x in p.get("labels") or ()] or [_label(m, lens) for m, lens in states]
    seen: dict[str, int] = {}
    for i, x in enumerate(labels):  # names must be distinct: the table's state column keys them
        seen[x] = seen.get(x, 0) + 1
        labels[i] = x if seen[x] == 1 else f"{x} ({seen[x]})"
    return [(label, m, lens) for label, (m, lens) in zip(labels, states)]


def _reads(c: Ctx) -> list[tuple[str, LensNeed, LatentItems, tuple[LatentItem, ...]]]:
    p = c.p
    out = []
    memo: dict[tuple[str, str | None], tuple[LatentItems, dict[str, Any]]] = {}
    for label, model, lens in state_list(c):
        tok_key = (model.source, model.revision)  # an artifact keeps its base's tokenizer
        if tok_key not in memo:
            memo[tok_key] = latent_inputs(c, p, p["prompts"], model,
                                          p["max_items"] if p["prompts"] == "sentences" else None)
        items, about = memo[tok_key]
        kept = items.items if p["prompts"] == "sentences" or p["max_items"] is None else items.items[:p["max_items"]]
        if not kept:
            raise ParamError(f"{items.summary()}: no item left to read; choose another pair or word list")
        sets = tuple((f"{r}:{it.concept}", tuple(it.token_sets[r])) for it in kept for r in ROLES)
        need = LensNeed(label, model, tuple(it.prompt for it in kept), sets, {"positions": "last", "top_k": 5}, lens,
                        {"view": "latent", **about})
        out.append((label, need, items, kept))
    return out


def _lens_needs(c: Ctx) -> list[LensNeed]:
    return [need for _, need, _, _ in _reads(c)]


# --------------------------------------------------------------------------- tables


def item_masses(set_mass: Mapping[str, np.ndarray], kept: Sequence[LatentItem]) -> np.ndarray:
    """`(n_items, n_layers, 3)`: each item's masses on its own target, English and source sets (read i = item i)."""
    return np.stack([np.stack([np.asarray(set_mass[f"{r}:{it.concept}"])[i] for r in ROLES], axis=-1)
                     for i, it in enumerate(kept)])


def items_table(items: LatentItems, kept: Sequence[LatentItem]) -> pd.DataFrame:
    """One row per candidate concept: status (read, unread: past max_items, dropped: <reason>), words, set sizes."""
    read = {it.concept for it in kept}
    rows = [{"concept": it.concept, "status": "read" if it.concept in read else "unread (max_items)",
             **{f"{r}_word": it.words[r] for r in ROLES}, **{f"{r}_tokens": len(it.token_sets[r]) for r in ROLES}}
            for it in items.items]
    rows += [{"concept": cid, "status": f"dropped: {reason}"} for reason in DROP_REASONS
             for cid in items.dropped_concepts[reason]]
    return pd.DataFrame(rows)


def _drop_line(items: LatentItems, n_read: int) -> str:
    why = ", ".join(f"{n} {r}" for r, n in items.dropped.items() if n) or "none"
    used = f"; read the first {n_read}" if n_read < len(items) else ""
    return f"kept {len(items)} of {items.n_candidates} (dropped: {why}){used}"


def _latent(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    curves: dict[str, pd.DataFrame] = {}
    facts: dict[str, Any] = {}
    item_tables = []
    for label, need, items, kept in _reads(c):
        r = c.lens_readout(need).readout
        if r.n_reads != len(kept):
            raise ParamError(f"lens readout of {label} has {r.n_reads} reads for {len(kept)} items")
        table = latent_curves(item_masses(r.set_mass, kept), r.entropy, layers=list(r.layer_labels),
                              n_boot=p["n_boot"], method=p["band"], random_state=0)
        curves[label] = table
        s = latent_summary(table)
        facts[label] = {"lens": need.lens, "model": need.model.to_dict(), "kept": len(items), "read": len(kept),
                        "candidates": items.n_candidates, "dropped": dict(items.dropped),
                        "drops": _drop_line(items, len(kept)), "summary": dataclasses.asdict(s)}
        item_tables.append(items_table(items, kept).assign(state=label))
    c.facts["latent"] = facts
    c.facts["languages"] = list(dict.fromkeys([p["source"], p["target"], ENGLISH]))
    c.extra["items"] = pd.concat(item_tables, ignore_index=True)
    data = pd.concat([t.assign(state=label) for label, t in curves.items()], ignore_index=True)
    data = data[["state", *[col for col in data.columns if col != "state"]]]
    src, tgt, kind = p["source"], p["target"], p["prompts"]
    if len(curves) == 1:
        (label, table), = curves.items()
        f = facts[label]
        what = "word" if kind == "words" else "sentence"
        title = c.spec["title"] or (f"Latent language {src}→{tgt} ({what} prompts, {lens_name(f['lens'])}, "
                                    f"n = {f['read']})<br><sup>{f['drops']}</sup>")
        return latent_curves_figure(table, source=src, target=tgt, english=ENGLISH, title=title), data
    title = c.spec["title"] or f"Latent language {src}→{tgt}, {len(curves)} states ({kind})"
    return latent_compare_figure(curves, source=src, target=tgt, english=ENGLISH, title=title), data


def _report(built: Any, rebuild: Callable[..., Any]) -> Report:
    p = built.info["params"]
    lines = []
    for label, f in built.info["latent"].items():
        s = f["summary"]
        t = built.table[built.table["state"] == label]
        over = (f"P({p['target']}) overtakes P(en) at layer {s['overtake_layer']}" if s["overtake_layer"] is not None
                else f"P({p['target']}) does not overtake P(en) after its peak")
        lines += [f"{label}: {p['source']}→{p['target']} {p['prompts']} prompts, {lens_name(f['lens'])}: {f['drops']}",
                  f"  P(en) peaks at layer {s['en_peak_layer']}: {s['en_peak']:.3f} "
                  f"[{s['en_peak_lo']:.3f}, {s['en_peak_hi']:.3f}] ({p['band']} 95% band, n = {s['n']}); {over}",
                  "  P(en)".ljust(12) + sparkline(t["p_en"], list(t["layer"])),
                  f"  P({p['target']})".ljust(12) + sparkline(t["p_target"], list(t["layer"])),
                  "  entropy".ljust(12) + sparkline(t["entropy"], list(t["layer"]))]
    return Report(lines, {"": built.table, "items": built.extra["items"]})


def _no_recordings(canon: Mapping[str, Any]) -> list[Any]:
    return []  # reads lens readouts (`lens_needs`), not recordings


ANALYSES = (
    Analysis("latent", "latent-language curves: P(target), P(en), P(source) per layer with 95% bands "
             "(Wendler et al. 2024), N states", LatentParams, _latent, needs=_no_recordings, report=_report,
             extras=("items",), lens_needs=_lens_needs),
)

"""The token view: what every layer predicts at each position of one prompt, and in which language.

For one prompt (a latent item's word or sentence prompt, or any text), a layer × position
grid: each cell the top-1 decoded token of the lens at that layer and position, coloured by
its probability or by the entropy, the hover showing the top k with probabilities; and the
"decoded language" strip: per layer, which language's token set the top-1 token at the last
position falls into (target, English, source, in that order; ``other`` if none). For an item
prompt the sets are the item's three words' (METHODS §9); for a text prompt, the
``answers`` given as ``lang=word``.

Reads the last ``last_positions`` positions (all with None) through `Ctx.lens_readout`, from
the store (`recipes.lens_fetch`): the same readout path as the latent-language curves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.config import ModelSpec, spec_field
from workbench.errors import ParamError
from workbench.latent import token_set
from workbench.recipes.analysis import Analysis, LensNeed, Report
from workbench.recipes.context import Ctx
from workbench.recipes.latent import ENGLISH, PromptSource, latent_inputs, lens_name
from workbench.recipes.params import choice
from workbench.viz.lens_figures import token_text, token_view_figure

__all__ = ["ANALYSES", "TokensParams", "decoded", "prompt_sets"]

TOKEN_PROMPTS = ("words", "sentences", "text")
COLORS = ("probability", "entropy")
OTHER = "other"


@dataclass(frozen=True)
class TokensParams(PromptSource):
    """The token view: top-1 token per layer and position of one prompt, and the decoded-language strip."""

    prompts: str = spec_field("words or sentences (a latent item's prompt), or text (the `text` parameter)",
                              "words", choices=TOKEN_PROMPTS)
    item: str | None = spec_field("the concept (words) or unit id (sentences) whose prompt is shown; default: the "
                                  "first kept item", None)
    text: str | None = spec_field("the prompt when prompts = text", None)
    answers: tuple[str, ...] = spec_field("prompts = text: lang=word answers whose token sets the strip reads", ())
    color: str = spec_field("cell colour: probability (of the top-1 token) or entropy", "probability",
                            choices=COLORS)
    last_positions: int | None = spec_field("read the last N positions of the prompt (default 16; none: all)", 16)
    top_k: int = spec_field("tokens shown in each cell's hover", 5)

    def __post_init__(self) -> None:
        super().__post_init__()
        choice("prompts", self.prompts, TOKEN_PROMPTS)
        choice("color", self.color, COLORS)
        if self.prompts == "text" and not (self.text or "").strip():
            raise ParamError("prompts = text needs the prompt in `text`")
        bad = [a for a in self.answers if "=" not in a or not a.split("=", 1)[1].strip()]
        if bad:
            raise ParamError(f"answers are lang=word (e.g. zh=花,en=flower); got {bad}")
        if self.last_positions is not None and (not isinstance(self.last_positions, int) or self.last_positions < 1):
            raise ParamError(f"last_positions must be a positive integer or None; got {self.last_positions!r}")
        if not isinstance(self.top_k, int) or self.top_k < 1:
            raise ParamError(f"top_k must be a positive integer; got {self.top_k!r}")


def prompt_sets(c: Ctx, model: ModelSpec) -> tuple[str, tuple[tuple[str, tuple[int, ...]], ...], dict[str, Any]]:
    """(prompt, language → token set in strip order, about) of a token-view spec for one model's tokenizer."""
    p = c.p
    if p["prompts"] == "text":
        tok = c.tokenizer_of(model)
        sets: dict[str, tuple[int, ...]] = {}
        for a in p["answers"]:
            lang, word = (x.strip() for x in a.split("=", 1))
            sets.setdefault(lang, token_set(word, tok, byte_fallback=p["byte_fallback"]))
        return str(p["text"]), tuple(sets.items()), {"prompts": "text", "answers": list(p["answers"]),
                                                     "byte_fallback": p["byte_fallback"], "unit": "text prompt"}
    items, about = latent_inputs(c, p, p["prompts"], model)
    if not items.items:
        raise ParamError(f"{items.summary()}: no prompt to show")
    it = items.items[0] if p["item"] is None else next((x for x in items.items if x.concept == str(p["item"])), None)
    if it is None:
        raise ParamError(f"no kept item {p['item']!r} for {items.summary()}; kept: "
                         f"{', '.join(x.concept for x in items.items[:12])}{' …' if len(items) > 12 else ''}")
    order = [("target", it.langs["target"]), ("en", ENGLISH), ("source", it.langs["source"])]
    sets = {}
    for role, lang in order:
        sets.setdefault(lang, tuple(it.token_sets[role]))
    return it.prompt, tuple(sets.items()), {**about, "item": it.concept, "unit": f"{about['unit']} · {it.concept}"}


def _need(c: Ctx) -> tuple[LensNeed, Any]:
    p = c.p
    model = ModelSpec.from_dict(c.spec["model"])
    prompt, sets, about = prompt_sets(c, model)
    tok = c.tokenizer_of(model)
    n = len(tok(prompt, add_special_tokens=True)["input_ids"])
    last = p["last_positions"]
    positions: Any = "all" if last is None or last >= n else list(range(-last, 0))
    need = LensNeed("main", model, (prompt,), sets, {"positions": positions, "top_k": p["top_k"]}, p["lens"],
                    {"view": "tokens", **about})
    return need, tok


def _lens_needs(c: Ctx) -> list[LensNeed]:
    return [_need(c)[0]]


def decoded(tok: Any, ids: Any) -> dict[int, str]:
    """Token id -> the text a cell shows (`viz.lens_figures.token_text`; a byte token as its piece)."""
    out = {}
    for i in sorted({int(x) for x in np.asarray(ids).ravel()}):
        text = tok.decode([i])
        out[i] = token_text(tok.convert_ids_to_tokens(i) if "\ufffd" in text else text)
    return out


def _lang_of(token: int, sets: tuple[tuple[str, tuple[int, ...]], ...]) -> str:
    return next((lang for lang, ids in sets if token in ids), OTHER)


def _tokens(c: Ctx) -> tuple[go.Figure, pd.DataFrame]:
    p = c.p
    need, tok = _need(c)
    r = c.lens_readout(need).readout
    rows = r.rows(0)
    names = decoded(tok, np.concatenate([r.top_ids[rows].ravel(), r.token[rows]]))
    records = []
    for li, layer in enumerate(r.layer_labels):
        for j in rows:
            ids, probs = r.top_ids[j, li], r.top_probs[j, li]
            records.append({"layer": layer, "position": int(r.position[j]), "input_token": names[int(r.token[j])],
                            "top1": names[int(ids[0])], "top1_id": int(ids[0]), "top1_prob": float(probs[0]),
                            "entropy": float(r.entropy[j, li]), "kl_to_final": float(r.kl_to_final[j, li]),
                            "top1_lang": _lang_of(int(ids[0]), need.token_sets),
                            "top_k": "\n".join(f"{names[int(t)]}  {float(q):.3f}" for t, q in zip(ids, probs))})
    grid = pd.DataFrame(records)
    last = grid[grid["position"] == grid["position"].max()]
    strip = last[["layer", "top1_lang", "top1", "top1_prob"]].rename(columns={"top1_lang": "lang"})
    strip = strip.reset_index(drop=True)
    for lang, ids in need.token_sets:  # the mass of each language's set at the last position, per layer
        strip[f"p_{lang}"] = [float(r.set_mass[lang][rows[-1], li]) for li in range(len(r.layer_labels))]
    c.extra["strip"] = strip
    c.facts["token_view"] = {"prompt": need.prompts[0], "about": dict(need.about), "lens": need.lens,
                             "sets": {lang: len(ids) for lang, ids in need.token_sets}}
    what = need.about.get("unit", "")
    title = c.spec["title"] or f"What each layer predicts: {what} ({lens_name(p['lens'])})"
    return token_view_figure(grid, strip, color=p["color"], title=title), grid


def _report(built: Any, rebuild: Callable[..., Any]) -> Report:
    f = built.info["token_view"]
    strip = built.extra["strip"]
    lines = [f"token view of {f['about'].get('unit', 'a prompt')} ({lens_name(f['lens'])}), "
             f"{built.table['position'].nunique()} positions × {built.table['layer'].nunique()} layers",
             "prompt: " + f["prompt"].replace("\n", " ⏎ ")[-200:],
             "decoded language at the last position, per layer:",
             "  " + " ".join(f"{r.layer}:{r.lang}" for r in strip.itertuples()),
             "top-1 at the last position: " + " | ".join(f"{r.layer} {r.top1} {r.top1_prob:.2f}"
                                                         for r in strip.itertuples())]
    return Report(lines, {"": built.table, "strip": strip})


def _no_recordings(canon: Mapping[str, Any]) -> list[Any]:
    return []  # reads a lens readout (`lens_needs`), not recordings


ANALYSES = (
    Analysis("tokens", "token view: the top-1 token of every layer at each position of one prompt, and its "
             "language", TokensParams, _tokens, needs=_no_recordings, report=_report, extras=("strip",),
             lens_needs=_lens_needs),
)

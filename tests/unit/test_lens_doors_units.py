"""The lens views' light parts: the readout store key, parameters, presets, figures, the report's lens pair.

No model here: the key is a pure function of the fingerprint and the request; the figures are
built from planted tables and read back.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from workbench.errors import ExportError, ParamError
from workbench.lenses import LensSpec
from workbench.recipes.spec import normalize_spec
from workbench.recordings.lens import LensRequest, lens_key
from workbench.report import lens_pair
from workbench.viz.lens_figures import latent_compare_figure, token_text, token_view_figure

FP = "abc123-float32"
BASE = LensRequest(prompts=("Français: \"eau\" - 中文: \"", "x"),
                   token_sets=(("target:water", (1, 2)), ("en:water", (3,))),
                   spec=LensSpec(), lens="logit", about={"prompts": "words", "pair": "fr>zh"})


def _variants() -> dict[str, LensRequest]:
    """One request per thing that changes a readout's bytes, each differing from BASE in that one thing."""
    r = BASE
    spec_changes = {"positions": "all", "top_k": 3, "embeddings": True, "max_length": 99, "add_special_tokens": False}
    out = {
        "prompt text": dataclasses.replace(r, prompts=("Français: \"feu\" - 中文: \"", "x")),
        "prompt order": dataclasses.replace(r, prompts=tuple(reversed(r.prompts))),
        "one more prompt": dataclasses.replace(r, prompts=(*r.prompts, "y")),
        "token set ids": dataclasses.replace(r, token_sets=(("target:water", (1, 4)), ("en:water", (3,)))),
        "token set name": dataclasses.replace(r, token_sets=(("target:fire", (1, 2)), ("en:water", (3,)))),
        "token set order": dataclasses.replace(r, token_sets=tuple(reversed(r.token_sets))),
        "no token sets": dataclasses.replace(r, token_sets=()),
        "tuned lens": dataclasses.replace(r, lens="0123456789abcdef"),
        "another tuned lens": dataclasses.replace(r, lens="fedcba9876543210"),
        "about (template)": dataclasses.replace(r, about={**r.about, "prompt_spec": {"n_shots": 2}}),
    }
    out.update({f"spec.{k}": dataclasses.replace(r, spec=dataclasses.replace(r.spec, **{k: v}))
                for k, v in spec_changes.items()})
    return out


def test_the_readout_key_changes_with_every_field():
    base = lens_key(FP, BASE)
    keys = {name: lens_key(FP, req) for name, req in _variants().items()}
    keys["model fingerprint"] = lens_key("abc124-float32", BASE)
    keys["dtype"] = lens_key("abc123-bfloat16", BASE)
    same = [name for name, k in keys.items() if k == base]
    assert not same, f"the key ignores {same}"
    assert len(set(keys.values())) == len(keys)  # and every change gives its own key
    # every LensSpec field is covered: a new field must be added to the variants above
    assert {f"spec.{f.name}" for f in dataclasses.fields(LensSpec)} <= set(keys)
    assert lens_key(FP, dataclasses.replace(BASE)) == base  # equal requests share an entry


def test_a_request_refuses_what_it_cannot_key():
    with pytest.raises(ParamError):
        LensRequest(prompts=())
    with pytest.raises(ParamError):
        LensRequest(prompts=("a",), token_sets=(("s", (1,)), ("s", (2,))))
    with pytest.raises(ParamError):
        LensRequest(prompts=("a",), lens="tuned")


@pytest.mark.parametrize(("analysis", "params", "match"), [
    ("latent", {"source": "fr", "target": "fr"}, "must differ"),
    ("latent", {"lens": "nope"}, "lens must be"),
    ("latent", {"prompts": "poems"}, "prompts must be one of"),
    ("latent", {"band": "wide"}, "band must be one of"),
    ("latent", {"max_items": 0}, "max_items"),
    ("latent", {"others": [{}], "labels": ["a"]}, "labels must name every state"),
    ("tokens", {"prompts": "text"}, "needs the prompt"),
    ("tokens", {"prompts": "text", "text": "hi", "answers": ["zh"]}, "lang=word"),
    ("tokens", {"color": "rainbow"}, "color must be one of"),
])
def test_lens_view_parameters_are_checked(analysis, params, match):
    with pytest.raises(ExportError, match=match):
        normalize_spec({"analysis": analysis, "model": "tiny:llama", "params": params})


def test_the_wendler_preset_sets_their_prompts_and_band():
    canon = normalize_spec({"analysis": "latent", "model": "tiny:llama", "preset": "wendler"})
    p = canon["params"]
    assert (p["prompts"], p["n_shots"], p["seed"], p["drop_substring"], p["band"]) == ("words", 4, 42, True, "gaussian")
    assert canon["record"] == {}  # no recording field
    mine = normalize_spec({"analysis": "latent", "model": "tiny:llama", "preset": "wendler",
                           "params": {"band": "bootstrap"}})
    assert mine["params"]["band"] == "bootstrap"  # a given parameter wins over the preset
    assert normalize_spec({"analysis": "retrieval", "preset": "wendler"})["params"] == normalize_spec(
        {"analysis": "retrieval"})["params"]  # other analyses: untouched


@pytest.mark.parametrize(("langs", "pair"), [
    (["en", "zh", "sw", "ar", "hi", "es"], ("sw", "zh")),
    (["en", "sw"], ("en", "sw")),
    (["fr", "zh"], ("fr", "zh")),
    (["en"], None),
    (["ar", "en"], None),  # ar is not in the word list: nothing to ask
])
def test_the_report_has_a_lens_section_when_the_word_list_covers_a_pair(langs, pair):
    assert lens_pair(langs) == pair


def _curves(level: float, layers=(0, 1, 2)) -> pd.DataFrame:
    d = {"layer": list(layers), "n": 5}
    for q in ("p_target", "p_en", "p_source", "entropy"):
        v = np.full(len(layers), level)
        d.update({q: v, f"{q}_lo": v - 0.01, f"{q}_hi": v + 0.01})
    return pd.DataFrame(d)


def test_latent_curves_of_n_states_share_one_figure_told_apart_by_dash():
    fig = latent_compare_figure({"base": _curves(0.2), "tuned": _curves(0.4), "third": _curves(0.6)},
                                source="fr", target="zh")
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(lines) == 3 * 3  # target, en and entropy per state
    by_name = {t.name: t for t in lines}
    assert list(by_name["P(en) · tuned"].y) == [0.4, 0.4, 0.4]
    assert by_name["P(zh) · base"].line.color == by_name["P(zh) · tuned"].line.color  # colour = language
    assert len({by_name[f"P(zh) · {s}"].line.dash for s in ("base", "tuned", "third")}) == 3  # dash = state


def test_the_token_view_shows_each_cell_s_top_token_and_the_strip_its_language():
    rows = []
    for layer in (0, 1):
        for pos, tok in ((3, "␣eau"), (4, '"')):
            rows.append({"layer": layer, "position": pos, "input_token": tok, "top1": f"t{layer}{pos}",
                         "top1_prob": 0.1 * (layer + 1), "entropy": 2.0 - layer,
                         "top_k": f"t{layer}{pos}  0.1\nz  0.0"})
    grid = pd.DataFrame(rows)
    strip = pd.DataFrame({"layer": [0, 1], "lang": ["en", "zh"], "top1": ["t04", "t14"], "top1_prob": [0.1, 0.2]})
    fig = token_view_figure(grid, strip, color="entropy")
    cells, lang = fig.data
    assert list(cells.x) == ["3: ␣eau", '4: "'] and list(cells.y) == ["0", "1"]
    assert [list(r) for r in cells.text] == [["t03", "t04"], ["t13", "t14"]]
    assert [list(r) for r in cells.z] == [[2.0, 2.0], [1.0, 1.0]]  # coloured by entropy
    assert [r[0] for r in lang.text] == ["en", "zh"]
    assert "z  0.0" in cells.customdata[0][0].replace("<br>", "\n")
    with pytest.raises(ParamError):
        token_view_figure(grid, strip, color="loudness")


def test_token_text_makes_invisible_tokens_visible():
    assert token_text(" fleur") == "␣fleur"
    assert token_text("\n") == "⏎"
    assert token_text("") == "∅"
    assert token_text("花") == "花"


def test_the_one_pass_decode_equals_the_definitions():
    """decode_stats' rewritten reductions (lse, Σp·x, Σp_f(x_f − x)) against the literal float64 formulas."""
    import torch

    from workbench.lenses import decode_stats, entropy, kl_to_final
    from workbench.lenses.readout import FinalDist

    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 5000, generator=g) * 6
    final = torch.randn(6, 5000, generator=g) * 6
    x[0, :10] = float("-inf")  # tokens a layer rules out: 0 · log 0 = 0, never NaN
    final[1, :10] = float("-inf")
    sets = {"s": torch.tensor([1, 20, 300])}
    got = decode_stats(x, FinalDist.of(final), top_k=4, token_sets=sets)
    logp, flogp = torch.log_softmax(x.double(), -1), torch.log_softmax(final.double(), -1)
    p = logp.exp()
    np.testing.assert_allclose(got["entropy"].numpy(), entropy(logp).numpy(), rtol=1e-6)
    kl = kl_to_final(flogp, logp)
    assert torch.isinf(kl[1:]).sum() == 0 and torch.isinf(kl[0])  # final puts mass where row 0 has none
    np.testing.assert_allclose(got["kl"].numpy()[1:], kl.numpy()[1:], rtol=1e-6)
    assert got["kl"][0] > 1e30  # −∞ logits read as −1e300: an astronomically large, finite-or-inf KL
    top_p, top_i = p.topk(4, -1)
    assert torch.equal(got["top_ids"], top_i)
    np.testing.assert_allclose(got["top_probs"].numpy(), top_p.numpy(), rtol=1e-6)
    np.testing.assert_allclose(got["mass"]["s"].numpy(), p[:, [1, 20, 300]].sum(-1).numpy(), rtol=1e-6)
    assert not any(torch.isnan(v).any() for k, v in got.items() if k != "mass")


def test_the_paper_export_keeps_the_tokens_in_the_cells():
    """The print layout puts values in numeric heatmaps' cells; the token view's cells keep their tokens."""
    from workbench.export import paper_figure

    rows = [{"layer": layer, "position": pos, "input_token": "x", "top1": "␣water" if pos == 0 else "a-very-long-token",
             "top1_prob": 0.5, "entropy": 1.0, "top_k": "t"} for layer in range(3) for pos in range(4)]
    strip = pd.DataFrame({"layer": [0, 1, 2], "lang": ["other", "en", "zh"], "top1": ["a", "b", "c"],
                          "top1_prob": [0.1, 0.2, 0.3]})
    fig = paper_figure(token_view_figure(pd.DataFrame(rows), strip), "double")
    cells, lang = fig.data
    text = [list(r) for r in cells.text]
    assert text[0][0] == "␣water" and not any("0.5" in t for row in text for t in row)
    assert all(t == "a-very-long-token" or t.endswith("…") for t in text[0][1:])  # cut to its cell, marked
    assert [r[0] for r in lang.text] == ["other", "en", "zh"]

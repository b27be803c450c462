"""Patching's light parts: the pairs and their token sets, the curves, the figure, the spec and its store key."""

from __future__ import annotations

import numpy as np
import pytest

from workbench import models
from workbench.analysis.latent_curves import latent_curves
from workbench.analysis.patching import PATCH_QUANTITIES, patching_curves
from workbench.errors import ParamError
from workbench.latent import WordPromptSpec, load_words
from workbench.latent.patching import PATCH_ROLES, UNPATCHED, cut_at_object, object_offset, patch_items
from workbench.lenses import LensSpec, PatchSpec
from workbench.recordings.lens import LensRequest, lens_key
from workbench.viz.patch_figures import patching_figure


@pytest.fixture(scope="module")
def tok():
    return models.tiny_tokenizer()


def test_pairs_are_a_cyclic_shift_with_their_own_sets(tok):
    words = load_words("basic-nouns")
    items = patch_items(words, source="fr", target="zh", source_from=("de", "es"), target_from="ru", tokenizer=tok,
                        spec=WordPromptSpec(n_shots=3))
    assert len(items) + sum(items.dropped.values()) == items.n_candidates == len(words)
    sources = [it.source_concept for it in items.items]
    assert len(set(sources)) == len(sources) and all(it.source_concept != it.target_concept for it in items.items)
    for it in items.items:
        assert it.words["c1_in_target"] == words.word(it.source_concept, "zh")
        assert it.words["c2_in_target"] == words.word(it.target_concept, "zh")
        assert it.words["c1_in_source"] == words.word(it.source_concept, "fr")
        assert len(it.source_prompts) == 2
        assert it.source_prompts[0].endswith(f'Deutsch: "{words.word(it.source_concept, "de")}" - Français: "')
        assert it.source_prompts[1].startswith("Español: ")
        assert it.target_prompt.endswith(f'"{words.word(it.target_concept, "ru")}" - 中文: "')
        assert it.target_prompt.count("\n") == 3  # three solved lines, then the query
        sets = [set(it.token_sets[r]) for r in PATCH_ROLES]
        assert all(sets) and not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    named = items.named_token_sets()
    assert len(named) == 3 * len(items)
    again = patch_items(words, source="fr", target="zh", source_from=("de", "es"), target_from="ru", tokenizer=tok,
                        spec=WordPromptSpec(n_shots=3))
    assert again == items  # deterministic
    other = patch_items(words, source="fr", target="zh", source_from=("de", "es"), target_from="ru", tokenizer=tok,
                        spec=WordPromptSpec(n_shots=3), seed=1)
    assert [it.name for it in other.items] != [it.name for it in items.items]


def test_collisions_are_dropped_and_counted(tok):
    words = load_words("basic-nouns")
    items = patch_items(words, source="zh", target="ja", source_from=("de",), target_from="en", tokenizer=tok)
    # zh and ja share most noun characters (水, 火): C1's word in L2 and in L1 collide
    assert items.dropped["collision"] > 0
    assert "collision" in items.summary()


@pytest.mark.parametrize("kw, msg", [
    ({"source": "xx"}, "no language 'xx'"),
    ({"source_from": ("fr",)}, "into itself"),
    ({"target_from": "zh"}, "into itself"),
    ({"source_from": ()}, "at least one"),
])
def test_bad_languages_are_one_clear_error(tok, kw, msg):
    args = {"source": "fr", "target": "zh", "source_from": ("de",), "target_from": "en", **kw}
    with pytest.raises(ParamError, match=msg):
        patch_items(load_words("basic-nouns"), tokenizer=tok, **args)


def test_object_offset_is_the_query_words_last_token(tok):
    prompt = 'English: "cat" - Français: "chat"\nEnglish: "water" - Français: "'
    assert cut_at_object(prompt) == 'English: "cat" - Français: "chat"\nEnglish: "water'
    off = object_offset(tok, prompt)
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    head = tok(cut_at_object(prompt), add_special_tokens=False)["input_ids"]
    assert off is not None and ids[off] == head[-1] and len(ids) + off == len(head) - 1
    with pytest.raises(ParamError):
        cut_at_object("no quotes here")


def test_curves_are_the_lens_statistics_under_their_names():
    rng = np.random.default_rng(0)
    m = rng.uniform(0, 0.3, (40, 5, 3))
    m[:, 2, 0] = 0.8  # planted: C1 in L2 high when patching layer 2
    h = rng.uniform(0, 3, (40, 5))
    t = patching_curves(m, h, layers=[0, 1, 2, 3, UNPATCHED], n_boot=200)
    ref = latent_curves(m, h, layers=[0, 1, 2, 3, UNPATCHED], n_boot=200)
    for q, old in zip(PATCH_QUANTITIES, ("p_target", "p_en", "p_source")):
        np.testing.assert_array_equal(t[q], ref[old])
        np.testing.assert_array_equal(t[f"{q}_lo"], ref[f"{old}_lo"])
    assert t["p_c1_in_target"].iloc[2] == pytest.approx(0.8)
    q = "p_c1_in_target"
    assert (t[f"{q}_lo"] <= t[q]).all() and (t[q] <= t[f"{q}_hi"]).all()
    with pytest.raises(ParamError):
        patching_curves(m[:, :, :2])


def test_figure_has_three_banded_curves_and_the_unpatched_lines():
    rng = np.random.default_rng(1)
    t = patching_curves(rng.uniform(0, 1, (10, 4, 3)), rng.uniform(0, 2, (10, 4)), layers=[0, 1, 2, UNPATCHED],
                        n_boot=50)
    fig = patching_figure(t, source="fr", target="zh")
    names = [tr.name for tr in fig.data]
    for want in ("P(C1 in zh)", "P(C2 in zh)", "P(C1 in fr)", "entropy"):
        assert want in names and f"{want} band" in names
    assert {"P(C1 in zh), unpatched", "P(C2 in zh), unpatched", "P(C1 in fr), unpatched"} <= set(names)
    line = next(tr for tr in fig.data if tr.name == "P(C1 in zh)")
    assert list(line.x) == ["0", "1", "2"]  # the unpatched row is a reference line, not a layer
    with pytest.raises(ParamError):
        patching_figure(t.drop(columns=["p_c1_in_source"]), source="fr", target="zh")


def test_patch_spec_checks_and_round_trips():
    spec = PatchSpec((("a", "b"), ("c",)), (-1, -3), "from")
    assert PatchSpec.from_dict(spec.to_dict()) == spec
    for bad in ({"sources": ()}, {"sources": (("a",),), "target_offsets": (0,)},
                {"sources": (("a",),), "target_offsets": (-1,), "variant": "all"},
                {"sources": (("a",), ("b",)), "target_offsets": (-1,)}):
        with pytest.raises(ParamError):
            PatchSpec(**bad)


def test_a_patch_changes_the_key_and_a_plain_readout_keeps_its_own():
    plain = LensRequest(("p",), (("s", (1, 2)),), LensSpec())
    assert "patch" not in plain.key_parts()  # the keys of stored lens readouts are unchanged
    a = LensRequest(("p",), (("s", (1, 2)),), LensSpec(), patch=PatchSpec((("q",),), (-1,)))
    b = LensRequest(("p",), (("s", (1, 2)),), LensSpec(), patch=PatchSpec((("q",),), (-1,), "from"))
    c = LensRequest(("p",), (("s", (1, 2)),), LensSpec(), patch=PatchSpec((("q", "r"),), (-1,)))
    keys = {lens_key("fp", r) for r in (plain, a, b, c)}
    assert len(keys) == 4
    with pytest.raises(ParamError, match="logit"):
        LensRequest(("p",), lens="0123456789abcdef", patch=PatchSpec((("q",),), (-1,)))

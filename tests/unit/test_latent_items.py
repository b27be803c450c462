"""Latent-language items and prompts: token sets per role, counted drops, the authors' prompt format and sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.corpus import ParallelCorpus, load_corpus
from workbench.errors import ParamError
from workbench.latent.items import DROP_REASONS, ROLES, latent_items
from workbench.latent.prompts import (
    WENDLER_2024,
    SentencePromptSpec,
    WordPromptSpec,
    first_word,
    prompt_name,
    sentence_latent_items,
    sentence_prompts,
    word_latent_items,
    word_prompts,
)
from workbench.latent.tokens import TokenIndex
from workbench.latent.words import load_words

# Planted vocabulary: single letters with and without the marker, two Han characters and their first bytes.
LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VOCAB = {**{ch: i for i, ch in enumerate(LETTERS)}, **{"▁" + ch: 100 + i for i, ch in enumerate(LETTERS)},
         "花": 200, "水": 201, "<0xE8>": 202, "<0xE6>": 203, "<bos>": 300}
INDEX = TokenIndex.from_vocab(VOCAB, scheme="sentencepiece", special_ids={300})

TRANSLATIONS = {
    "flower": {"en": "flower", "fr": "fleur", "zh": "花", "de": "Blume"},   # fr shares f with en
    "water": {"en": "water", "fr": "eau", "zh": "水", "de": "Wasser"},      # W and w: different tokens
    "hand": {"en": "hand", "fr": "main", "zh": "山", "de": "Hand"},         # 山 (first byte E5): no token
    "sun": {"en": "sun", "fr": "soleil", "zh": "", "de": "Sonne"},          # zh missing
    "wind": {"en": "wind", "fr": "vent", "de": "Wind"},                     # zh absent
    "dog": {"en": "dog", "fr": "chien", "zh": "水", "de": "Hund"},
}  # fmt: skip


def test_items_sets_and_counted_drops():
    res = latent_items(TRANSLATIONS, source="fr", target="zh", tokenizer=INDEX)
    assert [it.concept for it in res.items] == ["flower", "water", "dog"]
    assert res.dropped == {"missing": 2, "english_in_target": 0, "empty": 1, "overlap": 0}
    assert res.dropped_concepts["missing"] == ("sun", "wind") and res.dropped_concepts["empty"] == ("hand",)
    assert res.n_candidates == len(TRANSLATIONS) == len(res) + sum(res.dropped.values())
    flower = res.items[0]
    assert tuple(flower.words) == ROLES and dict(flower.words) == {"target": "花", "en": "flower", "source": "fleur"}
    assert dict(flower.langs) == {"target": "zh", "en": "en", "source": "fr"}
    assert flower.token_sets["target"] == (200, 202) and flower.token_sets["en"] == (5, 105)
    assert flower.token_sets["source"] == flower.token_sets["en"]  # fleur and flower share f, ▁f only
    assert res.token_sets()[0] == (flower.token_sets["target"], flower.token_sets["en"], flower.token_sets["source"])
    assert "kept 3 of 6" in res.summary() and "2 missing" in res.summary()


def test_overlap_and_substring_drops():
    res = latent_items(TRANSLATIONS, source="zh", target="fr", tokenizer=INDEX)
    assert res.dropped_concepts["overlap"] == ("flower",)  # fleur / flower: both start with f
    assert res.dropped["missing"] == 2 and res.dropped["empty"] == 0
    de = latent_items(TRANSLATIONS, source="fr", target="de", tokenizer=INDEX)
    assert de.dropped_concepts["english_in_target"] == ("hand", "wind")  # case-folded containment
    assert "water" in [it.concept for it in de.items]  # Wasser vs water: W and w are different tokens
    off = latent_items(TRANSLATIONS, source="fr", target="de", tokenizer=INDEX, drop_substring=False)
    assert off.dropped["english_in_target"] == 0 and off.dropped["overlap"] == 0  # Hand/hand: H ≠ h
    assert {"hand", "wind"} <= {it.concept for it in off.items}
    for r in (res, de, off):
        for it in r.items:
            assert not set(it.token_sets["target"]) & set(it.token_sets["en"])
    assert set(res.dropped) == set(DROP_REASONS)


def test_english_target_keeps_its_own_overlap_and_bad_pairs_raise():
    res = latent_items(TRANSLATIONS, source="fr", target="en", tokenizer=INDEX)
    assert res.dropped["overlap"] == 0 and res.dropped["english_in_target"] == 0
    assert all(it.token_sets["target"] == it.token_sets["en"] for it in res.items)
    with pytest.raises(ParamError, match="same language"):
        latent_items(TRANSLATIONS, source="fr", target="fr", tokenizer=INDEX)
    with pytest.raises(ParamError, match="no prompt"):
        latent_items(TRANSLATIONS, source="fr", target="zh", tokenizer=INDEX, prompts={"flower": "p"})


def test_named_sets_and_gathered_masses_round_trip():
    res = latent_items(TRANSLATIONS, source="fr", target="zh", tokenizer=INDEX)
    named = res.named_token_sets()
    assert len(named) == 3 * len(res) and named["target:flower"] == res.items[0].token_sets["target"]
    rng = np.random.default_rng(0)
    n_reads, n_layers = 5, 4
    set_mass = {name: rng.uniform(size=(n_reads, n_layers)) for name in named}
    rows = [4, 0, 2]  # item i was read at row rows[i]
    m = res.gather_masses(set_mass, rows)
    assert m.shape == (len(res), n_layers, 3)
    for i, it in enumerate(res.items):
        for k, role in enumerate(ROLES):
            np.testing.assert_array_equal(m[i, :, k], set_mass[f"{role}:{it.concept}"][rows[i]])
    with pytest.raises(ParamError, match="no mass for token set"):
        res.gather_masses({k: v for k, v in set_mass.items() if k != "en:dog"}, rows)
    with pytest.raises(ParamError, match="reads for 3 items"):
        res.gather_masses(set_mass, [0])


def _planted(n: int) -> dict[str, dict[str, str]]:
    return {f"c{i}": {"en": f"e{i}", "fr": f"f{i}", "zh": f"z{i}"} for i in range(n)}


def test_word_prompt_is_the_authors_format():
    tr = _planted(6)
    items = word_prompts(tr, source="fr", target="zh", spec=WordPromptSpec(n_shots=3, seed=1))
    assert len(items) == 6
    for it in items:
        lines = it.prompt.split("\n")
        assert len(lines) == 4 and it.concept not in it.shots and len(set(it.shots)) == 3
        for line, shot in zip(lines[:3], it.shots):
            assert line == f'Français: "{tr[shot]["fr"]}" - 中文: "{tr[shot]["zh"]}"'
        assert lines[3] == f'Français: "{tr[it.concept]["fr"]}" - 中文: "'
        assert dict(it.words) == {"fr": tr[it.concept]["fr"], "zh": tr[it.concept]["zh"], "en": tr[it.concept]["en"]}
    assert WENDLER_2024.n_shots == 4 and WENDLER_2024.seed == 42


def test_a_word_list_is_accepted_as_is():
    wl = load_words()
    assert word_prompts(wl, source="fr", target="zh") == word_prompts(wl.translations(), source="fr", target="zh")
    res = word_latent_items(wl, source="de", target="ja", tokenizer=INDEX)
    assert res.n_candidates == len(wl)


def test_shots_are_sampled_as_the_authors_pandas_code_samples_them():
    tr = _planted(12)
    ours = word_prompts(tr, source="fr", target="zh")  # WENDLER_2024: k = 5 rows, np.random.seed(42)
    df = pd.DataFrame([{"concept": c, **row} for c, row in tr.items()])
    np.random.seed(42)  # the authors' Translation.ipynb, cell 2, then `sample(df, ind, k=5)` per row
    theirs = []
    for ind in range(len(df)):
        temp = df[df.index != ind]
        theirs.append(tuple(temp.sample(5 - 1)["concept"]))
    assert [it.shots for it in ours] == theirs


def test_prompts_are_deterministic_given_the_seed():
    tr = _planted(10)
    a = word_prompts(tr, source="fr", target="zh", spec=WordPromptSpec(seed=3))
    assert a == word_prompts(tr, source="fr", target="zh", spec=WordPromptSpec(seed=3))
    assert a != word_prompts(tr, source="fr", target="zh", spec=WordPromptSpec(seed=4))
    with pytest.raises(ParamError, match="cannot give 4 shots"):
        word_prompts(_planted(4), source="fr", target="zh")
    with pytest.raises(ParamError, match="n_shots"):
        WordPromptSpec(n_shots=-1)


def test_shots_come_from_candidates_including_those_dropped_for_their_tokens():
    res = word_latent_items(TRANSLATIONS | _planted(5), source="zh", target="fr", tokenizer=INDEX,
                            spec=WordPromptSpec(n_shots=2))
    assert res.dropped_concepts["overlap"] == ("flower",)
    shots = {s for it in word_prompts(TRANSLATIONS | _planted(5), source="zh", target="fr",
                                      spec=WordPromptSpec(n_shots=2)) for s in it.shots}
    assert "sun" not in shots and "wind" not in shots  # missing words: never candidates
    assert all(it.prompt.endswith(f'中文: "{it.words["source"]}" - Français: "') for it in res.items)


def test_prompt_names():
    assert (prompt_name("zh"), prompt_name("en"), prompt_name("ja"), prompt_name("sw")) == (
        "中文", "English", "日本語", "Kiswahili")
    assert prompt_name("vi") == "Vietnamese"  # no endonym given: the English name


@pytest.mark.parametrize(("text", "word"), [
    ("L'union fait la force.", "L'union"), ('"Hello," he said.', "Hello"), ("我在学西班牙语。", "我在学西班牙语"),
    ("¿Dónde está?", "Dónde"), ("Jean-Luc est là.", "Jean-Luc"), ("... !", ""), ("Je! Hamu yako", "Je"),
    ("「踊りに行くの？」", "踊りに行くの"), ("मैं घर जा रहा हूँ।", "मैं"),
])  # fmt: skip
def test_first_word(text, word):
    assert first_word(text) == word


def _corpus() -> ParallelCorpus:
    en = ["The cat sleeps.", "I see a dog.", "Water is cold.", "...", "Birds fly.", "No way!"]
    fr = ["Le chat dort.", "Je vois un chien.", "L'eau est froide.", "Rien.", "Les oiseaux volent.", "Non !"]
    return ParallelCorpus("planted", [f"u{i}" for i in range(6)], {"en": en, "fr": fr})


def test_sentence_prompts_and_items():
    corpus = _corpus()
    prompts = sentence_prompts(corpus, source="en", target="fr", spec=SentencePromptSpec(n_shots=2, seed=0))
    assert [p.concept for p in prompts] == ["u0", "u1", "u2", "u4", "u5"]  # u3's English has no word
    for p in prompts:
        i = corpus.ids.index(p.concept)
        assert p.prompt.endswith(f'English: "{corpus.text("en", i)}" - Français: "')
        assert dict(p.words) == {"en": first_word(corpus.text("en", i)), "fr": first_word(corpus.text("fr", i))}
        assert p.prompt.count("\n") == 2 and p.concept not in p.shots
    res = sentence_latent_items(corpus, source="en", target="fr", tokenizer=INDEX,
                                spec=SentencePromptSpec(n_shots=2))
    assert res.dropped["missing"] == 1 and res.n_candidates == 6
    assert res.dropped_concepts["overlap"] == ("u5",)  # No / Non: both start with N
    kept = {it.concept: it for it in res.items}
    assert kept["u0"].words["en"] == "The" and kept["u0"].words["target"] == "Le"
    assert kept["u0"].words["source"] == "The" and kept["u0"].token_sets["source"] == kept["u0"].token_sets["en"]


def test_sentence_prompts_on_bundled_tatoeba_are_seeded():
    corpus = load_corpus("tatoeba:sw")
    spec = SentencePromptSpec(n_shots=2, seed=5, limit=40)
    a = sentence_prompts(corpus, source="en", target="sw", spec=spec)
    assert len(a) <= 40 and a == sentence_prompts(corpus, source="en", target="sw", spec=spec)
    b = sentence_prompts(corpus, source="en", target="sw", spec=SentencePromptSpec(n_shots=2, seed=6, limit=40))
    assert {p.concept for p in a} != {p.concept for p in b}
    with pytest.raises(Exception, match="zh"):
        sentence_prompts(corpus, source="en", target="zh")

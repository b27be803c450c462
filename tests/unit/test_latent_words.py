"""Word lists: the bundled list (languages, scripts, licence) and a user's TSV (round trip, clear errors)."""

from __future__ import annotations

import dataclasses
import importlib.resources
import unicodedata

import pytest

from workbench.corpus import CorpusError
from workbench.errors import ParamError
from workbench.latent.words import BUNDLED_WORDS, WordList, list_word_lists, load_words


def _scripts(words: list[str]) -> set[str]:
    return {unicodedata.name(w[0]).split()[0] for w in words}


def test_bundled_list_languages_scripts_and_cells():
    wl = load_words("basic-nouns")
    assert {"fr", "zh", "de", "ja", "en", "sw"} <= set(wl.langs) and len(wl.langs) >= 6
    assert len(wl) >= 100 and len(set(wl.concepts)) == len(wl)
    non_latin = {lang for lang in wl.langs if "LATIN" not in _scripts([wl.word(c, lang) for c in wl.concepts])}
    assert {"zh", "ja", "ru", "hi"} <= non_latin  # at least two non-Latin scripts (here four)
    for c in wl.concepts:
        for lang in wl.langs:
            w = wl.word(c, lang)
            assert w and w == unicodedata.normalize("NFC", w).strip() and '"' not in w, (c, lang)
    assert ("fr", "zh") in wl.pairs() and ("de", "ja") in wl.pairs() and ("en", "sw") in wl.pairs()
    assert load_words("basic-nouns") is wl  # parsed once


def test_bundled_list_records_its_licence_and_source():
    folder = importlib.resources.files("workbench").joinpath("data", "words")
    readme = folder.joinpath("README.md").read_text(encoding="utf-8")
    for name, fname in BUNDLED_WORDS.items():
        assert folder.joinpath(fname).is_file() and fname in readme and name in readme
    assert "CC0-1.0" in readme and "creativecommons.org/publicdomain/zero" in readme
    assert "epfl-dlab/llm-latent-language" in readme  # why the authors' data is not bundled
    assert all(row["licence"].startswith("CC0") for row in list_word_lists())


def test_word_list_is_frozen_and_read_only():
    wl = load_words()
    with pytest.raises(dataclasses.FrozenInstanceError):
        wl.name = "x"  # type: ignore[misc]  # the point of the test
    with pytest.raises(TypeError):
        wl.table["water"]["fr"] = "x"  # type: ignore[index]  # the point of the test
    copy = wl.translations(["fr", "en"])
    copy["water"]["fr"] = "changed"
    assert wl.word("water", "fr") == "eau" and list(copy["water"]) == ["fr", "en"]


def test_user_tsv_round_trip(tmp_path):
    rows = [("flower", "fleur", "花", "ua"), ("dog", "chien", "犬", "mbwa"), ("star", "e\u0301toile", "星", "nyota")]
    path = tmp_path / "mine.tsv"
    path.write_text("id\tfr\tja\tsw\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    wl = load_words(path)
    assert wl.langs == ("fr", "ja", "sw") and wl.name == "mine.tsv" and wl.source == str(path)
    assert wl.concepts == ("flower", "dog", "star")
    assert wl.word("star", "fr") == "étoile" == unicodedata.normalize("NFC", "e\u0301toile")  # NFC on read
    assert [wl.word(c, "ja") for c in wl.concepts] == ["花", "犬", "星"]
    assert wl.content_hash() == load_words(path).content_hash()
    path.write_text("id\tfr\tja\tsw\n" + "".join("\t".join(r) + "\n" for r in rows[:2]), encoding="utf-8")
    assert load_words(path).content_hash() != wl.content_hash()
    no_ids = tmp_path / "plain.tsv"
    no_ids.write_text("eng\tfra\nwater\teau\n", encoding="utf-8")
    plain = load_words(no_ids)
    assert plain.langs == ("en", "fr") and plain.concepts == ("0",)  # codes normalised, row ids


@pytest.mark.parametrize(
    ("content", "line", "lang", "words"),
    [
        ("id\tfr\tzh\nwater\teau\n", 2, "zh", "no text for language"),
        ("id\tfr\txx-notalang\nwater\teau\t水\n", 1, None, "xx-notalang"),
        ("id\tfr\tzh\nwater\teau\t水\nfire\t\"feu\"\t火\n", 3, "fr", "double quote"),
        ("id\tfr\tzh\nwater\teau\t水\nfire\t \t火\n", 3, "fr", "empty"),
        ("id\tfr\tfr\nwater\teau\teau\n", 1, "fr", "duplicate language"),
    ],
)
def test_user_tsv_errors_name_file_line_and_language(tmp_path, content, line, lang, words):
    path = tmp_path / "bad.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError, match=words) as info:
        load_words(path)
    assert str(path) in str(info.value) and info.value.line == line
    if lang is not None:
        assert info.value.lang == lang


def test_unknown_names_and_missing_files():
    with pytest.raises(CorpusError, match="basic-nouns"):
        load_words("swadesh")
    with pytest.raises(CorpusError, match="no such file"):
        load_words("/nonexistent/words.tsv")
    with pytest.raises(ParamError, match="has no language 'xh'"):
        load_words().word("water", "xh")


def test_word_list_checks_its_table():
    with pytest.raises(ParamError, match="lacks"):
        WordList("w", "x", ("en", "fr"), ("a",), {"a": {"en": "a"}})

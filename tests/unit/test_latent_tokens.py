"""Token sets of words (METHODS §9) on planted vocabularies, real tokenizer objects and the real Gemma-3 tokenizer."""

from __future__ import annotations

import random
import unicodedata

import pytest
from conftest import tiny_tokenizer
from tokenizers import Tokenizer, decoders, normalizers
from tokenizers import models as tk_models
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import bytes_to_unicode

from workbench.errors import ParamError
from workbench.latent.tokens import TokenIndex, detect_scheme, first_char_is_latin, token_index, token_set

# A SentencePiece-style vocabulary: word-start marker ▁, byte-fallback pieces <0xNN>.
SP = {
    "<pad>": 0, "<bos>": 1, "▁": 2, "f": 3, "▁f": 4, "fl": 5, "▁fle": 6, "fleur": 7, "▁fleur": 8,
    "leur": 9, "x": 10, "<0xE8>": 11, "<0x66>": 12, "花": 13, "▁花": 14, "花园": 15, "▁flower": 16,
    "▁fleurs": 17, "é": 18, "<0xC3>": 19, "▁ét": 20, "▁▁f": 21, "<0xE4>": 22, "<0x20>": 23,
}  # fmt: skip


def sp_index(**kw) -> TokenIndex:
    return TokenIndex.from_vocab(SP, scheme="sentencepiece", special_ids=kw.get("special", {0, 1}))


def test_prefixes_with_and_without_the_marker():
    ids = token_set("fleur", sp_index())
    # prefixes of "fleur" and of " fleur"; never "leur" (not a prefix), the bare marker "▁",
    # "▁▁f" (two spaces), the ASCII byte <0x66>, or longer words ("▁fleurs", "▁flower")
    assert ids == (3, 4, 5, 6, 7, 8)
    assert ids == tuple(sorted(set(ids)))


def test_byte_fallback_token_for_a_non_latin_first_character():
    idx = sp_index()
    assert token_set("花", idx) == (11, 13, 14)  # <0xE8> is the first UTF-8 byte of 花; 花园 is longer
    assert token_set("花", idx, byte_fallback="never") == (13, 14)
    assert "花".encode()[0] == 0xE8 and 22 not in token_set("花", idx)  # only the word's own first byte


def test_latin_letters_get_no_byte_token_unless_asked():
    idx = sp_index()
    assert token_set("étoile", idx) == (18, 20)
    assert token_set("étoile", idx, byte_fallback="non-ascii") == (18, 19, 20)  # <0xC3> = first byte of é
    assert first_char_is_latin("é") and first_char_is_latin("ŋ") and not first_char_is_latin("о")


def test_special_tokens_are_never_in_a_set():
    idx = TokenIndex.from_vocab(SP, scheme="sentencepiece", special_ids={5})  # "fl" made special
    assert 5 not in token_set("fleur", idx) and 4 in token_set("fleur", idx)
    assert idx.n_special == 1


def test_word_is_normalised_and_checked():
    idx = sp_index()
    decomposed = unicodedata.normalize("NFD", "étoile")
    assert decomposed != "étoile" and token_set(decomposed, idx) == token_set("étoile", idx)
    assert token_set("  fleur ", idx) == token_set("fleur", idx)
    with pytest.raises(ParamError, match="empty word"):
        token_set("  ", idx)
    with pytest.raises(ParamError, match="byte_fallback"):
        token_set("fleur", idx, byte_fallback="sometimes")


def _brute_force(vocab: dict[str, int], word: str, special: set[int]) -> tuple[int, ...]:
    """The definition read literally, one pass over the vocabulary (the reference for the index)."""
    w = unicodedata.normalize("NFC", word)
    out = set()
    allow_bytes = not first_char_is_latin(w[0])
    first = w[0].encode()
    for piece, i in vocab.items():
        if i in special:
            continue
        if piece.startswith("<0x") and piece.endswith(">"):
            b = bytes([int(piece[3:5], 16)])
            if allow_bytes and len(first) > 1 and first.startswith(b):
                out.add(i)
            continue
        text = piece.replace("▁", " ")
        if text and text != " " and (w.startswith(text) or (" " + w).startswith(text)):
            out.add(i)
    return tuple(sorted(out))


def test_index_equals_the_definition_on_a_random_planted_vocabulary():
    rng = random.Random(0)
    alphabet = ["a", "b", "é", "花", "о"]
    vocab: dict[str, int] = {}
    for _ in range(400):
        piece = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
        vocab.setdefault(("▁" if rng.random() < 0.5 else "") + piece, len(vocab))
    for b in range(0x80, 0x100):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    special = {3, 7}
    idx = TokenIndex.from_vocab(vocab, scheme="sentencepiece", special_ids=special)
    words = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(200)]
    nonempty = 0
    for word in words:
        got = idx.token_set(word)
        assert got == _brute_force(vocab, word, special), word
        nonempty += bool(got)
    assert nonempty > 150  # the planted vocabulary does start most words


def test_byte_level_vocabulary():
    enc = bytes_to_unicode()  # GPT-2's byte -> printable character map (transformers' own copy)

    def piece(text_bytes: bytes) -> str:
        return "".join(enc[b] for b in text_bytes)

    yun = "云".encode()  # e4 ba 91
    vocab = {piece(b" fle"): 0, piece(b"fle"): 1, piece(b" "): 2, piece(b"f"): 3, piece(yun[:1]): 4,
             piece(yun[:2]): 5, piece(b" " + yun[:1]): 6, piece(yun): 7, piece(b"\xe5"): 8, piece(b"x"): 9}
    idx = TokenIndex.from_vocab(vocab, scheme="byte_level")
    assert idx.marker == "Ġ" and piece(b" fle").startswith("Ġ")
    assert token_set("fleur", idx) == (0, 1, 3)
    assert token_set("云", idx) == (4, 5, 6, 7)  # partial tokens: the first bytes of 云, with and without Ġ
    assert token_set("云", idx, byte_fallback="never") == (7,)


def test_byte_decoder_inverts_gpt2_map():
    from workbench.latent.tokens import _byte_decoder

    assert _byte_decoder() == {c: b for b, c in bytes_to_unicode().items()}


def _sp_fast_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{k: v + 3 for k, v in SP.items() if not k.startswith("<")}}
    vocab.update({"<0xE8>": 40, "<0x66>": 41})
    tk = Tokenizer(tk_models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    tk.normalizer = normalizers.Replace(" ", "▁")
    tk.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def test_real_sentencepiece_style_tokenizer_object():
    tok = _sp_fast_tokenizer()
    assert detect_scheme(tok) == "sentencepiece"
    vocab = tok.get_vocab()
    want = {vocab[p] for p in ("f", "▁f", "fl", "▁fle", "fleur", "▁fleur")}
    assert set(token_set("fleur", tok)) == want
    assert set(token_set("花", tok)) == {vocab["花"], vocab["▁花"], vocab["<0xE8>"]}
    assert not set(token_set("fleur", tok)) & set(tok.all_special_ids)


def test_real_byte_level_tokenizer_matches_its_own_decode():
    tok = tiny_tokenizer()
    assert detect_scheme(tok) == "byte_level"
    special = set(tok.all_special_ids)
    decoded = {i: tok.decode([i]) for i in range(len(tok)) if i not in special}
    for word in ("the", "hello", "world", "Translate", "qz"):
        want = {i for i, t in decoded.items()
                if t and t != " " and "\ufffd" not in t and (word.startswith(t) or (" " + word).startswith(t))}
        assert set(token_set(word, tok)) == want, word
    assert any(len(token_set(w, tok)) > 2 for w in ("the", "hello", "world"))
    # a byte-level vocabulary holds every single byte: 云's first byte is a partial token of its set
    first = tok.convert_tokens_to_ids(bytes_to_unicode()["云".encode()[0]])
    assert first in token_set("云", tok) and first not in token_set("云", tok, byte_fallback="never")


def test_index_is_built_once_per_tokenizer_and_rebuilt_when_it_grows():
    tok, other = _sp_fast_tokenizer(), _sp_fast_tokenizer()
    idx = token_index(tok)
    assert token_index(tok) is idx and token_index(other) is not idx
    assert token_index(idx) is idx
    tok.add_tokens(["fleu"])
    grown = token_index(tok)
    assert grown is not idx and tok.convert_tokens_to_ids("fleu") in token_set("fleur", tok)


@pytest.fixture(scope="module")
def gemma_tok():
    from workbench import models

    try:
        return models.load("gemma-3-270m").tokenizer
    except Exception as exc:  # noqa: BLE001 - the bundled model may be absent on a bare checkout
        pytest.skip(f"bundled Gemma-3-270M unavailable: {exc}")


def _authors_rule(word: str, vocab: dict[str, int]) -> set[int]:
    """epfl-dlab/llm-latent-language's process_tokens, re-derived; first byte by script (their zh/ru rule)."""
    prefixes = [word[:i] for i in range(1, len(word) + 1)]
    out = {vocab[t] for t in ["▁" + p for p in prefixes] + prefixes if t in vocab}
    if not first_char_is_latin(word[0]):
        key = "<0x%s>" % f"{word.encode()[0]:02x}".upper()
        if key in vocab:
            out.add(vocab[key])
    return out


@pytest.mark.slow
def test_gemma_sets_match_the_authors_rule_and_the_tokenizer(gemma_tok):
    from workbench.latent.words import load_words

    vocab = gemma_tok.get_vocab()
    words = load_words("basic-nouns")
    n = 0
    for concept in words.concepts:
        for lang in words.langs:
            w = words.word(concept, lang)
            got = set(token_set(w, gemma_tok))
            assert got == _authors_rule(w, vocab), (lang, w)
            # however the tokenizer spells the word, its first token starts the word; Gemma
            # spells " 太阳" as "▁" + "太阳": the bare marker, never in a set (it starts every word)
            for text in (w, " " + w):
                ids = gemma_tok.encode(text, add_special_tokens=False)
                first = ids[1] if ids[0] == vocab["▁"] else ids[0]
                assert first in got or gemma_tok.convert_ids_to_tokens(first).startswith("<0x"), (lang, text)
            n += 1
    assert n == len(words) * len(words.langs)
    fleur = set(token_set("fleur", gemma_tok))
    assert vocab["▁fle"] in fleur and gemma_tok.encode(" fleur", add_special_tokens=False)[0] in fleur


@pytest.mark.slow
def test_gemma_index_decodes_as_the_tokenizer_does(gemma_tok):
    idx = token_index(gemma_tok)
    assert idx.scheme == "sentencepiece" and idx.vocab_size == len(gemma_tok)
    sample = random.Random(0).sample(range(len(gemma_tok)), 3000)
    decoded = idx.decoded(sample)
    checked = 0
    for i, b in decoded.items():
        if i in idx.partial.get(b, ()):
            continue  # byte tokens decode to U+FFFD alone
        assert b.decode() == gemma_tok.decode([i]), i
        checked += 1
    assert checked > 2500

"""Token sets of words (METHODS §9): which vocabulary tokens can start a word.

`token_set(word, tokenizer)` is every vocabulary token whose decoded text is a non-empty
prefix of ``word`` or of ``" " + word`` (the word-start marker: SentencePiece ``▁``,
byte-level BPE ``Ġ``), plus the first byte-fallback token where the word's script is split
into bytes. The mass a lens puts on this set is "the next token starts ``word``".

The decoded vocabulary is indexed once per tokenizer (`token_index`, cached by the
tokenizer's identity and size): a dict from each token's decoded **bytes** to its ids, so a
query costs one dict look-up per byte of the word, not a pass over the 262k-token
vocabulary of Gemma-3. Bytes, not text, because byte-fallback (``<0xE4>``) and byte-level
BPE tokens can hold part of a character; such "partial" tokens never decode to text.

Matches epfl-dlab/llm-latent-language (``Translation.ipynb``: ``token_prefixes``,
``add_spaces``, ``unicode_prefix_tokid``) with these deliberate differences:

- Prefixes are compared as decoded text (bytes), not as raw vocabulary strings, so one rule
  serves SentencePiece (``▁``), byte-level BPE (``Ġ``) and plain vocabularies. On a
  SentencePiece vocabulary this is the same set: ``"▁" + prefix`` in the vocabulary is
  ``" " + prefix`` decoded. The bare marker (``"▁"``, a prefix of ``" " + w``) is never
  included, as in their code (their prefixes are non-empty before the marker is added).
- The byte-fallback token is added by script, not by a language list: their code adds the
  first byte of the word for ``zh`` and ``ru`` only; here ``byte_fallback="non-latin"``
  (default) adds it whenever the word's first character is neither ASCII nor Latin, which
  is the same rule on their five languages (fr, de, en Latin; zh, ru not) and extends it to
  ja, hi, ko, ar, ... ``"non-ascii"`` also adds it for Latin letters like ``é``
  (Butanium/llm-lang-agnostic's ``unicode_prefixes`` rule); ``"never"`` never adds it.
  On a byte-level BPE vocabulary the "partial" tokens are those holding the first bytes of
  the first character (with or without ``Ġ``), as Butanium's byte-level prefixes are.
- Special tokens (``<bos>``, ``<eos>``, ...) are never in a set.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import unicodedata
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from workbench.errors import ParamError

__all__ = ["BYTE_FALLBACK", "SCHEMES", "TokenIndex", "first_char_is_latin", "token_index", "token_set"]

SCHEMES = ("sentencepiece", "byte_level", "plain")
"""How a vocabulary spells text: ``▁`` for spaces and ``<0xNN>`` bytes, GPT-2 byte-to-unicode, or as is."""
BYTE_FALLBACK = ("non-latin", "non-ascii", "never")
"""When partial-character (byte) tokens join a word's set; see the module docstring."""
MARKERS = {"sentencepiece": "▁", "byte_level": "Ġ", "plain": ""}
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable character -> byte map (the inverse of its ``bytes_to_unicode``)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, n = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def piece_bytes(piece: str, scheme: str) -> bytes:
    """The bytes a vocabulary piece decodes to under ``scheme`` (one of `SCHEMES`)."""
    if scheme == "sentencepiece":
        m = _BYTE_PIECE.fullmatch(piece)
        if m:
            return bytes([int(m.group(1), 16)])
        return piece.replace("▁", " ").encode("utf-8")
    if scheme == "byte_level":
        dec = _byte_decoder()
        if all(c in dec for c in piece):
            return bytes(dec[c] for c in piece)
        return piece.encode("utf-8")  # an added token, stored as plain text
    return piece.encode("utf-8")


def _is_text(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class TokenIndex:
    """A tokenizer's decoded vocabulary, indexed for prefix look-ups.

    Attributes:
        scheme: how the vocabulary spells text (one of `SCHEMES`).
        vocab_size: number of ids the tokenizer has (ids ``0 … vocab_size-1``).
        by_bytes: decoded text (as UTF-8 bytes) -> ids of the ordinary tokens that decode to it.
        partial: bytes -> ids of the byte tokens: byte-fallback pieces (``<0xE4>``) and
            byte-level tokens that end inside a character (they never decode to text).
        n_special: how many special ids were left out of the index.
    """

    scheme: str
    vocab_size: int
    by_bytes: Mapping[bytes, tuple[int, ...]]
    partial: Mapping[bytes, tuple[int, ...]]
    n_special: int = 0

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ParamError(f"unknown vocabulary scheme {self.scheme!r}; choose from {', '.join(SCHEMES)}")

    @property
    def marker(self) -> str:
        """The word-start marker of the raw vocabulary (``▁``, ``Ġ`` or empty)."""
        return MARKERS[self.scheme]

    @classmethod
    def from_vocab(
        cls, vocab: Mapping[str, int], *, scheme: str, special_ids: Iterable[int] = ()
    ) -> TokenIndex:
        """Index a raw vocabulary (piece -> id), leaving ``special_ids`` out.

        Args:
            vocab: raw vocabulary strings (``"▁fle"``, ``"<0xE4>"``, ``"Ġfle"``) -> ids.
            scheme: how the pieces spell text (one of `SCHEMES`).
            special_ids: ids never put in a token set (bos, eos, pad, control tokens).

        Returns:
            The index.
        """
        if scheme not in SCHEMES:
            raise ParamError(f"unknown vocabulary scheme {scheme!r}; choose from {', '.join(SCHEMES)}")
        special = set(special_ids)
        text: dict[bytes, list[int]] = {}
        partial: dict[bytes, list[int]] = {}
        for piece, i in vocab.items():
            if i in special:
                continue
            b = piece_bytes(piece, scheme)
            if not b:
                continue
            is_byte = (scheme == "sentencepiece" and _BYTE_PIECE.fullmatch(piece)) or not _is_text(b)
            (partial if is_byte else text).setdefault(b, []).append(int(i))
        size = max(vocab.values(), default=-1) + 1
        return cls(scheme, size, _freeze(text), _freeze(partial), len(special & set(vocab.values())))

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> TokenIndex:
        """Index a Hugging Face tokenizer's vocabulary (added tokens included, special ones left out)."""
        scheme = detect_scheme(tokenizer)
        vocab = dict(tokenizer.get_vocab())
        special = set(getattr(tokenizer, "all_special_ids", ()) or ())
        for i, tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
            if getattr(tok, "special", False):
                special.add(int(i))
        return cls.from_vocab(vocab, scheme=scheme, special_ids=special)

    def token_set(self, word: str, *, byte_fallback: str = "non-latin") -> tuple[int, ...]:
        """Sorted unique ids of the tokens that can start ``word`` (see the module docstring).

        Args:
            word: the word (NFC-normalised and stripped here).
            byte_fallback: when partial-character tokens join (one of `BYTE_FALLBACK`).

        Returns:
            Sorted unique token ids; empty when no token starts the word.

        Raises:
            ParamError: an empty word or an unknown ``byte_fallback``.
        """
        if byte_fallback not in BYTE_FALLBACK:
            raise ParamError(f"byte_fallback must be one of {', '.join(BYTE_FALLBACK)}; got {byte_fallback!r}")
        w = unicodedata.normalize("NFC", word).strip()
        if not w:
            raise ParamError(f"token_set: empty word {word!r}")
        out: set[int] = set()
        for pad in ("", " "):
            full = (pad + w).encode("utf-8")
            start = len(pad.encode("utf-8"))
            for k in _char_ends(w):  # non-empty prefixes of w: never the bare marker
                out.update(self.by_bytes.get(full[: start + k], ()))
            if _partial_allowed(w[0], byte_fallback):
                for k in range(1, len(w[0].encode("utf-8"))):  # the first bytes of the first character
                    out.update(self.partial.get(full[: start + k], ()))
        return tuple(sorted(out))

    def decoded(self, ids: Iterable[int]) -> dict[int, bytes]:
        """Id -> decoded bytes of those of ``ids`` that are in the index (for display and tests)."""
        want = set(ids)
        return {i: b for table in (self.by_bytes, self.partial) for b, group in table.items()
                for i in group if i in want}


def _freeze(groups: dict[bytes, list[int]]) -> Mapping[bytes, tuple[int, ...]]:
    return MappingProxyType({b: tuple(sorted(ids)) for b, ids in groups.items()})


def _char_ends(w: str) -> list[int]:
    """Byte lengths of the non-empty prefixes of ``w`` that end on a character boundary."""
    out, n = [], 0
    for ch in w:
        n += len(ch.encode("utf-8"))
        out.append(n)
    return out


def first_char_is_latin(ch: str) -> bool:
    """True for ASCII and Latin-script letters (``é``, ``ß``, ``ŋ``): no byte-fallback token by default."""
    return ch.isascii() or unicodedata.name(ch, "").startswith("LATIN")


def _partial_allowed(first: str, policy: str) -> bool:
    if policy == "never":
        return False
    if policy == "non-ascii":
        return not first.isascii()
    return not first_char_is_latin(first)


def _decoder_types(state: Any) -> list[str]:
    """Type names of a tokenizers decoder/pre-tokenizer JSON state, flattened."""
    if isinstance(state, dict):
        out = [str(state.get("type", ""))]
        for key in ("decoders", "pretokenizers"):
            for sub in state.get(key) or ():
                out += _decoder_types(sub)
        return out
    return []


def detect_scheme(tokenizer: Any) -> str:
    """`SCHEMES` entry of a Hugging Face tokenizer, read from its backend's decoder and pre-tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        types: list[str] = []
        for part in (backend.decoder, backend.pre_tokenizer):
            if part is not None:
                types += _decoder_types(json.loads(part.__getstate__()))
        if "ByteLevel" in types:
            return "byte_level"
        if "Metaspace" in types or "Replace" in types or "ByteFallback" in types:
            return "sentencepiece"
        return "plain"
    if hasattr(tokenizer, "byte_decoder"):
        return "byte_level"
    if hasattr(tokenizer, "sp_model"):
        return "sentencepiece"
    return "plain"


_CACHE: dict[int, tuple[weakref.ref, int, TokenIndex]] = {}
_LOCK = threading.RLock()  # re-entrant: a weakref callback may run while a thread holds it


def _forget(key: int, _ref: object) -> None:
    """Weak-reference callback: the tokenizer is gone, so is its index."""
    with _LOCK:
        if key in _CACHE and _CACHE[key][0] is _ref:  # not a newer object that reuses the id
            del _CACHE[key]


def token_index(tokenizer: Any) -> TokenIndex:
    """The `TokenIndex` of a tokenizer, built once per tokenizer object (and rebuilt if its size changes).

    Keyed by the object's identity, held by a weak reference: thread-safe, and a tokenizer
    that is garbage-collected takes its index with it.
    """
    if isinstance(tokenizer, TokenIndex):
        return tokenizer
    key, size = id(tokenizer), len(tokenizer)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0]() is tokenizer and hit[1] == size:
            return hit[2]
    index = TokenIndex.from_tokenizer(tokenizer)
    with _LOCK:
        try:
            ref = weakref.ref(tokenizer, functools.partial(_forget, key))
        except TypeError:  # not weak-referenceable: do not cache (an id could be reused)
            return index
        _CACHE[key] = (ref, size, index)
    return index


def token_set(word: str, tokenizer: Any, *, byte_fallback: str = "non-latin") -> tuple[int, ...]:
    """Sorted unique ids of every token that can start ``word`` (METHODS §9).

    Args:
        word: the word, e.g. ``"fleur"`` or ``"花"``.
        tokenizer: a Hugging Face tokenizer, or a prebuilt `TokenIndex`.
        byte_fallback: when the first byte-fallback token joins: ``"non-latin"`` (default,
            the authors' zh/ru rule by script), ``"non-ascii"`` or ``"never"``.

    Returns:
        Sorted unique token ids.
    """
    return token_index(tokenizer).token_set(word, byte_fallback=byte_fallback)

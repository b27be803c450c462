"""Token sets on the real 262k Gemma-3 vocabulary: the index against a per-word vocabulary scan.

    PYTHONPATH=. python bench/latent_tokens.py [--model gemma-3-270m] [--scan-words 40]

Prints one table: building the decoded-vocabulary index once, the token sets of every word
of the bundled ``basic-nouns`` list (all 9 languages) through the index, and the baseline, a
scan of the decoded vocabulary per word (the definition read literally: O(V) Python per
word), on a subset of the words, extrapolated per word. The two must give the same sets.

Run of 2026-12 on the 2-core box, *contended* (load average 5–7): build 2.36 s (0.9 s on a
quieter moment), 2.0e-5 s per word through the index against 0.16 s per word for the scan
(≈ 8,000×); the 1,152 words of the list: 2.4 s in all against ≈ 185 s; sets identical.
"""

from __future__ import annotations

import argparse
import time

from workbench.latent.tokens import TokenIndex, first_char_is_latin, token_index
from workbench.latent.words import load_words
from workbench.models import load


def scan(index: TokenIndex, word: str) -> tuple[int, ...]:
    """The definition, one pass over the decoded vocabulary (the baseline)."""
    out = set()
    bytes_ok = not first_char_is_latin(word[0])
    first = word[0].encode()
    for b, ids in index.by_bytes.items():
        t = b.decode()
        if t != " " and (word.startswith(t) or (" " + word).startswith(t)):
            out.update(ids)
    if bytes_ok:
        for b, ids in index.partial.items():
            if len(b) < len(first) and (first.startswith(b) or (b" " + first).startswith(b)) and b != b" ":
                out.update(ids)
    return tuple(sorted(out))


def main() -> None:
    """Time the index and the scan; check they agree."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--scan-words", type=int, default=40)
    args = ap.parse_args()
    tok = load(args.model).tokenizer
    words = load_words()
    all_words = [words.word(c, lang) for c in words.concepts for lang in words.langs]
    t0 = time.perf_counter()
    index = token_index(tok)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    sets = [index.token_set(w) for w in all_words]
    query = (time.perf_counter() - t0) / len(all_words)
    sub = all_words[:: max(1, len(all_words) // args.scan_words)][: args.scan_words]
    t0 = time.perf_counter()
    ref = [scan(index, w) for w in sub]
    per_scan = (time.perf_counter() - t0) / len(sub)
    agree = all(r == index.token_set(w) for r, w in zip(ref, sub))
    print(f"vocabulary {index.vocab_size:,} ids ({index.scheme}), {len(all_words)} words, sets agree: {agree}")
    print("| step | seconds |")
    print("|---|---:|")
    print(f"| build the index (once per tokenizer) | {build:.3f} |")
    print(f"| token set, index, per word | {query:.2e} |")
    print(f"| token set, vocabulary scan, per word | {per_scan:.2e} |")
    print(f"| ratio scan / index per word | {per_scan / query:,.0f}× |")
    print(f"| all {len(all_words)} words: index (incl. build) vs scan | {build + query * len(all_words):.2f} vs "
          f"{per_scan * len(all_words):.1f} |")
    print(f"mean set size {sum(map(len, sets)) / len(sets):.1f}")


if __name__ == "__main__":
    main()

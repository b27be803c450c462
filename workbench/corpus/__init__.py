"""Parallel corpora: the bundled UDHR and Tatoeba samples, TSV/JSONL/FLORES-200 readers.

A `ParallelCorpus` holds ``n`` aligned units (sentences or paragraphs) in several
languages: ``corpus.text("sw", i)`` translates ``corpus.text("en", i)``.

Language codes are normalised by `normalize_lang`: ISO 639-1 where one exists, else ISO
639-3, plus a script subtag only when the script is not the language's usual one
(``eng_Latn`` -> ``en``, ``zho_Hant`` -> ``zh-Hant``, ``arb`` -> ``ar``).

Every reader validates its input once and raises `CorpusError` naming the file, the
1-based line and the language at fault. Text is NFC-normalised and stripped on read.

One job per module (imports go down this list only):

- `languages`: codes, names, scripts, direction (`normalize_lang`, `language_name`, `Language`).
- `parallel`: `ParallelCorpus` and its content hash.
- `readers`: `read_tsv`, `read_jsonl`, `read_flores_dir`, Hub dataset rows, their validation.
- `bundled`: UDHR and Tatoeba under ``workbench/data/``, `list_corpora`, `load_corpus`.
"""

from workbench.corpus.bundled import list_corpora, load_corpus, load_corpus_spec
from workbench.corpus.languages import Language, language_name, normalize_lang
from workbench.corpus.parallel import ParallelCorpus
from workbench.corpus.readers import FLORES_SPLITS, read_flores_dir, read_jsonl, read_tsv
from workbench.corpus.readers import _corpus_from_rows as _corpus_from_rows  # private; tests import it from here
from workbench.errors import CorpusError

__all__ = [
    "FLORES_SPLITS",
    "CorpusError",
    "Language",
    "ParallelCorpus",
    "language_name",
    "list_corpora",
    "load_corpus",
    "load_corpus_spec",
    "normalize_lang",
    "read_flores_dir",
    "read_jsonl",
    "read_tsv",
]

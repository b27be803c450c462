"""`workbench models|corpus|record|store`: models, corpora, recording into the store, and the store itself."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from workbench import models
from workbench.cli._args import (
    ProgressBar,
    _pairs,
    add_model_args,
    add_record_args,
    corpus_spec,
    csv_list,
    model_spec,
    record_spec,
)
from workbench.config import ModelSpec
from workbench.corpus import list_corpora, load_corpus
from workbench.interventions.resolve import resolve_spec
from workbench.recordings import ensure_recording
from workbench.recordings.sharding import remove_abandoned
from workbench.store import Store, damaged_error

__all__ = ["add_core_parsers", "cmd_corpus", "cmd_models", "cmd_record", "cmd_store", "get_recording"]


def get_recording(a: argparse.Namespace, *, langs: Sequence[str] | None = None,
                  pairs: Sequence[tuple[str, str]] | None = None, **override: Any) -> Any:
    """Record what is missing (with progress if asked) and return the Recording."""
    bar = ProgressBar(getattr(a, "progress", False))
    try:
        corpus, record = corpus_spec(a, langs), record_spec(a, **override)
        model = resolve_spec(model_spec(a), corpus=corpus, record=record, progress=bar,
                             status=lambda m: print(m, file=sys.stderr))
        return ensure_recording(model, corpus, record, pairs=pairs,
                                progress=bar, status=lambda m: print(m, file=sys.stderr),
                                num_processes=getattr(a, "num_processes", 1), remote=getattr(a, "remote", False),
                                force_processes=getattr(a, "force_processes", False))
    finally:
        bar.close()


def _table(rows: list[dict[str, Any]], cols: Sequence[str] | None = None) -> str:
    if not rows:
        return "(none)"
    cols = list(cols or rows[0].keys())
    width = {c: max(len(str(c)), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    lines = ["  ".join(str(c).ljust(width[c]) for c in cols)]
    lines += ["  ".join(str(r.get(c, "")).ljust(width[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def cmd_models(a: argparse.Namespace) -> int:
    """List, prepare or verify models."""
    if a.action == "list":
        print(_table(models.list_models(), ["name", "status", "licence", "description"]))
        print("\nAny hub id, local HF directory, .gguf file, or tiny:<type> test model also works as --model.")
        return 0
    if a.action == "verify":
        names = [a.name] if a.name else [b for b in models.BUNDLED if models.bundled_status(b) != "missing"]
        for name in names:
            models.verify(name)
            print(f"{name}: ok (every file matches the checksum recorded at conversion)")
        return 0
    prep = models.prepare(ModelSpec(source=a.name), progress=lambda m: print(m, file=sys.stderr), force=a.force)
    print(f"{prep.name}: ready at {prep.path} ({prep.n_layers} layers, fingerprint {prep.fingerprint})")
    return 0


def cmd_corpus(a: argparse.Namespace) -> int:
    """List bundled corpora or show one."""
    if a.action == "list":
        print(_table(list_corpora()))
        return 0
    c = load_corpus(a.name)
    langs = c.check_langs(a.langs) if a.langs else list(c.languages)
    print(f"{c.name}: {len(c)} units × {len(c.languages)} languages (source: {c.source})")
    if not a.langs:
        print("languages:", ", ".join(f"{k} ({v.name})" for k, v in list(c.languages.items())[:60]),
              "…" if len(c.languages) > 60 else "")
    for i in range(min(a.limit, len(c))):
        for lang in langs[:8]:
            print(f"[{c.ids[i]}] {lang}: {c.text(lang, i)[:160]}")
    return 0


def cmd_record(a: argparse.Namespace) -> int:
    """Record (or fetch from the store) every requested unit."""
    rec = get_recording(a, pairs=a.pairs)
    rows = [{"unit": u, "key": e.key[:12], "n": e.manifest["n_units"], "mb": round(e.nbytes / 2**20, 2),
             "seconds": e.manifest.get("seconds")} for u, e in rec.entries.items()]
    print(_table(rows))
    print(f"model {rec.model_name} ({rec.fingerprint}), corpus {rec.corpus_name}, layers {rec.layer_labels[0]}…"
          f"{rec.layer_labels[-1]}")
    return 0


def cmd_store(a: argparse.Namespace) -> int:
    """Inspect and clean the store."""
    store = Store()
    if a.action == "ls":
        rows = store.ls()
        print(_table(rows, ["key", "kind", "model", "corpus", "unit", "n", "mb", "created", "status"]))
        print(f"\n{len(rows)} entries in {store.root}")
        bad = [r for r in rows if r["status"] != "ok"]
        for r in bad[1:]:
            print(f"damaged: {r['key']}: {r['problem']}", file=sys.stderr)
        if bad:  # exit 2 naming the first; `store gc` removes them
            raise damaged_error(bad[0]["key"], [bad[0]["problem"]])
    elif a.action == "info":
        info = store.info(store.resolve(a.key))
        if info["manifest"] is not None:
            print(json.dumps(info["manifest"], indent=1))
        print("status:", "; ".join(info["problems"]) or "ok")
        if info["problems"]:
            raise damaged_error(info["key"], info["problems"])
    elif a.action == "rm":
        key = store.resolve(a.key)
        store.rm(key)
        print("removed", key)
    else:
        removed = store.gc(older_than_days=a.older_than) + remove_abandoned()  # + killed sharded runs' scratch
        print(f"removed {len(removed)} entries/leftovers")
    return 0


def add_core_parsers(sub: Any) -> None:
    """Add `models`, `corpus`, `record` and `store` to the main subparsers."""
    m = sub.add_parser("models", help="list or prepare models")
    msub = m.add_subparsers(dest="action", required=True)
    msub.add_parser("list", help="bundled models and their status")
    mp = msub.add_parser("prepare", help="convert a model once (bundled GGUF -> safetensors in the cache)")
    mp.add_argument("name", help="bundled name, hub id, local dir or .gguf")
    mp.add_argument("--force", action="store_true", help="convert again (repairs a damaged conversion)")
    mv = msub.add_parser("verify", help="re-hash a converted model's files against their recorded checksums")
    mv.add_argument("name", nargs="?", default=None, help="bundled name (default: every converted one)")
    m.set_defaults(func=cmd_models)

    c = sub.add_parser("corpus", help="list or show corpora")
    csub = c.add_subparsers(dest="action", required=True)
    csub.add_parser("list", help="bundled corpora")
    cs = csub.add_parser("show", help="languages and the first units of a corpus")
    cs.add_argument("name")
    cs.add_argument("--langs", type=csv_list, default=None)
    cs.add_argument("--limit", type=int, default=3)
    c.set_defaults(func=cmd_corpus)

    r = sub.add_parser("record", help="record per-layer representations and FFN statistics into the store",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_args(r)
    add_record_args(r)
    r.add_argument("--pairs", type=_pairs, default=None,
                   help="translation directions for a pair template, e.g. en:sw,sw:en")
    r.set_defaults(func=cmd_record)

    s = sub.add_parser("store", help="inspect or clean the activation store")
    ssub = s.add_subparsers(dest="action", required=True)
    ssub.add_parser("ls", help="list entries")
    si = ssub.add_parser("info", help="an entry's manifest and integrity")
    si.add_argument("key", help="key or unique prefix")
    sr = ssub.add_parser("rm", help="remove an entry")
    sr.add_argument("key")
    sg = ssub.add_parser("gc", help="remove crash leftovers, damaged entries (and old ones)")
    sg.add_argument("--older-than", type=float, default=None, metavar="DAYS")
    s.set_defaults(func=cmd_store)

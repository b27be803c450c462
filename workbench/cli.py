"""The `workbench` command line: everything the UI does, headless.

    workbench models list | prepare NAME
    workbench corpus list | show NAME [--langs en,sw] [--limit 3]
    workbench record --model M --corpus C --langs en,zh,sw [--limit N] [--progress]
    workbench store ls | info KEY | rm KEY | gc [--older-than DAYS]
    workbench analyze retrieval|sensitivity|overlap|subspace|map ...
    workbench export --manifest M.json | --analysis A ...   (PDF/SVG/PNG + CSV/Parquet + manifest)
    workbench report --model M --corpus C --langs ... [--artifact DIR]
    workbench figures SET.yaml|example

Errors a user can fix (unknown language, model or file, out-of-range layer) print one
line naming the problem and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from workbench.config import SILP_TEMPLATE, CorpusSpec, ModelSpec, RecordSpec
from workbench.errors import is_user_error, user_message

log = logging.getLogger("workbench")

EPILOG = """examples:
  workbench models list
  workbench models prepare gemma-3-270m
  workbench record --model gemma-3-270m --corpus udhr --langs en,zh,sw,ar,hi,es --progress
  workbench record --corpus udhr --langs en,sw --pairs en:sw --template silp --limit 20
  workbench store ls
  workbench analyze retrieval --corpus udhr --langs en,zh,sw,ar,hi,es --out out/
  workbench report --langs en,zh,sw,ar --limit 20 --out out/report
  workbench figures example --out out/figures
  workbench export --manifest out/figures/retrieval.manifest.json --overwrite
"""


def csv_list(s: str) -> list[str]:
    """Comma-separated values, stripped, empty ones dropped."""
    return [x.strip() for x in s.split(",") if x.strip()]


def int_list(s: str) -> list[int]:
    """Comma-separated block indices."""
    try:
        return [int(x) for x in csv_list(s)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated block indices, got {s!r}") from None


def key_value(s: str) -> tuple[str, Any]:
    """``KEY=VALUE``; the value is read as JSON when it parses (numbers, true, null, lists), else text."""
    if "=" not in s:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {s!r}")
    k, v = s.split("=", 1)
    try:
        return k.strip(), json.loads(v)
    except json.JSONDecodeError:
        return k.strip(), v


def _pairs(s: str) -> list[tuple[str, str]]:
    out = []
    for p in csv_list(s):
        if ":" not in p:
            raise argparse.ArgumentTypeError(f"a pair is SRC:TGT (e.g. en:sw), got {p!r}")
        a, b = p.split(":", 1)
        out.append((a, b))
    return out


# --------------------------------------------------------------------------- shared options


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model, --device, --dtype, --artifact, --trust-remote-code."""
    g = p.add_argument_group("model")
    g.add_argument("--model", default="gemma-3-270m",
                   help="bundled name, hub id, local dir or .gguf (default: %(default)s)")
    g.add_argument("--artifact", default=None, help="fine-tune artifact directory applied on top of the model")
    g.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda (default: %(default)s)")
    g.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16")
    g.add_argument("--trust-remote-code", action="store_true", help="allow custom model code from the hub")


def add_record_args(p: argparse.ArgumentParser, *, langs_default: str = "en,zh,sw,ar,hi,es,fr,ja") -> None:
    """Corpus and recording options shared by `record` and `analyze`."""
    g = p.add_argument_group("corpus")
    g.add_argument("--corpus", default="udhr", help="udhr, tatoeba:sw, or a TSV/JSONL file or FLORES dir")
    g.add_argument("--langs", type=csv_list, default=csv_list(langs_default), 
                   help="comma-separated codes (default: %(default)s)")
    g.add_argument("--limit", type=int, default=None, help="only the first N units per language (quick looks)")
    r = p.add_argument_group("recording")
    r.add_argument("--poolings", type=csv_list, default=["mean", "last", "weighted"], help="mean,last,weighted")
    r.add_argument("--max-length", type=int, default=256, help="truncate inputs to N tokens (default: %(default)s)")
    r.add_argument("--layers", type=int_list, default=None, help="blocks to record, e.g. 0,4,8 (default: all)")
    r.add_argument("--template", default=None,
                   help="text template with {text}, or 'silp' / a pair template with {src_text} {tgt_text}")
    r.add_argument("--chat-template", action="store_true", help="wrap inputs in the tokenizer's chat template")
    r.add_argument("--token-span", default="all", choices=["all", "source", "target"], help="pair templates only")
    r.add_argument("--no-ffn", action="store_true", help="skip FFN neuron statistics")
    r.add_argument("--batch-tokens", type=int, default=4096, help="padded tokens per batch (memory bound)")
    r.add_argument("--progress", action="store_true", help="show a progress bar")


def model_spec(a: argparse.Namespace) -> ModelSpec:
    """ModelSpec from parsed arguments."""
    return ModelSpec(source=a.model, device=a.device, dtype=a.dtype, artifact=a.artifact,
                     trust_remote_code=a.trust_remote_code)


def record_spec(a: argparse.Namespace, **override: Any) -> RecordSpec:
    """RecordSpec from parsed arguments."""
    template = SILP_TEMPLATE if a.template == "silp" else a.template
    kw = dict(poolings=tuple(a.poolings), max_length=a.max_length, template=template,
              chat_template=a.chat_template, token_span=a.token_span, ffn_stats=not a.no_ffn,
              layers=tuple(a.layers) if a.layers else None, batch_tokens=a.batch_tokens)
    kw.update(override)
    return RecordSpec(**kw)  # type: ignore[arg-type]  # kwargs built from typed args


def corpus_spec(a: argparse.Namespace, langs: Sequence[str] | None = None) -> CorpusSpec:
    """CorpusSpec from parsed arguments."""
    return CorpusSpec(source=a.corpus, langs=tuple(langs or a.langs), limit=a.limit)


class ProgressBar:
    """A tqdm bar on stderr driven by progress(done, total, message) callbacks (only if enabled).

    A new total (the next recording of a multi-recording command) starts a new bar.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __call__(self, done: int, total: int, message: str) -> None:
        """Advance the bar to `done` of `total`."""
        if not self.enabled:
            return
        if self.bar is None or self.bar.total != total:
            from tqdm import tqdm

            self.close()
            self.bar = tqdm(total=total, unit="sent", file=sys.stderr, dynamic_ncols=True)
        self.bar.set_description(message)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        """Finish the current bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def get_recording(a: argparse.Namespace, *, langs: Sequence[str] | None = None,
                  pairs: Sequence[tuple[str, str]] | None = None, **override: Any) -> Any:
    """Record what is missing (with progress if asked) and return the Recording."""
    from workbench.recordings import ensure_recording

    bar = ProgressBar(getattr(a, "progress", False))
    try:
        return ensure_recording(model_spec(a), corpus_spec(a, langs), record_spec(a, **override), pairs=pairs,
                                progress=bar, status=lambda m: print(m, file=sys.stderr))
    finally:
        bar.close()


# --------------------------------------------------------------------------- commands


def _table(rows: list[dict[str, Any]], cols: Sequence[str] | None = None) -> str:
    if not rows:
        return "(none)"
    cols = list(cols or rows[0].keys())
    width = {c: max(len(str(c)), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    lines = ["  ".join(str(c).ljust(width[c]) for c in cols)]
    lines += ["  ".join(str(r.get(c, "")).ljust(width[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def cmd_models(a: argparse.Namespace) -> int:
    """List bundled models or prepare one."""
    from workbench import models

    if a.action == "list":
        print(_table(models.list_models(), ["name", "status", "licence", "description"]))
        print("\nAny hub id or local HF directory (or .gguf file) also works as --model.")
        return 0
    prep = models.prepare(ModelSpec(source=a.name), progress=lambda m: print(m, file=sys.stderr))
    print(f"{prep.name}: ready at {prep.path} ({prep.n_layers} layers, fingerprint {prep.fingerprint})")
    return 0


def cmd_corpus(a: argparse.Namespace) -> int:
    """List bundled corpora or show one."""
    from workbench.corpus import list_corpora, load_corpus

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
    from workbench.store import Store

    store = Store()
    if a.action == "ls":
        rows = store.ls()
        print(_table(rows, ["key", "kind", "model", "corpus", "unit", "n", "mb", "created", "status"]))
        print(f"\n{len(rows)} entries in {store.root}")
    elif a.action == "info":
        key = store.resolve(a.key)
        problem = store.verify(key, full=True)
        print(json.dumps(json.loads((store.path(key) / "manifest.json").read_text()), indent=1))
        print("status:", problem or "ok")
    elif a.action == "rm":
        key = store.resolve(a.key)
        store.rm(key)
        print("removed", key)
    else:
        removed = store.gc(older_than_days=a.older_than)
        print(f"removed {len(removed)} entries/leftovers")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the commands)."""
    p = argparse.ArgumentParser(prog="workbench", description="Multilingual Representation Workbench (headless).",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("models", help="list or prepare models")
    msub = m.add_subparsers(dest="action", required=True)
    msub.add_parser("list", help="bundled models and their status")
    mp = msub.add_parser("prepare", help="convert a model once (bundled GGUF -> safetensors in the cache)")
    mp.add_argument("name", help="bundled name, hub id, local dir or .gguf")
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

    from workbench.cli_analyze import add_analyze_parser
    from workbench.cli_export import add_export_parser

    add_analyze_parser(sub)
    add_export_parser(sub)
    try:
        from workbench.cli_finetune import add_finetune_parser
    except ImportError:  # fine-tunes need peft; the rest of the CLI works without
        log.debug("fine-tune commands unavailable", exc_info=True)
    else:
        add_finetune_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `workbench` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except BrokenPipeError:  # `workbench store ls | head`
        return 0
    except KeyboardInterrupt:
        print("interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    except Exception as e:
        if not is_user_error(e) and not isinstance(e, ValueError):
            raise
        log.debug("error", exc_info=True)
        print(f"error: {user_message(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

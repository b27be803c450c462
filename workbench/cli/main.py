"""The `workbench` command line: everything the UI does, headless.

    workbench models list | prepare NAME
    workbench corpus list | show NAME [--langs en,sw] [--limit 3]
    workbench record --model M --corpus C --langs en,zh,sw [--limit N] [--progress]
    workbench store ls | info KEY | rm KEY | gc [--older-than DAYS]
    workbench analyze ANALYSIS ...   (every registered analysis: `workbench analyze --help`)
    workbench eval --model M [--artifact DIR] --corpus tatoeba:sw --pairs en:sw --suite translation --out DIR
    workbench compare --states base,JOB_ID --corpus tatoeba:sw --pairs en:sw --out DIR
    workbench export --manifest M.json | --analysis A ...   (PDF/SVG/PNG + CSV/Parquet + manifest)
    workbench report --model M --corpus C --langs ... [--artifact DIR]
    workbench figures SET.yaml|example
    workbench finetune METHOD ... | jobs ls|show|cancel
    workbench lens train --model M --corpus C --langs ... | lens ls

Errors a user can fix (unknown language, model or file, out-of-range layer) print one
line naming the problem and exit with status 2; no traceback.

Start-up: each command group's module is imported only when that command runs (`COMMANDS`:
the one string-named import of the CLI, an allowed exception of the import test), so
`workbench --help` loads no torch, and `workbench analyze --help` no recorder or evaluator.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

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

#: command -> (one-line help, the "module:function" that adds its group's parsers)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("list, prepare or verify models", "workbench.cli.core:add_core_parsers"),
    "corpus": ("list or show corpora", "workbench.cli.core:add_core_parsers"),
    "record": ("record per-layer representations and FFN statistics into the store",
               "workbench.cli.core:add_core_parsers"),
    "store": ("inspect or clean the activation store", "workbench.cli.core:add_core_parsers"),
    "analyze": ("compute an analysis (records what is missing); writes CSV, HTML, summary",
                "workbench.cli.analyze:add_analyze_parser"),
    "eval": ("evaluate a model state: generations, chrF++/BLEU, fidelity, loss, lm-eval",
             "workbench.cli.evaluate:add_eval_parser"),
    "compare": ("evaluate several states side by side (base, fine-tune jobs, artifacts)",
                "workbench.cli.evaluate:add_eval_parser"),
    "export": ("paper figures: PDF/SVG/PNG + data + manifest", "workbench.cli.export:add_export_parser"),
    "report": ("one self-contained HTML report of every view", "workbench.cli.export:add_export_parser"),
    "figures": ("render every figure of a YAML figure set", "workbench.cli.export:add_export_parser"),
    "finetune": ("start a fine-tune job (every registered method)", "workbench.cli.finetune:add_finetune_parser"),
    "jobs": ("list, show or cancel fine-tune jobs", "workbench.cli.finetune:add_finetune_parser"),
    "lens": ("train or list tuned lenses (the lenses of the latent and token views)",
             "workbench.cli.lens:add_lens_parser"),
}


def _adder(command: str) -> Callable[[argparse._SubParsersAction], None]:
    module, _, name = COMMANDS[command][1].partition(":")
    return getattr(importlib.import_module(module), name)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: every command group (`only=None`), or just the group of one command.

    With `only` naming no command (`workbench --help`, a typo), the commands are listed by
    name and help without importing any group.
    """
    p = argparse.ArgumentParser(prog="workbench", description="Multilingual Representation Workbench (headless).",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if only is not None and only not in COMMANDS:
        for name, (text, _) in COMMANDS.items():
            sub.add_parser(name, help=text, add_help=False)
        return p
    added: set[str] = set()
    for name in [only] if only else list(COMMANDS):
        target = COMMANDS[name][1]
        if target not in added:
            added.add(target)
            _adder(name)(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `workbench` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((x for x in argv if not x.startswith("-")), "")
    args = build_parser(only=command).parse_args(argv)
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

"""The `workbench` command line.

`main.py` holds the parser, the entry point and the models/corpus/record/store commands;
one module per larger command group (`analyze`, `export`, `finetune`); shared arguments
and helpers in `_args.py`.
"""

from workbench.cli.main import build_parser, main

__all__ = ["build_parser", "main"]

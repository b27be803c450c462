"""Where the workbench keeps its files (the cache root; `WORKBENCH_CACHE` overrides)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache directory: `$WORKBENCH_CACHE`, else `cache/` of a source checkout, else ~/.cache.

    Holds converted models (`models/`), assembled GGUFs (`gguf/`), the activation store
    (`store/`) and jobs (`jobs/`).
    """
    env = os.environ.get("WORKBENCH_CACHE")
    if env:
        root = Path(env).expanduser()
    else:
        repo = Path(__file__).resolve().parents[1]
        root = repo / "cache" if (repo / "pyproject.toml").is_file() else Path.home() / ".cache" / "workbench"
    root.mkdir(parents=True, exist_ok=True)
    return root

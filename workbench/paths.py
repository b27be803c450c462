"""Where the workbench keeps its files (the cache root; `WORKBENCH_CACHE` overrides)."""

from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import CACHE_REMEDY, write_error


def cache_location() -> Path:
    """The cache directory's path, without creating it (`cache_root` creates it).

    `$WORKBENCH_CACHE`, else `cache/` of a source checkout, else ~/.cache/workbench.
    """
    env = os.environ.get("WORKBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[1]
    return repo / "cache" if (repo / "pyproject.toml").is_file() else Path.home() / ".cache" / "workbench"


def cache_root() -> Path:
    """The cache directory (created): `cache_location()`.

    Holds converted models (`models/`), assembled GGUFs (`gguf/`), the activation store
    (`store/`) and jobs (`jobs/`).

    Raises:
        WriteError: it cannot be created (e.g. `WORKBENCH_CACHE` names a file, or a
            read-only place); one line naming it and the remedy.
    """
    root = cache_location()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(e, root, CACHE_REMEDY) from None
    return root

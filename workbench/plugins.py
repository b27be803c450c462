"""Plug-ins: records that installed packages declare in an entry-point group (methods, analyses).

An entry point's value is a record or a list of them; every process that imports a
registry loads the same plug-ins, job workers included.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["load_plugins"]


def load_plugins(group: str, register: Callable[[Any], Any]) -> list[str]:
    """`register` every record the entry points of `group` declare; returns their names.

    A plug-in that fails to load or register is logged and skipped (the built-ins keep working).
    """
    names = []
    for ep in importlib.metadata.entry_points(group=group):
        try:
            value = ep.load()
            for record in value if isinstance(value, list | tuple) else [value]:
                names.append(register(record).name)
        except Exception:  # noqa: BLE001 - someone else's package: say so, keep going
            log.warning("plug-in %s of %s could not be loaded", ep.name, group, exc_info=True)
    return names

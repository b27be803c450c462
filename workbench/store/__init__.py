"""The on-disk activation store.

`store.py`: Store, Entry, keys, locks, gc; `manifest.py`: what an entry's manifest must
hold and `damaged_error`.
"""

from workbench.store.manifest import STORE_FORMAT, damaged_error, manifest_problems
from workbench.store.store import STALE_TMP_SECONDS, Entry, Store, make_key

__all__ = ["STALE_TMP_SECONDS", "STORE_FORMAT", "Entry", "Store", "damaged_error", "make_key", "manifest_problems"]

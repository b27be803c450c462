"""A rank that only waits (run by test_rank_lifetime.py through `ranks.start` and accelerate launch).

`python -m rank_sleeper DIR`: asks to die with its launcher (`ranks.die_with_launcher`), then
writes `DIR/<rank>.pid` and sleeps, so the test knows every rank is up before it kills the launcher.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from workbench import ranks

if __name__ == "__main__":
    ranks.die_with_launcher()
    Path(sys.argv[1], f"{os.environ.get('RANK', '0')}.pid").write_text(str(os.getpid()))
    time.sleep(600)

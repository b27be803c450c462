"""Non-regular files are refused as inputs (issue 21): a FIFO named `.tsv` blocked forever, a link to a
device read without end. Each case runs the CLI in a child process with a timeout, so a missing check
fails the test instead of hanging it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TIMEOUT_S = int(os.environ.get("WORKBENCH_TEST_SPECIAL_TIMEOUT_S", "60"))


def _cli(*argv: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKBENCH_CACHE": str(cache)}
    try:
        return subprocess.run([sys.executable, "-m", "workbench.cli", *argv], capture_output=True, text=True,
                              timeout=TIMEOUT_S, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"workbench {' '.join(argv)} still ran after {TIMEOUT_S} s: it is reading a special file")


@pytest.fixture
def specials(tmp_path):
    """A FIFO named .tsv, a link named .jsonl to /dev/zero (a device without end) and a FLORES folder with a FIFO."""
    fifo = tmp_path / "pipe.tsv"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.jsonl"
    zero.symlink_to("/dev/zero")
    flores = tmp_path / "flores" / "dev"
    flores.mkdir(parents=True)
    (flores / "eng_Latn.dev").write_text("Hello.\n")
    os.mkfifo(flores / "swh_Latn.dev")
    return {"fifo": (fifo, "is a named pipe (FIFO), not a regular file"),
            "device": (zero, "is a character device, not a regular file"),
            "flores": (flores.parent, "is a named pipe (FIFO), not a regular file")}


@pytest.mark.parametrize("kind,command", [("fifo", "record"), ("fifo", "corpus show"), ("device", "corpus show"),
                                          ("flores", "corpus show")])
def test_a_special_file_as_corpus_is_one_line(tmp_path, specials, kind, command):
    path, why = specials[kind]
    argv = (["record", "--model", "tiny:llama", "--corpus", str(path), "--langs", "en,sw"] if command == "record"
            else ["corpus", "show", str(path)])
    out = _cli(*argv, cache=tmp_path / "cache")
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error: ")]
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert len(lines) == 1 and why in lines[0] and str(path) in lines[0], lines


def test_an_instruction_file_that_is_a_fifo_is_refused(tmp_path):
    fifo = tmp_path / "instructions.jsonl"
    os.mkfifo(fifo)
    code = ("import sys\nfrom pathlib import Path\nfrom workbench.examples import jsonl_records\n"
            "try:\n    list(jsonl_records(Path(sys.argv[1])))\nexcept ValueError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.stdout.strip() == f"{fifo}: is a named pipe (FIFO), not a regular file; give a .jsonl file"

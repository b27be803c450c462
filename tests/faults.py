"""Helpers of the fault tests (issue 21): real faults where the machine allows, monkeypatched ones everywhere.

- `Mounts` mounts a tmpfs (read-only, or small enough to fill) where the test runs as root
  and may mount; elsewhere the test is skipped, and its monkeypatched twin (`refuse_writes`)
  runs instead, so every case is covered on every machine.
- `refuse_writes(monkeypatch, root, code)`: every write under `root` (creating a folder,
  opening a file for writing) fails with `code`, as a read-only or full file system would.
- `fails_clearly`: the CLI ended with exit code 2 and one `error:` line, no traceback.
"""

from __future__ import annotations

import builtins
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workbench import cli

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def fails_clearly(argv: list[str], capsys: Any, *needles: str) -> str:
    """Run the CLI; assert exit code 2, one `error:` line (the last one) holding every needle; return it."""
    code = cli.main(argv)  # anything but a user error would raise here, with its traceback
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert code == 2, err
    assert "Traceback" not in err and "unexpected" not in err, err
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def refuse_writes(monkeypatch: pytest.MonkeyPatch, root: Path, code: int) -> None:
    """Every write under `root` fails with errno `code` (folders made, files opened for writing)."""
    root = Path(root).resolve()

    def check(path: Any, writing: bool) -> None:
        if writing and isinstance(path, str | os.PathLike):
            p = Path(os.fsdecode(path)).resolve()
            if p == root or p.is_relative_to(root):
                raise OSError(code, os.strerror(code), str(path))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def fake_open(file: Any, mode: str = "r", *a: Any, **k: Any) -> Any:
        check(file, any(c in mode for c in "wax+"))
        return real_open(file, mode, *a, **k)

    def fake_os_open(path: Any, flags: int, *a: Any, **k: Any) -> int:
        check(path, bool(flags & _WRITE_FLAGS))
        return real_os_open(path, flags, *a, **k)

    def fake_mkdir(path: Any, *a: Any, **k: Any) -> None:
        if not os.path.isdir(path):  # as the kernel: an existing folder is "exists", whatever the file system
            check(path, True)
        real_mkdir(path, *a, **k)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


class Mounts:
    """tmpfs mounts made by one test (unmounted at its end)."""

    def __init__(self) -> None:
        self.made: list[Path] = []

    def mount(self, target: Path, *options: str) -> Path:
        """A tmpfs at `target` with these options (`ro`, `size=300k`); skip the test where none can be mounted."""
        target.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root; the monkeypatched variant of this case runs instead")
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options) or "defaults", "tmpfs", str(target)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({out.stderr.strip()}); the monkeypatched variant runs instead")
        self.made.append(target)
        return target

    def remount_ro(self, target: Path) -> None:
        """Make a mounted tmpfs read-only (its files stay)."""
        subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True, capture_output=True)

    def close(self) -> None:
        """Unmount everything (lazily: a file still open in the test process must not block it)."""
        for target in reversed(self.made):
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    """`Mounts` for one test."""
    m = Mounts()
    yield m
    m.close()


def fill(folder: Path) -> None:
    """Leave no free space on the file system of `folder` (a small tmpfs)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 1 << 12, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)


def leftovers(root: Path) -> list[Path]:
    """Temporary files and folders of the write path under `root` (none may stay behind)."""
    return [p for p in root.rglob("*") if p.name.startswith((".tmp-", ".workbench-probe-"))
            or (p.name.startswith(".") and not p.name.startswith((".locks",)) and p.is_file())]

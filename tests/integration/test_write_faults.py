"""File-system faults end in one line, exit code 2, and nothing half-written (issue 21).

Each case runs twice: on a real tmpfs (read-only, or small enough to fill) where the test
may mount one (root), and with the same `OSError` monkeypatched into every write under
the folder (everywhere). The message names the path and the remedy (`--out` for outputs,
`WORKBENCH_CACHE` for the cache); earlier store entries stay intact and no temporary file
stays behind.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from faults import fails_clearly, fill, leftovers, mounts, refuse_writes  # noqa: F401 - `mounts` is a fixture

from workbench import cli
from workbench.errors import WriteError
from workbench.models import artifacts
from workbench.store import Store

TINY = ["--model", "tiny:llama"]
REC = ["record", *TINY, "--langs", "en,de", "--limit", "4"]
EVAL = ["eval", *TINY, "--corpus", "tatoeba:sw", "--pairs", "en:sw", "--limit", "3", "--max-new-tokens", "4",
        "--suite", "loss"]
ANALYZE = ["analyze", "retrieval", *TINY, "--langs", "en,de", "--limit", "4"]
EXPORT = ["export", "--analysis", "retrieval", *TINY, "--langs", "en,de", "--limit", "4", "--formats", "html"]
VARIANTS = ["mount", "patch"]


def _intact(store: Store) -> list[str]:
    keys = list(store.keys())
    for key in keys:
        assert store.check(key) == [], key
    return keys


def _read_only(variant: str, folder: Path, mounts, monkeypatch) -> Path:  # noqa: F811 - the fixture's name
    if variant == "mount":
        mounts.mount(folder, "ro")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        refuse_writes(monkeypatch, folder, errno.EROFS)
    return folder


# ------------------------------------------------------------------ user outputs


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("command", ["analyze", "export", "eval"])
@pytest.mark.parametrize("sub", ["", "missing/sub"])
def test_outputs_into_a_read_only_folder_are_one_line_before_any_work(tmp_path, capsys, monkeypatch, mounts,  # noqa: F811
                                                                      variant, command, sub):
    ro = _read_only(variant, tmp_path / "ro", mounts, monkeypatch)
    out = ro / sub if sub else ro
    argv = {"analyze": ANALYZE, "export": EXPORT, "eval": EVAL}[command]
    fails_clearly([*argv, "--out", str(out)], capsys, f"cannot write {out}", "read-only", "--out")
    assert list(ro.iterdir()) == []
    assert _intact(Store()) == []  # failed before recording or evaluating anything


@pytest.mark.parametrize("command", ["analyze", "export", "eval"])
@pytest.mark.parametrize("target", ["/dev/full", "a file"])
def test_out_naming_a_device_or_an_existing_file_is_one_line(tmp_path, capsys, command, target):
    if target == "/dev/full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    path = Path(target) if target == "/dev/full" else tmp_path / "taken.txt"
    if target == "a file":
        path.write_text("mine")
    argv = {"analyze": ANALYZE, "export": EXPORT, "eval": EVAL}[command]
    fails_clearly([*argv, "--out", str(path)], capsys, f"{path} exists and is not a folder", "--out")
    fails_clearly([*argv, "--out", str(path / "sub")], capsys, f"{path} exists and is not a folder")
    if target == "a file":
        assert path.read_text() == "mine"


@pytest.mark.parametrize("variant", VARIANTS)
def test_outputs_on_a_full_disk_leave_nothing_half_written(tmp_path, capsys, monkeypatch, mounts, variant):  # noqa: F811
    """The folder takes the probe, then fills up while the results are written: no CSV without its page."""
    out = tmp_path / "out"
    if variant == "mount":
        mounts.mount(out, "size=256k")  # the HTML page inlines plotly.js (megabytes)
    else:
        out.mkdir()
        real = os.fsync

        def full(fd: int) -> None:
            if Path(os.readlink(f"/proc/self/fd/{fd}")).parent == out:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(fd)

        monkeypatch.setattr(os, "fsync", full)
    fails_clearly([*ANALYZE, "--out", str(out)], capsys, f"cannot write {out}", "no space left on the device",
                  "free some space")
    assert list(out.iterdir()) == []  # all or nothing, temporary files removed
    assert len(_intact(Store())) == 2  # what was recorded stays


# ------------------------------------------------------------------ the cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache folder of its own (a mount point for the tmpfs variants)."""
    d = tmp_path / "cache"
    d.mkdir()
    monkeypatch.setenv("WORKBENCH_CACHE", str(d))
    return d


def _short_write(monkeypatch) -> None:
    """numpy's own message when the device fills during `np.save` (no errno)."""
    def full(*a, **k):
        raise OSError("524288 requested and 65536 written")

    monkeypatch.setattr(np, "save", full)


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_full_disk_during_record_is_one_line_and_keeps_earlier_entries(cache, capsys, monkeypatch, mounts,  # noqa: F811
                                                                         variant):
    if variant == "mount":
        mounts.mount(cache, "size=400k")
    assert cli.main(REC) == 0
    before = _intact(Store())
    capsys.readouterr()
    if variant == "patch":
        _short_write(monkeypatch)
    fails_clearly(["record", *TINY, "--langs", "en,de,fr,sw,zh,es,ar,hi", "--limit", "40"], capsys,
                  f"cannot write {cache / 'store'}", "no space left on the device", "WORKBENCH_CACHE")
    assert set(before) <= set(_intact(Store()))  # earlier entries intact
    assert leftovers(cache) == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_full_disk_during_eval_is_one_line(cache, tmp_path, capsys, monkeypatch, mounts, variant):  # noqa: F811
    if variant == "mount":
        mounts.mount(cache, "size=400k")
        Store()
        fill(cache)
    else:
        _short_write(monkeypatch)
    fails_clearly([*EVAL, "--out", str(tmp_path / "out")], capsys, "no space left on the device", "WORKBENCH_CACHE")
    assert not (tmp_path / "out" / "eval.csv").exists()
    assert leftovers(cache) == [] and list(Store().keys()) == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_full_disk_when_a_fine_tune_starts_is_one_line_and_leaves_no_job(cache, capsys, monkeypatch, mounts,  # noqa: F811
                                                                           variant):
    if variant == "mount":
        mounts.mount(cache, "size=64k")
        (cache / "jobs").mkdir()
        fill(cache)
    else:
        (cache / "jobs").mkdir()
        refuse_writes(monkeypatch, cache / "jobs", errno.ENOSPC)
    fails_clearly(["finetune", "silp", *TINY, "--steps", "2"], capsys, f"{cache / 'jobs'}",
                  "no space left on the device", "WORKBENCH_CACHE")
    assert list((cache / "jobs").iterdir()) == []  # no half-made job
    assert cli.main(["jobs", "ls"]) == 0 and "(no jobs)" in capsys.readouterr().out


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_read_only_cache_reads_what_it_has_and_refuses_new_work_in_one_line(cache, tmp_path, capsys, monkeypatch,
                                                                               mounts, variant):  # noqa: F811
    if variant == "mount":
        mounts.mount(cache, "size=20m")
    assert cli.main(REC) == 0
    stored = _intact(Store())
    if variant == "mount":
        mounts.remount_ro(cache)
    else:
        refuse_writes(monkeypatch, cache, errno.EROFS)
    capsys.readouterr()
    assert cli.main(REC) == 0  # everything is stored: nothing to write
    assert cli.main(["jobs", "ls"]) == 0 and "(no jobs)" in capsys.readouterr().out
    assert cli.main(["store", "ls"]) == 0
    capsys.readouterr()
    fails_clearly(["record", *TINY, "--langs", "en,fr", "--limit", "4"], capsys,  # a lock in store/.locks
                  f"cannot write {cache / 'store'}", "read-only", "WORKBENCH_CACHE")
    fails_clearly(["finetune", "silp", *TINY, "--steps", "2"], capsys, f"cannot write {cache / 'jobs'}", "read-only")
    assert _intact(Store()) == stored


COMMANDS = [REC, ["store", "ls"], ["store", "gc"], ["store", "info", "abc"], ["jobs", "ls"], ["jobs", "show", "x"],
            ["jobs", "cancel", "x"], ["models", "list"], ["models", "verify"], [*ANALYZE, "--out", "OUT"],
            [*EXPORT, "--out", "OUT"], [*EVAL, "--out", "OUT"],
            ["compare", *EVAL[1:], "--states", "base", "--out", "OUT"], ["finetune", "silp", *TINY, "--steps", "2"],
            ["figures", "example", "--out", "OUT", "--only", "retrieval_by_layer"],
            ["report", *TINY, "--langs", "en,de", "--limit", "2", "--out", "OUT"]]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_cache_that_is_a_regular_file_is_one_line_for_every_command(tmp_path, capsys, monkeypatch, argv):
    cache = tmp_path / "cache-file"
    cache.write_text("not a folder")
    monkeypatch.setenv("WORKBENCH_CACHE", str(cache))
    argv = [str(tmp_path / "out") if x == "OUT" else x for x in argv]
    fails_clearly(argv, capsys, f"cannot write {cache}: {cache} exists and is not a folder", "WORKBENCH_CACHE")
    assert cache.read_text() == "not a folder"


def test_an_eval_entry_replaced_by_a_plain_file_is_recomputed(tmp_path, capsys):
    assert cli.main([*EVAL, "--out", str(tmp_path / "a")]) == 0
    key = json.loads((tmp_path / "a" / "eval.manifest.json").read_text())["tiny:llama"]["loss"]["key"]
    store = Store()
    entry = store.path(key)
    shutil.rmtree(entry)
    entry.write_text("not an entry")
    capsys.readouterr()
    assert cli.main([*EVAL, "--out", str(tmp_path / "b")]) == 0, capsys.readouterr().err
    assert entry.is_dir() and store.check(key) == []
    assert leftovers(store.root) == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_full_disk_while_a_fine_tune_writes_its_artifact_is_one_line(tmp_path, monkeypatch, mounts, variant):  # noqa: F811
    """The worker's reason for a failed job: one line naming the artifact; no temporary folder stays."""
    out = tmp_path / "jobs"
    if variant == "mount":
        mounts.mount(out, "size=64k")
    else:
        out.mkdir()

        def full(*a, **k):
            raise artifacts.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

        monkeypatch.setattr(artifacts, "save_file", full)
    with pytest.raises(WriteError) as e:
        artifacts.write_artifact_dir(out / "artifact", {"method": "silp"}, {"w": torch.zeros(100_000)})
    assert str(e.value).startswith(f"cannot write {out / 'artifact'}: no space left on the device")
    assert list(out.iterdir()) == []

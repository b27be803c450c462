"""The one write path (`fileio`): all or nothing, one line per fault; the JSON schema checker."""

from __future__ import annotations

import errno
import os

import pytest
from faults import refuse_writes

from workbench import fileio
from workbench.errors import CACHE_REMEDY, OUTPUT_REMEDY, WriteError, is_user_error, user_message, write_error
from workbench.fileio import ListOf, Obj, OneOf, schema_problems


def test_several_files_are_written_all_or_nothing(tmp_path, monkeypatch):
    a, b = tmp_path / "a.csv", tmp_path / "b.html"
    a.write_text("old a")
    real = os.fsync
    calls = []

    def fail_second(fd):
        calls.append(fd)
        if len(calls) == 2:  # the second file fills the disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fail_second)
    with pytest.raises(WriteError, match=f"cannot write {b}: no space left on the device; free some space or "):
        fileio.atomic_write_files({a: b"new a", b: b"new b"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]  # every temporary file removed
    assert a.read_text() == "old a"  # nothing renamed before every file was written


def test_a_failed_rename_removes_every_temporary_file(tmp_path, monkeypatch):
    def fail(src, dst):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dst))

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(WriteError, match="read-only"):
        fileio.atomic_write_files({tmp_path / "a": b"a", tmp_path / "b": b"b"})
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path, monkeypatch):
    f = tmp_path / "status.json"
    f.write_text("old")
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(WriteError) as e:
        fileio.atomic_write_text(f, "new")
    assert e.value.errno == errno.ENOSPC and isinstance(e.value, OSError) and is_user_error(e.value)
    assert f.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["status.json"]


@pytest.mark.parametrize("code,why", [(errno.EROFS, "the file system is read-only"),
                                      (errno.ENOSPC, "no space left on the device"),
                                      (errno.EACCES, "permission denied")])
def test_write_errors_name_the_path_why_and_the_remedy(tmp_path, monkeypatch, code, why):
    refuse_writes(monkeypatch, tmp_path, code)
    with pytest.raises(WriteError) as e:
        fileio.writable_dir(tmp_path / "out" / "sub")
    text = str(e.value)
    assert text.startswith(f"cannot write {tmp_path / 'out' / 'sub'}: {why}") and OUTPUT_REMEDY in text
    assert "\n" not in text and user_message(e.value) == text


def test_the_remedy_depends_on_where_the_write_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    assert fileio.remedy_for(tmp_path / "cache" / "store" / "x") == CACHE_REMEDY
    assert fileio.remedy_for(tmp_path / "out" / "x.csv") == OUTPUT_REMEDY


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    err = write_error(FileExistsError(errno.EEXIST, "File exists"), tmp_path / "f" / "a" / "b")
    assert f"{tmp_path / 'f'} exists and is not a folder" in str(err)


def test_numpys_short_write_is_a_full_disk():
    err = write_error(OSError("1048576 requested and 4096 written"), "/cache/store/ab/abc", CACHE_REMEDY)
    assert "no space left on the device" in str(err) and err.errno == errno.ENOSPC
    assert is_user_error(OSError("1048576 requested and 4096 written"))


SCHEMA = Obj({"n": int, "x": (float, type(None)), "model": OneOf((str, Obj({"source": str}, required=("source",)))),
              "langs": ListOf(str), "flag": bool}, required=("n",))


@pytest.mark.parametrize("doc,problems", [
    ({"n": 1, "x": 2, "model": "m", "langs": ["en"], "flag": False}, []),
    ({"n": True}, ["n: expected an integer, got true"]),
    ({"n": 1, "x": "abc"}, ['x: expected a number or null, got "abc"']),
    ({"n": 1, "model": {"source": 3}}, ["model.source: expected text, got 3"]),
    ({"n": 1, "model": 5}, ["model: expected text or an object, got 5"]),
    ({"n": 1, "langs": ["en", 4]}, ["langs[1]: expected text, got 4"]),
    ({"n": 1, "flag": 1}, ["flag: expected true or false, got 1"]),
    ({}, ["n: missing"]),
    ([], ["(top level): expected an object, got []"]),
])
def test_schema_problems_name_each_field_by_its_path(doc, problems):
    assert schema_problems(doc, SCHEMA) == problems

"""A damaged model never reaches the store: converted models are checked against the checksums
recorded at conversion, local directories are re-hashed whenever a file's identity changes,
and damaged weights, artifacts and cache files give one clear line (exit 2), never a traceback."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from workbench import models
from workbench.cli import main
from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.errors import ModelError
from workbench.models import sources
from workbench.models.integrity import write_meta
from workbench.recordings import ensure_recording
from workbench.store import Store

NAME = "fake-bundled"
CORPUS = CorpusSpec(source="udhr", langs=("en", "sw"), limit=3)
SPEC = RecordSpec(poolings=("mean",), ffn_stats=False)


@pytest.fixture
def bundled(monkeypatch):
    """A 'bundled' model already converted into the cache (the tiny Llama), checksums recorded."""
    d = sources.converted_dir(NAME)
    models.tiny_model("llama").save_pretrained(d)
    models.tiny_tokenizer().save_pretrained(d)
    write_meta(d, source_gguf="(test)")
    entry = sources.BundledModel(NAME, "test", "none", "none", lambda dest: dest / "x.gguf", lambda: None)
    monkeypatch.setitem(sources.BUNDLED, NAME, entry)
    yield d
    models.forget()


def _flip_middle_bytes(path, n=64):
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(st.st_size // 2)
        chunk = f.read(n)
        f.seek(st.st_size // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the mtime put back


def _vectors(rec):
    return {u: np.asarray(rec.vectors("mean")[u]) for u in rec.entries}


def test_corrupt_record_repair_record_serves_clean_vectors(bundled, tmp_path, capsys):
    clean = _vectors(ensure_recording(ModelSpec(NAME), CORPUS, SPEC))
    keys = set(Store().keys())
    weights = bundled / "model.safetensors"
    backup = tmp_path / "backup.safetensors"
    shutil.copy2(weights, backup)
    models.forget()
    _flip_middle_bytes(weights)
    assert models.bundled_status(NAME) == "modified"  # `models list` no longer says ready
    with pytest.raises(ModelError, match=r"model\.safetensors .*damaged.*models prepare --force fake-bundled"):
        ensure_recording(ModelSpec(NAME), CorpusSpec(source="udhr", langs=("en", "zh"), limit=3), SPEC)
    assert set(Store().keys()) == keys  # nothing was written under the clean key (or any other)
    assert main(["models", "verify", NAME]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.safetensors" in err[0] and "Traceback" not in err[0]
    shutil.copy2(backup, weights)  # repaired (a fresh copy: new inode and ctime)
    models.forget()
    again = _vectors(ensure_recording(ModelSpec(NAME), CORPUS, SPEC))
    for u in clean:
        np.testing.assert_array_equal(again[u], clean[u])
    assert main(["models", "verify", NAME]) == 0


def test_local_directory_is_rehashed_when_a_file_changes(model_dir, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(model_dir, d)
    before = models.fingerprint(ModelSpec(str(d)))
    _flip_middle_bytes(d / "model.safetensors")
    after = models.fingerprint(ModelSpec(str(d)))
    assert after != before  # the damaged weights get their own key: the clean entries are never served


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_weights_are_one_clear_line(model_dir, tmp_path, capsys, damage):
    d = tmp_path / "copy"
    shutil.copytree(model_dir, d)
    w = d / "model.safetensors"
    if damage == "truncate":
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 3])
    else:
        w.write_bytes(os.urandom(4096))
    rc = main(["record", "--model", str(d), "--corpus", "udhr", "--langs", "en,sw", "--limit", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error:") and str(d) in err[-1] and "Traceback" not in "\n".join(err)
    assert not list(Store().keys())


def test_damaged_cache_files_are_ignored_or_reported(model_dir, capsys):
    from workbench.finetune import jobs as processes
    from workbench.paths import cache_root

    (cache_root() / "fingerprints.json").write_bytes(b"\xff\xfe garbage \x00")
    assert models.fingerprint(ModelSpec(model_dir))  # the memo is rebuilt, not trusted
    assert json.loads((cache_root() / "fingerprints.json").read_text())  # and rewritten
    job = processes.jobs_root() / "silp-broken"
    job.mkdir(parents=True)
    (job / "config.json").write_text("{}")
    (job / "status.json").write_bytes(b"\x00\xff not json")
    rows = processes.list_jobs()
    # reported as damaged with what is wrong, never rewritten into a false "failed" (issue 21)
    assert rows[0]["state"] == "damaged" and "status.json" in rows[0]["reason"], rows[0]
    assert main(["jobs", "ls"]) == 0
    assert "silp-broken" in capsys.readouterr().out


def test_an_unwritable_out_is_one_clear_line(model_dir, tmp_path, capsys):
    blocker = tmp_path / "a-file"  # --out below a file: no user, not even root, can create it
    blocker.write_text("x")
    rc = main(["analyze", "retrieval", "--model", model_dir, "--langs", "en,sw", "--limit", "2",
               "--out", str(blocker / "sub")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(blocker) in err[0] and "Traceback" not in err[0]


def test_analyze_never_overwrites_without_asking(model_dir, tmp_path, capsys):
    args = ["analyze", "retrieval", "--model", model_dir, "--langs", "en,sw", "--limit", "2", "--out", str(tmp_path)]
    assert main(args) == 0
    (tmp_path / "retrieval.csv").write_text("mine")
    assert main(args) == 2 and "exists" in capsys.readouterr().err
    assert (tmp_path / "retrieval.csv").read_text() == "mine"
    assert main([*args, "--overwrite"]) == 0

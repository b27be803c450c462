"""Battery of bad inputs through the CLI entry (issue 13): exit code 2, one line naming the
input, no traceback, and a store that holds only correct entries afterwards.

The model is the tiny local Llama directory (4 blocks), the corpus the bundled UDHR.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench import cli
from workbench.store import Store


def _store_is_clean() -> list[str]:
    """Keys of the store (of this test's isolated cache), each checked in full."""
    store = Store()
    keys = list(store.keys())
    for key in keys:
        assert store.check(key) == [], key
    return keys


def _fails_clearly(argv, needle, capsys) -> str:
    code = cli.main(argv)  # anything but a user error would raise here, with its traceback
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]  # status lines ("loading …") may come first
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert code == 2, err
    assert "Traceback" not in err and "unexpected" not in err
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    assert needle in errors[0], errors[0]
    return errors[0]


def _rec(model_dir, *extra):
    return ["record", "--model", model_dir, "--corpus", "udhr", "--langs", "en,sw", "--limit", "3", *extra]


def _an(model_dir, analysis, out, *extra):
    return ["analyze", analysis, "--model", model_dir, "--limit", "3", "--out", str(out), *extra]


# ------------------------------------------------------------------ parameters, before any work


@pytest.mark.parametrize("extra,needle", [
    (["--limit", "0"], "CorpusSpec.limit (--limit) must be at least 1"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--device", "meta"], "unknown device 'meta'"),
    (["--device", "banana"], "unknown device 'banana'"),
    (["--dtype", "float8"], "unknown dtype 'float8'"),
    (["--langs", "en,en"], "lists 'en' twice"),
    (["--langs", ","], "CorpusSpec.langs (--langs) is empty"),
    (["--max-length", "1"], "RecordSpec.max_length (--max-length)"),
    (["--batch-tokens", "0"], "RecordSpec.batch_tokens (--batch-tokens)"),
    (["--poolings", "max"], "unknown pooling 'max'"),
    (["--layers", "1,1"], "RecordSpec.layers (--layers) lists a block twice"),
])
def test_record_refuses_bad_parameters_and_stores_nothing(model_dir, capsys, extra, needle):
    _fails_clearly(_rec(model_dir, *extra), needle, capsys)
    assert _store_is_clean() == []


def test_a_bad_device_is_refused_even_when_everything_is_stored(model_dir, capsys):
    assert cli.main(_rec(model_dir)) == 0
    stored = _store_is_clean()
    capsys.readouterr()
    _fails_clearly(_rec(model_dir, "--device", "banana"), "ModelSpec.device (--device): unknown device 'banana'",
                   capsys)
    assert _store_is_clean() == stored


@pytest.mark.parametrize("analysis,extra,needle", [
    ("overlap", ["--langs", "en,sw", "--limit", "0"], "--limit"),  # was: Jaccard 1.000 at every layer
    ("subspace", ["--langs", "en,sw,fr", "--layer", "1", "--limit", "0"], "--limit"),  # was: "means must be finite"
    ("sensitivity", ["--src", "en", "--tgt", "en"], "'en'"),  # was: an en→en N2D/D2N allocation
    ("map", ["--langs", "en,sw", "--layer", "1", "--method", "tsne", "--limit", "1"], "t-SNE map needs at least n=3"),
    ("subspace", ["--langs", "en", "--layer", "1"], "LENS subspaces need at least 2 languages"),
])
def test_analyses_refuse_empty_or_degenerate_inputs(model_dir, tmp_path, capsys, analysis, extra, needle):
    out = tmp_path / "out"
    _fails_clearly(_an(model_dir, analysis, out, *extra), needle, capsys)
    assert not list(out.glob(f"{analysis}*")), "no result file may be written"
    _store_is_clean()


@pytest.mark.parametrize("extra,needle", [
    (["--split", "2", "--k1", "50", "--k2", "0"], "k1 (N2D layers) must be in 1…2"),  # was: clamped, D2N empty
    (["--split", "2", "--k1", "1", "--k2", "0"], "k2 (D2N layers) must be in 1…1"),
    (["--split", "2", "--k1", "3", "--k2", "1"], "k1 (N2D layers) must be in 1…2"),
    (["--split", "3", "--k1", "1", "--k2", "1"], "split must be in 1…2 for 4 layers"),  # L-1: D2N empty
    (["--split", "0", "--k1", "1", "--k2", "1"], "split must be in 1…2 for 4 layers"),
])
def test_sensitivity_allocation_is_never_silently_clamped(model_dir, tmp_path, capsys, extra, needle):
    out = tmp_path / "out"
    _fails_clearly(_an(model_dir, "sensitivity", out, "--src", "en", "--tgt", "sw", *extra), needle, capsys)
    assert not (out / "sensitivity.csv").exists()
    _store_is_clean()  # the pair pass recorded on the way is a correct entry


# ------------------------------------------------------------------ damaged store entries


def _damage(path, how):
    m = path / "manifest.json"
    if how == "binary":
        m.write_bytes(bytes(range(256)) * 4)
    elif how == "invalid-json":
        m.write_text("{not json")
    elif how in ("[]", "{}"):
        m.write_text(how)
    elif how == "arrays-empty":
        m.write_text('{"arrays": {}}')
    elif how in ("missing-key", "wrong-type"):
        j = json.loads(m.read_text())
        if how == "missing-key":
            del j["layer_labels"]
        else:
            j["n_units"] = "three"
        m.write_text(json.dumps(j))
    else:
        f = path / "pooled_mean.npy"
        data = f.read_bytes()
        f.write_bytes({"truncated": data[:-64], "wrong-size": data + b"\0" * 16,
                       "checksum": data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:], "missing-file": b""}[how])
        if how == "missing-file":
            f.unlink()


DAMAGE = ["binary", "invalid-json", "[]", "{}", "arrays-empty", "missing-key", "wrong-type", "truncated",
          "wrong-size", "checksum", "missing-file"]


@pytest.fixture
def recorded(model_dir, capsys):
    """en and sw recorded; returns (unit -> key, unit -> clean pooled_mean)."""
    assert cli.main(_rec(model_dir)) == 0
    capsys.readouterr()
    store = Store()
    keys = {json.loads((store.path(k) / "manifest.json").read_text())["unit"]: k for k in store.keys()}
    clean = {u: np.array(np.load(store.path(k) / "pooled_mean.npy")) for u, k in keys.items()}
    return keys, clean


@pytest.mark.parametrize("how", DAMAGE)
def test_store_gc_removes_exactly_the_damaged_entry(recorded, capsys, how):
    keys, clean = recorded
    _damage(Store().path(keys["sw"]), how)
    rows = {r["key"]: r for r in Store().ls()}  # the library half of `store ls`: flags it, names the file
    assert rows[keys["sw"]]["status"] == "damaged" and keys["sw"] in rows[keys["sw"]]["problem"]
    assert rows[keys["en"]]["status"] == "ok"
    assert cli.main(["store", "gc"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert _store_is_clean() == [keys["en"]]
    np.testing.assert_array_equal(Store().get(keys["en"])["pooled_mean"], clean["en"])


@pytest.mark.parametrize("how", DAMAGE)
def test_record_recomputes_a_damaged_entry_and_serves_the_clean_vectors(model_dir, recorded, capsys, how):
    keys, clean = recorded
    _damage(Store().path(keys["sw"]), how)
    assert cli.main(_rec(model_dir)) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert sorted(_store_is_clean()) == sorted(keys.values())
    for unit, key in keys.items():
        np.testing.assert_array_equal(Store().get(key)["pooled_mean"], clean[unit])


@pytest.mark.parametrize("how", ["binary", "[]", "arrays-empty", "truncated"])
def test_analyze_after_damage_recomputes(model_dir, recorded, tmp_path, capsys, how):
    keys, _ = recorded
    _damage(Store().path(keys["sw"]), how)
    assert cli.main(_an(model_dir, "overlap", tmp_path, "--langs", "en,sw")) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert sorted(_store_is_clean()) == sorted(keys.values())


@pytest.mark.parametrize("how", ["binary", "[]", "{}", "truncated", "checksum"])
def test_store_ls_and_info_do_not_crash_on_damage(recorded, capsys, how):
    keys, _ = recorded
    _damage(Store().path(keys["sw"]), how)
    cli.main(["store", "ls"])
    out = capsys.readouterr().out
    assert "damaged" in out and keys["sw"] in out  # (the exit code is the lead's wiring, below)


@pytest.mark.parametrize("how", ["binary", "truncated"])
def test_store_ls_and_info_exit_2_on_damage(recorded, capsys, how):
    keys, _ = recorded
    _damage(Store().path(keys["sw"]), how)
    assert cli.main(["store", "ls"]) == 2
    assert keys["sw"] in capsys.readouterr().err
    assert cli.main(["store", "info", keys["sw"][:10]]) == 2
    err = capsys.readouterr().err
    assert keys["sw"] in err and "Traceback" not in err

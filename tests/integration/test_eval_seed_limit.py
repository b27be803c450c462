"""`eval --seed` reaches the bootstrap and the store key; a capped `--limit` says how many units were scored;
`compare --states` with a folder that is no artifact says so as `--artifact` does (issue 21)."""

from __future__ import annotations

import json

import pandas as pd
from faults import fails_clearly

from workbench.cli import main

ARGS = ["eval", "--model", "tiny:llama", "--corpus", "tatoeba:sw", "--pairs", "en:sw", "--suite", "loss",
        "--heldout", "0.02"]


def _run(tmp_path, name, *extra):
    assert main([*ARGS, *extra, "--out", str(tmp_path / name)]) == 0
    ev = pd.read_csv(tmp_path / name / "eval.csv")
    manifest = json.loads((tmp_path / name / "eval.manifest.json").read_text())["tiny:llama"]["loss"]
    return ev, manifest


def test_the_seed_reaches_the_bootstrap_and_the_store_key(tmp_path):
    a, ma = _run(tmp_path, "a", "--seed", "0")
    b, mb = _run(tmp_path, "b", "--seed", "9")
    assert (a["n"] >= 5).all()  # intervals are drawn (none below n = 5)
    pd.testing.assert_series_equal(a["value"], b["value"])  # the point estimates do not depend on the seed
    assert not (a["ci_low"].equals(b["ci_low"]) and a["ci_high"].equals(b["ci_high"]))  # was: identical
    assert ma["key"] != mb["key"] and not ma["cached"] and not mb["cached"]  # was: the same key
    again, mc = _run(tmp_path, "c", "--seed", "9")
    assert mc["cached"] and mc["key"] == mb["key"]
    pd.testing.assert_frame_equal(again, b)


def test_a_limit_above_the_held_out_units_says_how_many_were_scored(tmp_path, capsys):
    ev, manifest = _run(tmp_path, "a", "--limit", "50")
    n = int(ev["n"].max())
    assert n < 50
    note = f"limit 50 is more than the {n} held-out units of tatoeba:sw: scored {n}"
    assert f"warning: {note}" in capsys.readouterr().err  # was: silence
    assert note in manifest["flags"]
    ev, _ = _run(tmp_path, "b", "--limit", str(n))  # a limit that fits says nothing
    assert "warning: limit" not in capsys.readouterr().err


def test_compare_states_with_a_folder_without_manifest_says_what_artifact_says(tmp_path, capsys):
    folder = tmp_path / "not-an-artifact"
    folder.mkdir()
    want = f"{folder} is not a fine-tune artifact (no manifest.json)"
    fails_clearly([*ARGS, "--artifact", str(folder), "--out", str(tmp_path / "a")], capsys, want)
    fails_clearly(["compare", *ARGS[1:], "--states", f"base,{folder}", "--out", str(tmp_path / "b")], capsys,
                  want)  # was: "unknown state"

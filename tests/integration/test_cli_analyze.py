"""`workbench analyze …` on a tiny local model: files written, numbers equal the library's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench import cli
from workbench.analysis import retrieval, sensitivity


def _run(model_dir, *argv):
    return cli.main(["analyze", *argv, "--model", model_dir, "--limit", "6"])


def test_retrieval_writes_csv_html_and_matches_library(model_dir, tmp_path, capsys):
    out = tmp_path / "r"
    assert _run(model_dir, "retrieval", "--langs", "en,sw,fr", "--method", "cosine", "--out", str(out)) == 0
    text = capsys.readouterr().out
    assert "best layer" in text and "Mid-align score" in text
    summary = pd.read_csv(out / "retrieval.csv")
    assert (out / "retrieval.html").stat().st_size > 1000
    # recompute from the store with the library: identical numbers
    from workbench.cli import build_parser
    from workbench.cli.core import get_recording
    a = build_parser().parse_args(["record", "--model", model_dir, "--langs", "en,sw,fr", "--limit", "6"])
    rec = get_recording(a)
    df = retrieval.retrieval_by_layer(rec.vectors("mean"), method="cosine", pivot="en", layer_labels=rec.layer_labels)
    ref = retrieval.summarize_by_layer(df, "en")
    allp = summary[summary.series == "all_pairs"]["accuracy"].to_numpy()
    np.testing.assert_allclose(allp, ref[ref.series == "all_pairs"]["accuracy"].to_numpy())


def test_sensitivity_allocation_matches_library(model_dir, tmp_path, capsys):
    out = tmp_path / "s"
    assert _run(model_dir, "sensitivity", "--src", "en", "--tgt", "sw", "--split", "2", "--k1", "1", "--k2", "1",
                "--out", str(out)) == 0
    table = pd.read_csv(out / "sensitivity.csv")
    scores = table["score"].to_numpy()
    assert np.isnan(scores[0]) and np.isfinite(scores[1:]).all()
    n2d, d2n = sensitivity.allocate_layers(scores, split=2, k1=1, k2=1)
    assert list(table.loc[table.allocation == "N2D", "layer"]) == n2d
    assert list(table.loc[table.allocation == "D2N", "layer"]) == d2n
    assert f"N2D layers (top-1 of 1…2): {n2d}" in capsys.readouterr().out


@pytest.mark.parametrize("argv,files", [
    (["overlap", "--langs", "en,sw,fr"], ["overlap.csv", "overlap.html"]),
    (["subspace", "--langs", "en,sw,fr", "--layer", "2"], ["subspace.csv", "subspace_points.csv"]),
    (["map", "--langs", "en,sw", "--layer", "1", "--method", "pca", "--links"], ["map.csv", "map.html"]),
])
def test_other_analyses_write_their_files(model_dir, tmp_path, argv, files):
    out = tmp_path / "o"
    assert _run(model_dir, *argv, "--out", str(out)) == 0
    for f in files:
        assert (out / f).stat().st_size > 0
    if argv[0] == "map":
        pts = pd.read_csv(out / "map.csv")
        assert len(pts) == 12 and set(pts["lang"]) == {"en", "sw"}


def test_bad_layer_is_a_clear_error(model_dir, tmp_path, capsys):
    assert _run(model_dir, "map", "--langs", "en,sw", "--layer", "9", "--out", str(tmp_path)) == 2
    assert "layer 9 not recorded" in capsys.readouterr().err

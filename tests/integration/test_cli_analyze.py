"""`workbench analyze …` on a tiny local model: files written, numbers equal the library's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from workbench import cli
from workbench.analysis import retrieval, sensitivity
from workbench.config import CorpusSpec
from workbench.corpus import load_corpus_spec
from workbench.presets import hf_hidden_state_labels


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


def _hf_weighted(model_dir, texts):
    """MEXA's vectors, independently of the recorder: weighted mean (1…T, BOS included) of every hidden_states entry."""
    tok, model = AutoTokenizer.from_pretrained(model_dir), AutoModelForCausalLM.from_pretrained(model_dir).eval()
    out = []
    with torch.no_grad():
        for t in texts:
            ids = torch.tensor([tok(t, add_special_tokens=True, truncation=True, max_length=256)["input_ids"]])
            w = torch.arange(1, ids.shape[1] + 1, dtype=torch.float32)[None, :, None]
            hs = model(input_ids=ids, output_hidden_states=True).hidden_states
            out.append(torch.stack([(h * w).sum(1)[0] / w.sum() for h in hs]).numpy())
    return np.stack(out, axis=1)  # (L + 1, n, d)


def test_mexa_preset_summary_runs_over_exactly_the_hf_hidden_states_layers(model_dir, tmp_path, capsys):
    langs, out = ["en", "fr", "es"], tmp_path / "mexa"
    assert cli.main(["analyze", "retrieval", "--preset", "mexa", "--model", model_dir, "--langs", ",".join(langs),
                     "--limit", "12", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    summary = pd.read_csv(out / "retrieval.csv")
    labels = hf_hidden_state_labels(4)  # the tiny Llama has 4 blocks: emb, 0, 1, 2, final
    assert list(pd.unique(summary["layer"])) == [str(x) for x in labels]
    corpus = load_corpus_spec(CorpusSpec("udhr", tuple(langs), limit=12))
    vec = {lang: _hf_weighted(model_dir, list(corpus.texts(lang))) for lang in langs}
    want = retrieval.mexa_summary(retrieval.summarize_by_layer(
        retrieval.retrieval_by_layer(vec, method="mexa", pivot="en", layer_labels=labels)), "en")
    assert 0 < want["mean"] < 1 and want["language_max"] > 0  # informative on this data
    line = next(x for x in text.splitlines() if x.startswith("MEXA"))
    assert f"mean over layers {want['mean']:.4f}" in line
    assert f"mean of each language's best layer {want['language_max']:.4f}" in line
    assert f"peak of the language-averaged curve {want['max']:.4f} (layer {want['argmax']})" in line
    got = summary[summary.series == "pivot"]["accuracy"].to_numpy()
    np.testing.assert_allclose(got, want["curve"], atol=1e-12)
    assert "Mid-align score" not in text  # the preset asks for MEXA's numbers only


def test_a_param_flag_named_like_a_recording_flag_has_its_own_value(model_dir, tmp_path, capsys):
    # --layers (the blocks to record) must not land in the analysis's `layers` (its layer set), nor the reverse
    out = tmp_path / "two"
    assert cli.main(["analyze", "retrieval", "--layers", "1,2", "--model", model_dir, "--langs", "en,fr",
                     "--limit", "4", "--out", str(out)]) == 0
    assert list(pd.unique(pd.read_csv(out / "retrieval.csv")["layer"])) == ["emb", "1", "2"]
    assert cli.main(["analyze", "retrieval", "--param-layers", "hf_hidden_states", "--model", model_dir,
                     "--langs", "en,fr", "--limit", "4", "--out", str(tmp_path / "hf")]) == 2
    assert "needs a recording of the embedding output, every block and the post-norm top" in capsys.readouterr().err

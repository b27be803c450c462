"""Before/after tables (`workbench.recipes.compare`) on two tiny-model states: base and base + an artifact.

The tuned state is the tiny Llama with one FFN matrix perturbed, written as a real artifact
(`artifact_io.write_artifact`) and loaded back, so fingerprints, store keys and loading go
through the same code as a fine-tune job's result.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch

from workbench import models, recordings
from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.corpus import load_corpus_spec
from workbench.evaluation.losses import eval_compare, evaluate_state
from workbench.examples import DataSpec
from workbench.finetune import artifact_io, jobs
from workbench.finetune.jobs import job_model_spec, tuned_states
from workbench.recipes import compare
from workbench.recipes import tables as views
from workbench.recipes.maps import map_compare
from workbench.recipes.neurons import overlap_compare
from workbench.recipes.retrieval import retrieval_compare, retrieval_matrix_compare
from workbench.recipes.sensitivity import sensitivity_compare
from workbench.recipes.settings import TINY_MODEL
from workbench.recipes.subspace import separation_compare
from workbench.recordings import ensure_recording
from workbench.viz import compare_figures

LANGS = ("en", "zh", "sw")
CORPUS = CorpusSpec(source="udhr", langs=LANGS, limit=6)
RECORD = RecordSpec(max_length=64)
PAIR_CORPUS = CorpusSpec(source="udhr", langs=("en", "sw"), limit=6)
PAIR_RECORD = RecordSpec(template="Translate from {src_name} to {tgt_name}.\n{src_text}\n{tgt_text}",
                         poolings=("mean",), embeddings=False, max_length=64)
DATA = DataSpec(source="udhr", limit=8, max_length=48)


def _artifact(base, path, *, scale: float = 0.5):
    """Write an artifact that changes block 1's down projection of `base` (a SiLP-like manifest)."""
    model = copy.deepcopy(base.model)
    w = dict(model.named_parameters())["model.layers.1.mlp.down_proj.weight"]
    with torch.no_grad():
        w.add_(scale * torch.randn(w.shape, generator=torch.Generator().manual_seed(1)))
    manifest = {"method": "silp", "spec": {"src": "sw", "tgt": "en"}, "data": DATA.to_dict(),
                "languages": ["sw", "en"], "base_model": ModelSpec(source="tiny:llama").to_dict()}
    return artifact_io.write_artifact(path, base, model, manifest)


@pytest.fixture(scope="module")
def states(tiny_state, tmp_path_factory):
    """(base, tuned) ModelStates and the recordings of both, in a module store."""
    root = tmp_path_factory.mktemp("compare")
    path = _artifact(tiny_state, root / "artifact")
    tuned = artifact_io.load_tuned(tiny_state, path)
    out = {"base": tiny_state, "tuned": tuned, "artifact": path}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(root / "cache"))
        for name, st in (("base", tiny_state), ("tuned", tuned)):
            out[f"rec_{name}"] = ensure_recording(st.spec, CORPUS, RECORD, state=st)
            out[f"pair_{name}"] = ensure_recording(st.spec, PAIR_CORPUS, PAIR_RECORD, pairs=[("en", "sw")], state=st)
    return out


def _tables(a: str, b: str, s: dict) -> dict[str, pd.DataFrame]:
    ra, rb = s[f"rec_{a}"], s[f"rec_{b}"]
    return {
        "retrieval": retrieval_compare(ra, rb, "mean", method="cosine", k=4, pivot="en"),
        "sensitivity": sensitivity_compare(s[f"pair_{a}"], s[f"pair_{b}"], "en>sw"),
        "overlap": overlap_compare(ra, rb, "en", LANGS, top_frac=0.1),
        "separation": separation_compare(ra, rb, "mean", rank=None, central="en", holdout=True),
    }


def test_difference_is_b_minus_a_and_sides_are_the_views_numbers(states):
    tables = _tables("base", "tuned", states)
    for name, t in tables.items():
        assert list(t.columns[-4:]) == ["measure", "a", "b", "diff"], name
        np.testing.assert_array_equal(t["diff"].to_numpy(), (t["b"] - t["a"]).to_numpy(), err_msg=name)
    # each side is exactly the single-state view of its recording
    _, sa = views.retrieval_tables(states["rec_base"], "mean", method="cosine", k=4, pivot="en")
    _, sb = views.retrieval_tables(states["rec_tuned"], "mean", method="cosine", k=4, pivot="en")
    np.testing.assert_array_equal(tables["retrieval"]["a"], sa["accuracy"])
    np.testing.assert_array_equal(tables["retrieval"]["b"], sb["accuracy"])
    sep_b = views.separation_table(states["rec_tuned"], "mean", rank=None, central="en", holdout=True)
    spec = tables["separation"][tables["separation"]["measure"] == "specific_ratio"]
    np.testing.assert_array_equal(spec["b"], sep_b["specific_ratio"])
    assert list(spec["layer"]) == list(states["rec_base"].layer_labels)  # "emb", 0, 1, … in order
    sens_a = views.sensitivity_scores(states["pair_base"], "en>sw")
    np.testing.assert_array_equal(tables["sensitivity"]["a"], sens_a)
    ov = views.overlap_table(states["rec_tuned"], "en", LANGS, top_frac=0.1)
    jac = tables["overlap"][tables["overlap"]["measure"] == "jaccard"]
    np.testing.assert_array_equal(jac["b"], ov["jaccard"])
    # the perturbed block changes what follows it
    assert np.nanmax(np.abs(tables["separation"]["diff"])) > 0
    assert np.nanmax(np.abs(tables["sensitivity"]["diff"])) > 0


def test_identical_states_give_zero_difference(states):
    for name, t in _tables("tuned", "tuned", states).items():
        d = t["diff"].to_numpy()
        assert np.array_equal(np.isnan(d), np.isnan(t["a"].to_numpy())), name  # NaN only where undefined
        assert np.all(d[~np.isnan(d)] == 0.0), name
    ma, mb, diff = retrieval_matrix_compare(states["rec_base"], states["rec_base"], "mean", 2,
                                                    method="margin")
    assert np.all(np.nan_to_num(diff.to_numpy()) == 0.0)


def test_side_by_side_keeps_a_s_order_and_rows_only_in_b():
    a = pd.DataFrame({"layer": ["emb", 0, 1], "x": [0.1, 0.2, 0.3]})
    b = pd.DataFrame({"layer": [1, "emb", 0, 2], "x": [0.5, 0.1, 0.0, 0.9]})
    t = compare.side_by_side(a, b, ["layer"], ["x"])
    assert list(t["layer"]) == ["emb", 0, 1, 2]
    np.testing.assert_array_equal(t["b"], [0.1, 0.0, 0.5, 0.9])
    np.testing.assert_array_equal(t["diff"][:3], np.array([0.1, 0.0, 0.5]) - np.array([0.1, 0.2, 0.3]))
    assert np.isnan(t["a"].iloc[3]) and np.isnan(t["diff"].iloc[3])


def test_maps_and_matrices_of_both_states(states):
    corpus = load_corpus_spec(CORPUS)
    pts = map_compare(states["rec_base"], states["rec_tuned"], corpus, "mean", 2, method="pca")
    assert pts.groupby("state").size().to_dict() == {"a": 18, "b": 18}
    ma, mb, diff = retrieval_matrix_compare(states["rec_base"], states["rec_tuned"], "mean", 2, method="cosine")
    np.testing.assert_array_equal(diff.to_numpy(), mb.to_numpy() - ma.to_numpy())
    fig = compare_figures.compare_maps_figure(pts)
    assert {t.name for t in fig.data} == set(LANGS) and len(fig.data) == 6
    assert compare_figures.difference_heatmap(diff).data[0].zmid == 0


def test_eval_compare_is_finetune_evaluate_of_each_state(states):
    t = eval_compare(states["base"], states["tuned"], DATA, ["en", "sw"], pivot="en", max_items=4)
    assert list(t["measure"]) == ["loss_en>sw", "loss_sw>en", "ppl_en"]
    assert list(t["kind"]) == ["translation loss", "translation loss", "perplexity"]
    from workbench.examples import build_split

    split = build_split(DATA, ["en", "sw"])
    want_a = evaluate_state(states["base"], split, pivot="en", max_items=4)
    want_b = evaluate_state(states["tuned"], split, pivot="en", max_items=4)
    np.testing.assert_array_equal(t["a"], [want_a[m] for m in t["measure"]])
    np.testing.assert_array_equal(t["b"], [want_b[m] for m in t["measure"]])
    np.testing.assert_array_equal(t["diff"], t["b"] - t["a"])
    assert (t["diff"] != 0).all()
    same = eval_compare(states["base"], states["base"], DATA, ["en", "sw"], pivot="en", max_items=4)
    assert (same["diff"] == 0).all()
    fig = compare_figures.eval_compare_figure(t)
    assert [tr.name for tr in fig.data] == ["A", "B", "A", "B"]


def _job(job_id: str, state: str, artifact: str | None = None) -> None:
    d = jobs.jobs_root() / job_id
    d.mkdir(parents=True, exist_ok=True)  # the artifact may be in it already
    (d / "config.json").write_text(json.dumps({"id": job_id, "method": "silp"}))
    status = {"id": job_id, "method": "silp", "state": state, "created": f"2026-01-0{len(job_id) % 9}T00:00:00"}
    if artifact:
        status["artifact"] = artifact
    if state == "failed":
        status["reason"] = "CorpusError: no language 'xx'"
    (d / "status.json").write_text(json.dumps(status))


def test_tuned_states_are_done_jobs_and_load_with_their_own_fingerprint(states, tmp_path):
    path = _artifact(states["base"], jobs.jobs_root() / "silp-1-done" / "artifact")
    _job("silp-1-done", "done", str(path))
    _job("silp-2-failed", "failed")
    _job("silp-3-gone", "done", str(tmp_path / "deleted" / "artifact"))
    tuned = tuned_states()
    assert [t["job_id"] for t in tuned] == ["silp-1-done"]
    t = tuned[0]
    assert t["source"] == "tiny:llama" and t["artifact"] == str(path) and t["method"] == "silp"
    assert t["languages"] == ["sw", "en"] and t["pivot"] == "en" and t["data"] == DATA.to_dict()
    assert "SiLP sw/en" in t["label"]
    spec = ModelSpec.from_dict(t["model"])
    assert spec.artifact == str(path)
    # the state a picker hands out loads as base + artifact, with the artifact in its fingerprint
    loaded = models.load(spec)
    assert loaded.fingerprint == artifact_io.load_tuned(states["base"], path).fingerprint
    assert loaded.fingerprint.startswith(states["base"].fingerprint.rsplit("-", 1)[0] + "+")
    assert models.fingerprint(spec, download=False) == loaded.fingerprint
    for name, p in loaded.model.named_parameters():
        assert torch.equal(p, dict(states["tuned"].model.named_parameters())[name]), name
    # the UI's tiny model and the worker's are one base; their recordings are shared
    assert models.fingerprint(ModelSpec(source=TINY_MODEL), download=False) == states["base"].fingerprint
    assert recordings.stored_recording(spec, CORPUS, RECORD) is None
    ensure_recording(spec, CORPUS, RECORD, state=loaded)
    rec = recordings.stored_recording(spec, CORPUS, RECORD)
    assert rec is not None and rec.fingerprint == loaded.fingerprint
    assert recordings.stored_recording(ModelSpec(source=TINY_MODEL), CORPUS, RECORD) is None  # base: not recorded


def test_job_model_spec_and_same_base():
    assert job_model_spec(ModelSpec(source=TINY_MODEL)).source == "tiny:llama"
    assert job_model_spec(ModelSpec(source="gemma-3-270m")) == ModelSpec(source="gemma-3-270m")
    with pytest.raises(ValueError, match="cannot be fine-tuned further"):
        job_model_spec(ModelSpec(source="gemma-3-270m", artifact="/x"))
    assert models.same_base(ModelSpec(source=TINY_MODEL), ModelSpec(source="tiny:llama", artifact="/x"))
    assert not models.same_base(ModelSpec(source="gemma-3-270m"), ModelSpec(source="smollm2-135m"))


def test_compare_figure_draws_both_states_and_the_difference(states):
    t = _tables("base", "tuned", states)["separation"]
    t = t[t["measure"].isin(["agnostic_ratio", "specific_ratio"])]
    fig = compare_figures.compare_by_layer_figure(t, labels=("base", "tuned"))
    names = [tr.name for tr in fig.data]
    assert names == ["agnostic projection · base", "agnostic projection · tuned", "agnostic projection · B − A",
                     "specific projection · base", "specific projection · tuned", "specific projection · B − A"]
    spec = t[t["measure"] == "specific_ratio"]
    np.testing.assert_array_equal(np.asarray(fig.data[5].y, dtype=float), spec["diff"])
    assert fig.data[5].yaxis == "y2" and fig.data[3].line.dash == "dash"
    loss = compare_figures.training_loss_figure([{"step": 1, "stage": "n2d", "loss": 3.0},
                                                 {"step": 2, "stage": "d2n", "loss": 2.5}])
    assert [tr.name for tr in loss.data] == ["n2d", "d2n"]


def test_fingerprint_of_a_tuned_directory_model_covers_the_artifact_and_is_memoised(states, model_dir, tmp_path,
                                                                                   monkeypatch):
    from workbench.models import artifacts

    path = _artifact(states["base"], tmp_path / "artifact")
    spec = ModelSpec(source=model_dir, artifact=str(path))
    fp = models.fingerprint(spec, download=False)
    assert fp == models.fingerprint(spec) != models.fingerprint(ModelSpec(source=model_dir), download=False)

    def no_hashing(*a, **k):
        raise AssertionError("the artifact was hashed again")

    monkeypatch.setattr(artifacts, "hash_files", no_hashing)
    assert models.fingerprint(spec, download=False) == fp  # memoised: pages ask on every rerun
    other = _artifact(states["base"], tmp_path / "other", scale=0.1)
    with pytest.raises(AssertionError, match="hashed again"):
        models.fingerprint(ModelSpec(source=model_dir, artifact=str(other)), download=False)  # a new artifact is hashed

"""`workbench eval` / `workbench compare`: the files the checks read, computed once, clear errors."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
import torch

from workbench import models
from workbench.cli import main
from workbench.config import ModelSpec
from workbench.evaluation import EVAL_COLUMNS, GENERATION_COLUMNS
from workbench.finetune import artifact_io

ARGS = ["--model", "tiny:llama", "--corpus", "tatoeba:sw", "--pairs", "en:sw", "--limit", "3", "--max-new-tokens",
        "6"]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    """A tuned state of tiny:llama: block 1's down projection changed."""
    base = models.load("tiny:llama")
    model = copy.deepcopy(base.model)
    w = dict(model.named_parameters())["model.layers.1.mlp.down_proj.weight"]
    with torch.no_grad():
        w.add_(0.5 * torch.randn(w.shape, generator=torch.Generator().manual_seed(1)))
    manifest = {"method": "silp", "spec": {"src": "sw", "tgt": "en"}, "languages": ["sw", "en"],
                "base_model": ModelSpec(source="tiny:llama").to_dict()}
    return artifact_io.write_artifact(tmp_path_factory.mktemp("art") / "tuned", base, model, manifest)


def test_eval_writes_the_tables_and_a_second_run_is_served_from_the_store(tmp_path, capsys):
    assert main(["eval", *ARGS, "--out", str(tmp_path / "a")]) == 0
    ev = pd.read_csv(tmp_path / "a" / "eval.csv")
    gen = pd.read_csv(tmp_path / "a" / "generations.csv")
    assert list(ev.columns) == EVAL_COLUMNS and list(gen.columns) == GENERATION_COLUMNS
    assert set(ev["direction"]) >= {"en>sw", "sw>en"} and {"chrf++", "bleu", "fidelity", "loss", "ppl"} <= set(
        ev["metric"])
    assert len(gen) == 6  # 3 held-out units × 2 directions
    chrf = ev[ev["metric"] == "chrf++"]
    assert ((chrf["ci_low"] <= chrf["value"]) & (chrf["value"] <= chrf["ci_high"])).all()
    first = json.loads((tmp_path / "a" / "eval.manifest.json").read_text())["tiny:llama"]
    assert not any(s["cached"] for s in first.values())
    assert main(["eval", *ARGS, "--out", str(tmp_path / "a")]) == 2  # never overwrites silently
    assert "exists" in capsys.readouterr().err
    assert main(["eval", *ARGS, "--out", str(tmp_path / "b")]) == 0
    again = json.loads((tmp_path / "b" / "eval.manifest.json").read_text())["tiny:llama"]
    assert all(s["cached"] for s in again.values())  # computed once
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "b" / "eval.csv"), ev)


def test_compare_has_one_column_per_state_and_differences(tmp_path, artifact):
    assert main(["compare", *ARGS, "--states", f"base,{artifact}", "--out", str(tmp_path)]) == 0
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert {"base", "tuned", "Δ tuned"} <= set(scores.columns)
    row = scores[(scores["suite"] == "loss") & (scores["metric"] == "loss")].iloc[0]
    assert row["Δ tuned"] == pytest.approx(row["tuned"] - row["base"])
    outputs = pd.read_csv(tmp_path / "outputs.csv")
    assert {"base: output", "tuned: output", "reference", "source"} <= set(outputs.columns)


@pytest.mark.parametrize("args, words", [
    (["--pairs", "en:fr"], "fr"),                       # a pair not in the data
    (["--suite", "lm-eval:no_such_task_xyz"], "no_such_task_xyz"),  # an unknown task
])
def test_bad_input_is_one_clear_line(tmp_path, capsys, args, words):
    assert main(["eval", *ARGS, *args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("error:") and words in err[-1] and "Traceback" not in "".join(err)


def test_compare_refuses_an_unknown_state(tmp_path, capsys):
    assert main(["compare", *ARGS, "--states", "base,nope", "--out", str(tmp_path)]) == 2
    assert "unknown state 'nope'" in capsys.readouterr().err

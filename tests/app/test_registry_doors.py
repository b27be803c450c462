"""One number, one code path: the same analysis and parameters give identical numbers through
the registry whichever door the user comes in by — `workbench analyze`, `workbench export`,
and the page (AppTest) — and every one of them accepts the tiny test model `tiny:llama`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest
from test_pages import APP, figures, ok, trace, ys

from workbench import models
from workbench.cli import main
from workbench.config import CorpusSpec, ModelSpec
from workbench.recipes.build import build_figure
from workbench.recipes.settings import TINY_ENV, Settings

COMMON = ["--model", "tiny:llama", "--corpus", "udhr", "--langs", "en,zh,sw", "--limit", "5"]


def test_analyze_export_and_page_agree_on_retrieval(tmp_path, monkeypatch):
    monkeypatch.setenv(TINY_ENV, "1")
    monkeypatch.setattr(models, "bundled_status", lambda name: "installed")
    assert main(["record", *COMMON]) == 0  # `record` takes the tiny model too
    assert main(["analyze", "retrieval", *COMMON, "--method", "cosine", "--pivot", "zh", "--center",
                 "--out", str(tmp_path / "a")]) == 0
    cli = pd.read_csv(tmp_path / "a" / "retrieval.csv")
    assert main(["export", "--analysis", "retrieval", *COMMON, "--set", "method=cosine", "--set", "pivot=zh",
                 "--set", "center=true", "--formats", "html", "--out", str(tmp_path / "e")]) == 0
    exported = pd.read_csv(tmp_path / "e" / "retrieval.csv")
    pd.testing.assert_frame_equal(cli, exported)

    settings = Settings(model=ModelSpec(source="tiny:llama"),
                           corpus=CorpusSpec(source="udhr", langs=("en", "zh", "sw"), limit=5))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["wb_settings"] = settings.to_dict()
    at.run()
    at.switch_page("app_pages/layer_profile.py").run()
    at.selectbox(key="lp_pivot").set_value("zh").run()
    at.radio(key="lp_method").set_value("cosine").run()
    at.toggle(key="lp_center").set_value(True).run()
    ok(at)
    shown = trace(figures(at)[0], "all pairs")
    allp = cli[cli["series"] == "all_pairs"]
    np.testing.assert_array_equal(ys(shown), allp["accuracy"].to_numpy())  # identical, not close
    assert len(allp) == 5  # emb + 4 blocks of tiny:llama


def test_compare_views_carry_a_spec_that_regenerates_them(tmp_path):
    """A Compare-page figure is a registry spec: its export's manifest rebuilds the same numbers."""
    from workbench.export import export_figure

    base = {"model": "tiny:llama", "corpus": "udhr", "langs": ["en", "zh", "sw"], "limit": 4}
    spec = {**base, "analysis": "compare_retrieval",
            "params": {"state_b": {"source": "tiny:qwen2"}, "method": "cosine", "pivot": "en"}}
    fig, table, info = build_figure(spec)
    a = build_figure({**base, "analysis": "retrieval", "params": {"method": "cosine"}})[1]
    b = build_figure({**base, "model": "tiny:qwen2", "analysis": "retrieval",
                              "params": {"method": "cosine"}})[1]
    joined = table.merge(a, on=["layer", "series"]).merge(b, on=["layer", "series"], suffixes=("_a", "_b"))
    np.testing.assert_array_equal(joined["a"], joined["accuracy_a"])
    np.testing.assert_array_equal(joined["b"], joined["accuracy_b"])
    np.testing.assert_array_equal(joined["diff"], joined["b"] - joined["a"])
    assert [r["role"] for r in info["recordings"]] == ["a", "b"]
    export_figure(fig, table, tmp_path, "cmp", formats=["html"], manifest=info)
    assert main(["export", "--manifest", str(tmp_path / "cmp.manifest.json"), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "cmp.csv").read_bytes() == (tmp_path / "cmp.csv").read_bytes()

"""One number, one code path: the same analysis and parameters give identical numbers through
the registry whichever door the user comes in by — `workbench analyze`, `workbench export`,
and the page (AppTest) — and every one of them accepts the tiny test model `tiny:llama`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest
from test_pages import APP, figures, ok, trace

from workbench import models
from workbench import ui_support as ui
from workbench.cli import main
from workbench.config import CorpusSpec, ModelSpec

COMMON = ["--model", "tiny:llama", "--corpus", "udhr", "--langs", "en,zh,sw", "--limit", "5"]


def test_analyze_export_and_page_agree_on_retrieval(tmp_path, monkeypatch):
    monkeypatch.setenv(ui.TINY_ENV, "1")
    monkeypatch.setattr(models, "bundled_status", lambda name: "installed")
    assert main(["record", *COMMON]) == 0  # `record` takes the tiny model too
    assert main(["analyze", "retrieval", *COMMON, "--method", "cosine", "--pivot", "zh", "--center",
                 "--out", str(tmp_path / "a")]) == 0
    cli = pd.read_csv(tmp_path / "a" / "retrieval.csv")
    assert main(["export", "--analysis", "retrieval", *COMMON, "--set", "method=cosine", "--set", "pivot=zh",
                 "--set", "center=true", "--formats", "html", "--out", str(tmp_path / "e")]) == 0
    exported = pd.read_csv(tmp_path / "e" / "retrieval.csv")
    pd.testing.assert_frame_equal(cli, exported)

    settings = ui.Settings(model=ModelSpec(source="tiny:llama"),
                           corpus=CorpusSpec(source="udhr", langs=("en", "zh", "sw"), limit=5))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["wb_settings"] = settings.to_dict()
    at.run()
    at.switch_page("pages/layer_profile.py").run()
    at.selectbox(key="lp_pivot").set_value("zh").run()
    at.segmented_control(key="lp_method").set_value("cosine").run()
    at.toggle(key="lp_center").set_value(True).run()
    ok(at)
    shown = trace(figures(at)[0], "all pairs")
    allp = cli[cli["series"] == "all_pairs"]
    np.testing.assert_allclose(np.asarray(shown.y, dtype=float), allp["accuracy"].to_numpy(), rtol=0, atol=0)
    assert len(allp) == 5  # emb + 4 blocks of tiny:llama

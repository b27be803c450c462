"""Paper-figure export from the UI: the Export popover, its zip, and the manifest that rebuilds it.

Same setting as test_pages.py (tiny random-init model, UDHR, 6 units × en/zh/sw, a store
recorded once per module), whose fixtures and helpers are imported. Static rendering is real
(kaleido + the system Chromium) where pixels are checked, and stubbed where only the data and
manifest matter, to keep the file well under a minute.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import test_pages
from PIL import Image
from test_pages import LANGS, SETTINGS, VIEWS, app, figures, ok, trace, xs, ys

from workbench import export, models
from workbench.config import ModelSpec
from workbench.recipes import tables as views
from workbench.viz import figures as viz

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pages` is a folder of the checkout, not an installed package
    sys.path.insert(0, str(ROOT))

from app_pages import _ui as ui_st  # noqa: E402
from workbench.recipes.build import build_figure  # noqa: E402
from workbench.recipes.settings import TINY_MODEL, Settings  # noqa: E402

FORMATS = ["pdf", "svg", "png"]

# test_pages.py's fixtures: the tiny-model environment and the store recorded once per module.
_tiny_env = test_pages._tiny_env
_recorded_store = test_pages._recorded_store
recording = test_pages.recording
pair_recording = test_pages.pair_recording


def unzip(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def manifest_of(files: dict[str, bytes]) -> dict:
    (name,) = [n for n in files if n.endswith(export.MANIFEST_SUFFIX)]
    return json.loads(files[name])


def csv_of(files: dict[str, bytes]) -> bytes:
    (name,) = [n for n in files if n.endswith(".csv")]
    return files[name]


@pytest.fixture
def cli_records_with_tiny(tiny_state):
    """`recipes.build_figure` (what `workbench export --manifest` runs) loads `tiny:llama` like any model
    (an ordinary source now: the one loader gives the same state as the fixture's)."""
    assert models.load("tiny:llama") is tiny_state


@pytest.fixture
def stub_render(monkeypatch):
    """No browser: figure files hold a placeholder (for tests of data and manifests only)."""
    monkeypatch.setattr(export.render, "render_image", lambda fig, fmt, dpi=300: b"stub")


def rebuilt_csv(spec: dict) -> bytes:
    _, data, _ = build_figure(spec)
    return export.csv_bytes(data)


# --------------------------------------------------------------------------- the zip (no UI)


def test_export_zip_holds_paper_figures_data_and_manifest(recording, tiny_state, cli_records_with_tiny):
    spec = ui_st.figure_spec(SETTINGS, "retrieval", {"method": "cosine", "k": 4, "pivot": "zh", "center": True,
                                                     "per_language": True})
    _, summary = views.retrieval_tables(recording, "mean", method="cosine", k=4, pivot="zh", center=True)
    fig = viz.retrieval_by_layer_figure(summary, per_language=True)
    shown = fig.to_json()
    name = "Retrieval: by layer/../en→zh"
    blob = ui_st.export_zip(fig, summary, name, spec=spec, formats=FORMATS, width="double", dpi=150)
    assert fig.to_json() == shown  # the page's figure is themed on a copy
    stem = export.safe_name(name)
    files = unzip(blob)
    assert sorted(files) == sorted(f"{stem}.{x}" for x in [*FORMATS, "csv", "parquet", "manifest.json"])
    assert files[f"{stem}.pdf"].startswith(b"%PDF") and b"<svg" in files[f"{stem}.svg"]
    png = Image.open(io.BytesIO(files[f"{stem}.png"]))
    assert png.width == round(6.9 * 150)
    # The data: the table shown, byte for byte as the Data (CSV) button and `workbench export` write it.
    assert files[f"{stem}.csv"] == summary.to_csv(index=False).encode() == export.csv_bytes(summary)
    parquet = pd.read_parquet(io.BytesIO(files[f"{stem}.parquet"]))
    np.testing.assert_array_equal(parquet["accuracy"], summary["accuracy"])
    m = manifest_of(files)
    assert m["format"] == "workbench-figure-manifest" and m["name"] == stem
    assert m["languages"] == list(LANGS)
    assert m["params"] == {"pooling": "mean", "method": "cosine", "k": 4, "pivot": "zh", "center": True,
                           "per_language": True, "layers": "all", "aggregate": "all"}  # the MEXA preset's two
    assert m["model"]["source"] == TINY_MODEL and m["model"]["fingerprint"] == tiny_state.fingerprint
    assert set(m["corpus"]["hash"]) == set(LANGS) and all(m["corpus"]["hash"].values())
    assert m["corpus"]["limit"] == 6 and m["record_spec"]["max_length"] == SETTINGS.max_length
    assert m["versions"]["plotly"] and m["versions"]["kaleido"]
    assert m["export"]["dpi"] == 150 and m["export"]["width_in"] == 6.9 and m["export"]["png_px"][0] == png.width
    assert m["data_sha256"] == hashlib.sha256(files[f"{stem}.csv"]).hexdigest()
    # The tiny model lives only in the app: recorded in full, but not offered to the CLI.
    assert m["regenerable"] is False and "tiny:llama" in m["not_regenerable"]
    assert "spec" not in m and m["commands"]["regenerate"] is None
    assert m["ui_spec"]["params"] == m["params"] and m["ui_spec"]["title"] == fig.layout.title.text
    # ... yet the recorded spec is the page's: it rebuilds the same table.
    assert rebuilt_csv(m["ui_spec"]) == files[f"{stem}.csv"]


def test_manifest_command_regenerates_the_same_data(recording, tiny_state, cli_records_with_tiny, monkeypatch,
                                                    tmp_path):
    """A model the CLI can load (here a stand-in with the tiny model's weights) gets a working command."""
    from workbench.cli import main

    stand_in = "/models/tiny-copy"
    real_fp = models.fingerprint
    monkeypatch.setattr(models, "fingerprint", lambda spec, **kw: tiny_state.fingerprint
                        if getattr(spec, "source", spec) == stand_in else real_fp(spec, **kw))
    settings = Settings(ModelSpec(source=stand_in), SETTINGS.corpus)
    matrix = views.retrieval_matrix_at(recording, "mean", 2, method="margin", k=4)
    fig = viz.retrieval_heatmap(matrix, title="Retrieval accuracy at layer 2 (margin)")
    spec = ui_st.figure_spec(settings, "retrieval_heatmap", {"layer": 2, "method": "margin", "k": 4})
    files = unzip(ui_st.export_zip(fig, matrix.rename_axis(index="source"), "heatmap", spec=spec, index=True,
                                   formats=["svg"]))
    m = manifest_of(files)
    assert m["regenerable"] is True and m["spec"]["model"]["source"] == stand_in
    assert m["commands"]["regenerate"] == "workbench export --manifest heatmap.manifest.json --overwrite"
    assert csv_of(files).startswith(b"source,en,zh,sw\n")
    unpacked = tmp_path / "unzipped"
    unpacked.mkdir()
    for n, b in files.items():
        (unpacked / n).write_bytes(b)
    monkeypatch.chdir(unpacked)
    argv = shlex.split(m["commands"]["regenerate_elsewhere"].replace("DIR", str(tmp_path / "again")))
    assert argv[:2] == ["workbench", "export"] and main(argv[1:]) == 0
    assert (tmp_path / "again" / "heatmap.csv").read_bytes() == csv_of(files)
    assert json.loads((tmp_path / "again" / "heatmap.manifest.json").read_text())["spec"] == m["spec"]


# --------------------------------------------------------------------------- the popover


def test_every_layer_profile_figure_has_an_export_popover(pair_recording):
    at = app("app_pages/layer_profile.py")
    ok(at)
    pops = at.get("popover")
    assert len(pops) == len(at.get("plotly_chart")) == 3
    for pop in pops:
        assert pop.proto.popover.label == "Export"
        assert pop.multiselect[0].value == FORMATS
        assert pop.radio[0].options == ["Single column (3.3 in)", "Double column (6.9 in)"]
        assert pop.selectbox[0].value == 300
        assert [b.label for b in pop.button] == ["Prepare export"]
        assert not pop.download_button  # nothing prepared yet


def test_prepare_export_offers_one_zip_of_what_the_page_shows(pair_recording, recording):
    at = app("app_pages/layer_profile.py")
    at.radio(key="lp_method").set_value("cosine")
    at.toggle(key="lp_center").set_value(True).run()
    ok(at)
    slug = "retrieval-by-layer"
    at.radio(key=f"exp-width-{slug}").set_value("single")
    at.selectbox(key=f"exp-dpi-{slug}").set_value(600)
    at.button(key=f"exp-go-{slug}").click().run()
    ok(at)
    pop = at.get("popover")[0]
    assert [b.proto.label for b in pop.download_button] == [f"Download {slug}.zip"]
    files = unzip(at.session_state[ui_st.export_state_key(slug)]["data"])
    assert sorted(files) == sorted(f"{slug}.{x}" for x in [*FORMATS, "csv", "parquet", "manifest.json"])
    assert Image.open(io.BytesIO(files[f"{slug}.png"])).width == round(3.3 * 600)
    m = manifest_of(files)
    assert m["languages"] == list(LANGS)
    assert m["params"]["method"] == "cosine" and m["params"]["center"] is True and m["params"]["pivot"] == "en"
    assert m["export"]["width_in"] == 3.3 and m["export"]["dpi"] == 600
    # The CSV is the table behind the figure on the page.
    _, want = views.retrieval_tables(recording, "mean", method="cosine", k=4, pivot="en", center=True)
    assert csv_of(files) == export.csv_bytes(want)
    table = pd.read_csv(io.BytesIO(csv_of(files)))
    shown = trace(figures(at)[0], "all pairs")
    allp = table[table["series"] == "all_pairs"]
    assert xs(shown) == [str(x) for x in allp["layer"]]
    np.testing.assert_allclose(ys(shown), allp["accuracy"])
    # A changed figure makes the prepared zip stale: it is no longer offered.
    at.radio(key="lp_method").set_value("margin").run()
    ok(at)
    assert not at.get("popover")[0].download_button


@pytest.mark.parametrize("page", VIEWS)
def test_every_figure_exports_a_spec_that_rebuilds_its_csv(page, pair_recording, cli_records_with_tiny,
                                                           stub_render):
    at = app(page)
    ok(at)
    slugs = [b.key.removeprefix("exp-go-") for b in at.button if (b.key or "").startswith("exp-go-")]
    assert len(slugs) == len(at.get("plotly_chart")) >= 2
    for slug in slugs:
        at.button(key=f"exp-go-{slug}").click().run()
        ok(at)
        files = unzip(at.session_state[ui_st.export_state_key(slug)]["data"])
        m = manifest_of(files)
        assert m["ui_figure"] == slug and m["exported_from"].startswith("workbench UI")
        assert rebuilt_csv(m["ui_spec"]) == csv_of(files), slug


def test_an_export_failure_is_a_readable_message(recording, monkeypatch):
    def no_browser(*args, **kwargs):
        raise export.ChromiumNotFoundError(export.NO_CHROMIUM)

    monkeypatch.setattr(export.render, "render_image", no_browser)
    at = app("app_pages/neurons.py")
    ok(at)
    at.button(key="exp-go-language-specific-neurons").click().run()
    assert not at.exception
    (message,) = [e.value for e in at.error]
    assert "needs Chromium" in message and "apt-get install chromium" in message and "Traceback" not in message
    assert not any(b.proto.label.startswith("Download") for b in at.get("download_button"))

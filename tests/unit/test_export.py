"""workbench.export on synthetic figures: names, no-overwrite, data round trip, manifest, static formats.

Tests that render PDF/SVG/PNG take the `chromium` fixture: without a browser they FAIL
with the install instruction (the README's `make test` installs Debian's chromium).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from workbench import export
from workbench.export import ExportError, OverwriteError, export_figure, safe_name
from workbench.viz import figures


def _summary() -> pd.DataFrame:
    """A retrieval summary like `summarize_by_layer`'s: layers 'emb', 0..3; planted numbers."""
    layers = ["emb", 0, 1, 2, 3]
    rows = []
    for i, layer in enumerate(layers):
        for j, series in enumerate(["all_pairs", "pivot", "zh", "sw"]):
            rows.append({"layer": layer, "series": series, "accuracy": (i + 1) / 7 + j / 31, "center": False})
    df = pd.DataFrame(rows)
    df.attrs.update(method="margin", pivot="en")
    return df


def _manifest_stub() -> dict:
    return {"analysis": "retrieval", "params": {"method": "margin"}, "spec": {"analysis": "retrieval"},
            "commands": {"analyze": "workbench analyze retrieval --langs en,zh,sw"}}


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("raw,expected", [
    ("retrieval", "retrieval"),
    ("../../etc/passwd", "etc_passwd"),
    ("/abs/path/fig", "abs_path_fig"),
    ("..\\..\\windows\\fig", "windows_fig"),
    ("Fig 3: en→sw (layer 12)", "Fig_3_en_sw_layer_12"),
    ("..", "figure"),
    ("", "figure"),
    (".hidden", "hidden"),
    ("-rf", "rf"),
    ("a..b", "a_b"),
    ("plot.pdf", "plot"),
    ("CON", "CON_"),
    ("naïve café", "naive_cafe"),
    ("x" * 300, "x" * 100),
])
def test_safe_name(raw, expected):
    assert safe_name(raw) == expected


def test_unsafe_names_stay_inside_out_dir(tmp_path):
    fig = figures.retrieval_by_layer_figure(_summary())
    out = tmp_path / "out"
    for name in ("../escape", "/etc/evil", "sub/dir/name", "..\\x", "a\x00b", "~/home"):
        paths = export_figure(fig, _summary(), out, name, formats=("html",), manifest=_manifest_stub())
        for p in paths:
            assert p.resolve().parent == out.resolve(), p
            assert "/" not in p.name and "\\" not in p.name and not p.name.startswith(".")
    assert not (tmp_path / "escape.csv").exists()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out"]


# --------------------------------------------------------------------------- overwrite


def test_no_overwrite_without_flag(tmp_path):
    fig = figures.retrieval_by_layer_figure(_summary())
    first = export_figure(fig, _summary(), tmp_path, "fig", formats=("html",), manifest=_manifest_stub())
    before = {p: p.read_bytes() for p in first}
    changed = _summary().assign(accuracy=0.5)
    with pytest.raises(OverwriteError, match=r"fig\.html exists.*overwrite") as info:
        export_figure(fig, changed, tmp_path, "fig", formats=("html",), manifest=_manifest_stub())
    assert isinstance(info.value, FileExistsError) and isinstance(info.value, ValueError)
    assert {p: p.read_bytes() for p in first} == before  # nothing was touched
    # one existing file is enough to refuse
    for p in first[1:]:
        p.unlink()
    with pytest.raises(OverwriteError, match="fig.html"):
        export_figure(fig, changed, tmp_path, "fig", formats=("html",), manifest=_manifest_stub())
    again = export_figure(fig, changed, tmp_path, "fig", formats=("html",), manifest=_manifest_stub(),
                          overwrite=True)
    assert pd.read_csv(again[1])["accuracy"].eq(0.5).all()


def test_bad_options_are_clear_errors(tmp_path):
    fig = figures.retrieval_by_layer_figure(_summary())
    with pytest.raises(ExportError, match="unknown figure format"):
        export_figure(fig, _summary(), tmp_path, "f", formats=("eps",), manifest=None)
    with pytest.raises(ExportError, match="width must be"):
        export_figure(fig, _summary(), tmp_path, "f", formats=("html",), width_in="triple", manifest=None)
    with pytest.raises(ExportError, match="dpi"):
        export_figure(fig, _summary(), tmp_path, "f", formats=("html",), dpi=5, manifest=None)
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- data and manifest


def test_csv_round_trips_to_the_trace_numbers(tmp_path):
    summary = _summary()
    fig = figures.retrieval_by_layer_figure(summary)
    paths = export_figure(fig, summary, tmp_path, "r", formats=("html",), manifest=_manifest_stub())
    back = pd.read_csv(tmp_path / "r.csv")
    names = {"all_pairs": "all pairs", "pivot": "with pivot"}
    for series, rows in back.groupby("series", sort=False):
        trace = next(t for t in fig.data if t.name == names.get(series, series))
        np.testing.assert_array_equal(rows["accuracy"].to_numpy(), np.asarray(trace.y, dtype=float))
        assert [str(x) for x in rows["layer"]] == list(trace.x)
    # Parquet holds the same numbers; the mixed 'emb'/int layer column becomes text there
    pq = pd.read_parquet(tmp_path / "r.parquet")
    np.testing.assert_array_equal(pq["accuracy"].to_numpy(), summary["accuracy"].to_numpy())
    assert list(pq["layer"]) == [str(x) for x in summary["layer"]]
    assert [p.name for p in paths] == ["r.html", "r.csv", "r.parquet", "r.manifest.json"]


def test_heatmap_csv_matches_z(tmp_path):
    m = pd.DataFrame([[np.nan, 0.25, 1 / 3], [0.5, np.nan, 0.125], [1.0, 2 / 3, np.nan]],
                     index=["en", "zh", "sw"], columns=["en", "zh", "sw"])
    fig = figures.retrieval_heatmap(m)
    data = m.rename_axis(index="source").reset_index()
    export_figure(fig, data, tmp_path, "h", formats=("html",), manifest=None)
    back = pd.read_csv(tmp_path / "h.csv").set_index("source")
    np.testing.assert_array_equal(back.to_numpy(), np.asarray(fig.data[0].z, dtype=float))


def test_manifest_contents(tmp_path):
    fig = figures.retrieval_by_layer_figure(_summary())
    export_figure(fig, _summary(), tmp_path, "r", formats=("html",), width_in="double", dpi=150,
                  manifest=_manifest_stub())
    m = json.loads((tmp_path / "r.manifest.json").read_text())
    assert m["format"] == "workbench-figure-manifest" and m["name"] == "r"
    assert m["analysis"] == "retrieval" and m["params"] == {"method": "margin"}
    assert m["export"]["width_in"] == 6.9 and m["export"]["dpi"] == 150
    assert m["export"]["png_px"][0] == round(6.9 * 150)
    for lib in ("workbench", "torch", "transformers", "nnsight", "plotly", "kaleido"):
        assert lib in m["versions"]
    assert m["versions"]["plotly"] and m["versions"]["workbench"]
    assert m["commands"]["analyze"].startswith("workbench analyze retrieval")
    assert m["commands"]["regenerate"].startswith("workbench export --manifest ")
    assert str((tmp_path / "r.manifest.json").resolve()) in m["commands"]["regenerate"]
    assert m["files"]["csv"] == "r.csv"
    import hashlib
    assert m["data_sha256"] == hashlib.sha256((tmp_path / "r.csv").read_bytes()).hexdigest()
    assert re.match(r"\d{4}-\d\d-\d\dT", m["created"])
    assert export.read_manifest(tmp_path / "r.manifest.json")["spec"] == {"analysis": "retrieval"}


def test_read_manifest_refuses_other_json(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ExportError, match="not a workbench figure manifest"):
        export.read_manifest(tmp_path / "x.json")
    with pytest.raises(FileNotFoundError):
        export.read_manifest(tmp_path / "missing.json")


# --------------------------------------------------------------------------- paper theme


def test_paper_figure_is_a_sized_copy():
    fig = figures.retrieval_by_layer_figure(_summary())
    before = fig.to_json()
    paper = export.paper_figure(fig, "single")
    assert fig.to_json() == before  # the interactive figure is left alone
    assert paper.layout.width == round(3.3 * 96) and paper.layout.height == round(0.75 * 3.3 * 96)
    assert paper.layout.font.size >= 9 and paper.layout.hovermode is False
    assert paper.layout.template.layout.colorway == tuple(fig.layout.template.layout.colorway)
    assert [t.line.color for t in paper.data] == [t.line.color for t in fig.data]  # language colours kept
    wide = export.paper_figure(fig, "double", title=False)
    assert wide.layout.width == round(6.9 * 96) and not wide.layout.title.text


# --------------------------------------------------------------------------- static formats


def _check_pdf(data: bytes, width_pt: float) -> None:
    assert data.startswith(b"%PDF-1.")
    assert data.rstrip().endswith(b"%%EOF") and b"startxref" in data
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", "-"], input=data, capture_output=True, check=True, text=False).stdout
        assert re.search(rb"^Pages:\s+1$", info, re.M), info  # the padding differs between poppler versions
        return
    try:
        import pypdf
    except ImportError:  # no parser installed: check the structure ourselves
        assert len(re.findall(rb"/Type\s*/Page\b", data)) == 1
        box = [float(x) for x in re.search(rb"/MediaBox\s*\[([^\]]*)\]", data).group(1).split()]
        assert abs((box[2] - box[0]) - width_pt) < 1.0
        return
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1 and abs(float(reader.pages[0].mediabox.width) - width_pt) < 1.0


@pytest.mark.parametrize("width,dpi", [("single", 300), ("double", 200)])
def test_static_formats_are_valid(tmp_path, chromium, width, dpi):
    from PIL import Image

    w_in = export.COLUMN_WIDTHS[width]
    fig = figures.retrieval_by_layer_figure(_summary())
    paths = export_figure(fig, _summary(), tmp_path, "fig", width_in=width, dpi=dpi, manifest=_manifest_stub())
    assert [p.suffix for p in paths] == [".pdf", ".svg", ".png", ".csv", ".parquet", ".json"]
    _check_pdf((tmp_path / "fig.pdf").read_bytes(), w_in * 72)
    root = ET.parse(tmp_path / "fig.svg").getroot()
    assert root.tag.endswith("svg") and float(root.attrib["width"]) == round(w_in * 96)
    with Image.open(tmp_path / "fig.png") as im:
        assert im.format == "PNG" and im.size[0] == round(w_in * dpi)
        m = json.loads((tmp_path / "fig.manifest.json").read_text())
        assert list(im.size) == m["export"]["png_px"]

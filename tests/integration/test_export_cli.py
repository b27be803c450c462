"""`workbench export | report | figures` on a tiny local model: specs, manifests, report, figure sets.

Rendering needs Chromium (kaleido drives it); without one these tests FAIL with the
install instruction rather than skip.
"""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pandas as pd
import pytest

from workbench import cli
from workbench.cli.export import add_export_parser
from workbench.recipes import ANALYSES, analyze_command, normalize_spec
from workbench.recipes.build import build_figure


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory, model_dir):
    """A fine-tune artifact that changes block 1's down projection only."""
    import torch
    from safetensors.torch import load_file, save_file

    d = tmp_path_factory.mktemp("art") / "tuned"
    d.mkdir()
    name = "model.layers.1.mlp.down_proj.weight"
    w = load_file(f"{model_dir}/model.safetensors")[name]
    save_file({name: w + 0.5 * torch.randn(w.shape, generator=torch.Generator().manual_seed(1))},
              str(d / "delta.safetensors"))
    (d / "manifest.json").write_text(json.dumps({"method": "test"}))
    return str(d)


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("shared-cache")


@pytest.fixture(autouse=True)
def _shared_cache(module_cache, monkeypatch):
    """One store for this module: the tiny recordings are made once, not once per test."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(module_cache))


@pytest.fixture
def run(monkeypatch):
    """cli.main with the export commands (added here until cli.build_parser wires them)."""
    original = cli.build_parser

    def build():
        p = original()
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        if "export" not in sub.choices:
            add_export_parser(sub)
        return p

    monkeypatch.setattr(cli, "build_parser", build)
    return lambda *argv: cli.main([str(a) for a in argv])


def _spec(model_dir, analysis, **params):
    return {"analysis": analysis, "model": model_dir, "corpus": "udhr", "langs": ["en", "zh", "sw"], "limit": 5,
            "params": params}


# --------------------------------------------------------------------------- specs -> figures


def _trace_points(fig, lang):
    ts = [t for t in fig.data if t.name == lang]
    return np.concatenate([np.column_stack([t.x, t.y]) for t in ts])


def _map_matches(fig, data):
    for lang, rows in data.groupby("lang"):
        np.testing.assert_array_equal(_trace_points(fig, lang), rows[["x", "y"]].to_numpy())


def _sensitivity_matches(fig, data):
    bars = {t.name: dict(zip(t.x, t.y)) for t in fig.data}
    for r in data.dropna().itertuples():
        group = {"N2D": "N2D layers", "D2N": "D2N layers"}.get(r.allocation, "other layers")
        assert bars[group][r.layer] == r.score


def _overlap_matches(fig, data):
    for lang, rows in data.groupby("lang"):
        np.testing.assert_array_equal(next(t for t in fig.data if t.name == lang).y, rows["jaccard"])


def _specific_matches(fig, data):
    for t in fig.data:
        np.testing.assert_array_equal(t.y, data[t.name])


_MATCHES = {"map": _map_matches, "sensitivity": _sensitivity_matches, "overlap": _overlap_matches,
            "specific_neurons": _specific_matches}


def test_every_analysis_builds_and_data_matches_traces(model_dir):
    for analysis in ANALYSES:
        if analysis == "retrieval_compare":
            continue
        two = {"state_b": {"source": model_dir}} if analysis.startswith("compare_") else {}
        fig, data, info = build_figure(_spec(model_dir, analysis, **two))
        assert len(fig.data) > 0 and len(data) > 0, analysis
        if two and "diff" in data:  # the same state on both sides: every difference is 0
            assert (data["diff"].dropna() == 0).all(), analysis
        assert info["spec"]["params"].get("layer") != "best"  # resolved for the manifest
        assert info["model"]["fingerprint"] and info["languages"]
        if analysis in _MATCHES:
            _MATCHES[analysis](fig, data)


def test_spec_errors_are_clear(model_dir):
    with pytest.raises(ValueError, match="analysis"):
        normalize_spec({"analysis": "nope"})
    with pytest.raises(ValueError, match=r"unknown parameter.*'methd'"):
        normalize_spec({"analysis": "map", "params": {"methd": "pca"}})
    with pytest.raises(ValueError, match="unknown key"):
        normalize_spec({"analysis": "map", "colour": "red"})
    with pytest.raises(ValueError, match="needs params.artifact"):
        normalize_spec({"analysis": "retrieval_compare"})
    flat = normalize_spec({"analysis": "map", "method": "tsne", "layer": "2"})
    assert flat["params"]["method"] == "tsne" and flat["params"]["layer"] == 2
    cmd = analyze_command(_spec(model_dir, "map", layer=2, method="tsne", links=True))
    assert cmd.startswith("workbench analyze map --model ") and "--method tsne" in cmd and "--links" in cmd
    assert analyze_command(_spec(model_dir, "specific_neurons")).startswith("workbench analyze specific_neurons ")


def test_analyze_command_computes_the_same_numbers(model_dir, tmp_path, run):
    spec = _spec(model_dir, "overlap", top_frac=0.1)
    _, data, info = build_figure(spec)
    argv = info["commands"]["analyze"].split()[1:]
    argv[argv.index("--out") + 1] = str(tmp_path)
    assert run(*argv) == 0
    back = pd.read_csv(tmp_path / "overlap.csv")
    np.testing.assert_allclose(back["jaccard"], data["jaccard"])


# --------------------------------------------------------------------------- manifest round trip


def test_manifest_regenerates_identical_files(model_dir, tmp_path, run, monkeypatch, chromium):
    from PIL import Image, ImageChops

    a, b = tmp_path / "a", tmp_path / "b"
    assert run("export", "--analysis", "map", "--model", model_dir, "--langs", "en,zh,sw", "--limit", 5,
               "--set", "layer=best", "--set", "method=tsne", "--set", "links=true", "--name", "../t-SNE map!",
               "--formats", "pdf,png", "--out", a) == 0
    manifest = a / "t-SNE_map.manifest.json"
    m = json.loads(manifest.read_text())
    assert m["spec"]["params"]["layer"] in (0, 1, 2, 3) and m["params"]["method"] == "tsne"
    assert m["model"]["source"] == model_dir and m["corpus"]["hash"]["sw"]
    assert m["record_spec"]["max_length"] == 256 and m["languages"] == ["en", "zh", "sw"]
    assert m["commands"]["analyze"].startswith("workbench analyze map") and "--method tsne" in m["commands"]["analyze"]
    # a fresh cache: the regeneration records again from scratch
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "fresh-cache"))
    assert run("export", "--manifest", manifest, "--out", b) == 0
    assert (a / "t-SNE_map.csv").read_bytes() == (b / "t-SNE_map.csv").read_bytes()
    with Image.open(a / "t-SNE_map.png") as x, Image.open(b / "t-SNE_map.png") as y:
        assert x.size == y.size == (990, m["export"]["png_px"][1])
        assert ImageChops.difference(x.convert("RGB"), y.convert("RGB")).getbbox() is None

    def undated(p):
        return re.sub(rb"/(CreationDate|ModDate) \(D:[^)]*\)", b"", p.read_bytes())

    assert undated(a / "t-SNE_map.pdf") == undated(b / "t-SNE_map.pdf")
    # in place (the default --out is the manifest's folder) it refuses without --overwrite
    assert run("export", "--manifest", manifest) == 2


def test_export_refuses_to_overwrite(model_dir, tmp_path, run, capsys):
    argv = ("export", "--analysis", "retrieval", "--model", model_dir, "--langs", "en,sw", "--limit", 4,
            "--formats", "html", "--out", tmp_path)
    assert run(*argv) == 0
    csv = (tmp_path / "retrieval.csv").read_bytes()
    capsys.readouterr()
    assert run(*argv, "--set", "method=cosine") == 2
    assert "retrieval.html exists" in capsys.readouterr().err
    assert (tmp_path / "retrieval.csv").read_bytes() == csv


# --------------------------------------------------------------------------- report and figure sets


def _script_sources(page: str) -> list[str]:
    """src attributes of <script> tags (script bodies are not parsed as markup)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in ("script", "link", "img", "iframe"):
                found.extend(v for k, v in attrs if k in ("src", "href") and v)

    P().feed(page)
    return found


def test_report_has_every_section(model_dir, artifact_dir, tmp_path, run, chromium):
    out = tmp_path / "rep"
    assert run("report", "--model", model_dir, "--langs", "en,zh,sw", "--limit", 5, "--artifact", artifact_dir,
               "--out", out) == 0
    page = (out / "report.html").read_text()
    for section in ("layer-profile", "maps", "subspaces", "neurons", "layer-predictions", "comparison"):
        assert f'<section id="{section}">' in page and f'href="#{section}"' in page
    names = ["retrieval_by_layer", "sensitivity_en_zh", "overlap_by_layer", "pca_best_layer", "tsne_best_layer",
             "lens_subspaces", "separation_by_layer", "specific_neurons", "latent_sw_zh", "tokens_sw_zh",
             "retrieval_before_after"]
    for name in names:
        assert f'id="fig-{name}"' in page
        assert (out / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF")
        assert (out / "figures" / f"{name}.manifest.json").is_file()
    assert page.count("<figcaption>") == len(names)
    assert _script_sources(page) == []  # plotly.js inlined: works offline
    assert len(page) > 1_000_000
    best = json.loads((out / "report.json").read_text())["best_layer"]
    assert f"Maps at layer {best}" in page
    # the fine-tune changed block 1 only: retrieval before it is untouched
    cmp = pd.read_csv(out / "figures" / "retrieval_before_after.csv")
    assert (cmp[cmp["layer"].isin(["emb", "0"])]["diff"] == 0).all()
    assert run("report", "--model", model_dir, "--langs", "en,zh,sw", "--limit", 5, "--out", out) == 2


def test_example_figure_set_renders(model_dir, artifact_dir, tmp_path, run, chromium, capsys):
    out = tmp_path / "set"
    assert run("figures", "example", "--model", model_dir, "--limit", 5, "--out", out) == 0
    assert "skipped retrieval_before_after: needs --var artifact" in capsys.readouterr().err
    for name in ("retrieval_by_layer", "sensitivity_en_sw", "overlap_by_layer", "lens_subspaces", "tsne_best_layer"):
        for ext in ("pdf", "svg", "png", "csv", "parquet", "manifest.json"):
            assert (out / f"{name}.{ext}").stat().st_size > 0, (name, ext)
    assert not (out / "retrieval_before_after.csv").exists()
    m = json.loads((out / "lens_subspaces.manifest.json").read_text())
    assert m["export"]["width_in"] == 6.9 and m["languages"] == ["en", "zh", "sw", "ar", "hi", "es"]
    assert m["caption"].startswith("PCA of the language-agnostic")
    assert run("figures", "example", "--model", model_dir, "--limit", 5, "--out", out,
               "--var", f"artifact={artifact_dir}", "--only", "retrieval_before_after") == 0
    assert (out / "retrieval_before_after.png").is_file()
    assert run("figures", "example", "--model", model_dir, "--limit", 5, "--out", out, "--only", "nope") == 2

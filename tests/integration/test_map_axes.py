"""A map built from a spec names its PCA axes with their explained variance; t-SNE maps are computed once."""

from __future__ import annotations

import re

import pytest

from workbench.analysis import embed2d
from workbench.recipes.build import build_figure


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "map-axes-cache"))


def _spec(model_dir, method):
    return {"analysis": "map", "model": model_dir, "corpus": "udhr", "langs": ["en", "zh", "sw"], "limit": 5,
            "params": {"method": method, "layer": 1}}


def test_pca_axes_carry_the_explained_variance(model_dir):
    fig, data, _ = build_figure(_spec(model_dir, "pca"))
    ratios = data.attrs["explained_variance"]
    assert len(ratios) == 2 and 1 >= ratios[0] >= ratios[1] > 0
    for axis, i in (("xaxis", 0), ("yaxis", 1)):
        text = fig.layout[axis].title.text
        assert re.fullmatch(rf"PC{i + 1} \(\d+\.\d%\)", text), text
        assert float(text.split("(")[1].rstrip("%)")) == pytest.approx(100 * ratios[i], abs=0.05)


def test_tsne_of_the_same_recording_layer_and_parameters_runs_once(model_dir, monkeypatch):
    calls = {"n": 0}
    real = embed2d._BACKENDS["tsne"]

    def counted(x, random_state, **kw):
        calls["n"] += 1
        return real(x, random_state, **kw)

    monkeypatch.setitem(embed2d._BACKENDS, "tsne", counted)
    embed2d.clear_cache()
    first, _, _ = build_figure(_spec(model_dir, "tsne"))
    again, _, _ = build_figure(_spec(model_dir, "tsne"))
    assert calls["n"] == 1
    assert [list(t.x) for t in first.data] == [list(t.x) for t in again.data]
    assert first.layout.xaxis.title.text == "t-SNE 1"
    build_figure({**_spec(model_dir, "tsne"), "params": {"method": "tsne", "layer": 0}})
    assert calls["n"] == 2  # another layer: another map

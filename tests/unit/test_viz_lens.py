"""The latent-language figure: its lines, bands, colours and panels come from the curves table."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from workbench.analysis.latent_curves import latent_curves
from workbench.errors import ParamError
from workbench.viz.lens_figures import latent_curves_figure
from workbench.viz.theme import SERIES_COLOR, language_color


def _curves(entropy: bool = True, n_layers: int = 6):
    rng = np.random.default_rng(0)
    full = rng.dirichlet(np.ones(4), size=(30, n_layers))
    h = rng.gamma(2.0, 1.0, size=(30, n_layers)) if entropy else None
    return latent_curves(full[:, :, :3], h, n_boot=200, layers=["emb", *range(n_layers - 1)])


def _lines(fig: go.Figure) -> dict[str, go.Scatter]:
    return {t.name: t for t in fig.data if t.fill != "toself"}


def test_three_lines_bands_and_entropy_panel():
    curves = _curves()
    fig = latent_curves_figure(curves, source="fr", target="zh")
    assert isinstance(fig, go.Figure)
    lines = _lines(fig)
    assert set(lines) == {"P(zh)", "P(en)", "P(fr)", "entropy"}
    for name, col, lang in [("P(zh)", "p_target", "zh"), ("P(en)", "p_en", "en"), ("P(fr)", "p_source", "fr")]:
        assert lines[name].line.color == language_color(lang)
        np.testing.assert_allclose(lines[name].y, curves[col])
        assert list(lines[name].x) == [str(v) for v in curves["layer"]]
    assert lines["P(fr)"].line.dash == "dash" and lines["entropy"].line.color == SERIES_COLOR
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == 4
    zh_band = next(t for t in bands if t.legendgroup == "P(zh)")
    np.testing.assert_allclose(zh_band.y, list(curves["p_target_hi"]) + list(curves["p_target_lo"])[::-1])
    assert lines["entropy"].yaxis == "y2" and lines["P(zh)"].yaxis == "y"
    assert "n = 30" in fig.layout.title.text and "fr→zh" in fig.layout.title.text


def test_english_source_is_not_drawn_twice_and_entropy_is_optional():
    fig = latent_curves_figure(_curves(entropy=False), source="en", target="sw", title="t")
    assert set(_lines(fig)) == {"P(sw)", "P(en)"} and fig.layout.title.text == "t"
    assert "yaxis2" not in fig.layout.to_plotly_json() and all(t.yaxis in (None, "y") for t in fig.data)


def test_missing_columns():
    with pytest.raises(ParamError, match="lacks columns"):
        latent_curves_figure(_curves().drop(columns=["p_source"]), source="fr", target="zh")

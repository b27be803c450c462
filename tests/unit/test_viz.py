"""Figure builders return plotly figures with the expected traces, titles and legends."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from workbench.analysis.overlap import count_specific, language_specific_neurons, overlap_by_layer
from workbench.analysis.retrieval import retrieval_by_layer, retrieval_matrix, summarize_by_layer
from workbench.analysis.subspace import separation_by_layer
from workbench.viz import figures as F
from workbench.viz.theme import PALETTE, TEMPLATE, language_color, paper_layout

LANGS = ["en", "de", "zh"]


def _axis_titles(fig: go.Figure) -> list[str]:
    """Titles of every x and y axis of the layout."""
    layout = fig.layout.to_plotly_json()
    return [
        (layout[key].get("title") or {}).get("text") or ""
        for key in layout
        if key.startswith(("xaxis", "yaxis"))
    ]


def _check_common(fig: go.Figure, n_traces: int) -> None:
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == n_traces
    assert fig.layout.title.text
    titles = _axis_titles(fig)
    assert titles and all(titles), titles
    assert fig.layout.template.layout.font.family == pio.templates[TEMPLATE].layout.font.family
    fig.to_json()  # serialisable (what export and st.plotly_chart need)


def _legend_shown(fig: go.Figure) -> bool:
    return fig.layout.showlegend is True and any(t.showlegend is not False for t in fig.data)


@pytest.fixture(scope="module")
def vectors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 12, 6))
    return {lang: base + rng.normal(size=base.shape) for lang in LANGS}


# ----------------------------------------------------------------- theme


def test_language_colors_are_stable_and_safe():
    assert language_color("en") == language_color("eng") == language_color("eng_Latn")
    assert language_color("zh") == language_color("zho") == language_color("zh-CN")
    fixed = [language_color(c) for c in ["en", "de", "fr", "zh", "ja", "ru", "es", "ar"]]
    assert len(set(fixed)) == len(fixed)
    # hash fallback: deterministic, from the palette
    assert language_color("qaa") == language_color("qaa") and language_color("qaa") in PALETTE
    assert language_color("xx-unknown") in PALETTE


def test_paper_layout():
    fig = paper_layout(go.Figure(go.Scatter(x=[0, 1], y=[0, 1])), width_in=3.3)
    assert fig.layout.width == round(3.3 * 96) and fig.layout.height == round(0.75 * 317)
    assert fig.layout.font.size == 8


# ----------------------------------------------------------------- builders


def test_retrieval_by_layer_figure(vectors):
    summary = summarize_by_layer(retrieval_by_layer(vectors, layer_labels=["emb", 0, 1]))
    fig = F.retrieval_by_layer_figure(summary)
    _check_common(fig, 2 + 2)  # all pairs, pivot, de, zh
    assert [t.name for t in fig.data] == ["all pairs", "with pivot", "de", "zh"]
    assert list(fig.data[0].x) == ["emb", "0", "1"]
    assert fig.data[2].line.color == language_color("de")
    assert _legend_shown(fig)
    assert len(F.retrieval_by_layer_figure(summary, per_language=False).data) == 2
    assert F.retrieval_by_layer_figure(summary, title="T").layout.title.text == "T"
    # raw and centred variants are drawn apart
    both = pd.concat(
        [summary, summarize_by_layer(retrieval_by_layer(vectors, center=True))], ignore_index=True
    )
    names = [t.name for t in F.retrieval_by_layer_figure(both, per_language=False).data]
    assert names == ["all pairs", "with pivot", "all pairs (centred)", "with pivot (centred)"]


def test_retrieval_heatmap(vectors):
    mat = retrieval_matrix({lang: v[0] for lang, v in vectors.items()})
    fig = F.retrieval_heatmap(mat)
    _check_common(fig, 1)
    assert isinstance(fig.data[0], go.Heatmap)
    assert fig.data[0].colorbar.title.text == "accuracy"
    assert list(fig.data[0].x) == LANGS


def test_sensitivity_figure():
    scores = np.array([np.nan, 0.1, 0.5, 0.2, 0.4, 0.3, 0.6, 0.05])
    fig = F.sensitivity_figure(scores, [2, 4], [6], split=5)
    _check_common(fig, 3)
    other, n2d, d2n = fig.data
    assert list(n2d.x) == [2, 4] and list(d2n.x) == [6]
    assert list(other.x) == [1, 3, 5, 7]  # layer 0 (NaN) is not drawn
    assert n2d.marker.color != d2n.marker.color != other.marker.color
    assert _legend_shown(fig)
    assert len(fig.layout.shapes) == 1  # split line


def test_overlap_figure():
    rng = np.random.default_rng(1)
    probs = {lang: rng.random((4, 50)) for lang in LANGS}
    df = overlap_by_layer(probs, "en")
    fig = F.overlap_figure(df)
    _check_common(fig, 2)
    assert [t.name for t in fig.data] == ["de", "zh"]
    np.testing.assert_array_equal(fig.data[0].y, df[df.lang == "de"]["jaccard"])
    fig2 = F.overlap_figure(df, measure="pivot_frac")
    np.testing.assert_array_equal(fig2.data[1].y, df[df.lang == "zh"]["pivot_frac"])
    with pytest.raises(ValueError, match="measure"):
        F.overlap_figure(df, measure="dice")


def test_specific_neurons_figure():
    rng = np.random.default_rng(2)
    probs = {lang: rng.uniform(0.0, 0.3, size=(3, 100)) for lang in LANGS}
    probs["zh"][1, :5] = 0.9
    counts = count_specific(language_specific_neurons(probs))
    fig = F.specific_neurons_figure(counts)
    _check_common(fig, 3)
    assert fig.layout.barmode == "stack"
    assert list(fig.data[2].y) == list(counts["zh"])


def test_map_figure():
    rng = np.random.default_rng(3)
    coords = rng.normal(size=(6, 2))
    langs = ["en", "de", "en", "de", "zh", "zh"]
    texts = ["Hello <b>", "Hallo", "Bye", "Tschüss", "你好", "再见"]
    fig = F.map_figure(coords, langs, texts, title="map")
    _check_common(fig, 3)
    assert fig.layout.title.text == "map"
    assert [t.name for t in fig.data] == ["en", "de", "zh"]
    assert "&lt;b&gt;" in fig.data[0].hovertext[0]  # sentences are escaped for hover
    assert fig.data[2].marker.color == language_color("zh")
    linked = F.map_figure(coords, langs, texts, pair_ids=[0, 0, 1, 1, 0, 1], show_links=True)
    _check_common(linked, 4)
    links = linked.data[0]
    assert links.mode == "lines"
    # two pairs with 3 members each: 2 segments per pair, 3 entries per segment
    assert len(links.x) == 4 * 3
    with pytest.raises(ValueError, match="pair_ids"):
        F.map_figure(coords, langs, texts, show_links=True)
    with pytest.raises(ValueError, match="labels"):
        F.map_figure(coords, langs[:5], texts)


def test_subspace_figure():
    rng = np.random.default_rng(4)
    langs = ["en", "de", "zh"] * 3
    fig = F.subspace_figure(rng.normal(size=(9, 2)), rng.normal(size=(9, 2)), langs, ["s"] * 9)
    _check_common(fig, 6)
    assert [a.text for a in fig.layout.annotations] == [
        "language-agnostic subspace",
        "language-specific subspace",
    ]
    assert [t.showlegend for t in fig.data] == [True] * 3 + [False] * 3
    assert {t.xaxis for t in fig.data} == {"x", "x2"}


def test_separation_figure(vectors):
    sep = separation_by_layer(vectors)
    fig = F.separation_figure(sep)
    _check_common(fig, 2 + 2)
    assert [t.name for t in fig.data] == ["agnostic projection", "specific projection", "de", "zh"]
    assert fig.data[3].xaxis == "x2"
    assert _legend_shown(fig)

"""Translation retrieval (METHODS.md §1) on planted and hand-computed structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.analysis import retrieval as R
from workbench.analysis.retrieval import (
    mid_align_score,
    retrieval_accuracy,
    retrieval_by_layer,
    retrieval_matrix,
    summarize_by_layer,
)

METHODS = ("cosine", "margin", "mexa")


# ----------------------------------------------------------------- plain reference (tests only)


def _ref_accuracy(src: np.ndarray, tgt: np.ndarray, method: str, k: int) -> float:
    """Per-pair, per-row loop written straight from METHODS.md §1."""
    s = src / np.linalg.norm(src, axis=1, keepdims=True)
    t = tgt / np.linalg.norm(tgt, axis=1, keepdims=True)
    c = s @ t.T
    n = c.shape[0]
    k = min(k, n)
    if method == "margin":
        a_s = np.array([np.sort(c[i])[::-1][:k].mean() for i in range(n)])
        a_t = np.array([np.sort(c[:, j])[::-1][:k].mean() for j in range(n)])
        score = np.array([[c[i, j] / ((a_s[i] + a_t[j]) / 2) for j in range(n)] for i in range(n)])
    else:
        score = c
    correct = 0
    for i in range(n):
        others = [score[i, j] for j in range(n) if j != i]
        ok = score[i, i] > max(others)
        if method == "mexa":
            ok = ok and c[i, i] > max(c[j, i] for j in range(n) if j != i)
        correct += ok
    return correct / n


def _parallel(rng: np.random.Generator, langs, n_layers, n, d, noise):
    base = rng.normal(size=(n_layers, n, d))
    return {lang: base + noise * rng.normal(size=base.shape) for lang in langs}


# ----------------------------------------------------------------- retrieval_accuracy


@pytest.mark.parametrize("method", METHODS)
def test_noisy_copies_are_retrieved_perfectly(method):
    rng = np.random.default_rng(0)
    src = rng.normal(size=(100, 32))
    tgt = src + 0.05 * rng.normal(size=src.shape)
    assert retrieval_accuracy(src, tgt, method=method) == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_shuffled_targets_are_near_chance(method):
    rng = np.random.default_rng(1)
    src = rng.normal(size=(100, 32))
    tgt = (src + 0.05 * rng.normal(size=src.shape))[rng.permutation(100)]
    assert retrieval_accuracy(src, tgt, method=method) < 0.2


def test_margin_beats_cosine_on_a_hub():
    # Every source shares a strong common direction c; target 0 is c itself, so under
    # cosine it is the nearest target of almost every source (a hub). The ratio margin
    # divides by the hub's large neighbourhood similarity a_t[0] and undoes that.
    rng = np.random.default_rng(0)
    n, d = 50, 64
    c = rng.normal(size=d)
    c /= np.linalg.norm(c)
    u = rng.normal(size=(n, d)) / np.sqrt(d)
    src = 2.0 * c + u
    tgt = 2.0 * c + u + 1.5 * rng.normal(size=(n, d)) / np.sqrt(d)
    tgt[0] = 2.0 * c
    cos = retrieval_accuracy(src, tgt, method="cosine")
    margin = retrieval_accuracy(src, tgt, method="margin")
    assert cos < 0.2
    assert margin > cos + 0.5


# Hand case: tgt = I, so C[i, j] = src[i, j] (src rows are unit vectors).
#   C = [[0.6, 0.8, 0.0],
#        [0.0, 0.8, 0.6],
#        [0.0, 0.6, 0.8]]
# cosine: row 0 -> 1 (wrong), rows 1, 2 right -> 2/3.
# mexa: row 0 wrong; row 1: column 1 = (0.8, 0.8, 0.6) ties -> wrong; row 2 right -> 1/3.
# margin k=2: a_s = (0.7, 0.7, 0.7); a_t = (0.3, 0.8, 0.7);
#   row 0: 0.6/0.5 = 1.2 > 0.8/0.75 -> right; row 1: 0.8/0.75 > 0.6/0.7 -> right;
#   row 2: 0.8/0.7 > 0.6/0.75 -> right -> 1.
# margin k=1: a_s = (0.8, 0.8, 0.8); a_t = (0.6, 0.8, 0.8);
#   row 0: 0.6/0.7 = 0.857 < 0.8/0.8 = 1 -> wrong; rows 1, 2 right -> 2/3.
HAND_SRC = np.array([[0.6, 0.8, 0.0], [0.0, 0.8, 0.6], [0.0, 0.6, 0.8]])


@pytest.mark.parametrize(
    ("method", "k", "expected"),
    [("cosine", 4, 2 / 3), ("mexa", 4, 1 / 3), ("margin", 2, 1.0), ("margin", 1, 2 / 3)],
)
def test_hand_computed_3x3(method, k, expected):
    assert retrieval_accuracy(HAND_SRC, np.eye(3), method=method, k=k) == pytest.approx(
        expected, abs=1e-15
    )
    assert _ref_accuracy(HAND_SRC, np.eye(3), method, k) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("method", METHODS)
def test_ties_count_as_wrong_whatever_the_row_order(method):
    # Rows 0 and 1 are identical: their similarities tie; a plain argmax would pick index 0
    # and call row 0 right (2/3). Ties lose, so only row 2 counts, in any row order.
    x = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert retrieval_accuracy(x, x, method=method) == pytest.approx(1 / 3)
    perm = [2, 1, 0]
    assert retrieval_accuracy(x[perm], x[perm], method=method) == pytest.approx(1 / 3)


def test_k_is_clipped_to_n():
    # k=10 > n=3 gives the same as k=3 (every entry of the row is in the neighbourhood).
    assert retrieval_accuracy(HAND_SRC, np.eye(3), k=10) == retrieval_accuracy(
        HAND_SRC, np.eye(3), k=3
    )


@pytest.mark.parametrize(
    ("src", "tgt", "kw", "match"),
    [
        (np.ones((4, 3)), np.ones((5, 3)), {}, "shape mismatch"),
        (np.ones((4, 3)), np.ones((4, 2)), {}, "shape mismatch"),
        (np.ones((1, 3)), np.ones((1, 3)), {}, "n=2"),
        (np.ones((4, 3)), np.ones((4, 3)), {"method": "csls"}, "unknown retrieval method"),
        (np.ones((4, 3)), np.ones((4, 3)), {"k": 0}, "k must be"),
        (np.ones(4), np.ones(4), {}, "2-D"),
    ],
)
def test_retrieval_accuracy_validation(src, tgt, kw, match):
    with pytest.raises(ValueError, match=match):
        retrieval_accuracy(src, tgt, **kw)


# ----------------------------------------------------------------- matrix and by-layer


def test_retrieval_matrix_matches_pairwise_calls():
    rng = np.random.default_rng(2)
    vec = {lang: v[0] for lang, v in _parallel(rng, ["en", "de", "zh"], 1, 40, 8, 1.2).items()}
    mat = retrieval_matrix(vec, method="margin", k=4)
    assert list(mat.index) == ["en", "de", "zh"] and list(mat.columns) == ["en", "de", "zh"]
    assert np.isnan(np.diag(mat.to_numpy())).all()
    for s in vec:
        for t in vec:
            if s != t:
                assert mat.loc[s, t] == retrieval_accuracy(vec[s], vec[t], method="margin", k=4)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("center", [False, True])
def test_retrieval_by_layer_equals_per_pair_reference(method, k, center):
    rng = np.random.default_rng(3)
    langs = ["en", "de", "fr", "zh"]
    # noise chosen so accuracies are strictly between 0 and 1 (a wrong pair would show)
    vec = _parallel(rng, langs, 3, 30, 8, 1.0)
    df = retrieval_by_layer(vec, method=method, k=k, center=center)
    assert list(df.columns) == ["layer", "src", "tgt", "accuracy", "center"]
    assert len(df) == 3 * 4 * 3
    assert df.attrs["center"] is center and (df["center"] == center).all()
    accs = df["accuracy"].to_numpy()
    assert 0.05 < accs.mean() < 0.95
    for row in df.itertuples():
        s, t = vec[row.src][row.layer], vec[row.tgt][row.layer]
        if center:
            s, t = s - s.mean(axis=0), t - t.mean(axis=0)
        assert abs(row.accuracy - _ref_accuracy(s, t, method, k)) <= 1e-12


def test_retrieval_by_layer_memory_blocks_give_the_same_result(monkeypatch):
    rng = np.random.default_rng(4)
    vec = _parallel(rng, ["en", "de", "fr", "zh", "ja"], 2, 20, 6, 1.0)
    whole = retrieval_by_layer(vec, method="margin")
    monkeypatch.setattr(R, "_MAX_BLOCK_ELEMENTS", 2 * 5 * 20 * 20)  # blocks of 2 languages
    assert R._gram_blocks(5, 5, 20) == [(0, 2), (2, 4), (4, 5)]
    blocked = retrieval_by_layer(vec, method="margin")
    pd.testing.assert_frame_equal(whole, blocked)


def test_centering_changes_the_result_and_is_labelled():
    # A language-specific offset much larger than the sentence signal ruins de -> en
    # cosine retrieval (o · x_j varies with the target j); subtracting each language's
    # mean removes it.
    rng = np.random.default_rng(5)
    vec = _parallel(rng, ["en", "de"], 1, 50, 16, 0.3)
    vec["de"] = vec["de"] + 20.0 * rng.normal(size=16)
    raw = retrieval_by_layer(vec, method="cosine")
    cen = retrieval_by_layer(vec, method="cosine", center=True)
    assert raw["accuracy"].min() < 0.5 and cen["accuracy"].min() == 1.0
    assert not raw["center"].any() and cen["center"].all()


def test_retrieval_by_layer_validation():
    rng = np.random.default_rng(6)
    vec = _parallel(rng, ["en", "de"], 2, 5, 3, 0.1)
    with pytest.raises(ValueError, match="pivot"):
        retrieval_by_layer(vec, pivot="fr")
    with pytest.raises(ValueError, match="layer_labels"):
        retrieval_by_layer(vec, layer_labels=["emb", 0, 1])
    with pytest.raises(ValueError, match="shape mismatch"):
        retrieval_by_layer({"en": vec["en"], "de": vec["de"][:, :4]})
    with pytest.raises(ValueError, match="3-D"):
        retrieval_by_layer({"en": vec["en"][0], "de": vec["de"][0]})
    with pytest.raises(ValueError, match="at least 2 languages"):
        retrieval_by_layer({"en": vec["en"]})


# ----------------------------------------------------------------- summary by hand


def _table(acc: dict[tuple[object, str, str], float]) -> pd.DataFrame:
    rows = [(lay, s, t, a) for (lay, s, t), a in acc.items()]
    df = pd.DataFrame(rows, columns=["layer", "src", "tgt", "accuracy"])
    df.attrs["pivot"] = "en"
    return df


HAND = {
    # layer "emb"
    ("emb", "en", "de"): 0.1, ("emb", "en", "zh"): 0.2, ("emb", "de", "en"): 0.3,
    ("emb", "de", "zh"): 0.4, ("emb", "zh", "en"): 0.5, ("emb", "zh", "de"): 0.6,
    # layer 0
    (0, "en", "de"): 1.0, (0, "en", "zh"): 0.5, (0, "de", "en"): 0.8,
    (0, "de", "zh"): 0.0, (0, "zh", "en"): 0.7, (0, "zh", "de"): 0.2,
    # layer 1
    (1, "en", "de"): 0.9, (1, "en", "zh"): 0.9, (1, "de", "en"): 0.9,
    (1, "de", "zh"): 0.3, (1, "zh", "en"): 0.9, (1, "zh", "de"): 0.3,
    # layer 2
    (2, "en", "de"): 0.6, (2, "en", "zh"): 0.4, (2, "de", "en"): 0.6,
    (2, "de", "zh"): 0.4, (2, "zh", "en"): 0.4, (2, "zh", "de"): 0.6,
}  # fmt: skip


def test_summary_aggregates_by_hand():
    out = summarize_by_layer(_table(HAND))
    assert list(out.columns) == ["layer", "series", "accuracy"]
    got = {(lay, ser): acc for lay, ser, acc in out.itertuples(index=False)}
    expected = {
        # all pairs: mean of the 6 values
        ("emb", "all_pairs"): 2.1 / 6, (0, "all_pairs"): 3.2 / 6,
        (1, "all_pairs"): 4.2 / 6, (2, "all_pairs"): 3.0 / 6,
        # pivot: mean of en->de, en->zh, de->en, zh->en
        ("emb", "pivot"): 1.1 / 4, (0, "pivot"): 3.0 / 4, (1, "pivot"): 0.9, (2, "pivot"): 0.5,
        # per language: mean of lang->en and en->lang
        ("emb", "de"): 0.2, ("emb", "zh"): 0.35, (0, "de"): 0.9, (0, "zh"): 0.6,
        (1, "de"): 0.9, (1, "zh"): 0.9, (2, "de"): 0.6, (2, "zh"): 0.4,
    }  # fmt: skip
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    # layers in input order, then all_pairs, pivot, languages
    assert list(out["layer"][:4]) == ["emb"] * 4
    assert list(out["series"][:4]) == ["all_pairs", "pivot", "de", "zh"]
    # Mid-align score: even decoder layers 0 and 2, "emb" excluded.
    assert mid_align_score(out) == pytest.approx((3.2 / 6 + 3.0 / 6) / 2, abs=1e-12)


def test_summary_keeps_variants_apart_and_mid_align_refuses_a_mix():
    raw = _table(HAND).assign(center=False)
    cen = _table(HAND).assign(center=True, accuracy=lambda d: 1 - d["accuracy"])
    both = pd.concat([raw, cen], ignore_index=True)
    both.attrs["pivot"] = "en"
    out = summarize_by_layer(both)
    assert list(out.columns) == ["layer", "series", "accuracy", "center"]
    sel = out[(out.layer == 0) & (out.series == "all_pairs")].set_index("center")["accuracy"]
    assert sel[False] == pytest.approx(3.2 / 6) and sel[True] == pytest.approx(1 - 3.2 / 6)
    with pytest.raises(ValueError, match="mixes"):
        mid_align_score(out)
    assert mid_align_score(out[out.center]) == pytest.approx(1 - (3.2 / 6 + 3.0 / 6) / 2)


def test_summary_end_to_end_and_pivot_errors():
    rng = np.random.default_rng(7)
    vec = _parallel(rng, ["en", "de", "zh"], 3, 20, 6, 0.8)
    df = retrieval_by_layer(vec, layer_labels=["emb", 0, 1])
    out = summarize_by_layer(df)  # pivot from attrs
    assert out.attrs["pivot"] == "en"
    assert len(out) == 3 * 4
    ap = out[out.series == "all_pairs"].set_index("layer")["accuracy"]
    for lay in ["emb", 0, 1]:
        assert ap[lay] == pytest.approx(df[df.layer == lay]["accuracy"].mean(), abs=1e-12)
    with pytest.raises(ValueError, match="does not occur"):
        summarize_by_layer(df, "fr")
    df.attrs.pop("pivot")
    with pytest.raises(ValueError, match="no pivot"):
        summarize_by_layer(df)
    with pytest.raises(ValueError, match="no even-numbered"):
        mid_align_score(out[out.layer.isin(["emb", 1])])

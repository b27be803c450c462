"""Translation retrieval (METHODS.md §1) on planted and hand-computed structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.analysis import retrieval as R
from workbench.analysis.retrieval import (
    mexa_summary,
    mid_align_score,
    retrieval_accuracy,
    retrieval_by_layer,
    retrieval_matrix,
    summarize_by_layer,
)

METHODS = ("cosine", "margin", "margin-all", "mexa")


# ----------------------------------------------------------------- plain reference (tests only)


def _ref_accuracy(src: np.ndarray, tgt: np.ndarray, method: str, k: int) -> float:
    """Per-pair, per-row loop written straight from METHODS.md §1."""
    s = src / np.linalg.norm(src, axis=1, keepdims=True)
    t = tgt / np.linalg.norm(tgt, axis=1, keepdims=True)
    c = s @ t.T
    n = c.shape[0]
    k = min(k, n)
    if method in ("margin", "margin-all"):
        a_s = np.array([np.sort(c[i])[::-1][:k].mean() for i in range(n)])
        a_t = np.array([np.sort(c[:, j])[::-1][:k].mean() for j in range(n)])
        score = np.array([[c[i, j] / ((a_s[i] + a_t[j]) / 2) for j in range(n)] for i in range(n)])
    else:
        score = c
    correct = 0
    for i in range(n):
        others = [score[i, j] for j in range(n) if j != i]
        if method == "margin":  # xsim: candidates = the k cosine-nearest targets, ties against the gold
            other_cos = sorted((c[i, j] for j in range(n) if j != i), reverse=True)
            if k <= len(other_cos) and other_cos[k - 1] >= c[i, i]:
                continue  # k other targets are at least as near: the gold is no candidate
            bar = other_cos[k - 2] if k >= 2 else np.inf
            others = [score[i, j] for j in range(n) if j != i and c[i, j] >= bar] or [-np.inf]
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
    [("cosine", 4, 2 / 3), ("mexa", 4, 1 / 3), ("margin", 2, 1.0), ("margin", 1, 2 / 3),
     ("margin-all", 2, 1.0), ("margin-all", 1, 2 / 3)],
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


# Planted case where LASER's xsim (margin) and the all-candidate argmax (margin-all) differ.
# tgt = I, so C[i, j] = src[i, j] (unit rows: 3-4-5 and 2-4-4... triples), k = 2:
#   C = [[3/5, 0,   0,   4/5],
#        [4/5, 3/5, 0,   0  ],
#        [6/9, 5/9, 4/9, 2/9],
#        [0,   3/5, 0,   4/5]]
# a_s (mean of the 2 largest of each row) = (7/10, 7/10, 11/18, 7/10);
# a_t (mean of the 2 largest of each column): col 0 (3/5, 4/5, 2/3, 0) -> (4/5 + 2/3)/2 = 11/15,
#   col 1 -> (3/5 + 3/5)/2 = 3/5, col 2 (0, 0, 4/9, 0) -> (4/9 + 0)/2 = 2/9, col 3 -> 4/5.
# score[i, j] = C[i, j] / ((a_s[i] + a_t[j]) / 2):
#   row 0: cosine top-2 = {3, 0}; s[0,0] = (3/5)/(43/60) = 36/43 < s[0,3] = (4/5)/(3/4) = 16/15 -> wrong (both).
#   row 1: top-2 = {0, 1}; s[1,1] = (3/5)/(13/20) = 12/13 < s[1,0] = (4/5)/(43/60) = 48/43 -> wrong (both).
#   row 2: top-2 = {0, 1}: the gold (4/9, third) is no xsim candidate -> wrong for margin.
#     margin-all: s[2,2] = (4/9)/(15/36) = 16/15 beats s[2,0] = 120/121, s[2,1] = 100/109,
#     s[2,3] = 40/127 -> right.
#   row 3: top-2 = {3, 1}; s[3,3] = 16/15 > s[3,1] = 12/13 -> right (both).
# margin (xsim) = 1/4, margin-all = 2/4; cosine: only row 3 (4/5 > 3/5) -> 1/4.
XSIM_SRC = np.array([[3 / 5, 0, 0, 4 / 5], [4 / 5, 3 / 5, 0, 0], [6 / 9, 5 / 9, 4 / 9, 2 / 9], [0, 3 / 5, 0, 4 / 5]])


@pytest.mark.parametrize(("method", "expected"), [("margin", 1 / 4), ("margin-all", 2 / 4), ("cosine", 1 / 4)])
def test_xsim_candidates_are_the_cosine_top_k(method, expected):
    assert np.allclose(np.linalg.norm(XSIM_SRC, axis=1), 1.0)
    assert retrieval_accuracy(XSIM_SRC, np.eye(4), method=method, k=2) == pytest.approx(expected, abs=1e-15)
    assert _ref_accuracy(XSIM_SRC, np.eye(4), method, 2) == pytest.approx(expected, abs=1e-15)
    perm = [3, 1, 0, 2]  # row order does not matter
    assert retrieval_accuracy(XSIM_SRC[perm], np.eye(4)[perm], method=method, k=2) == pytest.approx(expected)


def test_xsim_gold_tied_at_the_candidate_boundary_is_no_candidate():
    # Row 0 cosines (1/2, 1/2, 1/2, 1/2) with k = 2: three other targets tie the gold, so
    # the gold is not strictly within the top 2 and row 0 is wrong for margin in any order,
    # while margin-all scores it (col 0 has a_t = (1/2 + 0)/2 = 1/4, the smallest -> right).
    src = np.array([[0.5, 0.5, 0.5, 0.5], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    # rows 1-3: a_s = (1 + 0)/2 = 1/2, a_t = (1 + 1/2)/2 = 3/4, gold score 1/(5/8) = 8/5 > s[i,0] = 0
    # -> right. Row 0 under margin-all: s[0,0] = (1/2)/(3/8) = 4/3 > s[0,j] = (1/2)/(5/8) = 4/5.
    assert retrieval_accuracy(src, np.eye(4), method="margin", k=2) == pytest.approx(3 / 4)
    assert retrieval_accuracy(src, np.eye(4), method="margin-all", k=2) == pytest.approx(4 / 4)
    perm = [1, 2, 3, 0]
    assert retrieval_accuracy(src[perm], np.eye(4)[perm], method="margin", k=2) == pytest.approx(3 / 4)


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
    # Mid-align score: its even layers 2, 4, ... = our odd blocks; here only block 1 (4.2/6).
    assert mid_align_score(out) == pytest.approx(4.2 / 6, abs=1e-12)


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
    assert mid_align_score(out[out.center]) == pytest.approx(1 - 4.2 / 6)


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
        mid_align_score(out[out.layer.isin(["emb", 0])])


# ----------------------------------------------------------------- Mid-align numbering, MEXA aggregates


def _curve(values: dict[object, float], pivot_values: dict[object, float] | None = None) -> pd.DataFrame:
    """A summary with one all-pairs (and pivot) accuracy per layer label."""
    rows = [(lab, "all_pairs", a) for lab, a in values.items()]
    rows += [(lab, "pivot", a) for lab, a in (pivot_values or {}).items()]
    out = pd.DataFrame(rows, columns=["layer", "series", "accuracy"])
    out.attrs["pivot"] = "en"
    return out


def test_mid_align_score_uses_the_papers_numbering():
    # Planted per-layer numbers: block b has accuracy b/10, so the average tells which
    # blocks were used. Mid-align's layer m = our block m-1; its even layers m = 2, 4, 6
    # (L = 6 blocks) are our blocks 1, 3, 5 -> (0.1 + 0.3 + 0.5)/3 = 0.3. The old 0-based
    # reading (blocks 0, 2, 4) would give 0.2; "emb" (its layer 0) never counts.
    summ = _curve({"emb": 0.9, **{b: b / 10 for b in range(6)}, "final": 0.8})
    assert mid_align_score(summ) == pytest.approx(0.3, abs=1e-12)
    # Its layer L = 6 is HF's hidden_states[6] = the post-final-norm state: with
    # final_as_top the "final" row replaces block 5 -> (0.1 + 0.3 + 0.8)/3 = 0.4.
    assert mid_align_score(summ, final_as_top=True) == pytest.approx(0.4, abs=1e-12)
    # With L = 5 blocks (0..4) the paper's top layer 5 is odd: "final" does not count.
    summ5 = _curve({b: b / 10 for b in range(5)} | {"final": 0.8})
    assert mid_align_score(summ5, final_as_top=True) == pytest.approx(0.2, abs=1e-12)


def test_mexa_summary_mean_and_max_over_layers():
    # Planted pivot curve over layers emb, 0, 1, 2, final: 0.2, 0.4, 0.9, 0.5, 0.6 ->
    # mean = 2.6/5 = 0.52, max = 0.9 at block 1. Languages: de 0.1, 0.3, 0.8, 0.6, 0.7
    # (mean 0.5, max 0.8 at 1); zh 0.3, 0.5, 1.0, 0.4, 0.5 (mean 0.54, max 1.0 at 1).
    labels = ["emb", 0, 1, 2, "final"]
    piv = [0.2, 0.4, 0.9, 0.5, 0.6]
    de = [0.1, 0.3, 0.8, 0.6, 0.7]
    zh = [0.3, 0.5, 1.0, 0.4, 0.5]
    rows = [(lab, ser, v) for ser, vals in (("all_pairs", [0.0] * 5), ("pivot", piv), ("de", de), ("zh", zh))
            for lab, v in zip(labels, vals)]
    summ = pd.DataFrame(rows, columns=["layer", "series", "accuracy"])
    summ.attrs["pivot"] = "en"
    got = mexa_summary(summ, "en")
    assert got["layers"] == labels and got["curve"] == piv
    assert got["mean"] == pytest.approx(0.52) and got["max"] == pytest.approx(0.9) and got["argmax"] == 1
    assert got["per_language"]["de"] == {"mean": pytest.approx(0.5), "max": pytest.approx(0.8), "argmax": 1}
    assert got["per_language"]["zh"]["mean"] == pytest.approx(0.54)
    with pytest.raises(ValueError, match="pivot 'en'"):
        mexa_summary(summ, "de")


def test_mexa_summary_names_both_maxima():
    # de peaks at block 0 (0.8), zh at block 2 (0.9): the peak of the averaged curve is 0.5 (blocks 0 and 2 tie;
    # the first is reported), the mean of each language's best layer is (0.8 + 0.9) / 2 = 0.85.
    labels = [0, 1, 2]
    de, zh = [0.8, 0.2, 0.1], [0.2, 0.3, 0.9]
    piv = [(a + b) / 2 for a, b in zip(de, zh)]
    rows = [(lab, ser, v) for ser, vals in (("pivot", piv), ("de", de), ("zh", zh)) for lab, v in zip(labels, vals)]
    summ = pd.DataFrame(rows, columns=["layer", "series", "accuracy"])
    got = mexa_summary(summ, "en")
    assert got["max"] == pytest.approx(0.5) and got["argmax"] == 0
    assert got["language_max"] == pytest.approx(0.85)
    assert got["mean"] == pytest.approx(np.mean(de + zh))


def test_mexa_summary_end_to_end_on_the_mexa_method():
    # The mexa criterion is symmetric: lang -> en and en -> lang give the same accuracy,
    # so the pivot curve equals the mean of the per-language curves.
    rng = np.random.default_rng(8)
    vec = _parallel(rng, ["en", "de", "zh"], 3, 30, 8, 1.0)
    summ = summarize_by_layer(retrieval_by_layer(vec, method="mexa"))
    got = mexa_summary(summ)
    per = np.mean([[summ[(summ.series == lang) & (summ.layer == lab)]["accuracy"].item() for lab in range(3)]
                   for lang in ("de", "zh")], axis=0)
    assert np.allclose(got["curve"], per)
    assert got["mean"] == pytest.approx(per.mean()) and got["max"] == pytest.approx(per.max())


def _laser_xsim_accuracy(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """LASER ``source/xsim.py`` (ratio margin) restated with numpy: k-NN both ways, margin of the k candidates."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    c = x @ y.T
    n = len(c)
    idx_xy = np.argsort(-c, axis=1)[:, :k]
    cos_xy = np.take_along_axis(c, idx_xy, 1)
    cos_yx = np.take_along_axis(c.T, np.argsort(-c.T, axis=1)[:, :k], 1)
    avg_x, avg_y = cos_xy.mean(1), cos_yx.mean(1)
    scores = cos_xy / ((avg_x[:, None] + avg_y[idx_xy]) / 2)
    best = idx_xy[np.arange(n), scores.argmax(1)]
    return float((best == np.arange(n)).mean())


def test_margin_equals_a_transcription_of_laser_xsim_on_tie_free_data():
    rng = np.random.default_rng(9)
    for _ in range(20):
        x = rng.normal(size=(60, 16))
        y = x + 1.3 * rng.normal(size=x.shape)
        for k in (1, 4):
            assert retrieval_accuracy(x, y, method="margin", k=k) == _laser_xsim_accuracy(x, y, k)

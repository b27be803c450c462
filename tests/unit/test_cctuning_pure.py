"""CC-Tuning's pure parts: Decision Maker (Gumbel hard selection, gradients), Transform Matrix
(= numpy lstsq, recovers a planted map), fit curve, layer distribution, |Δ|, spec, CLI, figures."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F

from workbench.analysis.cctuning import (
    fit_transform_matrix,
    layer_distribution,
    parallel_gap,
    transform_fit_curve,
    transform_mse,
)
from workbench.cli.finetune import _method_spec, add_finetune_parser
from workbench.finetune.cctuning.spec import CCTuningSpec
from workbench.finetune.methods import languages_for, spec_for
from workbench.models.hooks.cctuning import decision_maker
from workbench.viz.cctuning_figures import cctuning_figures


def _planted(n=40, layers=4, d=8, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(d, d))
    a = rng.normal(size=(n, layers, d))
    b = a @ m + noise * rng.normal(size=(n, layers, d))
    return a, b, m


# --------------------------------------------------------------------------- Decision Maker


def test_gumbel_hard_selection_is_one_hot_and_picks_the_chosen_row_exactly():
    torch.manual_seed(0)
    f_en, e = torch.randn(64, 5, 8), torch.randn(64, 8)
    w_dm = torch.randn(8, 5)
    f_sel, onehot = decision_maker(f_en, e, w_dm, tau=1.0, sample=True)
    sel = onehot.argmax(-1)
    torch.testing.assert_close(onehot, F.one_hot(sel, 5).float(), rtol=0, atol=1e-6)
    assert torch.equal(f_sel, f_en[torch.arange(64), sel])  # the value is the row itself, not a rounded mix
    assert len(set(sel.tolist())) > 1  # sampled: not always the same layer
    f_arg, hard = decision_maker(f_en, e, w_dm, sample=False)
    h = (f_en.mean(1) + e) @ w_dm
    assert torch.equal(hard.argmax(-1), h.argmax(-1)) and torch.equal(hard, F.one_hot(h.argmax(-1), 5).float())
    assert torch.equal(f_arg, f_en[torch.arange(64), h.argmax(-1)])


def test_a_dominant_logit_is_selected_and_gradients_reach_w_dm_as_the_straight_through_estimator():
    torch.manual_seed(1)
    f_en, e = torch.randn(16, 4, 6), torch.randn(16, 6)
    planted = torch.zeros(6, 4)
    planted[:, 2] = 1.0  # H[:, 2] = Σ(mean_l f_l + e) ≈ 60 with e ≈ 10: layer 2 wins despite the noise
    _, onehot = decision_maker(f_en, e + 10.0, planted, sample=True)
    assert (onehot.argmax(-1) == 2).all()

    w_dm = torch.nn.Parameter(0.1 * torch.randn(6, 4))
    g = torch.randn(16, 6)
    torch.manual_seed(7)
    f_sel, _ = decision_maker(f_en, e, w_dm, tau=0.5, sample=True)
    (f_sel * g).sum().backward()
    ours = w_dm.grad.clone()
    assert torch.isfinite(ours).all() and ours.abs().sum() > 0
    # the textbook estimator: onehot = y_hard − y_soft.detach() + y_soft, f_sel = onehot · F^en
    w_dm.grad = None
    torch.manual_seed(7)
    onehot = F.gumbel_softmax((f_en.mean(1) + e) @ w_dm, tau=0.5, hard=True)
    (torch.einsum("bl,bld->bd", onehot, f_en) * g).sum().backward()
    torch.testing.assert_close(ours, w_dm.grad, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- Transform Matrix


def test_transform_matrix_is_numpy_lstsq_and_recovers_a_planted_map():
    a, b, m = _planted()
    w = fit_transform_matrix(a, b)
    ref = np.linalg.lstsq(a.reshape(-1, 8), b.reshape(-1, 8), rcond=None)[0]
    np.testing.assert_array_equal(w, ref)
    np.testing.assert_allclose(w, m, atol=1e-8)
    assert transform_mse(a, b, w) < 1e-20
    noisy_a, noisy_b, _ = _planted(noise=0.1, seed=3)
    np.testing.assert_array_equal(fit_transform_matrix(noisy_a, noisy_b),
                                  np.linalg.lstsq(noisy_a.reshape(-1, 8), noisy_b.reshape(-1, 8), rcond=None)[0])
    assert transform_mse(a, b, None) == pytest.approx(np.mean((a - b) ** 2))
    with pytest.raises(ValueError, match="same non-empty shape"):
        fit_transform_matrix(a, b[:, :2])


def test_fit_curve_interpolates_below_d_rows_and_generalises_with_enough_pairs():
    a, b, m = _planted(n=60, layers=2, d=16, noise=0.05)
    ah, bh, _ = _planted(n=30, layers=2, d=16, noise=0.05, seed=9)
    bh = ah @ m + 0.05 * np.random.default_rng(5).normal(size=ah.shape)  # same map, new inputs
    curve = transform_fit_curve(a, b, ah, bh, n_pairs=[2, 4, 60])
    assert list(curve.columns) == ["n_pairs", "n_rows", "fit_mse", "heldout_mse", "identity_mse"]
    assert curve["n_rows"].tolist() == [4, 8, 120]
    assert curve["fit_mse"].iloc[0] < 1e-20  # n·L < d: the fit interpolates (the paper's ~1e-36)
    assert curve["heldout_mse"].iloc[-1] == pytest.approx(0.05 ** 2, rel=0.3)
    assert curve["heldout_mse"].iloc[-1] < curve["heldout_mse"].iloc[0] < curve["identity_mse"].iloc[0] * 10
    assert curve["identity_mse"].nunique() == 1
    default = transform_fit_curve(a, b, points=5)
    assert default["n_pairs"].iloc[-1] == 60 and default["heldout_mse"].isna().all()
    with pytest.raises(ValueError, match="n_pairs"):
        transform_fit_curve(a, b, n_pairs=[61])


# --------------------------------------------------------------------------- Fig. 8, Table 2


def test_layer_distribution_counts_every_layer_per_source():
    df = layer_distribution({"English input": [1, 1, 3], "Transform Matrix": [1, 2]}, 4)
    en = df[df["source"] == "English input"]
    assert en["count"].tolist() == [0, 2, 0, 1] and en["fraction"].sum() == pytest.approx(1.0)
    assert df[df["source"] == "Transform Matrix"]["fraction"].tolist() == [0, 0.5, 0.5, 0]
    assert layer_distribution(np.array([0, 0]), 2)["source"].unique().tolist() == ["selected"]
    with pytest.raises(ValueError, match="layer indices"):
        layer_distribution([4], 4)


def test_parallel_gap_is_the_absolute_difference_of_token_level_loss_and_accuracy():
    tokens = np.array([2, 3])
    gap = parallel_gap({"vanilla": np.array([4.0, 6.0]), "english": np.array([2.0, 3.0]),
                        "transform": np.array([2.5, 3.5])},
                       {"vanilla": np.array([0, 1]), "english": np.array([2, 2]), "transform": np.array([1, 2])},
                       tokens)
    assert gap["loss_english"] == pytest.approx(1.0) and gap["loss_transform"] == pytest.approx(1.2)
    assert gap["delta_loss"] == pytest.approx(0.2) and gap["delta_acc"] == pytest.approx(0.2)
    assert gap["acc_vanilla"] == pytest.approx(0.2)


# --------------------------------------------------------------------------- spec, CLI, figures


def test_spec_defaults_validation_and_languages():
    s = CCTuningSpec()
    assert (s.train, s.batch_size, s.epochs, s.warmup, s.wt_pairs, s.response_lang) == ("lora", 16, 3.0, 0.1, 1000,
                                                                                       "en")
    assert languages_for("cctuning", s) == ("en", "sw")
    assert languages_for("cctuning", CCTuningSpec(target="fr")) == ("en", "sw", "fr")
    assert spec_for("cctuning", s.to_dict()) == s
    for bad in ({"lang": "en"}, {"train": "bias"}, {"embed": "cls"}, {"tau": 0}, {"wt_pairs": 0}, {"target": "sw"}):
        with pytest.raises(ValueError):
            CCTuningSpec(**bad)


def test_cli_maps_the_pair_and_options_to_the_spec():
    p = argparse.ArgumentParser(prog="workbench")
    add_finetune_parser(p.add_subparsers(dest="command", required=True))
    a = p.parse_args(["finetune", "cctuning", "--model", "gemma-3-270m", "--pair", "en:sw", "--steps", "7",
                      "--train", "ffn", "--wt-pairs", "300", "--set", "tau=0.5"])
    spec = spec_for("cctuning", _method_spec(a))
    assert (spec.pivot, spec.lang, spec.max_steps, spec.train, spec.wt_pairs, spec.tau) == ("en", "sw", 7, "ffn",
                                                                                          300, 0.5)


def test_figures_from_a_report():
    a, b, _ = _planted(n=20, layers=3, d=8, noise=0.1)
    report = {"layer_distribution": layer_distribution({"English input": [0, 2], "Transform Matrix": [2, 2]}, 3)
              .to_dict("records"),
              "fit_curve": transform_fit_curve(a, b, a[:5], b[:5], points=4).to_dict("records"),
              "gap": parallel_gap({k: np.ones(2) for k in ("vanilla", "english", "transform")},
                                  {k: np.ones(2) for k in ("vanilla", "english", "transform")}, np.ones(2)),
              "d_model": 8}
    figs = cctuning_figures(report)
    assert set(figs) == {"layer_selection", "transform_fit", "parallel_gap"}
    assert all(isinstance(f, go.Figure) and f.data for f in figs.values())
    assert [t.name for t in figs["layer_selection"].data] == ["English input", "Transform Matrix"]
    assert len(figs["parallel_gap"].data) == 6
    assert isinstance(pd.DataFrame(report["fit_curve"]), pd.DataFrame)

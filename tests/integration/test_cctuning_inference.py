"""CC-Tuning inference as its authors run it: a seeded Gumbel sample of the Decision Maker's choice in every
connected forward (default), the embedding at the connection position, the argmax and the mean as named variants;
the options travel in `ModelSpec.inference`, change the evaluation's store key (never the fingerprint), and reach
every door."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench import cli, models
from workbench.config import ModelSpec
from workbench.errors import ParamError
from workbench.evaluation import DecodingSpec, evaluate
from workbench.evaluation import run as eval_run
from workbench.evaluation.cache import CachedSuite, suite_key, write_suite
from workbench.finetune.cctuning import cc_examples, collate_cc, train_cctuning, write_artifact_with_files
from workbench.finetune.cctuning.spec import CCTuningSpec
from workbench.models.hooks import describe_inference, inference_kind
from workbench.models.hooks.cctuning import CCTuningInference, cctuning_forward, decision_maker, gumbel_noise
from workbench.store import Store
from workbench.viz.cctuning_figures import layer_selection_figure

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(state, split):
    spec = CCTuningSpec(max_steps=2, lr=1e-3, batch_size=8, dropout=0.0, schedule="constant", warmup=0.0,
                        wt_pairs=8, eval_items=6, curve_points=2, dm_lr=1.0)
    return spec, train_cctuning(state, split, spec)


@pytest.fixture(scope="module")
def artifact(state, trained, tmp_path_factory):
    spec, res = trained
    path = tmp_path_factory.mktemp("cc") / "art"
    return write_artifact_with_files(path, state, res.model, {"method": "cctuning", "spec": spec.to_dict()},
                                     res.extra["artifact_files"])


# --------------------------------------------------------------------------- the draw


def test_gumbel_noise_is_a_function_of_seed_and_prompt_not_of_batching():
    a = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    attn_a = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    pos_a = torch.tensor([2, 1])  # prompts: (5, 6, 7) and (9, 10)
    left = torch.tensor([[0, 9, 10], [5, 6, 7]])  # the same prompts, left-padded, in the other order
    attn_l = torch.tensor([[0, 1, 1], [1, 1, 1]])
    g_a = gumbel_noise(a, attn_a, pos_a, 6, seed=3)
    g_l = gumbel_noise(left, attn_l, torch.tensor([2, 2]), 6, seed=3)
    assert torch.equal(g_a[0], g_l[1]) and torch.equal(g_a[1], g_l[0])
    assert not torch.equal(g_a, gumbel_noise(a, attn_a, pos_a, 6, seed=4))
    assert not torch.equal(g_a[0], g_a[1])


def test_the_seeded_hard_sample_follows_softmax_h_like_gumbel_softmax():
    h = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    n = 4000
    ids = torch.arange(n)[:, None] + 10  # 4,000 different one-token prompts: 4,000 independent draws
    noise = gumbel_noise(ids, torch.ones_like(ids), torch.zeros(n, dtype=torch.long), 4, seed=0)
    f_en = torch.eye(4)[None].repeat(n, 1, 1)  # F^en row l = e_l: f_sel tells the chosen layer
    w_dm = torch.eye(4)
    e = h.repeat(n, 1) - f_en.mean(1)  # so that H = (mean_l f_l + e) W_DM = h for every row
    f_sel, onehot = decision_maker(f_en, e, w_dm, sample=False, noise=noise)
    freq = onehot.mean(0).numpy()
    np.testing.assert_allclose(freq, torch.softmax(h, -1)[0].numpy(), atol=0.03)
    assert torch.equal(f_sel, onehot)
    torch.manual_seed(0)  # torch's own hard sampler, for comparison: the same distribution
    ref = F.gumbel_softmax(h.repeat(n, 1), tau=1.0, hard=True).mean(0).numpy()
    np.testing.assert_allclose(freq, ref, atol=0.04)
    _, argmax = decision_maker(f_en, e, w_dm, sample=False)
    assert argmax[:, 0].all()  # the deterministic variant: always the mode


def test_with_a_zero_decision_maker_argmax_picks_one_layer_and_gumbel_spreads(state, split):
    b = collate_cc(cc_examples(state.tokenizer, split, CCTuningSpec(), "train"), state.tokenizer.pad_token_id)
    w_dm, w_t = torch.zeros(state.d_model, state.n_layers), torch.eye(state.d_model)
    arg = cctuning_forward(state, w_dm, w_t, b.x, positions=b.pos, decide="argmax", embed="position")
    gum = cctuning_forward(state, w_dm, w_t, b.x, positions=b.pos, decide="gumbel", seed=0, embed="position")
    again = cctuning_forward(state, w_dm, w_t, b.x, positions=b.pos, decide="gumbel", seed=0, embed="position")
    other = cctuning_forward(state, w_dm, w_t, b.x, positions=b.pos, decide="gumbel", seed=1, embed="position")
    assert set(arg.selected.tolist()) == {0} and len(set(gum.selected.tolist())) > 1
    assert torch.equal(gum.selected, again.selected) and torch.equal(gum.logits, again.logits)
    assert not torch.equal(gum.selected, other.selected)


# --------------------------------------------------------------------------- options


def test_options_resolve_with_the_authors_defaults_and_refuse_bad_ones(artifact, trained):
    spec, _ = trained
    assert spec.embed == "position"  # the training default is the authors' too
    assert inference_kind(artifact) == "cctuning" and inference_kind(None) == "plain"
    assert describe_inference(artifact) == {"kind": "cctuning", "decide": "gumbel", "embed": "position", "seed": 0}
    assert describe_inference(artifact, (("decide", "argmax"), ("embed", "mean"))) == {
        "kind": "cctuning", "decide": "argmax", "embed": "mean"}
    manifest = json.loads((artifact / "manifest.json").read_text())
    old = {**manifest, "spec": {**manifest["spec"], "embed": "mean"}}  # an artifact trained with the mean
    assert CCTuningInference.resolve(old, {})["embed"] == "mean"
    for bad, match in [((("tau", 1),), "takes decide"), ((("decide", "soft"),), "decide must be"),
                       ((("embed", "last"),), "embed must be"), ((("seed", "x"),), "seed must be an integer"),
                       ((("decide", "argmax"), ("seed", 1)), "gumbel only")]:
        with pytest.raises(ParamError, match=match):
            describe_inference(artifact, bad)
    with pytest.raises(ParamError, match="plain states take no inference options"):
        describe_inference(None, (("decide", "argmax"),))


def test_options_are_in_the_spec_not_in_the_fingerprint_and_share_the_weights(state, artifact):
    spec = ModelSpec(source="tiny:llama", artifact=str(artifact))
    argmax = dataclasses.replace(spec, inference=(("decide", "argmax"),))
    assert spec.to_dict() == {k: v for k, v in argmax.to_dict().items() if k != "inference"}
    assert "inference" not in spec.to_dict() and ModelSpec.from_dict(argmax.to_dict()) == argmax
    assert models.fingerprint(argmax) == models.fingerprint(spec)
    a, b = models.load(spec), models.load(argmax)
    assert a.model is b.model and a.fingerprint == b.fingerprint  # one copy of the weights
    assert a.inference.describe()["decide"] == "gumbel" and b.inference.describe() == {
        "kind": "cctuning", "decide": "argmax", "embed": "position"}
    with pytest.raises(ParamError, match="plain states"):
        models.load(ModelSpec(source="tiny:llama", inference=(("decide", "argmax"),)))


# --------------------------------------------------------------------------- the evaluation's store key


def _parts(ref_of, split, suite="loss"):
    return eval_run._key_parts(suite, eval_run._StateRef(ref_of), split, [("en", "sw")], 3, DecodingSpec(), 8, 20, 0)


def test_a_plain_states_key_is_unchanged_and_a_cctuning_states_key_has_its_options(state, split, artifact):
    plain = _parts(state, split)
    assert set(plain) == {"suite", "state", "limit", "n_boot", "seed", "data", "directions", "batch_size"}
    assert suite_key(plain) == suite_key({"suite": "loss", "state": state.fingerprint, "limit": 3, "n_boot": 20,
                                          "seed": 0, "data": eval_run.heldout_hash(split),
                                          "directions": [["en", "sw"]], "batch_size": 8})
    spec = ModelSpec(source="tiny:llama", artifact=str(artifact))
    default = _parts(spec, split)
    assert default["inference"] == {"kind": "cctuning", "decide": "gumbel", "embed": "position", "seed": 0}
    assert _parts(models.load(spec), split) == default  # from the spec (no weights) = from the loaded state
    keys = {suite_key(_parts(dataclasses.replace(spec, inference=o), split))
            for o in ((), (("decide", "argmax"),), (("seed", 1),), (("embed", "mean"),))}
    assert len(keys) == 4


def test_results_stored_under_the_old_argmax_key_are_not_served_as_the_new_default(split, artifact, tmp_path):
    spec = ModelSpec(source="tiny:llama", artifact=str(artifact))
    store = Store(tmp_path)
    old = {k: v for k, v in _parts(spec, split).items() if k != "inference"}  # the key before this change
    write_suite(store, suite_key(old), CachedSuite([], [], {"suite": "loss"}))
    res = evaluate(spec, ["loss"], split, directions=["en:sw"], limit=3, n_boot=20, store=store)
    assert res.manifest[next(iter(res.manifest))]["loss"]["cached"] is False


def test_both_modes_reach_scoring_and_generation(split, artifact, tmp_path):
    spec = ModelSpec(source="tiny:llama", artifact=str(artifact))
    store = Store(tmp_path)
    dec = DecodingSpec(max_new_tokens=4, stop_at_newline=False)
    out = {}
    for name, opts in (("gumbel", ()), ("argmax", (("decide", "argmax"),)), ("seed1", (("seed", 1),))):
        out[name] = evaluate(dataclasses.replace(spec, inference=opts), ["loss"], split, directions=["en:sw"],
                             limit=4, n_boot=20, store=store, decoding=dec)
        assert out[name].manifest[next(iter(out[name].manifest))]["loss"]["cached"] is False
    loss = {k: v.eval.query("metric == 'loss'")["value"].item() for k, v in out.items()}
    assert len({round(x, 9) for x in loss.values()}) == 3, loss  # each mode and seed is its own result


# --------------------------------------------------------------------------- Fig. 8, both modes


def test_the_report_has_the_layer_distribution_of_both_modes(trained):
    spec, res = trained
    rep = res.metrics["cctuning"]
    assert set(rep["modes"]) == {"gumbel", "argmax"} and rep["inference"]["decide"] == "gumbel"
    assert rep["selected"] == rep["modes"]["gumbel"]["selected"]
    dist = rep["layer_distribution"]
    assert {r["mode"] for r in dist} == {"gumbel", "argmax"}
    for mode in ("gumbel", "argmax"):
        for source in ("English input", "Transform Matrix"):
            rows = [r for r in dist if r["mode"] == mode and r["source"] == source]
            assert len(rows) == rep["n_layers"] and sum(r["count"] for r in rows) == rep["n_eval"]
    fig = layer_selection_figure(dist)
    assert len(fig.data) == 4 and {t.yaxis for t in fig.data} == {"y", "y2"}  # one panel per mode
    assert "Gumbel" in fig.layout.annotations[0].text and "argmax" in fig.layout.annotations[1].text


# --------------------------------------------------------------------------- the CLI


def test_cli_eval_and_compare_take_inference_options(artifact, tmp_path, capsys):
    common = ["--model", "tiny:llama", "--corpus", "tatoeba:sw", "--pairs", "en:sw", "--suite", "loss",
              "--limit", "3", "--max-length", "48"]
    assert cli.main(["eval", *common, "--artifact", str(artifact), "--inference", "decide=argmax",
                     "--out", str(tmp_path / "e")]) == 0
    manifest = json.loads((tmp_path / "e" / "eval.manifest.json").read_text())
    assert next(iter(manifest.values()))["loss"]["key"]
    capsys.readouterr()
    assert cli.main(["eval", *common, "--artifact", str(artifact), "--inference", "decide=soft",
                     "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: CC-Tuning inference: decide must be one of gumbel, argmax; got 'soft'"
    states = f"base,{artifact},{artifact}@decide=argmax"
    assert cli.main(["compare", *common, "--states", states, "--out", str(tmp_path / "c")]) == 0
    scores = (tmp_path / "c" / "scores.csv").read_text().splitlines()[0]
    assert "art@decide=argmax" in scores and ",art," in scores + ","
    assert cli.main(["compare", *common, "--states", "base", "--inference", "decide=argmax",
                     "--out", str(tmp_path / "c2")]) == 2
    assert "none of the states" in capsys.readouterr().err

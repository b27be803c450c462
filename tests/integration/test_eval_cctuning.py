"""A CC-Tuning artifact is evaluated with its two-pass inference, found from the artifact's manifest."""

from __future__ import annotations

import pytest
import torch

from workbench.evaluation import DecodingSpec, evaluate
from workbench.evaluation.losses import translation_loss
from workbench.examples import prompt_and_target
from workbench.finetune.cctuning import load_cctuning, train_cctuning, write_artifact_with_files
from workbench.finetune.cctuning.spec import CCTuningSpec
from workbench.models import with_artifact
from workbench.models.hooks import Plain
from workbench.models.hooks import cctuning as cc_model
from workbench.models.hooks.cctuning import cctuning_generate
from workbench.store import Store


@pytest.fixture(scope="module")
def artifact(state, split, tmp_path_factory):
    spec = CCTuningSpec(max_steps=2, lr=1e-3, batch_size=8, dropout=0.0, schedule="constant", warmup=0.0,
                        wt_pairs=8, eval_items=4, curve_points=2)
    res = train_cctuning(state, split, spec)
    path = tmp_path_factory.mktemp("cc") / "art"
    return write_artifact_with_files(path, state, res.model, {"method": "cctuning", "spec": spec.to_dict()},
                                     res.extra["artifact_files"])


def test_cctuning_state_generates_with_its_two_pass_inference(state, split, artifact, tmp_path, monkeypatch):
    first_pass = []
    real = cc_model.ffn_outputs  # patched where the two-pass inference looks it up
    monkeypatch.setattr(cc_model, "ffn_outputs", lambda *a, **k: first_pass.append(1) or real(*a, **k))
    tuned = load_cctuning(state, artifact)
    cc = with_artifact(state, artifact).inference  # found from the artifact's manifest by the one loader
    assert isinstance(cc, cc_model.CCTuningInference) and torch.equal(cc.w_dm, tuned.w_dm)
    assert cc.embed == tuned.spec.embed and isinstance(state.inference, Plain)
    assert (cc.decide, cc.seed) == ("gumbel", 0)  # the authors' inference by default
    dec = DecodingSpec(max_new_tokens=5, stop_at_newline=False)
    res = evaluate(tuned.state, ["translation", "loss"], split, directions=["en:sw"], limit=3, decoding=dec,
                   n_boot=20, store=Store(tmp_path))
    assert first_pass  # the first pass (F -> F W_T) ran inside the evaluation
    tok = state.tokenizer
    prompts = [prompt_and_target(split.spec.template, split.names, "en", "sw", s, t)[0]
               for s, t in split.pairs("en", "sw", "heldout")[:3]]
    ids = [tok(p, add_special_tokens=True)["input_ids"] for p in prompts]
    want = []
    for i in ids:
        new = cctuning_generate(tuned.state, tuned.w_dm, tuned.w_t, [i], max_new_tokens=5, embed=tuned.spec.embed,
                                decide=cc.decide, seed=cc.seed, eos_token_id=[tok.eos_token_id])[0]
        new = new[: new.index(tok.eos_token_id)] if tok.eos_token_id in new else new
        want.append(tok.decode(new, skip_special_tokens=True).strip())
    assert list(res.generations["output"]) == want
    plain = translation_loss(tuned.state.model, tok, split, "en", "sw", max_items=3)
    loss = res.eval.query("metric == 'loss'")["value"].item()
    assert loss != pytest.approx(plain, abs=1e-6)  # scored through the connection, not the plain pass

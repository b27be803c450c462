"""CC-Tuning on tiny models: the connection acts only at its position and only through block 0's
FFN output; monolingual inference with W_T matches the real English input on planted data; training
changes exactly the claimed parameters, reaches W_DM and lowers the loss; the artifact round-trips
bit-exactly; a job runs end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import ATTN_MLP, FFN, fresh_tiny_state

from workbench.analysis.cctuning import fit_transform_matrix
from workbench.finetune import jobs
from workbench.finetune.cctuning import (
    cc_examples,
    cc_loss,
    collate_cc,
    init_decision_maker,
    load_cctuning,
    train_cctuning,
    write_artifact_with_files,
)
from workbench.finetune.cctuning.spec import CCTuningSpec
from workbench.models import get_path
from workbench.models.hooks.cctuning import CC_FILE, cctuning_forward, cctuning_generate, ffn_connection, ffn_outputs
from workbench.viz.cctuning_figures import cctuning_figures

pytestmark = pytest.mark.usefixtures("one_thread")




@pytest.fixture(scope="module")
def trained(state, split):
    spec = CCTuningSpec(max_steps=12, epochs=12.0, lr=1e-2, batch_size=16, dropout=0.0, schedule="constant", warmup=0.0,
                        wt_pairs=16, eval_items=8, curve_points=3)
    return spec, train_cctuning(state, split, spec)


def _names(layers, modules):
    return {f"model.layers.{i}.{m}.weight" for i in layers for m in modules}


def _changed(base, model):
    return {n for n, p in model.named_parameters() if not torch.equal(base[n], p.detach())}


# --------------------------------------------------------------------------- the connection


def _run(st, ids, attn, capture):
    """hidden_states, logits, and what the capture hooks saw (block 0's attention and FFN outputs)."""
    block0 = get_path(st.model, st.arch.layers)[0]
    attn_mod = next(getattr(block0, n) for n in ("self_attn", "attn", "self_attention") if hasattr(block0, n))
    seen = {}
    hooks = [attn_mod.register_forward_hook(lambda _m, _a, o: seen.__setitem__("attn", o[0].clone())),
             get_path(block0, st.arch.down).register_forward_hook(lambda _m, _a, o: seen.__setitem__("ffn", o.clone()))]
    try:
        with torch.no_grad():
            out = st.model(input_ids=ids, attention_mask=attn, output_hidden_states=True, use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return out.hidden_states, out.logits, seen


@pytest.mark.parametrize("model_type", ["llama", "gemma3_text", "gpt2", "bloom", "cohere", "xglm", "phi3", "olmo2"])
def test_connection_changes_the_forward_only_at_its_position_and_only_through_block0_ffn(model_type):
    st = fresh_tiny_state(model_type)
    torch.manual_seed(0)
    ids = torch.randint(3, 2000, (2, 9))
    attn = torch.ones_like(ids)
    pos = torch.tensor([3, 6])
    ref_h, ref_logits, ref = _run(st, ids, attn, True)
    vec = 5.0 * torch.randn(2, st.d_model)
    with ffn_connection(st.model, st.arch, pos, vec) as link:
        h, logits, got = _run(st, ids, attn, True)
    assert link.fired and torch.equal(link.added, vec)
    # the embedding summary e is read from hidden_states[0] (XGLM: the input of block 0): mean over columns <= pos
    upto = (torch.arange(9)[None] <= pos[:, None]).float().unsqueeze(-1)
    torch.testing.assert_close(link.e, (ref_h[0] * upto).sum(1) / upto.sum(1), rtol=0, atol=1e-6)
    assert torch.equal(h[0], ref_h[0]) and torch.equal(got["attn"], ref["attn"])  # before the FFN: untouched
    want = ref["ffn"].clone()
    want[torch.arange(2), pos] += vec
    assert torch.equal(got["ffn"], want)  # block 0's FFN output: + vec at (b, pos_b), nothing else
    for b, p in enumerate(pos.tolist()):
        for layer in range(len(h)):
            assert torch.equal(h[layer][b, :p], ref_h[layer][b, :p]), (model_type, layer, b)  # causal: before pos
        assert not torch.equal(h[1][b, p], ref_h[1][b, p])
        assert not torch.allclose(logits[b, p:], ref_logits[b, p:])
    with ffn_connection(st.model, st.arch, pos, torch.zeros(2, st.d_model)):
        _, zero_logits, _ = _run(st, ids, attn, True)
    assert torch.equal(zero_logits, ref_logits)
    with ffn_connection(st.model, st.arch, pos, vec):  # fires on the first pass only (a generate prefill)
        _run(st, ids, attn, True)
        _, again, _ = _run(st, ids, attn, True)
    assert torch.equal(again, ref_logits)


def test_transform_matrix_inference_matches_the_real_english_input_on_planted_data(state, split):
    spec = CCTuningSpec()
    examples = cc_examples(state.tokenizer, split, spec)
    b = collate_cc(examples, state.tokenizer.pad_token_id)
    with torch.no_grad():
        f = ffn_outputs(state.model, state.arch, b.x["input_ids"], b.x["attention_mask"], b.pos)
    assert f.shape == (16, state.n_layers, state.d_model)
    rng = np.random.default_rng(0)
    planted = np.linalg.qr(rng.normal(size=(state.d_model, state.d_model)))[0] * 3.0
    f_en = f.double().numpy() @ planted  # "English" outputs that are exactly a linear map of the others
    w_t = fit_transform_matrix(f.double().numpy(), f_en)
    np.testing.assert_allclose(w_t, planted, atol=1e-6)
    torch.manual_seed(0)
    w_dm = torch.randn(state.d_model, state.n_layers)
    real = cctuning_forward(state, w_dm, None, b.x, positions=b.pos, f_en=torch.as_tensor(f_en, dtype=torch.float32))
    mono = cctuning_forward(state, w_dm, torch.as_tensor(w_t, dtype=torch.float32), b.x, positions=b.pos)
    assert torch.equal(real.selected, mono.selected) and len(set(real.selected.tolist())) > 1
    torch.testing.assert_close(mono.logits, real.logits, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        vanilla = state.model(input_ids=b.x["input_ids"], attention_mask=b.x["attention_mask"]).logits
    assert not torch.allclose(vanilla, mono.logits, atol=1e-3)  # the connection did something


def test_generation_connects_the_prefill_like_the_scoring_pass(state, split):
    examples = cc_examples(state.tokenizer, split, CCTuningSpec())[:3]
    prompts = [e.x.ids[: e.pos + 1] for e in examples]
    torch.manual_seed(1)
    w_dm, w_t = torch.randn(state.d_model, state.n_layers), torch.randn(state.d_model, state.d_model) / 8
    new = cctuning_generate(state, w_dm, w_t, prompts, max_new_tokens=3)
    for p, toks in zip(prompts, new):
        ids = torch.tensor([list(p)])
        out = cctuning_forward(state, w_dm, w_t, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
        assert toks[0] == int(out.logits[0, -1].argmax())
    plain = cctuning_generate(state, w_dm, w_t, prompts, max_new_tokens=3, connect=False)
    assert all(len(t) == 3 for t in plain)


# --------------------------------------------------------------------------- training


def test_training_changes_exactly_the_lora_targets_and_w_dm_and_lowers_the_loss(state, base_params, trained):
    spec, res = trained
    want = _names(range(state.n_layers), ATTN_MLP)
    assert _changed(base_params, res.model) == want == set(res.trainable)
    for n, p in state.model.named_parameters():
        assert torch.equal(p, base_params[n]), f"base parameter {n} was modified"
    assert res.extra["w_dm"].shape == (state.d_model, state.n_layers) and res.extra["w_dm"].abs().sum() > 0
    assert res.extra["w_t"].shape == (state.d_model, state.d_model)
    losses = [h["loss"] for h in res.history]
    assert len(losses) == 12 and np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1, losses
    assert sum(res.metrics["train_selection"]) == 12 * 16
    rep = res.metrics["cctuning"]
    assert rep["wt_pairs"] == 16 and rep["n_eval"] == 8 and len(rep["fit_curve"]) >= 2
    assert set(rep["gap"]) >= {"loss_vanilla", "loss_english", "loss_transform", "delta_loss", "delta_acc"}
    assert sum(r["count"] for r in rep["layer_distribution"]) == 32  # 8 examples × 2 sources × 2 inference modes
    json.dumps(rep)  # goes into the manifest as it is


def test_a_training_step_sends_gradients_to_w_dm_through_the_model(state, split):
    examples = cc_examples(state.tokenizer, split, CCTuningSpec())[:4]
    w_dm = torch.nn.Parameter(torch.zeros(state.d_model, state.n_layers))
    model = state.model
    for p in model.parameters():
        assert not p.requires_grad
    loss, selected = cc_loss(model, state.arch, collate_cc(examples, state.tokenizer.pad_token_id), w_dm)
    loss.backward()
    assert selected.shape == (4,) and w_dm.grad is not None and w_dm.grad.abs().sum() > 0


def test_ffn_mode_and_instruction_file_train_only_the_ffn(state, split, base_params, tmp_path):
    rows = [{"instruction": f"Eleza rangi namba {i}.", "instruction_en": f"Describe colour number {i}.",
             "output": f"Rangi {i} ni bluu."} for i in range(6)]
    path = tmp_path / "inst.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = CCTuningSpec(train="ffn", max_steps=2, lr=1e-3, batch_size=4, instruction_file=str(path), wt_pairs=4)
    res = train_cctuning(state, split, spec)
    assert _changed(base_params, res.model) == _names(range(state.n_layers), FFN) == set(res.trainable)
    assert res.metrics["n_train_examples"] == 5 and res.metrics["n_heldout_examples"] == 1
    path.write_text('{"instruction": "x", "output": "y"}\n')
    with pytest.raises(ValueError, match=r"inst.jsonl:1: needs"):
        train_cctuning(state, split, spec)


# --------------------------------------------------------------------------- artifact, job


def test_artifact_round_trip_is_bit_exact(state, split, trained, tmp_path):
    spec, res = trained
    manifest = {"method": "cctuning", "spec": spec.to_dict()}
    path = write_artifact_with_files(tmp_path / "art", state, res.model, manifest, res.extra["artifact_files"],
                                     adapter=res.adapter, adapter_config=res.adapter_config, allowed=res.trainable)
    assert sorted(p.name for p in path.iterdir()) == ["adapter", CC_FILE, "delta.safetensors", "manifest.json"]
    tuned = load_cctuning(state, path)
    got = dict(tuned.state.model.named_parameters())
    for n, p in res.model.named_parameters():
        assert torch.equal(got[n], p), n
    assert torch.equal(tuned.w_dm, res.extra["w_dm"]) and torch.equal(tuned.w_t, res.extra["w_t"])
    assert tuned.spec == spec and tuned.state.fingerprint != state.fingerprint
    b = collate_cc(cc_examples(state.tokenizer, split, spec, "heldout")[:4], state.tokenizer.pad_token_id)
    a = tuned.forward(b.x, positions=b.pos)
    m = cctuning_forward(type("S", (), {"model": res.model, "arch": state.arch})(), res.extra["w_dm"],
                         res.extra["w_t"], b.x, positions=b.pos)
    assert torch.equal(a.logits, m.logits) and torch.equal(a.selected, m.selected)
    via_adapter = load_cctuning(state, path, via="adapter")
    for n, p in res.model.named_parameters():
        torch.testing.assert_close(dict(via_adapter.state.model.named_parameters())[n], p, rtol=0, atol=1e-6)
    with pytest.raises(FileExistsError):
        write_artifact_with_files(path, state, res.model, manifest, res.extra["artifact_files"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_job_runs_end_to_end(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    job = jobs.start_job("cctuning", {"source": "tiny:llama"}, {"limit": 16, "max_length": 48},
                         {"max_steps": 2, "lr": 1e-3, "batch_size": 8, "wt_pairs": 8, "eval_items": 4})
    st = jobs.wait_job(job, timeout_s=120)
    assert st["state"] == "done", st.get("reason")
    manifest = json.loads((jobs.job_dir(job) / "artifact" / "manifest.json").read_text())
    assert manifest["method"] == "cctuning" and manifest["metrics"]["eval_after"]["loss_sw>en"] > 0
    rep = manifest["metrics"]["cctuning"]
    figs = cctuning_figures(rep)
    assert rep["wt_pairs"] == 8 and all(f.data for f in figs.values())
    tuned = load_cctuning(fresh_tiny_state("llama"), st["artifact"])
    assert tuned.w_dm.shape == (64, 4) and tuned.spec.max_steps == 2


def test_w_dm_has_its_own_learning_rate_and_initialisation(state, split):
    # Adam's first step from zeros moves each entry by dm_lr · g/(|g| + eps) (constant
    # schedule, no warm-up); the gradient does not depend on dm_lr, so a 10× larger dm_lr
    # gives exactly a 10× larger W_DM, and no entry moves more than dm_lr.
    common = dict(max_steps=1, batch_size=8, schedule="constant", warmup=0.0, wt_pairs=8, eval_items=2,
                  curve_points=2, dropout=0.0, lr=1e-4)
    res = train_cctuning(state, split, CCTuningSpec(dm_lr=0.05, **common))
    small = train_cctuning(state, split, CCTuningSpec(dm_lr=0.005, **common)).extra["w_dm"]
    w = res.extra["w_dm"]
    assert 0 < w.abs().max().item() <= 0.05 * (1 + 1e-6)
    torch.testing.assert_close(w, 10 * small, rtol=1e-5, atol=1e-9)
    assert res.metrics["dm_lr"] == 0.05 and res.metrics["w_dm_norm"] == pytest.approx(float(w.norm()))
    # dm_init: N(0, dm_init²) from the spec's seed, reproducible; 0 = zeros
    spec = CCTuningSpec(dm_init=0.02, seed=3)
    a, b = init_decision_maker(640, 18, spec), init_decision_maker(640, 18, spec)
    assert torch.equal(a, b) and a.shape == (640, 18) and abs(a.std().item() - 0.02) < 0.001
    assert not init_decision_maker(4, 3, CCTuningSpec()).any()
    with pytest.raises(ValueError, match="dm_lr"):
        CCTuningSpec(dm_lr=0.0)

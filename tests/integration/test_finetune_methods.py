"""SiLP, Mid-align and LENS on the tiny model: exactly the claimed parameters change, the
loss goes down, base + artifact reproduces the tuned model bit-exactly, the base is untouched."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from conftest import ATTN_MLP, FFN, fresh_tiny_state

from workbench.errors import ParamError
from workbench.evaluation.losses import evaluate_model, translation_loss
from workbench.examples import ParallelSplit, build_split, encode_texts
from workbench.finetune import artifact_io
from workbench.finetune.data import collate
from workbench.finetune.lens import (
    LENSSpec,
    final_states,
    lens_encode,
    lens_evaluate,
    lens_representations,
    lens_subspace,
    train_lens,
)
from workbench.finetune.midalign import (
    MidAlignSpec,
    contrastive_alignment_loss,
    merge_adapter_artifacts,
    train_midalign,
)
from workbench.finetune.runner import finetune
from workbench.finetune.silp import SiLPSpec, train_silp
from workbench.finetune.train import Cancelled, block_output, masked_mean
from workbench.models import get_path, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")




def _names(layers, modules):
    return {f"model.layers.{i}.{m}.weight" for i in layers for m in modules}


def _changed(base, model) -> set[str]:
    return {n for n, p in model.named_parameters() if not torch.equal(base[n], p.detach())}


def _assert_base_untouched(state, base_params):
    for n, p in state.model.named_parameters():
        assert torch.equal(p, base_params[n]), f"base parameter {n} was modified"
    assert not any(p.requires_grad for p in state.model.parameters())


def _assert_round_trip(state, result, tmp_path, **kw):
    path = artifact_io.write_artifact(tmp_path / "art", state, result.model, {"method": "test"},
                                      allowed=result.trainable, **kw)
    tuned = artifact_io.load_tuned(state, path)
    got = dict(tuned.model.named_parameters())
    for n, p in result.model.named_parameters():
        assert torch.equal(got[n], p), f"{n} differs after base + artifact"
    manifest = json.loads((path / "manifest.json").read_text())
    assert set(manifest["changed"]) == _changed(dict(state.model.named_parameters()), result.model)
    assert manifest["base_fingerprint"] == state.fingerprint
    return path, tuned


def test_testing_module_mirrors_conftest_tiny_model():
    from conftest import tiny_model as conftest_tiny_model

    a, b = tiny_model("llama"), conftest_tiny_model("llama")
    assert a.config.to_dict() == b.config.to_dict()
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)


# --------------------------------------------------------------------------- SiLP


def test_silp_changes_only_the_ffn_of_its_layers(state, split, base_params, tmp_path):
    spec = SiLPSpec(src="sw", tgt="en", n2d_layers=(1,), d2n_layers=(2,), max_steps=2, lr=1e-3)
    seen = []
    res = train_silp(state, split, spec, progress=lambda s, t, msg, m: seen.append((s, t, m["stage"])))
    want = _names([1, 2], FFN)
    assert _changed(base_params, res.model) == want == set(res.trainable)
    assert [s for s, _, _ in seen] == [1, 2, 3, 4] and {t for _, t, _ in seen} == {4}
    assert [st for _, _, st in seen] == ["n2d", "n2d", "d2n", "d2n"]
    _assert_base_untouched(state, base_params)
    _assert_round_trip(state, res, tmp_path)
    again = train_silp(state, split, spec)
    for (n, p), (_, q) in zip(res.model.named_parameters(), again.model.named_parameters()):
        assert torch.equal(p, q), f"{n}: same seed, different result"


def test_silp_stages_train_their_own_direction_and_loss_goes_down(state, split, base_params):
    spec = SiLPSpec(src="sw", tgt="en", n2d_layers=(0, 1, 2, 3), d2n_layers=(), max_steps=15, lr=3e-3,
                    batch_size=8, schedule="constant", warmup=0.0)
    before = translation_loss(state.model, state.tokenizer, split, "sw", "en", part="train")
    res = train_silp(state, split, spec)
    after = translation_loss(res.model, state.tokenizer, split, "sw", "en", part="train")
    assert after < before - 0.05, (before, after)
    assert list(res.metrics["stages"]) == ["n2d"]
    _assert_base_untouched(state, base_params)


def test_silp_allocation_picks_the_layers_it_trains(state, split):
    spec = SiLPSpec(src="sw", tgt="en", split=2, k1=1, k2=1, alloc_pairs=8, max_steps=1, lr=1e-3)
    res = train_silp(state, split, spec)
    alloc = res.metrics["allocation"]
    assert alloc["split"] == 2 and len(alloc["scores"]) == 4 and alloc["scores"][0] is None
    assert alloc["n2d"][0] in (1, 2) and alloc["d2n"] == [3]
    assert set(res.trainable) == _names(alloc["n2d"] + alloc["d2n"], FFN)


def test_silp_tft_stage_trains_every_parameter_on_instructions(state, split, base_params, tmp_path):
    tft = tmp_path / "tft.jsonl"
    rows = [{"instruction": "Taja rangi ya anga.", "output": "Bluu."},
            {"prompt": "Habari?", "response": "Nzuri.", "input": ""}]
    tft.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = train_silp(state, split, SiLPSpec(n2d_layers=(1,), d2n_layers=(), tft_file=str(tft), max_steps=2,
                                            lr=1e-3))
    assert list(res.metrics["stages"]) == ["n2d", "tft"] and res.metrics["stages"]["tft"]["examples"] == 2
    assert set(res.trainable) == set(base_params)
    changed = _changed(base_params, res.model)
    assert _names([0, 3], ATTN_MLP) <= changed <= set(base_params)
    tft.write_text('{"instruction": "no output"}\n')
    with pytest.raises(ValueError, match=r"tft.jsonl:1: needs string fields"):
        train_silp(state, split, SiLPSpec(n2d_layers=(), d2n_layers=(), tft_file=str(tft), max_steps=1))


def test_silp_cancellation_leaves_the_base_alone(state, split, base_params):
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 1

    with pytest.raises(Cancelled):
        train_silp(state, split, SiLPSpec(n2d_layers=(1,), d2n_layers=(2,), max_steps=5), should_stop=stop)
    _assert_base_untouched(state, base_params)


# --------------------------------------------------------------------------- Mid-align


def _align_loss(model, state, split, layer):
    src = encode_texts(state.tokenizer, split.column("en"), 48)
    tgt = encode_texts(state.tokenizer, split.column("sw"), 48)
    b = collate(src + tgt, state.tokenizer.pad_token_id)
    with torch.no_grad():
        h = masked_mean(block_output(model, state.arch, b, layer), b["count"])
    return contrastive_alignment_loss(h[: len(src)], h[len(src):], 0.1).item()


def test_midalign_changes_exactly_the_lora_targets_and_round_trips(state, split, base_params, tmp_path):
    spec = MidAlignSpec(src="en", tgt="sw", max_steps=4, align_batch_size=8, lr=1e-3)
    res = train_midalign(state, split, spec)
    want = _names(range(4), ATTN_MLP)
    assert _changed(base_params, res.model) == want == set(res.trainable)
    assert [("task_loss" in h, "align_loss" in h) for h in res.history] == [(True, False), (False, True)] * 2
    assert res.adapter and all("lora_" in k for k in res.adapter)
    _assert_base_untouched(state, base_params)
    path, _ = _assert_round_trip(state, res, tmp_path, adapter=res.adapter, adapter_config=res.adapter_config)
    via_adapter = artifact_io.load_tuned(state, path, via="adapter")
    got = dict(via_adapter.model.named_parameters())
    for n, p in res.model.named_parameters():
        torch.testing.assert_close(got[n], p, rtol=0, atol=1e-6)


def test_midalign_align_only_changes_layers_up_to_the_aligned_one_and_aligns(state, split, base_params):
    spec = MidAlignSpec(src="en", tgt="sw", task_loss=False, align_layer=1, max_steps=12, align_batch_size=16,
                        lr=3e-3, dropout=0.0, schedule="constant", warmup=0.0)
    before = _align_loss(state.model, state, split, 1)
    res = train_midalign(state, split, spec)
    assert _changed(base_params, res.model) == _names([0, 1], ATTN_MLP)
    assert all("align_loss" in h for h in res.history)
    after = _align_loss(res.model, state, split, 1)
    assert after < before - 0.05, (before, after)
    _assert_base_untouched(state, base_params)


def test_midalign_default_aligns_the_papers_middle_layer(state, split, base_params):
    # 4 blocks: the paper's layer L/2 = 2 (1-based) = block 1; align-only training then
    # changes blocks 0 and 1 only (the contrastive pass stops there).
    spec = MidAlignSpec(src="en", tgt="sw", task_loss=False, max_steps=2, align_batch_size=8, lr=1e-3)
    res = train_midalign(state, split, spec)
    assert res.metrics["align_layer"] == 1
    assert _changed(base_params, res.model) == _names([0, 1], ATTN_MLP)


def test_midalign_task_loss_goes_down(state, split):
    spec = MidAlignSpec(src="en", tgt="sw", align_loss=False, task_directions="forward", max_steps=15, lr=1e-2,
                        dropout=0.0, schedule="constant", warmup=0.0)
    before = translation_loss(state.model, state.tokenizer, split, "en", "sw", part="train")
    res = train_midalign(state, split, spec)
    after = translation_loss(res.model, state.tokenizer, split, "en", "sw", part="train")
    assert after < before - 0.05, (before, after)


def test_merging_adapters_weight_one_reproduces_the_task_adapter(state, split, tmp_path):
    common = dict(src="en", tgt="sw", max_steps=2, align_batch_size=8, lr=1e-3)
    task = train_midalign(state, split, MidAlignSpec(align_loss=False, **common))
    align = train_midalign(state, split, MidAlignSpec(task_loss=False, seed=1, **common))
    tdir = artifact_io.write_artifact(tmp_path / "task", state, task.model, {"method": "midalign"},
                                      adapter=task.adapter, adapter_config=task.adapter_config)
    adir = artifact_io.write_artifact(tmp_path / "align", state, align.model, {"method": "midalign"},
                                      adapter=align.adapter, adapter_config=align.adapter_config)
    one = artifact_io.load_tuned(state, merge_adapter_artifacts(state, tdir, adir, tmp_path / "m1", weight=1.0))
    for n, p in dict(task.model.named_parameters()).items():
        torch.testing.assert_close(dict(one.model.named_parameters())[n], p, rtol=0, atol=1e-6)
    mid = artifact_io.load_artifact(merge_adapter_artifacts(state, tdir, adir, tmp_path / "m9"))
    k = next(iter(mid.adapter))
    torch.testing.assert_close(mid.adapter[k], 0.9 * task.adapter[k] + 0.1 * align.adapter[k])
    assert mid.manifest["method"] == "midalign-merge"


# --------------------------------------------------------------------------- LENS


def _lens_total(model, state, split, spec, fit):
    ex, _ = lens_representations(state, split, spec)
    return lens_evaluate(model, state.model, state, ex, fit, spec)["loss"]


def test_lens_states_are_hf_hidden_states_last_after_the_final_norm(state, split):
    batch = collate(encode_texts(state.tokenizer, split.column("en")[:3], 48), state.tokenizer.pad_token_id)
    with torch.no_grad():
        hf = state.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         output_hidden_states=True).hidden_states
        ours = final_states(state.model, state.arch, batch)
    torch.testing.assert_close(ours, hf[-1], rtol=0, atol=1e-6)
    # ... and not the pre-norm output of the top block (hidden_states[L] is normed)
    assert not torch.allclose(ours, block_output(state.model, state.arch, batch, state.n_layers - 1), atol=1e-3)


def test_lens_chat_template_rule_is_an_error_without_a_template(state, split):
    tok = copy.deepcopy(state.tokenizer)
    tok.chat_template = None
    plain = type(state)(state.name, state.model, tok, state.arch, state.fingerprint, state.spec)
    with pytest.raises(ParamError, match="no chat template"):
        train_lens(plain, split, LENSSpec(languages=("en", "sw"), samples_per_lang=4, max_steps=1,
                                          chat_template=True))
    # with a template, the samples end with the generation prompt (the last token LENS reads)
    ex = lens_encode(state.tokenizer, ["hello"], 48, LENSSpec(chat_template=True))[0]
    wrapped = state.tokenizer.apply_chat_template([{"role": "user", "content": "hello"}], tokenize=False,
                                                  add_generation_prompt=True)
    assert list(ex.ids) == list(state.tokenizer(wrapped, add_special_tokens=False)["input_ids"])


def test_lens_initial_losses_equal_mse_of_the_states(state, split):
    # At initialisation the trained copy equals the reference: L2 = mean(δ²) (push target
    # only), L3 = 0, L1 = MSE of the agnostic projections of the frozen states.
    spec = LENSSpec(languages=("en", "sw"), samples_per_lang=8)
    ex, reps = lens_representations(state, split, spec)
    fit = lens_subspace(reps, spec)
    got = lens_evaluate(state.model, state.model, state, ex, fit, spec)
    u = torch.as_tensor(fit["subspace"].agnostic, dtype=torch.float32)
    u = u / u.norm()
    proj = lambda x: (x @ u)[:, None] * u  # noqa: E731
    mse = torch.nn.functional.mse_loss
    assert got["l1"] == pytest.approx(mse(proj(reps["sw"]), proj(reps["en"])).item(), rel=1e-5)
    assert got["l2"] == pytest.approx(float(np.mean(fit["delta"] ** 2)), rel=1e-5)
    assert got["l3"] == pytest.approx(0.0, abs=1e-10)


def test_lens_trains_only_the_top_blocks_and_round_trips(state, split, base_params, tmp_path):
    spec = LENSSpec(languages=("en", "sw"), samples_per_lang=8, max_steps=2, lr=1e-3)
    res = train_lens(state, split, spec)
    want = {n for n in base_params if n.startswith(("model.layers.2.", "model.layers.3."))}
    assert len(want) == 18
    assert _changed(base_params, res.model) == want == set(res.trainable)
    assert res.metrics["start_layer"] == 2 and res.metrics["rank"] == 1
    assert {"l1", "l2", "l3"} <= set(res.history[0])
    _assert_base_untouched(state, base_params)
    _assert_round_trip(state, res, tmp_path)


def test_lens_loss_goes_down(state, split):
    spec = LENSSpec(languages=("en", "sw"), samples_per_lang=16, max_steps=10, epochs=10, batch_size=16,
                    lr=1e-4, push=0.5, schedule="constant", warmup=0.0, weight_decay=0.0)
    _, ref = lens_representations(state, split, spec)
    fit = lens_subspace(ref, spec)
    before = _lens_total(state.model, state, split, spec, fit)
    res = train_lens(state, split, spec)
    after = _lens_total(res.model, state, split, spec, fit)
    assert after < 0.7 * before, (before, after)
    assert res.metrics["heldout_init"]["l3"] == 0.0 and "l1" in res.metrics["heldout_final"]


# --------------------------------------------------------------------------- end to end


def test_finetune_writes_a_complete_manifest(state, split, tmp_path):
    path, res = finetune("silp", state, split.spec, SiLPSpec(n2d_layers=(1,), d2n_layers=(2,), max_steps=1),
                         tmp_path / "a", split=build_split(split.spec, ("sw", "en")))
    m = json.loads((path / "manifest.json").read_text())
    for key in ("method", "spec", "data", "data_hash", "base_model", "base_fingerprint", "seed", "versions",
                "metrics", "wall_s", "changed"):
        assert key in m, key
    assert set(m["metrics"]["eval_before"]) == {"loss_en>sw", "loss_sw>en", "ppl_en"}
    assert m["metrics"]["eval_after"] != m["metrics"]["eval_before"]
    assert sorted(p.name for p in path.iterdir()) == ["delta.safetensors", "manifest.json"]
    with pytest.raises(FileExistsError):
        artifact_io.write_artifact(path, state, res.model, {})
    after = evaluate_model(artifact_io.load_tuned(state, path).model, state.tokenizer,
                           build_split(split.spec, ("sw", "en")))
    assert after == pytest.approx(m["metrics"]["eval_after"])


def test_artifact_from_another_base_is_refused(state, split, tmp_path):
    from workbench.errors import ArtifactError
    from workbench.models import state_from_model

    res = train_silp(state, split, SiLPSpec(n2d_layers=(1,), d2n_layers=(), max_steps=1))
    path = artifact_io.write_artifact(tmp_path / "a", state, res.model, {})
    other = state_from_model(tiny_model("llama", seed=1), state.tokenizer, name="other")
    with pytest.raises(ArtifactError, match="made for base"):
        artifact_io.load_tuned(other, path)


def test_gpt2_lora_targets(split):
    gpt = fresh_tiny_state("gpt2")
    res = train_midalign(gpt, split, MidAlignSpec(max_steps=2, align_batch_size=4, lr=1e-3))
    assert res.trainable and all(any(m in n for m in ("c_attn", "c_proj", "c_fc")) for n in res.trainable)
    base = dict(gpt.model.named_parameters())
    assert _changed(base, res.model) == set(res.trainable)
    block0 = get_path(res.model, gpt.arch.layers)[0]
    assert block0.mlp.c_fc.weight.shape == base["transformer.h.0.mlp.c_fc.weight"].shape


def test_split_type_is_checked(state):
    with pytest.raises(ValueError):
        ParallelSplit(("en", "sw"), {}, [("a",)], [], "x")

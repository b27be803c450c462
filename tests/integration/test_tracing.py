"""Tracing core invariants on tiny random-init models (HOUSE_STYLE 13).

Recorded layer l == HF hidden_states[l+1] (masked mean), the last layer is taken before
the final norm, padding side does not matter, batching does not matter, FFN statistics
equal a plain forward-hook computation, and the LM head never runs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_model, tiny_tokenizer

from workbench import recordings, tracing
from workbench.config import SILP_TEMPLATE, RecordSpec
from workbench.corpus import ParallelCorpus
from workbench.examples import make_batches
from workbench.models import get_path, state_from_model
from workbench.store import Store
from workbench.tracing import recorder

TEXTS = {
    "en": ["All human beings are born free and equal in dignity and rights.", "Everyone has the right to life.",
           "No one shall be held in slavery.", "Hi.", "Everyone has the right to education, which shall be free."],
    "fr": ["Tous les êtres humains naissent libres et égaux en dignité et en droits.",
           "Tout individu a droit à la vie.",
           "Nul ne sera tenu en esclavage.", "Salut.", "Toute personne a droit à l'éducation, qui doit être gratuite."],
}


@pytest.fixture(scope="module")
def corpus():
    return ParallelCorpus("test", [str(i) for i in range(5)], TEXTS)


def _reference(state, texts, include_special=False):
    """Masked mean of HF hidden_states, one sentence at a time (no padding at all)."""
    out = []
    for s in texts:
        enc = state.tokenizer(s, return_tensors="pt", return_special_tokens_mask=True)
        with torch.no_grad():
            hs = state.model(input_ids=enc["input_ids"], output_hidden_states=True).hidden_states
        keep = torch.ones_like(enc["input_ids"][0], dtype=torch.bool) if include_special else \
            ~enc["special_tokens_mask"][0].bool()
        out.append(torch.stack([h[0][keep].mean(0) for h in hs]))
    return torch.stack(out, 1).numpy()  # (L+1, n, d)


@pytest.mark.parametrize("model_type", ["llama", "gemma3_text", "qwen2", "gpt2", "bloom", "cohere", "xglm", "phi3",
                                        "olmo2"])
def test_layer_l_equals_hidden_states_l_plus_1_and_last_is_pre_norm(model_type, corpus):
    state = state_from_model(tiny_model(model_type), tiny_tokenizer(), name=model_type)
    arrays = tracing.record_unit(state, corpus, "en", RecordSpec(batch_tokens=64, max_length=64))
    ref = _reference(state, TEXTS["en"])
    got = arrays["pooled_mean"]
    L = state.n_layers
    assert got.shape == (L + 1, 5, 64)
    np.testing.assert_allclose(got[0], ref[0], atol=1e-5)  # embedding output
    np.testing.assert_allclose(got[1:L], ref[1:L], atol=1e-5)  # layer l == hidden_states[l+1], l < L-1
    # hidden_states[L] is final_norm(layer L-1): the recorded last layer must NOT be that ...
    assert np.abs(got[L] - ref[L]).max() > 1e-2
    # ... but the raw output of the last block, captured with a plain forward hook.
    captured = []
    block = state.blocks[L - 1]
    h = block.register_forward_hook(lambda m, i, o: captured.append(o[0] if isinstance(o, tuple) else o))
    try:
        enc = state.tokenizer(TEXTS["en"][1], return_tensors="pt", return_special_tokens_mask=True)
        with torch.no_grad():
            state.model(input_ids=enc["input_ids"])
    finally:
        h.remove()
    keep = ~enc["special_tokens_mask"][0].bool()
    np.testing.assert_allclose(got[L, 1], captured[0][0][keep].mean(0).numpy(), atol=1e-5)


def test_left_and_right_padding_agree_and_alone_equals_in_batch(tiny_state, corpus):
    spec = RecordSpec(batch_tokens=256)
    padded = tracing.Batching(pack=False, max_padding=1.0)  # all five sentences in one padded batch
    right = tracing.record_unit(tiny_state, corpus, "en", spec, padding_side="right", batching=padded)
    left = tracing.record_unit(tiny_state, corpus, "en", spec, padding_side="left", batching=padded)
    for k in right:
        np.testing.assert_allclose(left[k], right[k], atol=1e-5, err_msg=k)
    alone = ParallelCorpus("one", ["0"], {"en": [TEXTS["en"][3]]})  # the shortest: most padding in a batch
    a = tracing.record_unit(tiny_state, alone, "en", spec)
    for p in ("pooled_mean", "pooled_last", "pooled_weighted"):
        np.testing.assert_allclose(a[p][:, 0], right[p][:, 3], atol=1e-5)
    # the batch really was padded: several sentences in one batch
    assert len(make_batches([10, 3, 7, 12, 2], 256)) == 1


def test_poolings_match_hand_computation(tiny_state, corpus):
    arrays = tracing.record_unit(tiny_state, corpus, "fr", RecordSpec())
    enc = tiny_state.tokenizer(TEXTS["fr"][0], return_tensors="pt", return_special_tokens_mask=True)
    with torch.no_grad():
        hs = tiny_state.model(input_ids=enc["input_ids"], output_hidden_states=True).hidden_states
    h = hs[2][0][~enc["special_tokens_mask"][0].bool()]  # layer 1, counted tokens (T', d)
    w = torch.arange(1, h.shape[0] + 1, dtype=h.dtype)[:, None]
    np.testing.assert_allclose(arrays["pooled_last"][2, 0], h[-1].numpy(), atol=1e-5)
    np.testing.assert_allclose(arrays["pooled_weighted"][2, 0], ((h * w).sum(0) / w.sum()).numpy(), atol=1e-5)
    assert arrays["n_tokens"][0] == h.shape[0]


def test_ffn_statistics_equal_forward_hook_computation(tiny_state, corpus):
    arrays = tracing.record_unit(tiny_state, corpus, "en", RecordSpec(batch_tokens=64, max_length=64))
    acts = []
    hooks = [get_path(b, tiny_state.arch.act).register_forward_hook(lambda m, i, o: acts.append(o[0].clone()))
             for b in tiny_state.blocks]
    counts = np.zeros_like(arrays["ffn_pos_counts"])
    means, diffs = [], []
    try:
        for s in TEXTS["en"]:
            acts.clear()
            enc = tiny_state.tokenizer(s, return_tensors="pt", return_special_tokens_mask=True)
            with torch.no_grad():
                tiny_state.model(input_ids=enc["input_ids"])
            keep = ~enc["special_tokens_mask"][0].bool()
            per = [a[keep] for a in acts]  # L x (T', M)
            counts += np.stack([(a > 0).sum(0).numpy() for a in per])
            sent = [a.mean(0) for a in per]
            means.append([s_.mean().item() for s_ in sent])
            diffs.append([np.nan] + [(sent[i] - sent[i - 1]).abs().mean().item() for i in range(1, len(sent))])
    finally:
        for h in hooks:
            h.remove()
    np.testing.assert_array_equal(arrays["ffn_pos_counts"], counts)
    assert arrays["ffn_tokens"][0] == arrays["n_tokens"].sum()
    np.testing.assert_allclose(arrays["ffn_layer_mean"], np.array(means), atol=1e-6)
    np.testing.assert_allclose(arrays["ffn_absdiff"], np.array(diffs), atol=1e-6)


def test_forward_stops_after_last_needed_layer_and_never_runs_lm_head(corpus):
    state = state_from_model(tiny_model("llama"), tiny_tokenizer(), name="stop-test")
    ran = []
    # pre-hooks: a module that starts to run is seen even if the run stops inside it
    hooks = [state.model.lm_head.register_forward_pre_hook(lambda *a: ran.append("lm_head")),
             state.model.model.norm.register_forward_pre_hook(lambda *a: ran.append("norm"))]
    hooks += [b.register_forward_pre_hook(lambda *a, i=i: ran.append(i)) for i, b in enumerate(state.blocks)]
    try:
        arrays = tracing.record_unit(state, corpus, "en", RecordSpec(layers=(1,), ffn_stats=False))
    finally:
        for h in hooks:
            h.remove()
    assert "lm_head" not in ran and "norm" not in ran
    assert set(ran) == {0, 1}  # blocks 2 and 3 never ran
    assert arrays["pooled_mean"].shape[0] == 2  # emb + layer 1


def test_pair_template_spans_count_only_the_chosen_side(tiny_state, corpus):
    base = dict(template=SILP_TEMPLATE, poolings=("mean",))
    all_ = tracing.record_unit(tiny_state, corpus, "en>fr", RecordSpec(**base))
    src = tracing.record_unit(tiny_state, corpus, "en>fr", RecordSpec(token_span="source", **base))
    tgt = tracing.record_unit(tiny_state, corpus, "en>fr", RecordSpec(token_span="target", **base))
    n_en = [len(tiny_state.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in TEXTS["en"]]
    # the source span holds about the source sentence's tokens (BPE may merge at the boundary)
    assert np.all(np.abs(src["n_tokens"] - np.array(n_en)) <= 1)
    assert np.all(src["n_tokens"] + tgt["n_tokens"] < all_["n_tokens"])  # the instruction is in neither
    assert not np.allclose(src["pooled_mean"], tgt["pooled_mean"])


def test_record_uses_store_second_time(tiny_state, corpus, tmp_path, monkeypatch):
    store = Store(tmp_path / "s")
    spec = RecordSpec(poolings=("mean",))
    rec1 = recordings.record(tiny_state, corpus, ["en", "fr"], spec, store=store)
    calls = []
    monkeypatch.setattr(recorder, "record_units", lambda *a, **k: calls.append(a))
    rec2 = recordings.record(tiny_state, corpus, ["en", "fr"], spec, store=store)
    assert calls == []
    for u in ("en", "fr"):
        np.testing.assert_array_equal(rec1.vectors()[u], rec2.vectors()[u])
    assert rec2.layer_labels == ["emb", 0, 1, 2, 3]
    probs = rec2.activation_probs()["en"]
    assert probs.shape == (4, 128) and 0 <= probs.min() and probs.max() <= 1


def test_progress_reports_every_sentence(tiny_state, corpus, tmp_path):
    seen = []
    recordings.record(tiny_state, corpus, ["en", "fr"], RecordSpec(batch_tokens=64, max_length=64),
                      store=Store(tmp_path), progress=lambda d, t, m: seen.append((d, t)))
    assert seen[-1] == (10, 10) and all(b >= a for (a, _), (b, _) in zip(seen, seen[1:]))


def test_bad_inputs_give_clear_errors(tiny_state, corpus):
    with pytest.raises(tracing.RecordError, match=r"out of range.*4 blocks"):
        tracing.record_unit(tiny_state, corpus, "en", RecordSpec(layers=(9,)))
    with pytest.raises(ValueError, match="unknown language"):
        recordings.record(tiny_state, corpus, ["en", "xx"], RecordSpec())
    with pytest.raises(tracing.RecordError, match="pair template needs language pairs"):
        recordings.record(tiny_state, corpus, ["en"], RecordSpec(template=SILP_TEMPLATE))
    with pytest.raises(ValueError, match="unknown pooling"):
        RecordSpec(poolings=("max",))
    with pytest.raises(tracing.RecordError, match="no tokens"):
        # the target sentence is cut away by max_length: its span is empty
        tracing.record_unit(tiny_state, corpus, "en>fr", RecordSpec(max_length=8, template=SILP_TEMPLATE,
                                                                    token_span="target"))


def test_memory_bounded_batches():
    lengths = list(range(1, 200))
    batches = make_batches(lengths, 512)
    assert sorted(i for b in batches for i in b) == list(range(199))
    assert all(len(b) * max(lengths[i] for i in b) <= 512 for b in batches)


def test_out_of_memory_batch_is_split_and_results_unchanged(tiny_state, corpus, monkeypatch):
    """A batch that does not fit is halved and retried; the recorded numbers do not change."""
    spec = RecordSpec(batch_tokens=256)
    token_budget_only = tracing.Batching(pack=False, max_padding=1.0)  # all five sentences in one padded batch
    ref = tracing.record_unit(tiny_state, corpus, "en", spec)
    real = recorder._run_batch
    sizes = []

    def flaky(envoy, state, batch, plan):
        sizes.append(batch["input_ids"].shape[0])
        if batch["input_ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(envoy, state, batch, plan)

    monkeypatch.setattr(recorder, "_run_batch", flaky)
    got = tracing.record_unit(tiny_state, corpus, "en", spec, batching=token_budget_only)
    assert sizes == [5, 2, 3, 1, 2]  # 5 fails -> 2 + 3; 3 fails -> 1 + 2
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], atol=1e-5, err_msg=k)


def test_model_is_left_unwrapped_after_recording(tiny_state, corpus):
    """nnsight's controllers are removed: the shared model runs plain forwards as before."""
    tracing.record_unit(tiny_state, corpus, "en", RecordSpec(poolings=("mean",)))
    assert not any("forward" in m.__dict__ for m in tiny_state.model.modules())
    enc = tiny_state.tokenizer(TEXTS["en"][0], return_tensors="pt")
    fresh = tiny_model("llama")  # same seed, never traced
    with torch.no_grad():
        np.testing.assert_array_equal(tiny_state.model(**enc).logits.numpy(), fresh(**enc).logits.numpy())
    # and it can be traced again
    again = tracing.record_unit(tiny_state, corpus, "en", RecordSpec(poolings=("mean",)))
    assert again["pooled_mean"].shape[0] == 5

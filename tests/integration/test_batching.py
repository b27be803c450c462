"""Batching does not change what is recorded (issue 15).

Every array recorded with the padding-budget batching across units (padded, left or
right, and packed) equals recording one sentence at a time, on the tiny random-init model
of every architecture family in the table; templates, pair spans, chat templates, FFN
statistics and the post-final-norm layer included. Plus the invariants of the pure batch
builders, and the store key: batching is not part of it, `final_norm` is, and entries
stored under the key of the old recorder are still found.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import transformers
import transformers.masking_utils
from conftest import tiny_model, tiny_tokenizer

from workbench import recordings, tracing
from workbench.config import SILP_TEMPLATE, RecordSpec
from workbench.corpus import ParallelCorpus
from workbench.examples import length_batches, pack_rows, packed_batches
from workbench.models import state_from_model
from workbench.store import Store, make_key
from workbench.tracing import Batching, recorder

TEXTS = {  # different lengths per language, so batches across units mix them
    "en": ["All human beings are born free and equal in dignity and rights.", "Everyone has the right to life.",
           "No one shall be held in slavery.", "Hi.", "Everyone has the right to education, which shall be free.",
           "Everyone is entitled to all the rights and freedoms set forth in this Declaration."],
    "fr": ["Tous les êtres humains naissent libres et égaux en dignité et en droits.",
           "Tout individu a droit à la vie.", "Nul ne sera tenu en esclavage.", "Salut.",
           "Toute personne a droit à l'éducation, qui doit être gratuite.", "Chacun peut se prévaloir de ces droits."],
}
ARCHS = ["llama", "gemma3_text", "qwen2", "gpt2", "bloom", "cohere", "xglm", "phi3", "olmo2"]
#: Families whose forward cannot read packed rows: BLOOM builds its mask (and alibi) without position ids,
#: XGLM its causal mask; the recorder's probe must find that and record them in padded batches.
NO_PACKING = {"bloom", "xglm"}
FULL = dict(poolings=("mean", "last", "weighted"), embeddings=True, ffn_stats=True, final_norm=True)
MODES = {"right": ("right", Batching(pack=False)), "left": ("left", Batching(pack=False)),
         "packed": ("right", Batching(pack=True))}


@pytest.fixture(scope="module")
def corpus():
    return ParallelCorpus("test", [str(i) for i in range(6)], TEXTS)


@pytest.fixture(scope="module")
def states():
    return {t: state_from_model(tiny_model(t), tiny_tokenizer(), name=t) for t in ARCHS}


def one_at_a_time(state, corpus, unit, spec):
    """The reference: every sentence recorded alone (a batch of one, no padding)."""
    langs = unit.split(">")
    parts = [tracing.record_unit(state, ParallelCorpus("one", ["0"], {lang: [corpus.texts(lang)[i]] for lang in langs}),
                                 unit, spec) for i in range(len(corpus))]
    out = {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0] if k.startswith("pooled_")}
    out["n_tokens"] = np.concatenate([p["n_tokens"] for p in parts])
    if spec.ffn_stats:
        out["ffn_pos_counts"] = sum(p["ffn_pos_counts"] for p in parts)
        out["ffn_tokens"] = sum(p["ffn_tokens"] for p in parts)
        out["ffn_layer_mean"] = np.concatenate([p["ffn_layer_mean"] for p in parts])
        out["ffn_absdiff"] = np.concatenate([p["ffn_absdiff"] for p in parts])
    return out


def assert_same(got, ref):
    assert sorted(got) == sorted(ref)
    for k in ref:
        if k in ("n_tokens", "ffn_tokens", "ffn_pos_counts"):
            np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
        else:
            np.testing.assert_allclose(got[k], ref[k], atol=2e-5, rtol=1e-5, err_msg=k)


def spy_batches(monkeypatch):
    """Record the sentence order of every batch the recorder runs."""
    seen, real = [], recorder._run_batch

    def spy(envoy, state, batch, plan):
        seen.append((batch["order"], tuple(batch["input_ids"].shape)))
        return real(envoy, state, batch, plan)

    monkeypatch.setattr(recorder, "_run_batch", spy)
    return seen


# --------------------------------------------------------------------------- equality with one at a time


@pytest.mark.parametrize("model_type", ARCHS)
def test_batched_across_units_equals_one_sentence_at_a_time(model_type, states, corpus, monkeypatch):
    state, spec = states[model_type], RecordSpec(**FULL)
    ref = {u: one_at_a_time(state, corpus, u, spec) for u in ("en", "fr")}
    for mode, (side, batching) in MODES.items():
        seen = spy_batches(monkeypatch)
        got = tracing.record_units(state, corpus, ["en", "fr"], spec, padding_side=side, batching=batching)
        # batches really mix the units (items 0-5 are en, 6-11 fr) and group several sentences
        assert any(min(o) < 6 <= max(o) for o, _ in seen), mode
        if mode == "packed" and model_type not in NO_PACKING:
            assert any(shape[0] < len(o) for o, shape in seen)  # several sentences in one row
        elif mode == "packed":
            assert all(shape[0] == len(o) for o, shape in seen)  # the probe fell back to padded batches
        for u in ("en", "fr"):
            assert_same(got[u], ref[u])


@pytest.mark.parametrize("span", ["all", "source", "target"])
def test_pair_template_spans_batched_equal_one_at_a_time(span, states, corpus):
    state = states["llama"]
    spec = RecordSpec(template=SILP_TEMPLATE, token_span=span, **FULL)
    ref = one_at_a_time(state, corpus, "en>fr", spec)
    for side, batching in MODES.values():
        got = tracing.record_units(state, corpus, ["en>fr", "fr>en"], spec, padding_side=side, batching=batching)
        assert_same(got["en>fr"], ref)


@pytest.mark.parametrize("model_type", ["llama", "gemma3_text"])
def test_chat_and_text_templates_batched_equal_one_at_a_time(model_type, states, corpus):
    state = states[model_type]
    assert state.tokenizer.chat_template  # the fixture tokenizer ships one
    for spec in (RecordSpec(chat_template=True, **FULL), RecordSpec(template="Text: {text} End.", **FULL),
                 RecordSpec(chat_template=True, include_special=True, **FULL)):
        ref = one_at_a_time(state, corpus, "fr", spec)
        for side, batching in MODES.values():
            assert_same(tracing.record_units(state, corpus, ["en", "fr"], spec, padding_side=side,
                                             batching=batching)["fr"], ref)


def test_final_norm_is_hidden_states_last_and_labelled_after_the_blocks(states, corpus):
    state = states["gemma3_text"]
    got = tracing.record_unit(state, corpus, "en", RecordSpec(layers=(1,), **FULL))
    assert tracing.layer_labels(state.n_layers, RecordSpec(layers=(1,), **FULL)) == ["emb", 1, "final"]
    assert got["pooled_mean"].shape[0] == 3 and got["ffn_layer_mean"].shape[1] == 2  # FFN: blocks 0…1
    for i, s in enumerate(TEXTS["en"]):
        enc = state.tokenizer(s, return_tensors="pt", return_special_tokens_mask=True)
        with torch.no_grad():
            hs = state.model(input_ids=enc["input_ids"], output_hidden_states=True).hidden_states
        keep = ~enc["special_tokens_mask"][0].bool()
        np.testing.assert_allclose(got["pooled_mean"][2, i], hs[-1][0][keep].mean(0).numpy(), atol=1e-5)
        np.testing.assert_allclose(got["pooled_mean"][1, i], hs[2][0][keep].mean(0).numpy(), atol=1e-5)
        np.testing.assert_allclose(got["pooled_last"][2, i], hs[-1][0][keep][-1].numpy(), atol=1e-5)
    only_final = tracing.record_unit(state, corpus, "en", RecordSpec(layers=(), embeddings=False,
                                                                       ffn_stats=False, final_norm=True))
    np.testing.assert_allclose(only_final["pooled_mean"][0], got["pooled_mean"][2], atol=1e-5)


def test_out_of_memory_packed_batch_is_split_and_results_unchanged(states, corpus, monkeypatch):
    state, spec = states["llama"], RecordSpec(**FULL)
    ref = tracing.record_units(state, corpus, ["en", "fr"], spec, batching=Batching(pack=True))
    real, sizes = recorder._run_batch, []

    def flaky(envoy, state, batch, plan):
        sizes.append(len(batch["order"]))
        if len(batch["order"]) > 2:
            raise torch.OutOfMemoryError("out of memory (simulated)")
        return real(envoy, state, batch, plan)

    monkeypatch.setattr(recorder, "_run_batch", flaky)
    got = tracing.record_units(state, corpus, ["en", "fr"], spec, batching=Batching(pack=True))
    assert max(sizes) > 2 and sum(s for s in sizes if s <= 2) == 12  # split until every sentence ran once
    for u in ("en", "fr"):
        assert_same(got[u], ref[u])


def test_record_in_groups_under_a_memory_budget_stores_the_same(states, corpus, tmp_path, monkeypatch):
    state, spec = states["llama"], RecordSpec(poolings=("mean",))
    whole = recordings.record(state, corpus, ["en", "fr"], spec, store=Store(tmp_path / "a"))
    monkeypatch.setattr(recorder, "ACC_BUDGET_BYTES", 1)  # one unit per group
    calls = []
    real = recorder.record_units
    monkeypatch.setattr(recorder, "record_units", lambda st, c, units, *a, **k: calls.append(units) or
                        real(st, c, units, *a, **k))
    grouped = recordings.record(state, corpus, ["en", "fr"], spec, store=Store(tmp_path / "b"))
    assert calls == [["en"], ["fr"]]
    for u in ("en", "fr"):
        np.testing.assert_allclose(grouped.vectors()[u], whole.vectors()[u], atol=1e-5)
        assert grouped.entries[u].key == whole.entries[u].key


# --------------------------------------------------------------------------- pure batch builders


@pytest.mark.parametrize("seed", range(5))
def test_length_batches_invariants(seed):
    rng = random.Random(seed)
    lengths = [rng.choice([rng.randint(1, 12), rng.randint(1, 300)]) for _ in range(rng.randint(1, 400))]
    for max_tokens, max_padding in ((512, 0.05), (4096, 0.05), (300, 0.0), (1024, 0.2), (600, 1.0)):
        batches = length_batches(lengths, max_tokens=max_tokens, max_padding=max_padding)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # every index once
        for b in batches:
            padded, real = len(b) * max(lengths[i] for i in b), sum(lengths[i] for i in b)
            assert lengths[b[0]] == max(lengths[i] for i in b)  # longest first
            if len(b) > 1:
                assert padded <= max_tokens
                assert 1 - real / padded <= max_padding + 1e-12


def test_length_batches_by_hand():
    # sorted: 12(3) 11(7) 10(0) 10(5) 10(6) 7(2) 3(1) 2(4)
    assert length_batches([10, 3, 7, 12, 2, 10, 10, 11], max_tokens=256) == [[3, 7], [0, 5, 6], [2], [1], [4]]
    # no padding budget: only the token budget cuts (3 x 12 = 36 > 30)
    assert length_batches([10, 3, 7, 12, 2, 10, 10, 11], max_tokens=30, max_padding=1.0) == \
        [[3, 7], [0, 5, 6], [2, 1, 4]]
    assert length_batches([], max_tokens=10) == []
    assert length_batches([50], max_tokens=10) == [[0]]  # a lone sentence over budget still runs


def test_pack_rows_and_packed_batches_invariants():
    rng = random.Random(0)
    lengths = [rng.randint(1, 120) for _ in range(300)]
    rows = pack_rows(lengths, 120)
    assert sorted(i for r in rows for i in r) == list(range(300))
    assert all(sum(lengths[i] for i in r) <= 120 for r in rows)
    assert sum(lengths) / (120 * len(rows)) > 0.95  # first-fit decreasing packs these tightly
    batches = packed_batches(lengths, max_tokens=1024)
    assert sorted(i for b in batches for r in b for i in r) == list(range(300))
    for b in batches:
        real, padded = tracing.batch_tokens(b, lengths)
        assert real == sum(lengths[i] for r in b for i in r)
        assert padded <= 1024 or len(b) == 1


def test_make_batch_packed_positions_restart_and_pool_indices(states):
    ids = [[1, 5, 6], [1, 7], [1, 8, 9, 10]]
    count = [[False, True, True], [False, True], [False, True, True, True]]
    b = tracing.make_batch(ids, count, [[2, 0], [1]], 0, "right", "cpu")
    assert b["attention_mask"] is None and b["packed"] and b["order"] == [2, 0, 1]
    assert b["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2], [0, 1, 0, 1, 2, 3, 4]]  # tail restarts too
    assert b["n"].tolist() == [3, 2, 1] and b["last"].tolist() == [3, 6, 8]
    assert b["cw"].tolist() == [1, 2, 3, 1, 2, 1] and b["wsum"].tolist() == [6, 3, 1]


# --------------------------------------------------------------------------- store key


def _old_key(fp, corpus, unit, spec):
    """The key of the recorder before issue 15, written out (batch_tokens in, no final_norm)."""
    d = spec.to_dict()
    d.pop("final_norm")
    return make_key({"kind": "record", "format": 1, "model": fp, "corpus": corpus.content_hash([unit]),
                     "n_units": len(corpus), "unit": unit, "spec": d,
                     "transformers": transformers.__version__.split(".")[:2]})


def test_store_key_ignores_batching_and_covers_final_norm(states, corpus):
    fp = states["llama"].fingerprint
    key = recordings.unit_key(fp, corpus, "en", RecordSpec())
    assert recordings.unit_key(fp, corpus, "en", RecordSpec(batch_tokens=512)) == key
    assert recordings.unit_key(fp, corpus, "en", RecordSpec(final_norm=True)) != key
    assert recordings.legacy_unit_key(fp, corpus, "en", RecordSpec()) == _old_key(fp, corpus, "en", RecordSpec())
    assert recordings.legacy_unit_key(fp, corpus, "en", RecordSpec(final_norm=True)) is None


def test_entries_of_the_old_recorder_are_still_found(states, corpus, tmp_path, monkeypatch):
    state, spec, store = states["llama"], RecordSpec(poolings=("mean",)), Store(tmp_path)
    arrays = tracing.record_unit(state, corpus, "en", spec)
    store.put(_old_key(state.fingerprint, corpus, "en", spec), arrays,
              {"kind": "record", "unit": "en", "spec": spec.to_dict()})
    assert recordings.lookup(state.fingerprint, corpus, ["en", "fr"], spec, store)["fr"] is None
    assert recordings.lookup(state.fingerprint, corpus, ["en"], spec, store)["en"] is not None
    recorded = []
    real = recorder.record_units
    monkeypatch.setattr(recorder, "record_units", lambda st, c, units, *a, **k: recorded.append(units) or
                        real(st, c, units, *a, **k))
    rec = recordings.record(state, corpus, ["en", "fr"], spec, store=store)
    assert recorded == [["fr"]]  # en came from its old entry
    np.testing.assert_array_equal(rec.vectors()["en"], arrays["pooled_mean"])
    # a spec the old recorder could not have written is recorded afresh, never read from it
    rec2 = recordings.record(state, corpus, ["en"], RecordSpec(poolings=("mean",), final_norm=True), store=store)
    assert recorded[-1] == ["en"] and rec2.layer_labels[-1] == "final"


def test_packing_is_probed_and_falls_back_to_padded_batches(states, corpus, monkeypatch):
    for t, s in states.items():  # every family packs but those whose forward ignores position restarts
        tracing.record_unit(s, corpus, "en", RecordSpec(poolings=("mean",)))
        assert recorder._PACKING_OK[id(s.model)] is (t not in NO_PACKING), t
    state = states["qwen2"]
    ref = tracing.record_unit(state, corpus, "en", RecordSpec(**FULL), batching=Batching(pack=False))
    monkeypatch.setitem(recorder._PACKING_OK, id(state.model), False)  # as if custom code ignored the restarts
    seen = spy_batches(monkeypatch)
    got = tracing.record_unit(state, corpus, "en", RecordSpec(**FULL), batching=Batching(pack=True))
    assert all(shape[0] == len(o) for o, shape in seen)  # one sentence per row
    assert_same(got, ref)


def test_packing_probe_detects_a_model_that_ignores_position_restarts(corpus, monkeypatch):
    state = state_from_model(tiny_model("llama"), tiny_tokenizer(), name="no-packing")
    # the function transformers detects packed rows with: without it, a plain causal mask
    monkeypatch.setattr(transformers.masking_utils, "find_packed_sequence_indices", lambda *a, **k: None)
    ref = tracing.record_unit(state, corpus, "en", RecordSpec(poolings=("mean",)), batching=Batching(pack=False))
    got = tracing.record_unit(state, corpus, "en", RecordSpec(poolings=("mean",)), batching=Batching(pack=True))
    assert recorder._PACKING_OK[id(state.model)] is False
    np.testing.assert_allclose(got["pooled_mean"], ref["pooled_mean"], atol=1e-5)


def test_token_budget_is_larger_on_a_gpu_only_when_left_at_the_default():
    default = RecordSpec().batch_tokens
    assert tracing.token_budget(default, "cpu") == default
    assert tracing.token_budget(default, torch.device("cuda", 1)) == tracing.GPU_BUDGET_SCALE * default
    assert tracing.token_budget(1024, "cuda:0") == 1024  # chosen by the user: kept
    assert tracing.token_budget(default, "cuda", explicit=300) == 300
    lengths = [30] * 300  # 9,000 tokens: 3 batches on the CPU budget, 1 on the GPU one
    spec = RecordSpec()
    assert len(tracing.plan_batches(lengths, spec, Batching(), "cpu")) == 3
    assert len(tracing.plan_batches(lengths, spec, Batching(), "cuda:0")) == 1

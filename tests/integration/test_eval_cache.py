"""Evaluation computed once: a second identical run does no forward pass; any key field recomputes.

Also: bad input fails with one clear EvalError before anything is stored; cancellation
stores nothing; progress reaches its total.
"""

from __future__ import annotations

import dataclasses

import pytest
from transformers import AutoModelForCausalLM, LlamaConfig

from workbench.errors import Cancelled, EvalError
from workbench.evaluation import EVAL_COLUMNS, GENERATION_COLUMNS, DecodingSpec, compare_scores, evaluate, evaluate_many
from workbench.evaluation import cache as eval_cache
from workbench.examples import DataSpec, build_split
from workbench.models import state_from_model, tiny_model, tiny_tokenizer
from workbench.models import state_from_model as _wrap
from workbench.store import Store


def make_tiny_state(model_type: str = "llama", seed: int = 0):
    """A tiny random-init state with its own weights (another seed: another fingerprint)."""
    return _wrap(tiny_model(model_type, seed), tiny_tokenizer(), name=f"tiny-{model_type}-seed{seed}")

DEC = DecodingSpec(max_new_tokens=4)
KW = dict(directions=["en:sw", "sw:en"], limit=3, decoding=DEC, n_boot=50)


@pytest.fixture
def counted(tiny_state):
    """The shared tiny state with a forward counter (removed afterwards)."""
    calls = {"n": 0}
    handle = tiny_state.model.register_forward_pre_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    yield tiny_state, calls
    handle.remove()


def _run(state, split, store, **over):
    kw = {**KW, **over}
    return evaluate(state, kw.pop("suites", ["translation", "loss"]), kw.pop("data", split), store=store, **kw)


def test_tables_and_second_run_without_forward(counted, split, tmp_path):
    state, calls = counted
    store = Store(tmp_path)
    first = _run(state, split, store)
    assert calls["n"] > 0
    assert list(first.eval.columns) == EVAL_COLUMNS and list(first.generations.columns) == GENERATION_COLUMNS
    assert len(first.generations) == 2 * 3
    metrics = set(zip(first.eval["suite"], first.eval["direction"], first.eval["metric"]))
    for d in ("en>sw", "sw>en"):
        assert {("translation", d, m) for m in ("chrf++", "bleu", "fidelity", "off_target")} <= metrics
        assert ("loss", d, "loss") in metrics
    assert ("loss", "en", "ppl") in metrics
    ok = first.eval.dropna(subset=["ci_low"])
    assert ((ok["ci_low"] <= ok["value"] + 1e-9) & (ok["value"] <= ok["ci_high"] + 1e-9)).all()
    assert "nw:2" in first.manifest[state.name]["translation"]["signatures"]["chrf++"]
    calls["n"] = 0
    again = _run(state, split, store)
    assert calls["n"] == 0
    assert again.manifest[state.name]["translation"]["cached"] is True
    assert again.eval.equals(first.eval) and again.generations.equals(first.generations)
    relabelled = _run(state, split, store, label="base")
    assert calls["n"] == 0 and set(relabelled.eval["state"]) == {"base"}


@pytest.mark.parametrize("change", [
    {"decoding": dataclasses.replace(DEC, max_new_tokens=5)},
    {"decoding": dataclasses.replace(DEC, batch_size=2)},
    {"limit": 2},
    {"directions": ["en:sw"]},
    {"seed": 1},
    {"n_boot": 60},
    {"data": "other split"},
    {"versions": True},
], ids=lambda c: next(iter(c)))
def test_changing_a_key_field_recomputes(counted, split, tmp_path, monkeypatch, change):
    state, calls = counted
    store = Store(tmp_path)
    _run(state, split, store, suites=["translation"])
    calls["n"] = 0
    over = dict(change)
    if "data" in over:
        over["data"] = build_split(dataclasses.replace(split.spec, split_seed=1), ("en", "sw"))
    if over.pop("versions", False):
        real = eval_cache.versions
        monkeypatch.setattr(eval_cache, "versions", lambda: {**real(), "sacrebleu": "0.0"})
    _run(state, split, store, suites=["translation"], **over)
    assert calls["n"] > 0


def test_another_state_recomputes(counted, split, tmp_path):
    state, calls = counted
    store = Store(tmp_path)
    _run(state, split, store, suites=["loss"])
    other = make_tiny_state("llama", seed=1)
    assert other.fingerprint != state.fingerprint
    res = _run(other, split, store, suites=["loss"])
    assert res.manifest[other.name]["loss"]["cached"] is False
    assert len(list(store.keys())) == 2


@pytest.mark.parametrize("suites,over,match", [
    (["lm-eval:no_such_task_xyz"], {}, "unknown lm-eval task"),
    (["bleurt"], {}, "unknown suite"),
    (["translation"], {"directions": ["en:xx"]}, "not in"),
    (["translation"], {"directions": ["en:en"]}, "two different languages"),
], ids=["task", "suite", "pair", "same-lang"])
def test_bad_input_is_one_clear_line_and_stores_nothing(counted, split, tmp_path, suites, over, match):
    state, calls = counted
    store = Store(tmp_path)
    data = over.pop("data", DataSpec(source="tatoeba:sw", limit=16, max_length=48))
    with pytest.raises(EvalError, match=match) as e:
        evaluate(state, suites, data, store=store, **{**KW, **over})
    assert "\n" not in str(e.value)
    assert calls["n"] == 0 and list(store.keys()) == []


def test_hub_task_offline_is_a_clear_error(counted, split, tmp_path, monkeypatch):
    state, calls = counted
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    store = Store(tmp_path)
    with pytest.raises(EvalError, match="offline"):
        evaluate(state, ["translation", "lm-eval:xnli_sw"], split, store=store, **KW)
    assert calls["n"] == 0 and list(store.keys()) == []


def test_tokenizer_of_another_base_is_refused(split, tmp_path):
    """A model with 300 embeddings and the 2,000-token fixture tokenizer: refused, nothing stored."""
    cfg = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    state = state_from_model(AutoModelForCausalLM.from_config(cfg), tiny_tokenizer(), name="mismatch")
    store = Store(tmp_path)
    with pytest.raises(EvalError, match="another base model"):
        evaluate(state, ["translation"], split, store=store, **KW)
    assert list(store.keys()) == []


def test_cancel_stores_nothing_and_progress_reaches_total(counted, split, tmp_path):
    state, _ = counted
    store = Store(tmp_path)
    seen = []
    with pytest.raises(Cancelled):
        evaluate(state, ["translation", "loss"], split, store=store, progress=lambda *a: seen.append(a),
                 should_stop=lambda: len(seen) >= 2, **KW)
    assert list(store.keys()) == []
    ticks = []
    _run(state, split, store, progress=lambda *a: ticks.append(a))
    done = [d for d, _, _ in ticks]
    assert done == sorted(done) and ticks[-1][0] == ticks[-1][1] == 2 * 3 + 3 * 3


def test_another_training_size_shares_the_results(counted, split, tmp_path):
    """Only the held-out part is read, so the base is evaluated once for fine-tunes of any training size."""
    state, calls = counted
    store = Store(tmp_path)
    _run(state, split, store, suites=["translation"])
    calls["n"] = 0
    smaller = build_split(dataclasses.replace(split.spec, limit=4), ("en", "sw"))
    assert smaller.data_hash != split.data_hash and smaller.heldout == split.heldout
    _run(state, split, store, suites=["translation"], data=smaller)
    assert calls["n"] == 0


def test_evaluate_many_one_label_per_state(tiny_state, split, tmp_path):
    res = evaluate_many({"base": tiny_state, "again": tiny_state}, ["loss"], split, directions=["en:sw"], limit=2,
                        n_boot=20, store=Store(tmp_path))
    wide = compare_scores(res.eval, reference="base")
    assert list(wide.columns) == ["n", "base", "again", "Δ again"] and (wide["n"] == 2).all()
    assert (wide["Δ again"] == 0).all()  # the same state: served from the store, identical numbers
    assert res.manifest["again"]["loss"]["cached"] is True

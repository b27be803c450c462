"""Recording through nnsight's remote path (issue 14, item 4: NDIF), checked without a network.

nnsight 0.8.1's `trace(remote="local")` serializes the trace exactly as for NDIF,
deserializes it with non-installed modules hidden and runs it on the local model. Here the
workbench is an editable install whose import hook would quietly re-import it while hidden,
so `strict_simulation` also blocks every `workbench` import during the simulated
deserialize: a helper of the trace body that did not travel by value fails the test.
"""

from __future__ import annotations

import io
import linecache
import sys

import cloudpickle.cloudpickle
import huggingface_hub
import nnsight
import numpy as np
import pytest
import torch
from conftest import tiny_model, tiny_tokenizer
from nnsight import CONFIG
from nnsight.intervention.backends.local import LocalSimulationBackend
from nnsight.intervention.backends.remote import RemoteBackend
from nnsight.modeling import huggingface
from nnsight.modeling.transformers import TransformersModel
from nnsight.schema.request import RequestModel
from nnsight.tracing import tracer as nnsight_tracer

from workbench import models, recordings, tracing
from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.corpus import ParallelCorpus
from workbench.errors import ModelError, RecordError
from workbench.models import state_from_model
from workbench.recordings import ensure_recording, store_status
from workbench.store import Store
from workbench.tracing import Batching, recorder

TEXTS = {
    "en": ["All human beings are born free and equal in dignity and rights.", "Everyone has the right to life.",
           "No one shall be held in slavery.", "Hi.", "Everyone has the right to education."],
    "fr": ["Tous les êtres humains naissent libres et égaux en dignité et en droits.",
           "Tout individu a droit à la vie.", "Nul ne sera tenu en esclavage.", "Salut.",
           "Toute personne a droit à l'éducation."],
}
FULL = RecordSpec(poolings=("mean", "last", "weighted"), embeddings=True, ffn_stats=True, final_norm=True)
PADDED = Batching(pack=False)  # the remote path never packs (recorder.packing_works)
HUB_ID = "meta-llama/Llama-3.1-8B"


class _NoWorkbench:
    """A meta-path finder that refuses every `workbench` import (the server has no workbench)."""

    def find_spec(self, name, path=None, target=None):  # noqa: D102 - importlib protocol
        if name.split(".")[0] == "workbench":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: as on an NDIF server)")
        return None


@pytest.fixture
def strict_simulation(monkeypatch):
    """nnsight's local simulation, with workbench imports blocked while modules are hidden."""
    hide, restore = LocalSimulationBackend._hide_local_modules, LocalSimulationBackend._restore
    blocker = _NoWorkbench()
    seen = []

    def hide_strict(self):
        hidden = hide(self)
        seen.append(sorted(m for m in hidden["modules"] if m.split(".")[0] == "workbench"))
        sys.meta_path.insert(0, blocker)
        return hidden

    def restore_strict(self, hidden):
        sys.meta_path.remove(blocker)
        return restore(self, hidden)

    monkeypatch.setattr(LocalSimulationBackend, "_hide_local_modules", hide_strict)
    monkeypatch.setattr(LocalSimulationBackend, "_restore", restore_strict)
    return seen


@pytest.fixture(scope="module")
def corpus():
    return ParallelCorpus("test", [str(i) for i in range(5)], TEXTS)


def _assert_same(got, want, unit):
    """Every array of one unit equal: floats to 1e-6 (NaN where NaN), counts exactly."""
    for k, w in want.items():
        if np.issubdtype(w.dtype, np.floating):
            np.testing.assert_allclose(got[k], w, rtol=1e-6, atol=1e-7, equal_nan=True, err_msg=f"{unit} {k}")
        else:
            np.testing.assert_array_equal(got[k], w, err_msg=f"{unit} {k}")


def _offline(monkeypatch):
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    monkeypatch.setattr(CONFIG.API, "APIKEY", None)
    monkeypatch.setattr(CONFIG.API, "HOST", "https://127.0.0.1:9")  # nothing listens there

    def no_hub(self, repo_id, *args, **kwargs):
        raise ConnectionError(f"cannot reach the hub for {repo_id} (offline)")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", no_hub)  # the same with or without a network


# --------------------------------------------------------------------------- (a) the local simulation


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "gemma3_text", "bloom", "cohere", "xglm", "phi3", "olmo2"])
def test_local_simulation_of_the_remote_trace_equals_the_local_recording(model_type, corpus, strict_simulation):
    state = state_from_model(tiny_model(model_type), tiny_tokenizer(), name=model_type)
    ref = tracing.record_units(state, corpus, ["en", "fr"], FULL, batching=PADDED)
    got = tracing.record_units(state, corpus, ["en", "fr"], FULL, batching=PADDED, remote="local")
    # every batch really went through the serialize / hide / deserialize path
    assert strict_simulation and all("workbench.tracing.recorder" in hidden for hidden in strict_simulation)
    for unit in ("en", "fr"):
        assert sorted(got[unit]) == sorted(ref[unit])
        assert {"pooled_mean", "pooled_last", "pooled_weighted", "ffn_pos_counts", "ffn_absdiff"} <= set(ref[unit])
        assert got["en"]["pooled_mean"].shape == (len(tracing.layer_labels(4, FULL)), 5, 64)
        _assert_same(got[unit], ref[unit], unit)


def test_local_simulation_fails_when_the_body_helpers_do_not_travel(corpus, strict_simulation, monkeypatch):
    """The check above can fail: unregistered, the helpers are pickled by reference to workbench."""
    monkeypatch.setattr(cloudpickle.cloudpickle, "_PICKLE_BY_VALUE_MODULES", set())
    monkeypatch.setattr(nnsight, "register", lambda module: None)
    state = state_from_model(tiny_model("llama"), tiny_tokenizer(), name="llama")
    with pytest.raises(ModuleNotFoundError, match="workbench"):
        tracing.record_units(state, corpus, ["en"], RecordSpec(poolings=("mean",)), batching=PADDED, remote="local")


def test_shared_model_and_tokenizer_are_left_as_they_were(corpus, strict_simulation):
    state = models.load("tiny:llama")
    side = state.tokenizer.padding_side
    tracing.record_units(state, corpus, ["en"], RecordSpec(poolings=("mean",)), remote="local")
    assert state.tokenizer.padding_side == side and "_persistent_id" not in state.tokenizer.__dict__
    for m in state.model.modules():
        assert "forward" not in m.__dict__ and "_persistent_id" not in m.__dict__
    with pytest.raises(RecordError, match="remote must be False, True"):
        tracing.record_units(state, corpus, ["en"], RecordSpec(), remote="ndif")


def test_ensure_recording_dry_run_stores_what_a_local_recording_stores(tmp_path, strict_simulation):
    model, corpus_spec = ModelSpec("tiny:llama"), CorpusSpec("udhr", ("en", "sw"), limit=3)
    dry = ensure_recording(model, corpus_spec, FULL, store=Store(tmp_path / "dry"), remote="local")
    local = ensure_recording(model, corpus_spec, FULL, store=Store(tmp_path / "local"))
    assert strict_simulation
    for u in ("en", "sw"):
        a, b = dry.entries[u], local.entries[u]
        assert a.key == b.key  # the same computation on the same weights: the same store key
        np.testing.assert_allclose(np.asarray(a["pooled_weighted"]), np.asarray(b["pooled_weighted"]),
                                   rtol=2e-5, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(a["ffn_pos_counts"]), np.asarray(b["ffn_pos_counts"]))


# --------------------------------------------------------------------------- (b) NDIF offline


def test_remote_offline_names_what_is_missing_and_builds_and_writes_nothing(monkeypatch, tmp_path):
    _offline(monkeypatch)
    monkeypatch.setenv("NDIF_API_KEY", "x")
    store = Store(tmp_path / "s")
    with pytest.raises(RecordError, match=r"cannot record on NDIF \(--remote\): cannot reach NDIF at "
                                          r"https://127\.0\.0\.1:9"):
        ensure_recording(ModelSpec(HUB_ID), CorpusSpec("udhr", ("en", "sw"), limit=3), store=store, remote=True)
    with pytest.raises(RecordError, match="fine-tune artifact cannot be applied on NDIF"):
        ensure_recording(ModelSpec(HUB_ID, artifact=str(tmp_path)), CorpusSpec("udhr", ("en",), limit=3),
                         store=store, remote=True)
    assert not store.ls() and models.remote_fingerprint(HUB_ID) is None  # no state was built


def test_remote_without_the_hub_is_a_model_error_and_writes_nothing(monkeypatch, tmp_path):
    _offline(monkeypatch)
    monkeypatch.setattr("workbench.recordings.ensure.remote_problems", lambda model: [])  # as if NDIF answered
    store = Store(tmp_path / "s")
    with pytest.raises(ModelError, match=r"cannot read 'meta-llama/Llama-3\.1-8B' from the Hugging Face hub \("
                                         r"ConnectionError: cannot reach the hub for meta-llama/Llama-3\.1-8B"):
        ensure_recording(ModelSpec(HUB_ID), CorpusSpec("udhr", ("en",), limit=3), store=store, remote=True)
    assert not store.ls()
    with pytest.raises(ModelError, match="'tiny:llama' is not a Hugging Face hub id"):
        models.remote_state("tiny:llama")


def _weightless(model_type: str = "llama"):
    real = tiny_model(model_type)
    config = type(real.config).from_dict(real.config.to_dict())
    config._name_or_path = "org/tiny"
    return real, models.meta_state(config, tiny_tokenizer(), fingerprint="ndif:org/tiny@0", spec=ModelSpec("org/tiny"))


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_weightless_state_has_the_shapes_of_the_real_model_and_no_weights(model_type):
    real, state = _weightless(model_type)
    ref = state_from_model(real, tiny_tokenizer(), name=model_type)
    assert (state.n_layers, state.d_model, state.n_neurons) == (ref.n_layers, ref.d_model, ref.n_neurons)
    assert state.arch == ref.arch and state.device == torch.device("cpu")
    assert all(p.is_meta for p in state.model.parameters())
    assert [n for n, _ in state.model.named_modules()] == [n for n, _ in real.named_modules()]  # the server's paths


def test_recorder_on_ndif_offline_fails_in_one_line_without_loading_weights(monkeypatch, corpus, tmp_path):
    _offline(monkeypatch)
    _, state = _weightless()
    store = Store(tmp_path / "s")
    with pytest.raises(RecordError, match=r"^the NDIF run of org/tiny failed: ConnectionError: cannot reach the "
                                          r"hub for org/tiny \(offline\)$"):
        recordings.record(state, corpus, ["en"], FULL, store=store, remote=True)
    assert all(p.is_meta for p in state.model.parameters())
    assert not store.ls()


# --------------------------------------------------------------------------- NDIF, the server emulated


@pytest.fixture
def emulated_ndif(monkeypatch, strict_simulation):
    """nnsight's real NDIF client (`RemoteBackend`) with the network replaced by an in-process server.

    The client mints the model key (the hub's spelling of the id stubbed), serializes the
    trace exactly as for NDIF (`RemoteBackend._serialize`, compressed as configured). The
    "server" deserializes it with non-installed modules hidden and workbench imports blocked,
    against its own copy of the model (the tiny model's real weights), runs it and sends back
    the saved values through `torch.save` / `torch.load`, as NDIF's result download does.
    """
    server_model = tiny_model("llama")
    server = TransformersModel(server_model, tokenizer=tiny_tokenizer(), task="text-generation")
    monkeypatch.setitem(huggingface._ID_CACHE, "org/tiny", "org/tiny")
    requests = []

    def request(self, req, tracer):
        blob = self._serialize(tracer)
        requests.append(req.model_key)
        sim, filename = LocalSimulationBackend(server), tracer.info.frame.f_code.co_filename
        saved_lines = linecache.cache.get(filename)
        hidden = sim._hide_local_modules()
        try:
            restored = RequestModel.deserialize(blob, server._remoteable_persistent_objects(), compress=self.compress)
        finally:
            sim._restore(hidden)
            if saved_lines is not None:  # deserialize registered the block's source under the file's name
                linecache.cache[filename] = saved_lines
            else:
                linecache.cache.pop(filename, None)
        nnsight_tracer.inc()
        try:
            restored.execute(restored.info.code)
            saves = nnsight_tracer._saves()
            result = {k: v for k, v in restored.info.frame.f_locals.items() if id(v) in saves}
        finally:
            nnsight_tracer.dec()
        buf = io.BytesIO()
        torch.save(result, buf)
        return torch.load(io.BytesIO(buf.getvalue()), map_location="cpu", weights_only=False)

    monkeypatch.setattr(RemoteBackend, "request", request)
    yield requests, strict_simulation
    recorder._unwrap(server_model)


def test_ndif_payload_from_the_weightless_state_runs_on_the_server_model(monkeypatch, corpus, emulated_ndif):
    requests, hidden = emulated_ndif
    _, state = _weightless()
    got = tracing.record_units(state, corpus, ["en", "fr"], FULL, remote=True)
    ref = tracing.record_units(state_from_model(tiny_model("llama"), tiny_tokenizer(), name="llama"), corpus,
                               ["en", "fr"], FULL, batching=PADDED)
    assert requests and all('"repo_id": "org/tiny"' in key and '"task": "text-generation"' in key
                            for key in requests)
    assert len(hidden) == len(requests) and all("workbench.tracing.recorder" in h for h in hidden)
    assert all(p.is_meta for p in state.model.parameters())  # the client never had weights
    for unit in ("en", "fr"):
        _assert_same(got[unit], ref[unit], unit)


def test_remote_true_refuses_a_loaded_model_and_leaves_it_unharmed(corpus):
    state = state_from_model(tiny_model("llama"), tiny_tokenizer(), name="loaded")
    with pytest.raises(RecordError, match=r"remote=True runs on NDIF: pass the weightless models.remote_state"):
        tracing.record_units(state, corpus, ["en"], FULL, remote=True)
    assert not any(p.is_meta for p in state.model.parameters())  # nnsight's pipeline never moved it to meta


def test_stored_ndif_recordings_are_served_later_without_ndif_or_the_hub(monkeypatch, emulated_ndif):
    """A fresh process (the in-process memo cleared), NDIF unreachable: the stored units still come back."""
    real = tiny_model("llama")
    config, tok = type(real.config).from_dict(real.config.to_dict()), tiny_tokenizer()

    class Info:
        id, sha = "org/tiny", "c0ffee"

    monkeypatch.setattr(models.remote.HfApi, "model_info", lambda self, *a, **k: Info())
    monkeypatch.setattr(models.remote.AutoConfig, "from_pretrained", lambda *a, **k: config)
    monkeypatch.setattr(models.remote.AutoTokenizer, "from_pretrained", lambda *a, **k: tok)
    monkeypatch.setattr(models.remote, "_STATES", {})
    monkeypatch.setattr("workbench.recordings.ensure.remote_problems", lambda model: [])  # as if NDIF answered
    spec, cspec, store = ModelSpec("org/tiny"), CorpusSpec("udhr", ("en", "fr"), limit=3), Store()  # the cache's
    first = ensure_recording(spec, cspec, FULL, store=store, remote=True)
    assert first.fingerprint == "ndif:org/tiny@c0ffee" and len(store.ls()) == 2

    monkeypatch.setattr(models.remote, "_STATES", {})  # a new process
    monkeypatch.setattr("workbench.recordings.ensure.remote_problems", lambda model: ["no NDIF API key"])
    monkeypatch.setattr(models.remote.HfApi, "model_info", lambda *a, **k: pytest.fail("asked the hub"))
    again = ensure_recording(spec, cspec, FULL, store=store, remote=True)
    assert {u: e.key for u, e in again.entries.items()} == {u: e.key for u, e in first.entries.items()}
    assert store_status(spec, cspec, FULL, remote=True).recording is not None
    with pytest.raises(RecordError, match="no NDIF API key"):  # a unit not stored yet still needs NDIF
        ensure_recording(spec, CorpusSpec("udhr", ("en", "de"), limit=3), FULL, store=store, remote=True)

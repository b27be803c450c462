"""Model layer: loading from a local directory, fingerprints, GGUF conversion, the table."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from conftest import tiny_model, tiny_tokenizer

from workbench import models
from workbench.config import ModelSpec


@pytest.fixture
def local_dir(tmp_path):
    d = tmp_path / "tiny-hf"
    tiny_model("llama").save_pretrained(d)
    tiny_tokenizer().save_pretrained(d)
    return d


def test_local_directory_loads_with_stable_fingerprint(local_dir):
    spec = ModelSpec(source=str(local_dir))
    fp = models.fingerprint(spec)
    state = models.load(spec)
    assert state.fingerprint == fp  # computable without loading the weights
    assert state.n_layers == 4 and state.d_model == 64 and state.n_neurons == 128
    assert str(state.device) == "cpu" and state.dtype == torch.float32
    assert not any(p.requires_grad for p in state.model.parameters())
    # a changed weight file changes the fingerprint
    w = local_dir / "model.safetensors"
    from safetensors.torch import load_file, save_file
    t = load_file(w)
    t["model.norm.weight"] = t["model.norm.weight"] + 1
    save_file(t, w, metadata={"format": "pt"})
    assert models.fingerprint(spec) != fp
    # the dtype is part of the state's identity
    bf16 = ModelSpec(source=str(local_dir), dtype="bfloat16")
    assert models.fingerprint(bf16) != models.fingerprint(spec)


def test_unknown_architecture_lists_modules():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("C", (), {"model_type": "oddformer"})()
            self.trunk = torch.nn.Linear(2, 2)

    with pytest.raises(models.ModelError, match=r"(?s)unknown architecture .oddformer.*trunk"):
        models.architecture_for(Odd())


def test_every_table_entry_resolves_on_a_real_hf_class():
    assert set(models.ARCHITECTURES) <= set(models.TINY_TYPES)  # every entry has a tiny model to test it on
    for mt in sorted(models.ARCHITECTURES):
        m = tiny_model(mt, n_layers=1)
        entry = models.architecture_for(m)
        assert m.config.model_type == mt
        block = models.get_path(m, entry.layers)[0]
        for part in (entry.mlp, entry.act, entry.down, *entry.ffn_params):
            models.get_path(block, part)
        for part in (entry.base, entry.embed, entry.norm, entry.unembed):
            models.get_path(m, part)
        assert models.get_path(m, entry.unembed) is m.get_output_embeddings()


def test_bad_sources_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(models.ModelError, match="does not exist"):
        models.prepare(ModelSpec(source=str(tmp_path / "nothing.gguf")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(models.ModelError, match="no config.json"):
        models.prepare(ModelSpec(source=str(tmp_path / "empty")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelError, match="bundled model .*local path"):
        models.prepare(ModelSpec(source="no-such-org/no-such-model"))
    with pytest.raises(models.ModelError, match="no CUDA GPU"):
        if torch.cuda.is_available():
            pytest.skip("has a GPU")
        models.resolve_device("cuda")


def test_auto_device_is_cpu_fp32_without_gpu():
    if torch.cuda.is_available():
        assert models.resolve_device() == ("cuda", torch.bfloat16)
    else:
        assert models.resolve_device() == ("cpu", torch.float32)


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    """Stand-in for transformers' GGUF loader: returns the tiny model; counts calls."""
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"GGUF fake")
    calls = []

    def fake_model(path, gguf_file=None, **kw):
        calls.append(gguf_file)
        time.sleep(0.2)
        if getattr(fake_model, "crash", False):
            raise RuntimeError("killed mid-conversion")
        return tiny_model("llama")

    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", fake_model)
    tok = tiny_tokenizer()
    monkeypatch.setattr("transformers.AutoTokenizer.from_pretrained", lambda *a, **k: tok)
    return gguf, calls, fake_model


def test_gguf_conversion_is_atomic_on_crash(fake_gguf, tmp_path):
    gguf, calls, fake_model = fake_gguf
    target = tmp_path / "models" / "x"
    fake_model.crash = True
    with pytest.raises(RuntimeError, match="killed"):
        models.convert_gguf(gguf, target)
    assert not target.exists()
    assert not [p for p in target.parent.iterdir() if p.is_dir()]  # no half directory left behind


def test_gguf_conversion_runs_once_under_concurrency(fake_gguf, tmp_path):
    gguf, calls, _ = fake_gguf
    target = tmp_path / "models" / "x"
    threads = [threading.Thread(target=models.convert_gguf, args=(gguf, target)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert (target / "model.safetensors").is_file() and (target / "workbench-model.json").is_file()
    assert (target / "config.json").is_file() and (target / "tokenizer.json").is_file()


def test_bundled_list_names_licences():
    rows = {r["name"]: r for r in models.list_models()}
    assert {"gemma-3-270m", "smollm2-135m", "qwen2.5-coder-0.5b"} <= set(rows)
    assert rows["gemma-3-270m"]["licence"] == "Gemma Terms of Use"
    assert rows["gemma-3-270m"]["status"] in {"ready", "installed", "missing"}


def _neuron_activation(model_type, block, x):
    """METHODS' A = act_fn(gate_proj(x)) (gated) or act_fn(c_fc(x)) (not gated), from the FFN's input x."""
    if model_type == "phi3":  # fused: gate, up = gate_up_proj(x).chunk(2); the gate half comes first
        gate = block.mlp.gate_up_proj(x)[..., : block.mlp.down_proj.in_features]
        return block.mlp.activation_fn(gate)
    if model_type == "bloom":
        return block.mlp.gelu_impl(block.mlp.dense_h_to_4h(x))
    if model_type == "xglm":
        return block.activation_fn(block.fc1(x))
    if model_type == "gpt2":
        return block.mlp.act(block.mlp.c_fc(x))
    return block.mlp.act_fn(block.mlp.gate_proj(x))


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "bloom", "cohere", "xglm", "phi3", "olmo2"])
def test_the_act_module_outputs_the_neuron_activation(model_type):
    m = tiny_model(model_type, n_layers=2)
    entry = models.architecture_for(m)
    block = models.get_path(m, entry.layers)[1]
    ffn_in = models.get_path(block, entry.ffn_params[0])  # the FFN's first projection reads x
    seen = {}
    hooks = [ffn_in.register_forward_hook(lambda _m, a, _o: seen.__setitem__("x", a[0])),
             models.get_path(block, entry.act).register_forward_hook(lambda _m, _a, o: seen.__setitem__("a", o))]
    try:
        with torch.no_grad():
            m(input_ids=torch.randint(3, 2000, (2, 7)))
            want = _neuron_activation(model_type, block, seen["x"])
    finally:
        for h in hooks:
            h.remove()
    assert seen["a"].shape == want.shape and seen["a"].shape[-1] == models.state_from_model(
        m, tiny_tokenizer()).n_neurons
    assert torch.equal(seen["a"], want)

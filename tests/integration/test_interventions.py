"""Interventions as model states (METHODS §10): hooks equal hand-computed forwards, identities are bitwise,
fingerprints and store entries never mix, RUCAIBox's mask format round-trips, the CLI refuses bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from workbench import models
from workbench.cli.main import main
from workbench.config import CorpusSpec, InterventionSpec, ModelSpec, RecordSpec
from workbench.errors import ModelError, ParamError
from workbench.interventions import experiments, parse_intervention
from workbench.interventions.neuron_pth import read_neuron_pth, write_neuron_pth
from workbench.interventions.requests import request_text
from workbench.interventions.resolve import resolve_spec
from workbench.models.architectures import get_path
from workbench.models.interventions import save_tensors
from workbench.recipes.commands import analyze_command
from workbench.recipes.spec import normalize_spec

pytestmark = pytest.mark.usefixtures("one_thread")

IDS = torch.tensor([[5, 17, 300, 42, 999, 7, 1200, 64], [88, 9, 1500, 3, 77, 640, 21, 11]])


def _spec(source: str, *ivs: InterventionSpec) -> ModelSpec:
    return ModelSpec(source=source, interventions=ivs)


def _logits(state, ids=IDS):
    with torch.no_grad():
        return state.model(input_ids=ids, use_cache=False).logits


def _neurons(layers: dict[int, list[int]], **kw) -> InterventionSpec:
    file = save_tensors({f"layer.{k}.index": torch.tensor(v, dtype=torch.long) for k, v in layers.items()})
    return InterventionSpec(kind="neurons", file=file, **kw)


def _vector(layer: int, src: torch.Tensor, tgt: torch.Tensor, **kw) -> InterventionSpec:
    return InterventionSpec(kind="vector", file=save_tensors({f"layer.{layer}.src": src, f"layer.{layer}.tgt": tgt}),
                            **kw)


def test_zero_strength_and_an_empty_set_give_the_base_outputs_bitwise():
    base = _logits(models.load("tiny:llama"))
    g = torch.Generator().manual_seed(0)
    v, w = torch.randn(64, generator=g), torch.randn(64, generator=g)
    basis = torch.linalg.qr(torch.randn(64, 3, generator=g))[0]
    sub = save_tensors({"layer.2.basis": basis, "layer.2.mean": v})
    identities = [_neurons({1: [3, 5]}, strength=0.0), _neurons({1: [], 2: []}),
                  _vector(1, v, w, strength=0.0), InterventionSpec(kind="subspace", file=sub, strength=0.0)]
    for iv in identities:
        assert torch.equal(_logits(models.load(_spec("tiny:llama", iv))), base), iv
    changed = [_neurons({1: [3, 5]}), _vector(1, v, w), InterventionSpec(kind="subspace", file=sub)]
    for iv in changed:  # the same specs at strength 1 do change the outputs (the test can fail)
        assert not torch.allclose(_logits(models.load(_spec("tiny:llama", iv))), base), iv


def _zero_down_inputs(model, arch, layers: dict[int, list[int]]) -> None:
    """The hand-written deactivation: neuron i contributes nothing when its column of the FFN output projection is 0."""
    blocks = get_path(model, arch.layers)
    with torch.no_grad():
        for layer, idx in layers.items():
            down = get_path(blocks[layer], arch.down)
            if type(down).__name__ == "Conv1D":  # GPT-2: weight (M, d)
                down.weight[idx, :] = 0
            else:
                down.weight[:, idx] = 0


@pytest.mark.parametrize("model_type", models.TINY_TYPES)
def test_deactivation_equals_a_forward_with_those_activations_zeroed(model_type):
    source = models.tiny_name(model_type)
    layers = {0: [1, 7, 30], 2: [0, 100]}
    got = _logits(models.load(_spec(source, _neurons(layers))))
    hand, _ = models.tiny_model(model_type), None
    arch = models.architecture_for(hand)
    _zero_down_inputs(hand, arch, layers)
    with torch.no_grad():
        want = hand(input_ids=IDS, use_cache=False).logits
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, _logits(models.load(source)), atol=1e-4)


def test_a_steered_forward_equals_the_hand_computed_residual_update():
    g = torch.Generator().manual_seed(1)
    v_src, v_tgt = torch.randn(64, generator=g), torch.randn(64, generator=g)
    base = models.load("tiny:llama")
    with torch.no_grad():
        h = base.model(input_ids=IDS, output_hidden_states=True, use_cache=False).hidden_states
    cases = (({}, slice(None)), ({"positions": "from:5"}, slice(5, None)), ({"positions": "last"}, slice(7, 8)))
    for kw, rows in cases:
        iv = _vector(1, v_src, v_tgt, strength=2.0, options=(("beta", 3.0),), **kw)
        with torch.no_grad():
            got = models.load(_spec("tiny:llama", iv)).model(input_ids=IDS, output_hidden_states=True,
                                                                use_cache=False).hidden_states
        want = h[2].clone()
        want[:, rows] = h[2][:, rows] - 2.0 * v_src + 3.0 * v_tgt
        assert torch.allclose(got[2], want, atol=1e-6), kw
        assert torch.equal(got[1], h[1])  # blocks before it untouched
    iv = _vector(1, v_src, v_tgt, strength=2.0, options=(("norm", True),))
    with torch.no_grad():
        got = models.load(_spec("tiny:llama", iv)).model(input_ids=IDS, output_hidden_states=True).hidden_states
    new = h[2] - 2.0 * v_src + 2.0 * v_tgt
    assert torch.allclose(got[2], new * (h[2].norm(dim=-1, keepdim=True) / new.norm(dim=-1, keepdim=True)), atol=1e-5)


def test_generation_with_the_kv_cache_sees_absolute_positions():
    g = torch.Generator().manual_seed(2)
    iv = _vector(2, torch.randn(64, generator=g), torch.randn(64, generator=g), strength=3.0, positions="from:6")
    st = models.load(_spec("tiny:llama", iv))
    ids = IDS[:1, :5]
    with torch.no_grad():
        cached = st.model.generate(ids, max_new_tokens=6, do_sample=False, use_cache=True)
        plain = st.model.generate(ids, max_new_tokens=6, do_sample=False, use_cache=False)
        base = models.load("tiny:llama").model.generate(ids, max_new_tokens=6, do_sample=False)
    assert torch.equal(cached, plain)
    assert torch.equal(cached[:, :7], base[:, :7])  # positions 0..5 unchanged: the first two new tokens agree
    assert not torch.equal(cached, base)


def test_fingerprints_differ_from_the_base_and_across_strengths_and_ignore_provenance():
    iv = _neurons({1: [3]}, options=(("mode", "scale"), ("factor", 2.0)))
    fps = {models.fingerprint(_spec("tiny:llama", dataclasses.replace(iv, strength=s))) for s in (0.5, 1.0, 2.0)}
    base = models.fingerprint("tiny:llama")
    assert len(fps) == 3 and base not in fps
    assert all(fp.startswith(base.rsplit("-", 1)[0]) and fp.endswith("-float32") for fp in fps)
    same = dataclasses.replace(iv, source=(("lang", "sw"),))
    assert models.fingerprint(_spec("tiny:llama", same)) == models.fingerprint(_spec("tiny:llama", iv))
    assert models.load(_spec("tiny:llama", iv)).fingerprint == models.fingerprint(_spec("tiny:llama", iv))


def test_the_intervened_state_shares_every_parameter_and_leaves_the_base_alone():
    base = models.load("tiny:llama")
    before = _logits(base)
    st = models.load(_spec("tiny:llama", _neurons({0: [1, 2, 3]})))
    assert st.model is not base.model
    assert {p.data_ptr() for p in st.model.parameters()} == {p.data_ptr() for p in base.model.parameters()}
    assert torch.equal(_logits(base), before)


def test_store_entries_of_the_base_and_the_intervened_state_never_mix(monkeypatch):
    calls = []
    real = experiments.nll_per_example
    monkeypatch.setattr(experiments, "nll_per_example", lambda *a, **k: calls.append(1) or real(*a, **k))
    texts = ["the cat sat on the mat", "a dog ran home quickly"]
    iv = _neurons({0: list(range(40)), 1: list(range(40))})
    b1 = experiments.sentence_nll(ModelSpec(source="tiny:llama"), texts)
    i1 = experiments.sentence_nll(_spec("tiny:llama", iv), texts)
    b2 = experiments.sentence_nll(ModelSpec(source="tiny:llama"), texts)
    assert len(calls) == 2  # the base's second read is the store's
    assert (b1[0] == b2[0]).all() and not (b1[0] == i1[0]).all()


def test_neuron_pth_round_trip_and_applying_a_published_mask(tmp_path):
    sets = {"en": {0: [1, 5], 2: [9]}, "zh": {1: [3]}, "fr": {}}
    path = write_neuron_pth(tmp_path / "tiny.neuron.pth", sets, ["en", "zh", "fr"], n_layers=4)
    masks = read_neuron_pth(path)
    assert [[t.tolist() for t in lang] for lang in masks] == [[[1, 5], [], [9], []], [[], [3], [], []],
                                                              [[], [], [], []]]
    assert all(t.dtype == torch.long for lang in masks for t in lang)
    req = parse_intervention(f"neurons:file={path},lang=zh,file_langs=en+zh+fr")
    spec = resolve_spec(_spec("tiny:llama", req))
    want = _spec("tiny:llama", _neurons({0: [], 1: [3], 2: [], 3: []}))
    assert torch.equal(_logits(models.load(spec)), _logits(models.load(want)))
    (tmp_path / "bad.neuron.pth").write_bytes(b"not a pickle")
    with pytest.raises(ParamError):
        read_neuron_pth(tmp_path / "bad.neuron.pth")


def test_unresolved_or_damaged_interventions_fail_in_one_line():
    req = parse_intervention("neurons:lang=sw,mode=zero")
    with pytest.raises(ModelError, match="not resolved"):
        models.load(_spec("tiny:llama", req))
    iv = _neurons({0: [1]})
    path = models.interventions.tensor_path(iv.file)
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    with pytest.raises(ModelError, match="damaged"):
        models.load(_spec("tiny:llama", iv))


def test_model_specs_with_interventions_round_trip_and_keep_old_dicts():
    spec = _spec("tiny:llama", parse_intervention("vector:src=en,tgt=sw,alpha=4,layers=1-3,positions=from:2,norm=true"))
    assert ModelSpec.from_dict(spec.to_dict()) == spec and hash(spec) == hash(ModelSpec.from_dict(spec.to_dict()))
    assert spec.interventions[0].layers == (1, 2, 3) and spec.interventions[0].option("norm") is True
    assert "interventions" not in ModelSpec(source="tiny:llama").to_dict()


@pytest.mark.parametrize("bad", ["bogus:x=1", "neurons:lang=sw,wat=3", "vector:src=en,layers=a-b", "neurons:mode=zero",
                                 "neurons:lang=sw,mode=nope", "vector:src=en,positions=middle"])
def test_the_cli_refuses_a_bad_intervention_in_one_line(bad, capsys):
    assert main(["record", "--model", "tiny:llama", "--langs", "en,sw", "--limit", "2", "--intervention", bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_record_with_an_intervention_is_its_own_recording(capsys):
    args = ["record", "--model", "tiny:llama", "--langs", "en,sw,fr", "--limit", "3", "--max-length", "32"]
    assert main(args) == 0
    assert main([*args, "--intervention", "vector:src=en,tgt=sw,alpha=2,layers=1-2"]) == 0
    out = capsys.readouterr().out
    assert "+iv" in out
    spec = resolve_spec(_spec("tiny:llama", parse_intervention("vector:src=en,tgt=sw,alpha=2,layers=1-2")),
                        corpus=CorpusSpec("udhr", ("en", "sw", "fr"), 3), record=RecordSpec(max_length=32))
    assert dict(spec.interventions[0].source)["recording"]


def test_request_text_round_trips_and_names_the_intervention_in_analyze_commands():
    for text in ("neurons:lang=sw,mode=zero", "vector:src=en,tgt=sw,alpha=4,layers=6-12,norm=true,positions=from:5",
                 "neurons:lang=mean,random=0,entropy_quantile=0.02", "subspace:lang=sw,mode=swap,rank=2"):
        iv = parse_intervention(text)
        assert parse_intervention(request_text(iv)) == iv
    spec = normalize_spec({"analysis": "overlap", "model": _spec("tiny:llama", parse_intervention(
        "neurons:lang=sw")).to_dict(), "corpus": "udhr", "langs": ["en", "sw"], "limit": 3})
    assert "--intervention" in analyze_command(spec)


def test_analyze_deactivation_and_steering_and_the_preview_on_a_tiny_model(tmp_path, capsys):
    common = ["--model", "tiny:llama", "--langs", "en,sw,fr", "--limit", "6", "--max-length", "32"]
    assert main(["analyze", "deactivation", *common, "--eval-limit", "4", "--n-gen", "1", "--max-new-tokens", "4",
                 "--n-boot", "50", "--out", str(tmp_path)]) == 0
    assert main(["analyze", "steering", *common, "--alphas", "0,2", "--param-layers", "1,2", "--eval-limit", "2",
                 "--max-new-tokens", "4", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "diagonal mean" in out and "α=2" in out
    assert {p.name for p in tmp_path.iterdir()} >= {"deactivation.csv", "deactivation_shift.csv", "steering.csv"}
    steered = resolve_spec(_spec("tiny:llama", parse_intervention("vector:src=en,tgt=sw,alpha=8,layers=1-3")),
                           corpus=CorpusSpec("udhr", ("en", "sw", "fr"), 6), record=RecordSpec(max_length=32))
    table = experiments.preview_generations(ModelSpec(source="tiny:llama"), steered, ["the cat", "a dog"],
                                            max_new_tokens=6, langs=("en", "sw"))
    assert list(table.columns) == ["prompt", "before", "after", "before_lang", "after_lang"]
    assert (table["before"] != table["after"]).any()


def test_lens_language_directions_lie_in_the_language_specific_subspace():
    corpus, record = CorpusSpec("udhr", ("en", "sw", "fr"), 6), RecordSpec(max_length=32)
    lens = resolve_spec(_spec("tiny:llama", parse_intervention("vector:tgt=sw,lens=true,layers=2")), corpus=corpus,
                        record=record).interventions[0]
    sub = resolve_spec(_spec("tiny:llama", parse_intervention("subspace:lang=sw,layers=2")), corpus=corpus,
                       record=record).interventions[0]
    delta = models.interventions.load_tensors(lens.file)["layer.2.tgt"].double()
    basis = models.interventions.load_tensors(sub.file)["layer.2.basis"].double()
    assert delta.norm() > 0
    assert torch.allclose(basis @ (basis.T @ delta), delta, atol=1e-5)
    assert dict(lens.source)["central"] == "en"

"""Paper presets (METHODS.md §8): each changes exactly the fields it claims, nothing else."""

from __future__ import annotations

import dataclasses

import pytest

from workbench.config import RecordSpec
from workbench.errors import ParamError
from workbench.presets import (
    PRESETS,
    analysis_overrides,
    apply_preset,
    describe,
    hf_hidden_state_labels,
    preset_names,
)

# What each paper's code does differently from our defaults (METHODS §8), written out.
CLAIMS = {
    "midalign": {"poolings": ("mean",), "include_special": True},
    "mexa": {"poolings": ("weighted",), "include_special": True, "final_norm": True},
    "lape": {"include_special": True, "ffn_stats": True},
    "silp": {"include_special": True, "ffn_stats": True},
    "lens": {"poolings": ("last",), "chat_template": True, "include_special": True, "final_norm": True},
}


def _diff(a: RecordSpec, b: RecordSpec) -> dict[str, object]:
    return {f.name: getattr(b, f.name) for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}


def test_names_cover_the_five_papers():
    assert preset_names() == ("lape", "lens", "mexa", "midalign", "silp", "wendler")
    assert PRESETS["silp"] is PRESETS["lape"]


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_preset_sets_exactly_its_fields_on_a_neutral_spec(name):
    # A spec where every claimed field differs from the preset's value, so each claim shows up.
    base = RecordSpec(poolings=("mean", "last", "weighted"), include_special=False, final_norm=False,
                      chat_template=False, ffn_stats=False)
    got = apply_preset(name, base)
    assert _diff(base, got) == {k: v for k, v in CLAIMS[name].items() if getattr(base, k) != v}
    for field, value in CLAIMS[name].items():
        assert getattr(got, field) == value


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_preset_keeps_every_other_field(name):
    base = RecordSpec(max_length=77, embeddings=False, layers=(1, 2), batch_tokens=999, template="<{text}>")
    got = apply_preset(name, base)
    untouched = {f.name for f in dataclasses.fields(RecordSpec)} - set(CLAIMS[name])
    for field in untouched:
        assert getattr(got, field) == getattr(base, field), field
    assert got.to_dict() != base.to_dict()  # a preset always changes the store key


def test_default_spec_and_the_store_key_fields():
    assert RecordSpec().final_norm is False
    assert "final_norm" in RecordSpec.help() and "'final'" in RecordSpec.help()["final_norm"]
    assert apply_preset("mexa").poolings == ("weighted",)  # default base: RecordSpec()


def test_analysis_overrides_and_describe():
    assert analysis_overrides("midalign") == {"method": "margin", "k": 4, "aggregate": "mid_align_score"}
    assert analysis_overrides("mexa") == {"method": "mexa", "pivot": "en", "layers": "hf_hidden_states",
                                          "aggregate": "mean_max"}
    assert analysis_overrides("lens")["layer"] == "final"
    over = analysis_overrides("mexa")
    over["method"] = "cosine"  # a fresh dict: the preset is not changed
    assert analysis_overrides("mexa")["method"] == "mexa"
    for name in preset_names():
        text = describe(name)
        assert text.startswith(PRESETS[name].name + ":") and "Recording:" in text


def test_unknown_preset_is_a_param_error():
    with pytest.raises(ParamError, match="unknown preset 'xyz'; choose from lape, lens"):
        apply_preset("xyz", RecordSpec())
    with pytest.raises(ParamError):
        describe("xyz")
    with pytest.raises(ParamError):
        analysis_overrides("")


def test_hf_hidden_state_labels():
    # HF hidden_states of an L = 4 model: emb, blocks 0..2, then final_norm(block 3).
    assert hf_hidden_state_labels(4) == ["emb", 0, 1, 2, "final"]
    assert len(hf_hidden_state_labels(18)) == 19
    with pytest.raises(ParamError):
        hf_hidden_state_labels(0)


def test_every_preset_analysis_field_is_a_parameter_of_a_registered_analysis():
    # a figure spec takes the overrides its analysis declares; one no analysis declares would be dropped everywhere
    from workbench.recipes.registry import ANALYSES

    for name, preset in PRESETS.items():
        for key in preset.analysis:
            assert any(key in params for params in ANALYSES.values()), (name, key)


def test_the_mexa_preset_reaches_the_retrieval_parameters():
    from workbench.recipes.spec import normalize_spec

    canon = normalize_spec({"analysis": "retrieval", "preset": "mexa", "model": "tiny:llama", "langs": "en,sw"})
    assert {k: canon["params"][k] for k in ("method", "pivot", "layers", "aggregate", "pooling")} == {
        "method": "mexa", "pivot": "en", "layers": "hf_hidden_states", "aggregate": "mean_max", "pooling": "weighted"}
    plain = normalize_spec({"analysis": "retrieval", "model": "tiny:llama", "langs": "en,sw"})
    assert plain["params"]["layers"] == "all" and plain["params"]["aggregate"] == "all"
    given = normalize_spec({"analysis": "retrieval", "preset": "mexa", "model": "tiny:llama", "langs": "en,sw",
                            "params": {"layers": "all"}})
    assert given["params"]["layers"] == "all"  # what the user gives wins over the preset


def test_the_lens_preset_layer_final_reaches_the_subspace_view():
    from workbench.recipes.spec import normalize_spec

    canon = normalize_spec({"analysis": "subspace", "preset": "lens", "model": "tiny:llama", "langs": "en,sw"})
    assert canon["params"]["layer"] == "final" and canon["params"]["central"] == "en"

"""Every `--set FIELD=VALUE` is type-checked against the spec's field before use (issue 21).

`midalign --set tau=abc` ended in a TypeError traceback. Now every field of every registered
fine-tune method and every parameter of every analysis (export's `--set`) refuses a value
of the wrong type in one line naming `Spec.field`, before any model is loaded.
"""

from __future__ import annotations

import dataclasses

import pytest
from faults import fails_clearly

from workbench.config import ModelSpec, annotation_fits
from workbench.errors import ParamError
from workbench.finetune.methods import METHODS, spec_for
from workbench.recipes.registry import REGISTRY


def _wrong(ann: str) -> str | None:
    """A `--set` value (as typed) that does not fit the annotation, or None if the checker leaves it to the spec."""
    for text, value in (("abc", "abc"), ("[1,2]", [1, 2]), ("true", True)):
        fit = annotation_fits(ann, value)
        if fit is None:
            return None
        if fit is False:
            return text
    return None


FT_FIELDS = [(m.name, f.name, _wrong(str(f.type))) for m in METHODS.values() for f in dataclasses.fields(m.spec)
             if _wrong(str(f.type)) is not None]


def test_midalign_tau_abc_is_one_line(capsys):
    fails_clearly(["finetune", "midalign", "--model", "tiny:llama", "--set", "tau=abc"], capsys,
                  "MidAlignSpec.tau must be a number, got 'abc'")


@pytest.mark.parametrize("method,name,value", FT_FIELDS, ids=[f"{m}.{n}" for m, n, _ in FT_FIELDS])
def test_every_fine_tune_field_refuses_a_value_of_the_wrong_type(capsys, method, name, value):
    cls = METHODS[method].spec.__name__
    fails_clearly(["finetune", method, "--model", "tiny:llama", "--set", f"{name}={value}"], capsys,
                  f"{cls}.{name} must be")


AN_FIELDS = [(a, f.name, _wrong(str(f.type))) for a, an in REGISTRY.items() for f in dataclasses.fields(an.params)
             if _wrong(str(f.type)) is not None]


@pytest.mark.parametrize("analysis,name,value", AN_FIELDS, ids=[f"{a}.{n}" for a, n, _ in AN_FIELDS])
def test_every_export_parameter_refuses_a_value_of_the_wrong_type(tmp_path, capsys, analysis, name, value):
    fails_clearly(["export", "--analysis", analysis, "--model", "tiny:llama", "--set", f"{name}={value}",
                   "--out", str(tmp_path)], capsys, f".{name} must be")


def test_values_of_the_right_type_pass_and_json_numbers_fit_float_fields():
    assert spec_for("midalign", {"tau": 2}).tau == 2  # an integer is a number
    assert spec_for("midalign", {"tau": 1.5}).tau == 1.5
    with pytest.raises(ParamError, match=r"ModelSpec.trust_remote_code must be true or false, got 'yes'"):
        ModelSpec.from_dict({"trust_remote_code": "yes"})
    with pytest.raises(ParamError, match=r"ModelSpec.artifact must be text \(or null\), got 3"):
        ModelSpec.from_dict({"artifact": 3})

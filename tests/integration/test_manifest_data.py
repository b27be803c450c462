"""Manifests and figure sets are data, never authority (issue 21).

A hand-edited manifest with `spec.model = {"source": <a folder with custom model code>,
"trust_remote_code": true}` ran that folder's code on `workbench export --manifest`. The
planted folder's code writes a marker file when it is imported: the marker stays absent,
and the refusal says to pass `--trust-remote-code` on the command line. The manifest's
structure is checked with one schema and a wrong field is named by its path.
"""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml
from faults import fails_clearly

from workbench.export import read_manifest
from workbench.models import tiny_tokenizer

SPEC = {"analysis": "retrieval", "model": "tiny:llama", "corpus": "udhr", "langs": ["en", "de"], "limit": 2}


def _manifest(path, **fields):
    doc = {"format": "workbench-figure-manifest", "format_version": 1, "name": "fig", "spec": SPEC,
           "export": {"formats": ["html"]}, **fields}
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def planted(tmp_path):
    """A model folder whose custom code (config and model classes) writes `MARKER` when it runs."""
    d = tmp_path / "planted-model"
    d.mkdir()
    marker = tmp_path / "MARKER"
    code = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('the planted code ran')\n"
    (d / "configuration_planted.py").write_text(code + textwrap.dedent("""
        from transformers import PretrainedConfig
        class PlantedConfig(PretrainedConfig):
            model_type = "planted"
    """))
    (d / "modeling_planted.py").write_text(code + textwrap.dedent("""
        from transformers import PreTrainedModel
        from .configuration_planted import PlantedConfig
        class PlantedForCausalLM(PreTrainedModel):
            config_class = PlantedConfig
    """))
    (d / "config.json").write_text(json.dumps({
        "model_type": "planted", "architectures": ["PlantedForCausalLM"], "num_hidden_layers": 2,
        "auto_map": {"AutoConfig": "configuration_planted.PlantedConfig",
                     "AutoModelForCausalLM": "modeling_planted.PlantedForCausalLM"}}))
    tiny_tokenizer().save_pretrained(d)
    return d, marker


@pytest.mark.parametrize("where", ["model", "state_b"])
def test_a_manifest_cannot_allow_custom_model_code(tmp_path, capsys, planted, where):
    folder, marker = planted
    model = {"source": str(folder), "trust_remote_code": True}
    spec = ({**SPEC, "model": model} if where == "model" else
            {**SPEC, "analysis": "compare_retrieval", "params": {"state_b": model}})
    m = _manifest(tmp_path / "fig.manifest.json", spec=spec)
    path = "spec.model.trust_remote_code" if where == "model" else "spec.params.state_b.trust_remote_code"
    fails_clearly(["export", "--manifest", str(m), "--out", str(tmp_path / "out")], capsys,
                  f"{m}: {path} is set, which runs the model folder's own Python code",
                  "pass --trust-remote-code on the command line")
    assert not marker.exists()  # was: the planted code ran
    assert not (tmp_path / "out").exists()


def test_a_manifest_cannot_send_a_recording_to_ndif(tmp_path, capsys):
    m = _manifest(tmp_path / "fig.manifest.json", spec={**SPEC, "remote": True})
    fails_clearly(["export", "--manifest", str(m), "--out", str(tmp_path / "out")], capsys,
                  "spec.remote is set", "pass --remote on the command line")


def test_the_command_line_allows_what_the_manifest_asks(tmp_path):
    m = _manifest(tmp_path / "fig.manifest.json", spec={**SPEC, "model": {"source": "x", "trust_remote_code": True}})
    assert read_manifest(m, allow={"trust_remote_code"})["spec"]["model"]["trust_remote_code"] is True


def test_a_figure_set_cannot_allow_custom_model_code(tmp_path, capsys, planted):
    folder, marker = planted
    fset = tmp_path / "set.yaml"
    fset.write_text(yaml.safe_dump({"defaults": {"model": {"source": str(folder), "trust_remote_code": True},
                                                 "langs": ["en", "de"], "limit": 2},
                                    "figures": [{"name": "ret", "analysis": "retrieval"}]}))
    fails_clearly(["figures", str(fset), "--out", str(tmp_path / "out")], capsys,
                  "figure 1 (ret): model.trust_remote_code is set", "pass --trust-remote-code on the command line")
    assert not marker.exists()


@pytest.mark.parametrize("fields,needle", [
    ({"spec": "retrieval"}, 'spec: expected an object, got "retrieval"'),  # was: unexpected ValueError
    ({"format_version": "abc"}, 'format_version: expected an integer, got "abc"'),  # was: unexpected ValueError
    ({"export": ["html"]}, 'export: expected an object, got ["html"]'),  # was: AttributeError
    ({"spec": {**SPEC, "langs": ["en", 5]}}, "spec.langs[1]: expected text"),
    ({"spec": {**SPEC, "model": {"source": 3}}}, "spec.model.source: expected text, got 3"),
    ({"spec": {**SPEC, "limit": "2"}}, 'spec.limit: expected an integer or null, got "2"'),
    ({"export": {"formats": "html"}}, 'export.formats: expected a list of text, got "html"'),
    ({"export": {"dpi": "high"}}, 'export.dpi: expected an integer, got "high"'),
])
def test_a_manifest_of_the_wrong_structure_names_the_field(tmp_path, capsys, fields, needle):
    m = _manifest(tmp_path / "fig.manifest.json", **fields)
    fails_clearly(["export", "--manifest", str(m), "--out", str(tmp_path / "out")], capsys, f"{m}: {needle}")


def test_a_figure_spec_of_the_wrong_structure_is_one_line(tmp_path, capsys):
    fset = tmp_path / "set.yaml"
    fset.write_text(yaml.safe_dump({"figures": [{"name": "ret", "analysis": "retrieval", "langs": 5}]}))
    fails_clearly(["figures", str(fset), "--out", str(tmp_path / "out")], capsys,
                  "figure 1 (ret): bad figure spec: langs: expected text or a list of text or null, got 5")

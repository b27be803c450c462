"""Paper presets from the door a user comes in by: the Setup page (and its URL), the CLI, a figure spec."""

from __future__ import annotations

import test_pages
from conftest import tiny_model, tiny_tokenizer
from streamlit.testing.v1 import AppTest
from test_pages import APP, SETTINGS, ok

from workbench.cli import main
from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.presets import apply_preset
from workbench.recipes import normalize_spec
from workbench.recipes.settings import Settings

_tiny_env = test_pages._tiny_env


def test_setup_preset_sets_the_recording_and_lands_in_the_url():
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["wb_settings"] = SETTINGS.to_dict()
    at.run()
    at.selectbox(key="setup_preset").set_value("mexa").run()
    ok(at)
    s = Settings.from_dict(at.session_state["wb_settings"])
    assert s.preset == "mexa" and s.pooling == "weighted"  # the views use the pooling the preset records
    rec = s.record_spec()
    assert rec == apply_preset("mexa", RecordSpec(max_length=rec.max_length, batch_tokens=rec.batch_tokens))
    assert rec.poolings == ("weighted",) and rec.include_special and rec.final_norm
    assert at.query_params["preset"] in ("mexa", ["mexa"])
    spec = normalize_spec(s.figure_spec("retrieval", {}))
    assert spec["preset"] == "mexa" and spec["params"]["method"] == "mexa"  # the preset's analysis default


def test_cli_preset_is_written_into_the_manifest(tmp_path):
    import json

    assert main(["export", "--analysis", "retrieval", "--model", "tiny:llama", "--langs", "en,zh,sw", "--limit", "4",
                 "--preset", "lens", "--formats", "html", "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "retrieval.manifest.json").read_text())
    assert manifest["spec"]["preset"] == "lens"
    assert manifest["record_spec"]["poolings"] == ["last"] and manifest["record_spec"]["chat_template"]
    assert manifest["record_spec"]["final_norm"] is True


def test_setup_lens_preset_on_a_tokenizer_without_a_chat_template_is_one_error_box(tmp_path):
    d = tmp_path / "base-model"  # a local model whose tokenizer has no chat template, like the bundled Gemma
    tiny_model("llama").save_pretrained(d)
    tok = tiny_tokenizer()
    tok.chat_template = None
    tok.save_pretrained(d)
    at = AppTest.from_file(APP, default_timeout=60)
    s = Settings(model=ModelSpec(source=str(d)), corpus=CorpusSpec("udhr", ("en", "sw"), limit=4), preset="lens",
                 pooling="last")
    at.session_state["wb_settings"] = s.to_dict()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "preset 'lens'" in errors[0] and "no chat template" in errors[0], errors
    assert not [b for b in at.button if "Record" in str(b.label)]
    at.selectbox(key="setup_preset").set_value("mexa").run()  # a preset that needs no template: no error
    ok(at)

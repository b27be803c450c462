"""Paper presets from the door a user comes in by: the Setup page (and its URL), the CLI, a figure spec."""

from __future__ import annotations

import test_pages
from streamlit.testing.v1 import AppTest
from test_pages import APP, SETTINGS, ok

from workbench.cli import main
from workbench.config import RecordSpec
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

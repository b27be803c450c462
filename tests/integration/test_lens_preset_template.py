"""The LENS preset on a tokenizer without a chat template: one clear line (exit 2) before any work, at every door."""

from __future__ import annotations

import pytest
from conftest import tiny_model, tiny_tokenizer

from workbench import cli, models
from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.corpus import load_corpus_spec
from workbench.errors import RecordError
from workbench.models import state_from_model
from workbench.models.checks import chat_template_problem, has_chat_template
from workbench.presets import apply_preset
from workbench.recordings import record
from workbench.store import Store


def _no_template():
    tok = tiny_tokenizer()
    tok.chat_template = None
    return tok


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A tiny Llama saved as a local HF directory whose tokenizer has no chat template (like the bundled Gemma)."""
    d = tmp_path_factory.mktemp("base") / "base-model"
    tiny_model("llama").save_pretrained(d)
    _no_template().save_pretrained(d)
    return str(d)


def test_the_problem_names_the_preset_the_missing_template_and_the_choices(base_dir):
    spec = ModelSpec(source=base_dir)
    assert has_chat_template(spec) is False and has_chat_template(ModelSpec("tiny:llama")) is True
    line = chat_template_problem(spec, apply_preset("lens"))
    assert line is not None and "\n" not in line
    for part in ("preset 'lens'", "base-model has no chat template", "instruct or chat model",
                 "another preset (lape, mexa, midalign, silp, wendler)"):
        assert part in line, part
    manual = chat_template_problem(spec, RecordSpec(chat_template=True))
    assert "--chat-template" in manual and "preset" not in manual
    assert chat_template_problem(spec, apply_preset("mexa")) is None  # no template needed
    assert chat_template_problem(ModelSpec("tiny:llama"), apply_preset("lens")) is None


@pytest.mark.parametrize("argv", [
    ["record"],
    ["analyze", "subspace", "--out", "{out}"],
    ["export", "--analysis", "subspace", "--formats", "html", "--out", "{out}"],
], ids=lambda a: a[0])
def test_every_cli_door_stops_with_one_line_before_loading_the_model(base_dir, tmp_path, monkeypatch, capsys, argv):
    loaded = []
    monkeypatch.setattr(models, "load", lambda *a, **k: loaded.append(a) or pytest.fail("the model was loaded"))
    argv = [x.replace("{out}", str(tmp_path / "out")) for x in argv]
    code = cli.main([*argv, "--model", base_dir, "--preset", "lens", "--langs", "en,sw", "--limit", "3"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not loaded
    assert err.count("\n") == 0 and err.startswith("error: preset 'lens'") and "no chat template" in err
    assert list(Store().keys()) == []


def test_a_loaded_state_without_a_template_is_a_record_error_not_transformers_value_error():
    state = state_from_model(tiny_model("llama"), _no_template(), name="no-template")
    corpus = load_corpus_spec(CorpusSpec("udhr", ("en",), limit=2))
    with pytest.raises(RecordError, match="no chat template"):
        record(state, corpus, ["en"], apply_preset("lens"))

"""One record per kind: a toy fine-tune method and a toy analysis, registered here and nowhere else,
reach `workbench finetune --help`, `workbench analyze --help` and the pages' choices, and run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest

from workbench import plugins
from workbench.cli import main
from workbench.config import CorpusSpec, ModelSpec, Spec, spec_field
from workbench.finetune import methods
from workbench.finetune.method import Method
from workbench.recipes import registry
from workbench.recipes.analysis import Analysis
from workbench.recipes.params import Params
from workbench.recipes.settings import TINY_ENV, TINY_MODEL, Settings

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@dataclass(frozen=True)
class ToySpec(Spec):
    """A toy method's config."""

    src: str = spec_field("first language", "en")
    tgt: str = spec_field("second language", "sw")
    wobble: float = spec_field("how much the toy wobbles", 0.5)
    mode: str = spec_field("the toy's mode", "calm", choices=("calm", "wild"))


def _train(state, split, spec, **kw):  # the registry test never starts a job
    raise NotImplementedError


TOY_METHOD = Method(name="toymethod", label="Toy method", caption="a method only this test registers", spec=ToySpec,
                    train=_train, languages=lambda s: (s.src, s.tgt), pivot=lambda s: s.src,
                    from_langs=lambda langs: {"src": langs[0], "tgt": langs[1]}, lang_fields=("src", "tgt"))


@dataclass(frozen=True)
class ToyParams(Params):
    """A toy view: the mean vector norm of each recorded language at every layer."""

    scale: float = spec_field("multiply every norm by this", 1.0)


def _build(c):
    rec = c.record()
    rows = [{"lang": u, "layer": str(layer), "norm": float(c.p["scale"] * (v[i] ** 2).sum(-1).mean() ** 0.5)}
            for u, v in rec.vectors(c.p.get("pooling", "mean")).items() for i, layer in enumerate(rec.layer_labels)]
    table = pd.DataFrame(rows)
    return go.Figure([go.Scatter(x=g["layer"], y=g["norm"], name=lang) for lang, g in table.groupby("lang")]), table


TOY_ANALYSIS = Analysis("toy_norms", "a view only this test registers", ToyParams, _build)


@pytest.fixture
def toys():
    methods.register_method(TOY_METHOD)
    registry.register_analysis(TOY_ANALYSIS)
    yield
    methods.unregister_method(TOY_METHOD.name)
    registry.unregister_analysis(TOY_ANALYSIS.name)


def _help(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def test_toy_method_is_in_the_cli_help_with_a_flag_per_field(toys, capsys):
    assert "toymethod" in _help(capsys, "finetune") and "Toy method" in _help(capsys, "finetune")
    text = _help(capsys, "finetune", "toymethod")
    assert "--wobble" in text and "{calm,wild}" in text and "--src" not in text  # languages come from --pair
    with pytest.raises(SystemExit):
        main(["finetune", "toymethod", "--mode", "frantic"])  # the field's choices reach the flag


def test_toy_analysis_is_in_the_cli_help_and_runs(toys, capsys, tmp_path):
    assert "toy_norms" in _help(capsys, "analyze")
    assert "--scale" in _help(capsys, "analyze", "toy_norms")
    rc = main(["analyze", "toy_norms", "--model", "tiny:llama", "--langs", "en,sw", "--limit", "3", "--scale", "2",
               "--out", str(tmp_path)])
    assert rc == 0
    table = pd.read_csv(tmp_path / "toy_norms.csv")
    assert set(table["lang"]) == {"en", "sw"} and (table["norm"] > 0).all()
    assert (tmp_path / "toy_norms.html").is_file()


def test_toys_are_in_the_pages_choices(toys, monkeypatch):
    monkeypatch.setenv(TINY_ENV, "1")
    settings = Settings(model=ModelSpec(source=TINY_MODEL), corpus=CorpusSpec(source="udhr", langs=("en", "sw"),
                                                                              limit=3))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["wb_settings"] = settings.to_dict()
    at.run()
    at.switch_page("app_pages/finetune.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Toy method" in at.radio(key="ft_method").options  # shown by its label
    at.radio(key="ft_method").set_value("toymethod").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.number_input(key="ft_toymethod_wobble").value == 0.5  # a widget per field, its default
    at.switch_page("app_pages/analyses.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "toy_norms: a view only this test registers" in at.selectbox(key="an_analysis").options
    at.selectbox(key="an_analysis").set_value("toy_norms").run()
    assert at.number_input(key="an_toy_norms_scale").value == 1.0
    assert any(b.label.startswith("Record") for b in at.button)  # nothing stored yet: offered, never started


def test_plugins_register_through_entry_points(monkeypatch):
    ep = SimpleNamespace(name="toy", load=lambda: [TOY_ANALYSIS])
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", lambda group: [ep] if group ==
                        "workbench.analyses" else [])
    try:
        assert registry.load_plugins() == ["toy_norms"] and "toy_norms" in registry.REGISTRY
    finally:
        registry.unregister_analysis("toy_norms")
    broken = SimpleNamespace(name="broken", load=lambda: (_ for _ in ()).throw(ImportError("no such package")))
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", lambda group: [broken])
    assert methods.load_plugins() == [] and "silp" in methods.METHODS  # logged, skipped; built-ins intact

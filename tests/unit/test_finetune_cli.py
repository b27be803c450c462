"""`workbench finetune ...` arguments become the right specs (no job is started here)."""

from __future__ import annotations

import argparse

import pytest

from workbench.cli.finetune import _method_spec, add_finetune_parser
from workbench.finetune.methods import spec_for


def _parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="workbench")
    add_finetune_parser(p.add_subparsers(dest="command", required=True))
    return p.parse_args(list(argv))


def test_pair_maps_to_each_method_s_languages():
    silp = spec_for("silp", _method_spec(_parse("finetune", "silp", "--pair", "en:sw", "--n2d", "1,2")))
    assert (silp.src, silp.tgt, silp.n2d_layers, silp.d2n_layers) == ("sw", "en", (1, 2), None)
    mid = spec_for("midalign", _method_spec(_parse("finetune", "midalign", "--pair", "en:zh", "--no-task",
                                                   "--set", "tau=1.5", "--set", "align_layer=3")))
    assert (mid.src, mid.tgt, mid.task_loss, mid.align_loss, mid.tau, mid.align_layer) == ("en", "zh", False, True,
                                                                                          1.5, 3)
    lens = spec_for("lens", _method_spec(_parse("finetune", "lens", "--langs", "en,sw,zh", "--steps", "5",
                                                "--set", 'push_per_lang=[["sw", 0.2]]')))
    assert (lens.languages, lens.central, lens.max_steps, lens.push_strength("sw")) == (("en", "sw", "zh"), "en",
                                                                                        5, 0.2)


def test_defaults_are_the_papers_and_bad_input_is_refused():
    a = _parse("finetune", "silp")
    assert spec_for("silp", _method_spec(a)).lr == 2e-5 and a.model == "gemma-3-270m" and a.pair == ("en", "sw")
    with pytest.raises(SystemExit):
        _parse("finetune", "silp", "--pair", "en-sw")
    with pytest.raises(ValueError, match="unknown field"):
        spec_for("silp", _method_spec(_parse("finetune", "silp", "--set", "nope=1")))
    assert _parse("jobs", "show", "abc").id == "abc"

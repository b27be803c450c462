"""The CLI end to end on a tiny local model directory: record, store reuse, clear errors."""

from __future__ import annotations

import pytest

from workbench import cli, tracing


def test_record_then_store_serves_second_run(model_dir, capsys, monkeypatch):
    args = ["record", "--model", model_dir, "--corpus", "udhr", "--langs", "en,sw", "--limit", "3"]
    assert cli.main(args) == 0
    first = capsys.readouterr().out
    assert "en" in first and "sw" in first
    monkeypatch.setattr(tracing.recorder, "record_units", lambda *a, **k: pytest.fail("recomputed a stored unit"))
    assert cli.main(args) == 0
    assert cli.main(["store", "ls"]) == 0
    out = capsys.readouterr().out
    assert "2 entries" in out
    key = [ln.split()[0] for ln in out.splitlines() if " sw " in ln][0]
    assert cli.main(["store", "info", key[:8]]) == 0
    assert '"unit": "sw"' in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [
    (["record", "--langs", "en,xx"], "unknown language 'xx'"),
    (["record", "--corpus", "nope.tsv", "--langs", "en"], "nope.tsv"),
    (["store", "info", "zzzz"], "no store entry"),
])
def test_user_errors_exit_2_with_one_line(argv, needle, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_out_of_range_layer(model_dir, capsys):
    assert cli.main(["record", "--model", model_dir, "--langs", "en", "--limit", "2", "--layers", "7"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("models", "corpus", "record", "store"):
        assert cmd in out


def test_corpus_and_models_listing(capsys):
    assert cli.main(["corpus", "list"]) == 0
    assert cli.main(["corpus", "show", "udhr", "--langs", "en,sw", "--limit", "1"]) == 0
    assert cli.main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "udhr" in out and "All human beings" in out and "gemma-3-270m" in out

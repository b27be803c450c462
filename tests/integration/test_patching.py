"""Cross-lingual activation patching on tiny random-init models: the patch is what it claims, stored once, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from workbench import cli, models
from workbench.lenses import PatchSpec
from workbench.models import get_path
from workbench.recipes.build import build
from workbench.recordings import lens as rec_lens
from workbench.tracing.patching import patch_readout

# One torch thread: with several, a BLAS may split a batch's rows between threads and round the halves
# differently, so two identical rows of one batch can differ in their last bit (the bitwise checks need one).
pytestmark = pytest.mark.usefixtures("one_thread")

SRC = ['Deutsch: "Hund" - Français: "', 'Español: "perro" - Français: "']
TGT = 'English: "water" - 中文: "'
SETS = {"a": list(range(5, 40)), "b": list(range(100, 180)), "c": [7, 300, 301]}


@pytest.fixture(scope="module")
def st():
    torch.manual_seed(0)
    return models.load("tiny:llama")


def _blocks(st):
    return get_path(st.model, st.arch.layers)


def _ids(st, text):
    return st.tokenizer(text, return_tensors="pt")["input_ids"]


def _block_outputs(st, text):
    """Each block's output `(T, d)` of a plain HF forward (forward hooks, no nnsight)."""
    outs = []
    hooks = [b.register_forward_hook(lambda m, i, o: outs.append((o[0] if isinstance(o, tuple) else o)[0].clone()))
             for b in _blocks(st)]
    try:
        with torch.inference_mode():
            st.model(_ids(st, text), use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return outs


def _hand_patched(st, layers, vectors, pos):
    """Next-token probabilities of `TGT` with block `l`'s output at `pos` replaced by `vectors[l]` (forward hooks)."""
    def hook(layer):
        def f(m, i, o):
            h = o[0] if isinstance(o, tuple) else o
            h = h.clone()
            h[0, pos] = vectors[layer]
            return (h, *o[1:]) if isinstance(o, tuple) else h
        return f

    hooks = [_blocks(st)[la].register_forward_hook(hook(la)) for la in layers]
    try:
        with torch.inference_mode():
            logits = st.model(_ids(st, TGT), use_cache=False).logits[0, -1].double()
    finally:
        for h in hooks:
            h.remove()
    return torch.softmax(logits, -1)


def _masses(p):
    return {n: float(p[ids].sum()) for n, ids in SETS.items()}


def test_source_equal_to_target_changes_nothing_bitwise(st):
    for variant in ("single", "from"):
        r = patch_readout(st, [TGT], PatchSpec(((TGT,),), (-1,), variant), token_sets=SETS)
        for name in SETS:
            m = r.set_mass[name][0]
            assert np.array_equal(m[:-1], np.full(st.n_layers, m[-1])), (variant, name)
        assert np.array_equal(r.top_ids[0, :-1], np.repeat(r.top_ids[0, -1:], st.n_layers, 0))
        assert np.array_equal(r.kl_to_final[0], np.zeros(st.n_layers + 1, np.float32))
    # and another source does change it (so the check above can fail)
    other = patch_readout(st, [TGT], PatchSpec(((SRC[0],),), (-1,)), token_sets=SETS)
    assert not np.array_equal(other.set_mass["a"][0, :-1], np.full(st.n_layers, other.set_mass["a"][0, -1]))


def test_unpatched_row_is_the_models_own_distribution(st):
    r = patch_readout(st, [TGT], PatchSpec(((SRC[0],),), (-1,)), token_sets=SETS)
    with torch.inference_mode():
        p = torch.softmax(st.model(_ids(st, TGT), use_cache=False).logits[0, -1].double(), -1)
    for name, ids in SETS.items():
        np.testing.assert_allclose(r.set_mass[name][0, -1], float(p[ids].sum()), rtol=1e-5, atol=1e-7)


def test_patched_state_at_layer_l_is_the_sources_read_back(st):
    """Hooks read the block outputs of the suffix pass: copy l holds the source's h_l at the patched position.

    The suffix pass's rows: the source's last token, the L patched copies of the target's last token, the
    unpatched target; column 0 is the patch position. The trace stops inside the last block's output (nothing
    after it runs), so that block's hook never fires: there, the patched run's next-token distribution is the
    source's own (its state is the source's last one).
    """
    seen: dict[int, list[torch.Tensor]] = {}
    hooks = [b.register_forward_hook(lambda m, i, o, j=j: seen.setdefault(j, []).append(
        (o[0] if isinstance(o, tuple) else o).clone())) for j, b in enumerate(_blocks(st))]
    try:
        r = patch_readout(st, [TGT], PatchSpec(((SRC[0],),), (-1,)), token_sets=SETS)
    finally:
        for h in hooks:
            h.remove()
    ref_src, ref_tgt = _block_outputs(st, SRC[0]), _block_outputs(st, TGT)
    assert sorted(seen) == list(range(st.n_layers - 1))
    for la in range(st.n_layers - 1):
        prefix, h = seen[la]  # the prefix pass (source and target prefixes), then the suffix pass
        assert h.shape[:2] == (1 + st.n_layers + 1, 1)
        assert torch.equal(h[1 + la, 0], h[0, 0]), la
        torch.testing.assert_close(h[0, 0], ref_src[la][-1], rtol=1e-5, atol=1e-5)  # the source's own h_l
        torch.testing.assert_close(h[-1, 0], ref_tgt[la][-1], rtol=1e-5, atol=1e-5)  # the unpatched target's
        torch.testing.assert_close(prefix[1, -ref_tgt[la].shape[0] + 1:], ref_tgt[la][:-1], rtol=1e-5, atol=1e-5)
        assert all(not torch.equal(h[1 + q, 0], h[0, 0]) for q in range(la))  # patched earlier: no longer equal
        assert all(torch.equal(h[1 + q, 0], h[-1, 0]) for q in range(la + 1, st.n_layers))  # not patched yet
    with torch.inference_mode():
        own = torch.softmax(st.model(_ids(st, SRC[0]), use_cache=False).logits[0, -1].double(), -1)
    for name, ids in SETS.items():
        np.testing.assert_allclose(r.set_mass[name][0, st.n_layers - 1], float(own[ids].sum()), rtol=1e-5, atol=1e-7)


def test_from_l_on_at_the_last_layer_equals_patching_the_last_layer_only(st):
    one = patch_readout(st, [TGT], PatchSpec(((SRC[0],),), (-1,), "single"), token_sets=SETS)
    many = patch_readout(st, [TGT], PatchSpec(((SRC[0],),), (-1,), "from"), token_sets=SETS)
    last = st.n_layers - 1
    for name in SETS:
        assert np.array_equal(one.set_mass[name][0, last], many.set_mass[name][0, last])
    assert not np.array_equal(one.set_mass["a"][0, 0], many.set_mass["a"][0, 0])  # the variants differ below it


@pytest.mark.parametrize("variant", ["single", "from"])
@pytest.mark.parametrize("sources", [SRC[:1], SRC], ids=["one source", "mean over two"])
def test_probabilities_match_a_hand_patched_forward(st, variant, sources):
    readout = patch_readout(st, [TGT], PatchSpec((tuple(sources),), (-1,), variant), token_sets=SETS)
    outs = [_block_outputs(st, s) for s in sources]
    vectors = [torch.stack([o[la][-1] for o in outs]).mean(0) for la in range(st.n_layers)]
    n_tgt = _ids(st, TGT).shape[1]
    for la in range(st.n_layers):
        layers = [la] if variant == "single" else list(range(la, st.n_layers))
        want = _masses(_hand_patched(st, layers, vectors, n_tgt - 1))
        for name in SETS:
            np.testing.assert_allclose(readout.set_mass[name][0, la], want[name], rtol=1e-5, atol=1e-7,
                                       err_msg=f"layer {la} {name}")


@pytest.mark.parametrize("model_type", models.tiny.TINY_TYPES)
def test_every_architecture_matches_a_hand_patched_forward(model_type):
    """The prefix cache and the suffix pass of each architecture (rotary, absolute, ALiBi, sliding windows)."""
    st = models.load(models.tiny_name(model_type, 4))
    readout = patch_readout(st, [TGT], PatchSpec(((SRC[1],),), (-2,), "from"), token_sets=SETS)
    vectors = [o[-1] for o in _block_outputs(st, SRC[1])]
    pos = _ids(st, TGT).shape[1] - 2
    for la in (0, 2):
        want = _masses(_hand_patched(st, list(range(la, 4)), vectors, pos))
        for name in SETS:
            np.testing.assert_allclose(readout.set_mass[name][0, la], want[name], rtol=1e-5, atol=1e-7)


def test_object_position_patches_the_query_word(st):
    """A patch at an earlier position (the query word's last token) equals the hand-patched forward there too."""
    src = SRC[0].rsplit('"', 2)[0]  # cut after the query word
    offset = -3
    readout = patch_readout(st, [TGT], PatchSpec(((src,),), (offset,), "from"), token_sets=SETS)
    vectors = [o[-1] for o in _block_outputs(st, src)]
    n_tgt = _ids(st, TGT).shape[1]
    want = _masses(_hand_patched(st, [1, 2, 3], vectors, n_tgt + offset))
    for name in SETS:
        np.testing.assert_allclose(readout.set_mass[name][0, 1], want[name], rtol=1e-5, atol=1e-7)


def _spec(**params):
    return {"analysis": "patching", "model": {"source": "tiny:llama"},
            "params": {"source": "fr", "target": "zh", "max_items": 4, "n_boot": 50, **params}}


def test_stored_once_and_keyed_by_the_patch(monkeypatch):
    calls = []
    real = rec_lens.patch_readout
    monkeypatch.setattr(rec_lens, "patch_readout", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = build(_spec())
    assert len(calls) == 1
    again = build(_spec())
    assert len(calls) == 1  # from the store: nothing computed
    pd.testing.assert_frame_equal(first.table, again.table)
    build(_spec(variant="from"))
    build(_spec(source_from=("de", "es")))
    assert len(calls) == 3  # another variant, the mean over languages: other keys
    t = first.table
    assert list(t["layer"].astype(str)) == [*map(str, range(4)), "unpatched"]
    assert {"p_c1_in_target", "p_c1_in_target_lo", "p_c2_in_target_hi", "p_c1_in_source"} <= set(t.columns)
    assert int(t["n"].iloc[0]) == 4


def test_cli_round_trip_and_bad_input(tmp_path, capsys):
    out = tmp_path / "p"
    argv = ["analyze", "patching", "--model", "tiny:llama", "--source", "fr", "--target", "zh", "--max-items", "3",
            "--n-boot", "50", "--source-from", "de,es", "--out", str(out)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "de+es→fr into" in text and "P(C1 zh)" in text
    table = pd.read_csv(out / "patching.csv")
    built = build(_spec(max_items=3, source_from=("de", "es")))
    np.testing.assert_allclose(table["p_c1_in_target"].to_numpy(), built.table["p_c1_in_target"].to_numpy())
    assert len(pd.read_csv(out / "patching_pairs.csv")) == 3
    assert (out / "patching.html").stat().st_size > 1000
    for bad in (["--source", "xx"], ["--target-from", "zh"]):
        code = cli.main([*argv[:-2], *bad, "--out", str(tmp_path / "bad"), "--overwrite"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    words = tmp_path / "one.tsv"
    words.write_text("id\tfr\tzh\tde\tes\tru\nwater\teau\t水\tWasser\tagua\tвода\n", encoding="utf-8")
    code = cli.main([*argv[:-2], "--words", str(words), "--n-shots", "0", "--out", str(tmp_path / "bad2")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "patching needs two" in err[0], err


def test_export_manifest_regenerates_the_same_table(tmp_path):
    sets = ["--set", "source=fr", "--set", "target=zh", "--set", "max_items=3", "--set", "n_boot=50",
            "--set", "variant=from", "--set", "position=object"]
    assert cli.main(["export", "--analysis", "patching", "--model", "tiny:llama", *sets, "--formats", "html",
                     "--out", str(tmp_path / "e")]) == 0
    manifest = json.loads((tmp_path / "e" / "patching.manifest.json").read_text())
    read = manifest["lens_readouts"][0]
    assert read["store_key"] and read["patch"] == {"variant": "from"} and read["about"]["position"] == "object"
    assert cli.main(["export", "--manifest", str(tmp_path / "e" / "patching.manifest.json"),
                     "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "patching.csv").read_bytes() == (tmp_path / "e" / "patching.csv").read_bytes()

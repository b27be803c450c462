"""The logit lens on every architecture of the table (issue 22), fp32, tiny random-init models.

- `lens_logits` of the last block's output equals the model's own logits (max |Δ| ≤ 1e-5),
  with soft-capping and logit scaling planted so that a lens without them would fail;
- the lens of layer l equals a plain computation: HF `output_hidden_states`, the final
  norm, the unembedding and the post-processing written out here from the HF forwards
  (hidden_states[l+1] is block l for l < L-1; hidden_states[L] is already final-normed);
- `tracing.lens.lens_readout` (batched, under nnsight) equals a plain loop over prompts
  (`output_hidden_states` + norm + unembedding, every statistic recomputed in float64);
- it never runs the LM head over whole sequences, decodes in bounded row chunks, honours
  positions, progress and cancellation, and an identity tuned lens reads exactly alike.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench import models
from workbench.errors import ArtifactError, Cancelled, RecordError
from workbench.lenses import LensSpec, TunedLens, readout
from workbench.models import ARCHITECTURES, get_path
from workbench.models.unembed import is_tied, lens_logits
from workbench.tracing import lens as lens_mod
from workbench.tracing.lens import lens_readout

pytestmark = pytest.mark.usefixtures("one_thread")

ARCHS = sorted(ARCHITECTURES)
PROMPTS = ["All human beings are born free and equal in dignity and rights.", "Hi.",
           "Everyone has the right to life, liberty and security of person.", "No one shall be held in slavery."]


def planted(model_type: str):
    """A fresh tiny model whose logit post-processing visibly matters (a small soft-cap, a large scale)."""
    m = models.tiny_model(model_type)
    if model_type in ("gemma2", "gemma3_text"):
        m.config.final_logit_softcapping = 0.5  # tiny logits are ~1: tanh(x / 0.5) bends them a lot
    if model_type == "cohere":
        m.logit_scale = 3.0  # the default 0.0625 matters too; a second value proves it is read from the model
    return m


def reference_post(model, model_type: str, logits: torch.Tensor) -> torch.Tensor:
    """The post-processing of each family's HF forward, written out independently of the table."""
    if model_type == "cohere":
        return logits * model.logit_scale
    cap = getattr(model.config, "final_logit_softcapping", None) if model_type in ("gemma2", "gemma3_text") else None
    return logits if cap is None else torch.tanh(logits / cap) * cap


def forward_with_blocks(model, arch, ids: torch.Tensor):
    """HF outputs with `output_hidden_states`, plus every block's raw output caught by forward hooks."""
    got: dict[int, torch.Tensor] = {}
    hooks = [b.register_forward_hook(lambda _m, _i, o, i=i: got.__setitem__(i, o[0] if isinstance(o, tuple) else o))
             for i, b in enumerate(get_path(model, arch.layers))]
    try:
        with torch.no_grad():
            out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return out, [got[i] for i in range(len(got))]


@pytest.fixture(scope="module")
def ids():
    torch.manual_seed(0)
    return torch.randint(3, 2000, (2, 11))


@pytest.mark.parametrize("model_type", ARCHS)
def test_lens_of_the_last_block_is_the_models_own_logits(model_type, ids):
    m = planted(model_type)
    arch = models.architecture_for(m)
    out, blocks = forward_with_blocks(m, arch, ids)
    with torch.no_grad():
        got = lens_logits(m, arch, blocks[-1])
        raw = m.get_output_embeddings()(get_path(m, arch.norm)(blocks[-1]))
    assert got.shape == out.logits.shape
    assert (got - out.logits).abs().max().item() <= 1e-5
    if model_type in ("cohere", "gemma2", "gemma3_text"):  # the planted post-processing is not a no-op
        assert (raw - out.logits).abs().max().item() > 1e-2
    else:
        assert (raw - out.logits).abs().max().item() <= 1e-5
    assert is_tied(m, arch) == (m.get_output_embeddings().weight is m.get_input_embeddings().weight)


@pytest.mark.parametrize("model_type", ARCHS)
def test_lens_of_layer_l_equals_hidden_states_with_final_norm_and_unembedding(model_type, ids):
    m = planted(model_type)
    arch = models.architecture_for(m)
    out, blocks = forward_with_blocks(m, arch, ids)
    hs, L = out.hidden_states, len(blocks)
    assert len(hs) == L + 1
    norm, head = get_path(m, arch.norm), m.get_output_embeddings()
    with torch.no_grad():
        for layer in range(L - 1):  # hidden_states[l+1] is block l's output for l < L-1 ...
            torch.testing.assert_close(blocks[layer], hs[layer + 1], rtol=0, atol=0)
            want = reference_post(m, model_type, head(norm(hs[layer + 1])))
            assert (lens_logits(m, arch, hs[layer + 1]) - want).abs().max().item() <= 1e-5
        want = reference_post(m, model_type, head(norm(hs[0])))  # emb = hidden_states[0]
        assert (lens_logits(m, arch, hs[0]) - want).abs().max().item() <= 1e-5
        # ... but hidden_states[L] is final_norm(block L-1): the logits are head(hidden_states[L]), and
        # decoding it as a residual would apply the norm twice
        assert (reference_post(m, model_type, head(hs[L])) - out.logits).abs().max().item() <= 1e-5
        assert (blocks[-1] - hs[L]).abs().max().item() > 1e-2


# --------------------------------------------------------------------------- lens_readout == a plain loop


def plain_loop(state, prompts, sets, *, embeddings=True, k=5):
    """Per prompt alone: output_hidden_states + final norm + unembedding at every position, stats in float64."""
    norm, head = get_path(state.model, state.arch.norm), state.model.get_output_embeddings()
    mt = state.model.config.model_type
    rows = []
    for p in prompts:
        enc = state.tokenizer(p, return_tensors="pt")
        with torch.no_grad():
            out = state.model(input_ids=enc["input_ids"], output_hidden_states=True, use_cache=False)
            hs = out.hidden_states
            L = len(hs) - 1
            layers = ([hs[0][0]] if embeddings else []) + [hs[i + 1][0] for i in range(L - 1)]
            logits = [reference_post(state.model, mt, head(norm(h))) for h in layers] + [out.logits[0]]
        logp = torch.stack([torch.log_softmax(x.double(), -1) for x in logits], 1)  # (T, layers, V)
        pr = logp.exp()
        final = logp[:, -1:]
        top = pr.topk(k, -1)
        rows.append({"top_ids": top.indices.numpy(), "top_probs": top.values.numpy(),
                     "entropy": (-(pr * logp).sum(-1)).numpy(), "kl": (final.exp() * (final - logp)).sum(-1).numpy(),
                     "mass": {n: pr[..., sorted(set(ids))].sum(-1).numpy() for n, ids in sets.items()},
                     "token": enc["input_ids"][0].numpy()})
    return rows


SETS = {"some": [5, 17, 17, 300, 1999], "many": list(range(0, 2000, 3)), "none": []}


@pytest.mark.parametrize("model_type", ARCHS)
def test_lens_readout_equals_a_plain_loop_on_every_architecture(model_type, monkeypatch):
    state = models.state_from_model(planted(model_type), models.tiny_tokenizer(), name=model_type)
    seen = []
    real = lens_mod._run_batch
    monkeypatch.setattr(lens_mod, "_run_batch", lambda e, s, b, p: seen.append(b["order"]) or real(e, s, b, p))
    got = lens_readout(state, PROMPTS, LensSpec(positions="all", embeddings=True), token_sets=SETS,
                       max_padding=1.0)
    assert any(len(o) > 1 for o in seen)  # prompts of different lengths shared a padded batch
    L = state.n_layers
    assert got.layer_labels == ("emb", *range(L)) and got.lens == "logit"
    for i, ref in enumerate(plain_loop(state, PROMPTS, SETS)):
        r = got.rows(i)
        np.testing.assert_array_equal(got.position[r], np.arange(len(r)))
        np.testing.assert_array_equal(got.token[r], ref["token"])
        np.testing.assert_array_equal(got.top_ids[r], ref["top_ids"])
        np.testing.assert_allclose(got.top_probs[r], ref["top_probs"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(got.entropy[r], ref["entropy"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(got.kl_to_final[r], ref["kl"], rtol=0, atol=1e-5)
        for n in SETS:
            np.testing.assert_allclose(got.set_mass[n][r], ref["mass"][n], rtol=0, atol=1e-5)
    assert (got.kl_to_final[:, -1] == 0).all() and (got.kl_to_final[:, :-1] > 0).all()
    assert (got.set_mass["none"] == 0).all() and (got.set_mass["many"] > got.set_mass["some"]).all()


def test_positions_padding_side_and_batches_do_not_change_the_numbers(tiny_state):
    full = lens_readout(tiny_state, PROMPTS, LensSpec(positions="all"), token_sets=SETS)
    last = lens_readout(tiny_state, PROMPTS, token_sets=SETS)  # default: the last prompt token
    ends = np.array([full.rows(i)[-1] for i in range(len(PROMPTS))])
    assert last.n_reads == len(PROMPTS) and list(last.prompt) == list(range(len(PROMPTS)))
    np.testing.assert_array_equal(last.position, full.position[ends])
    np.testing.assert_allclose(last.kl_to_final, full.kl_to_final[ends], atol=1e-6)
    np.testing.assert_array_equal(last.top_ids, full.top_ids[ends])
    two = lens_readout(tiny_state, PROMPTS, LensSpec(positions=(0, -1, -1)), token_sets=SETS)  # duplicates once
    assert two.n_reads == 2 * len(PROMPTS) and list(two.position[:2]) == [0, full.rows(0).size - 1]
    for kw in ({"padding_side": "left"}, {"batch_tokens": 1}):  # left-padded; one prompt per batch
        other = lens_readout(tiny_state, PROMPTS, LensSpec(positions="all"), token_sets=SETS, **kw)
        np.testing.assert_allclose(other.top_probs, full.top_probs, atol=1e-5)
        np.testing.assert_allclose(other.set_mass["some"], full.set_mass["some"], atol=1e-5)
        np.testing.assert_array_equal(other.top_ids, full.top_ids)
    ids = tiny_state.tokenizer(PROMPTS[1])["input_ids"]  # token ids are read as given
    by_ids = lens_readout(tiny_state, [ids], LensSpec(positions="all"))
    np.testing.assert_array_equal(by_ids.top_ids, full.top_ids[full.rows(1)])


def test_bad_prompts_and_positions_are_clear_errors(tiny_state):
    with pytest.raises(RecordError, match="outside a prompt of"):
        lens_readout(tiny_state, ["Hi."], LensSpec(positions=(40,)))
    with pytest.raises(RecordError, match="more than max_length=3"):
        lens_readout(tiny_state, [PROMPTS[0]], LensSpec(max_length=3))
    with pytest.raises(RecordError, match="no tokens"):
        lens_readout(tiny_state, [[]])


def test_the_lm_head_only_sees_the_read_positions_in_bounded_chunks(tiny_state, monkeypatch):
    ref = lens_readout(tiny_state, PROMPTS, LensSpec(positions="all"))
    shapes = []
    hooks = [tiny_state.model.lm_head.register_forward_pre_hook(lambda _m, a: shapes.append(("head", a[0].shape))),
             tiny_state.model.model.norm.register_forward_pre_hook(lambda _m, a: shapes.append(("norm", a[0].shape)))]
    monkeypatch.setattr(readout, "DECODE_CHUNK_BYTES", 8 * 2000 * 7)  # 7 float64 rows of the 2,000-token vocabulary
    try:
        got = lens_readout(tiny_state, PROMPTS, LensSpec(positions="all"))
    finally:
        for h in hooks:
            h.remove()
    assert shapes and all(len(s) == 2 and s[0] <= 7 for _, s in shapes)  # (rows, d): never (B, T, d)
    n_chunks = sum(1 for name, _ in shapes if name == "head") / tiny_state.n_layers
    assert n_chunks >= ref.n_reads / 7  # every read decoded, 7 rows at a time
    np.testing.assert_allclose(got.top_probs, ref.top_probs, atol=1e-6)


def test_identity_tuned_lens_reads_exactly_like_the_logit_lens(tiny_state):
    spec = LensSpec(positions="all", embeddings=True)
    logit = lens_readout(tiny_state, PROMPTS, spec, token_sets=SETS)
    ident = TunedLens.identity(tiny_state)
    tuned = lens_readout(tiny_state, PROMPTS, spec, token_sets=SETS, translator=ident)
    assert tuned.lens == f"tuned:{ident.fingerprint}"
    for k, v in logit.arrays().items():
        np.testing.assert_array_equal(tuned.arrays()[k], v, err_msg=k)
    with torch.no_grad():  # a non-identity translator changes every layer but the last
        ident.translators[1].bias.fill_(0.5)
    moved = lens_readout(tiny_state, PROMPTS, spec, token_sets=SETS, translator=ident)
    assert not np.allclose(moved.top_probs[:, 1], logit.top_probs[:, 1])
    np.testing.assert_allclose(moved.top_probs[:, [0, 2, 3, 4]], logit.top_probs[:, [0, 2, 3, 4]], atol=0)
    other = TunedLens(tiny_state.d_model, tiny_state.n_layers, base_fingerprint="another-model")
    with pytest.raises(ArtifactError, match="train one for this model state"):
        lens_readout(tiny_state, PROMPTS, translator=other)


def test_a_batch_that_runs_out_of_memory_is_split_and_the_numbers_stay(tiny_state, monkeypatch):
    ref = lens_readout(tiny_state, PROMPTS, LensSpec(positions="all"), token_sets=SETS, max_padding=1.0)
    real, sizes = lens_mod._run_batch, []

    def flaky(envoy, state, batch, plan):
        sizes.append(len(batch["order"]))
        if len(batch["order"]) > 1:
            raise torch.OutOfMemoryError("out of memory (simulated)")
        return real(envoy, state, batch, plan)

    monkeypatch.setattr(lens_mod, "_run_batch", flaky)
    got = lens_readout(tiny_state, PROMPTS, LensSpec(positions="all"), token_sets=SETS, max_padding=1.0)
    assert max(sizes) > 1 and sizes.count(1) == len(PROMPTS)  # split until every prompt ran once
    np.testing.assert_array_equal(got.top_ids, ref.top_ids)
    np.testing.assert_allclose(got.set_mass["some"], ref.set_mass["some"], atol=1e-6)


def test_progress_and_cancel(tiny_state):
    calls = []
    lens_readout(tiny_state, PROMPTS, batch_tokens=1, progress=lambda *a: calls.append(a[:2]))
    assert calls[-1] == (4, 4) and len(calls) == 4
    asked = []

    def stop():
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(Cancelled):
        lens_readout(tiny_state, PROMPTS, batch_tokens=1, should_stop=stop)
    assert len(asked) == 3
    assert all("forward" not in m.__dict__ for m in tiny_state.model.modules())  # nnsight unwrapped after a cancel


# --------------------------------------------------------------------------- the real bundled model


@pytest.mark.slow
def test_real_gemma_lens_equals_its_logits_and_a_plain_loop(monkeypatch):
    from pathlib import Path  # noqa: PLC0415 - only the slow test needs the shared cache path

    if models.bundled_status("gemma-3-270m") == "missing":
        pytest.fail("gemma-3-270m is not installed; the README's test command installs it")
    monkeypatch.setenv("WORKBENCH_CACHE", str(Path(__file__).resolve().parents[2] / "cache"))
    state = models.load("gemma-3-270m")
    assert str(state.dtype) == "torch.float32" and is_tied(state.model, state.arch)
    prompts = ['Français: "fleur" - 中文: "', "The capital of France is"]
    enc = state.tokenizer(prompts[1], return_tensors="pt")
    out, blocks = forward_with_blocks(state.model, state.arch, enc["input_ids"])
    with torch.no_grad():
        assert (lens_logits(state.model, state.arch, blocks[-1]) - out.logits).abs().max().item() <= 1e-5
    sets = {"fr": state.tokenizer(" Paris", add_special_tokens=False)["input_ids"]}
    got = lens_readout(state, prompts, LensSpec(positions="all", top_k=3), token_sets=sets)
    for i, ref in enumerate(plain_loop(state, prompts, sets, embeddings=False, k=3)):
        r = got.rows(i)
        np.testing.assert_allclose(got.top_probs[r], ref["top_probs"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(got.kl_to_final[r], ref["kl"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(got.set_mass["fr"][r], ref["mass"]["fr"], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(got.top_ids[r, -1], ref["top_ids"][:, -1])

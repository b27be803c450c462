"""Fine-tune losses, merging and the training step on hand-made tensors (METHODS §6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.finetune.lens import LENSSpec, lens_losses, lens_subspace
from workbench.finetune.midalign import contrastive_alignment_loss, default_align_layer, merge_lora_weights
from workbench.finetune.train import Cancelled, Stepper, last_token, masked_mean

# --------------------------------------------------------------------------- contrastive loss


def test_contrastive_loss_identity_pairs_hand_values():
    h = torch.eye(2)
    # logits [[1,0],[0,1]]/τ; each row: −log(e^{1/τ} / (e^{1/τ} + 1)) = log(1 + e^{−1/τ})
    assert contrastive_alignment_loss(h, h, 1.0).item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    assert contrastive_alignment_loss(h, h, 0.5).item() == pytest.approx(math.log(1 + math.exp(-2)), abs=1e-6)


def test_contrastive_loss_uses_cosine_rows_against_target_columns():
    hs = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    ht = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # row 0: cos = (1, 0) → log(1 + e^{-1}); row 1: cos = (0.7071, 0.7071) → log 2
    want = (math.log(1 + math.exp(-1)) + math.log(2)) / 2
    assert contrastive_alignment_loss(hs, ht, 1.0).item() == pytest.approx(want, abs=1e-6)
    # cosine: scaling either side changes nothing
    assert contrastive_alignment_loss(3 * hs, 0.5 * ht, 1.0).item() == pytest.approx(want, abs=1e-6)
    # one direction only (source rows, target columns): swapping the sides changes the value
    swapped = contrastive_alignment_loss(ht, hs, 1.0).item()
    assert swapped != pytest.approx(want, abs=1e-3)


def test_contrastive_loss_three_pairs_against_numpy_and_gradient():
    rng = np.random.default_rng(0)
    hs, ht = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    s = hs / np.linalg.norm(hs, axis=1, keepdims=True)
    t = ht / np.linalg.norm(ht, axis=1, keepdims=True)
    logits = s @ t.T / 0.1
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    want = -np.mean(np.diag(logp))
    a = torch.tensor(hs, dtype=torch.float64, requires_grad=True)
    got = contrastive_alignment_loss(a, torch.tensor(ht), 0.1)
    assert got.item() == pytest.approx(want, rel=1e-5)
    got.backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_contrastive_loss_rejects_bad_input():
    with pytest.raises(ValueError):
        contrastive_alignment_loss(torch.zeros(2, 3), torch.zeros(3, 3), 0.1)
    with pytest.raises(ValueError):
        contrastive_alignment_loss(torch.eye(2), torch.eye(2), 0.0)


# --------------------------------------------------------------------------- LENS losses

P_A = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # agnostic direction e1
P_S = torch.tensor([[0.0, 0.0], [0.0, 1.0]])  # specific subspace e2


def test_lens_losses_hand_values():
    x_t, x_t_ref = torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 1.0]])
    x_c = torch.tensor([[3.0, 5.0]])
    m_c, m_c_ref = torch.tensor([[3.0, 5.0]]), torch.tensor([[3.0, 4.0]])
    out = lens_losses(x_t, x_c, x_t_ref, m_c, m_c_ref, p_a=P_A, p_s=P_S, delta=torch.tensor([0.0, 2.0]),
                      lam=1.0, lambda1=2.0, lambda3=3.0)
    # every term is a mean over batch (1) and dimensions (2):
    # L1 = mean((P_a x_t − P_a x_c)²) = mean((1 − 3)², 0) = 4/2 = 2
    # L2 = mean((P_s(x_t − x_t^ref) − λδ)²) = mean(0, (1 − 2)²) = 1/2
    # L3 = mean((m_c − m_c^ref)²) = mean(0, 1) = 1/2;  L = 2·2 + 1/2 + 3·1/2 = 6
    assert out["l1"].item() == pytest.approx(2.0)
    assert out["l2"].item() == pytest.approx(0.5)
    assert out["l3"].item() == pytest.approx(0.5)
    assert out["loss"].item() == pytest.approx(6.0)
    # λ_l = 0.5 makes the push target exactly the move already made: L2 = 0
    half = lens_losses(x_t, x_c, x_t_ref, m_c, m_c_ref, p_a=P_A, p_s=P_S, delta=torch.tensor([0.0, 2.0]), lam=0.5)
    assert half["l2"].item() == pytest.approx(0.0)


def test_lens_losses_batch_mean_and_sum_over_languages():
    x_c = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    x_t = torch.tensor([[[1.0, 0.0], [3.0, 0.0]],   # language a: squared agnostic gaps 1, 9 over 2×2 entries → 10/4
                        [[0.0, 0.0], [2.0, 0.0]]])  # language b: 0, 4 → 4/4
    out = lens_losses(x_t, x_c, x_t.clone(), x_c.clone(), x_c.clone(), p_a=P_A, p_s=P_S,
                      delta=torch.tensor([[0.0, 1.0], [0.0, 2.0]]), lam=torch.tensor([1.0, 0.5]))
    assert out["l1"].item() == pytest.approx(10 / 4 + 4 / 4)
    # L2 per language: −λδ = (0, −1) in every row → mean over 2×2 entries = 1/2, twice
    assert out["l2"].item() == pytest.approx(1.0)
    assert out["l3"].item() == pytest.approx(0.0)
    with pytest.raises(ValueError):
        lens_losses(x_t, x_c, x_t, x_c, x_c, p_a=P_A, p_s=P_S, delta=torch.zeros(3, 2), lam=1.0)


def test_lens_losses_equal_torch_mse_loss_of_the_same_tensors():
    g = torch.Generator().manual_seed(0)
    k, b, d = 2, 5, 7
    x_t, x_t_ref = torch.randn(k, b, d, generator=g) * 30, torch.randn(k, b, d, generator=g) * 30
    x_c, m_c, m_c_ref = (torch.randn(b, d, generator=g) * 30 for _ in range(3))
    u = torch.randn(d, generator=g)
    u = u / u.norm()
    q, _ = torch.linalg.qr(torch.randn(d, 2, generator=g))
    p_a, p_s = torch.outer(u, u), q @ q.T
    delta, lam = torch.randn(k, d, generator=g), torch.tensor([1.0, 0.3])
    out = lens_losses(x_t, x_c, x_t_ref, m_c, m_c_ref, p_a=p_a, p_s=p_s, delta=delta, lam=lam, lambda1=2.0,
                      lambda3=0.5)
    mse = torch.nn.functional.mse_loss
    l1 = sum(mse((x_t[i] @ u)[:, None] * u, (x_c @ u)[:, None] * u) for i in range(k))  # P̂_a x = (x·û) û
    l2 = sum(mse((x_t[i] - x_t_ref[i]) @ q @ q.T, (lam[i] * delta[i]).expand(b, d)) for i in range(k))
    l3 = mse(m_c, m_c_ref)
    torch.testing.assert_close(out["l1"], l1)
    torch.testing.assert_close(out["l2"], l2)
    torch.testing.assert_close(out["l3"], l3)
    torch.testing.assert_close(out["loss"], 2.0 * l1 + l2 + 0.5 * l3)


def test_default_align_layer_is_the_papers_middle_layer():
    # Mid-align's layer L/2 (1-based, embedding = layer 0) = the output of L/2 blocks = block L/2 − 1.
    assert default_align_layer(32) == 15  # Llama-3-8B: --additional_loss_layer 16
    assert default_align_layer(18) == 8  # Gemma-3-270M
    assert default_align_layer(4) == 1 and default_align_layer(1) == 0


def test_lens_spec_defaults_follow_the_paper():
    spec = LENSSpec()
    assert (spec.lr, spec.schedule, spec.warmup, spec.weight_decay, spec.max_grad_norm, spec.batch_size) == (
        1e-5, "cosine", 0.05, 0.1, 1.0, 8)
    assert "cosine" in LENSSpec.help()["schedule"] and "constant" not in LENSSpec.help()["schedule"]
    with pytest.raises(ValueError, match="weight_decay"):
        LENSSpec(weight_decay=-1.0)


def test_lens_subspace_projections_match_analysis_module():
    rng = np.random.default_rng(1)
    reps = {lang: torch.tensor(rng.normal(size=(20, 6)) + shift, dtype=torch.float32)
            for lang, shift in (("en", 0.0), ("sw", 2.0), ("zh", -1.0))}
    fit = lens_subspace(reps, LENSSpec(languages=("en", "sw", "zh"), central="en"))
    sub = fit["subspace"]
    x = rng.normal(size=(4, 6))
    np.testing.assert_allclose(x @ fit["p_a"].T, sub.project_agnostic(x), atol=1e-10)
    np.testing.assert_allclose(x @ fit["p_s"].T, sub.project_specific(x), atol=1e-10)
    np.testing.assert_allclose(fit["delta"], np.stack([sub.direction("sw", "en"), sub.direction("zh", "en")]))
    assert sub.rank == 2


# --------------------------------------------------------------------------- adapter merging


def test_merge_lora_weights_is_a_weighted_average_per_tensor():
    task = {"a.lora_A.weight": torch.tensor([[1.0, 2.0]]), "a.lora_B.weight": torch.tensor([[10.0]])}
    align = {"a.lora_A.weight": torch.tensor([[3.0, 4.0]]), "a.lora_B.weight": torch.tensor([[0.0]])}
    out = merge_lora_weights(task, align, 0.9)
    torch.testing.assert_close(out["a.lora_A.weight"], torch.tensor([[1.2, 2.2]]))
    torch.testing.assert_close(out["a.lora_B.weight"], torch.tensor([[9.0]]))
    assert torch.equal(merge_lora_weights(task, align, 1.0)["a.lora_A.weight"], task["a.lora_A.weight"])
    with pytest.raises(ValueError, match="different tensors"):
        merge_lora_weights(task, {"a.lora_A.weight": align["a.lora_A.weight"]})
    with pytest.raises(ValueError):
        merge_lora_weights(task, align, 1.5)


# --------------------------------------------------------------------------- pooling and stepping


def test_masked_mean_and_last_token_ignore_padding():
    h = torch.arange(12, dtype=torch.float32).reshape(2, 3, 2)
    count = torch.tensor([[True, True, False], [False, True, True]])
    torch.testing.assert_close(masked_mean(h, count), torch.tensor([[1.0, 2.0], [9.0, 10.0]]))
    attn = torch.tensor([[1, 1, 0], [1, 1, 1]])
    torch.testing.assert_close(last_token(h, attn), torch.tensor([[2.0, 3.0], [10.0, 11.0]]))


def test_stepper_logs_every_step_in_order_and_cancels():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    seen: list[tuple[int, int, float]] = []
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    st = Stepper([w], lr=0.1, schedule="constant", warmup=0.0, steps=10, max_grad_norm=None,
                 progress=lambda s, t, msg, m: seen.append((s, t, m["loss"])), should_stop=stop, flush_s=1e9)
    with pytest.raises(Cancelled):
        for _ in range(10):
            st.check()
            st.step((w ** 2).sum())
    assert [s for s, _, _ in seen] == [1, 2, 3] and all(t == 10 for _, t, _ in seen)
    assert seen[0][2] == pytest.approx(5.0)
    assert seen[1][2] < seen[0][2]


def test_stepper_short_run_has_no_zero_lr_step():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    st = Stepper([w], lr=0.5, schedule="cosine", warmup=0.03, steps=5, max_grad_norm=1.0)
    st.step((w ** 2).sum())
    st.close()
    assert st.history[0]["lr"] == pytest.approx(0.5)
    assert w.item() != 1.0

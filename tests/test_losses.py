"""Losses against hand-computed values; the binary entropy never gives NaN; EMA arithmetic."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from comgan_lib.losses import (
    EMA,
    binary_entropy,
    binary_entropy_from_logits,
    binary_loss,
    d_loss,
    g_loss,
)
from comgan_lib.metrics.masks import trivial_solution_summary


def test_adversarial_losses_by_hand():
    # D(x) = 0 logit -> sigmoid 0.5 -> -log 0.5 = ln 2 for each term.
    zero = torch.zeros(4)
    assert d_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert d_loss(zero, zero, zero).item() == pytest.approx(3 * math.log(2))
    assert g_loss(zero).item() == pytest.approx(math.log(2))
    # A confident real logit of 3 and fake logit of -2: softplus(-3) + softplus(-2).
    expected = math.log1p(math.exp(-3)) + math.log1p(math.exp(-2))
    assert d_loss(torch.tensor([3.0]), torch.tensor([-2.0])).item() == pytest.approx(expected)
    # Non-saturating: a hopeless fake (logit -30) still gets gradient ~1.
    logit = torch.tensor([-30.0], requires_grad=True)
    g_loss(logit).backward()
    assert logit.grad.item() == pytest.approx(-1.0, abs=1e-6)


def test_binary_entropy_values_and_saturation():
    assert binary_entropy_from_logits(torch.tensor(0.0)).item() == pytest.approx(1.0)
    p = torch.tensor([0.1, 0.5, 0.9])
    by_hand = -(p * torch.log2(p) + (1 - p) * torch.log2(1 - p))
    logits = torch.log(p / (1 - p))
    assert torch.allclose(binary_entropy_from_logits(logits), by_hand, atol=1e-5)
    assert torch.allclose(binary_entropy(p), by_hand, atol=1e-5)
    saturated = torch.tensor([-1e4, -100.0, 100.0, 1e4], requires_grad=True)
    h = binary_entropy_from_logits(saturated)
    assert torch.isfinite(h).all() and h.max() < 1e-6
    h.sum().backward()
    assert torch.isfinite(saturated.grad).all()
    assert torch.isfinite(binary_entropy(torch.tensor([0.0, 1.0]))).all()
    assert binary_loss(torch.zeros(2, 1, 4, 4), beta=0.1).item() == pytest.approx(0.1)


def test_ema_is_a_moving_average():
    model = nn.Linear(1, 1, bias=False)
    nn.init.constant_(model.weight, 0.0)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    assert ema.model.weight.item() == pytest.approx(0.1)
    ema.update(model)
    assert ema.model.weight.item() == pytest.approx(0.19)
    assert not ema.model.weight.requires_grad
    with pytest.raises(ValueError):
        EMA(model, decay=1.5)


def test_ema_warm_up_follows_the_model_early_and_caps_at_decay():
    model = nn.Linear(1, 1, bias=False)
    nn.init.constant_(model.weight, 0.0)
    ema = EMA(model, decay=0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, step=0)  # decay min(0.999, 1/10) = 0.1
    assert ema.model.weight.item() == pytest.approx(0.9)
    assert ema.decay_at(0) == pytest.approx(0.1)
    assert ema.decay_at(10**6) == pytest.approx(0.999)


def test_trivial_solution_summary_flags_both_kinds():
    n = 10
    mask = torch.zeros(n, 1, 8, 8)
    mask[:3] = 1.0  # three full masks
    mask[3:5, :, 2:6, 2:6] = 1.0  # two 25% masks
    # five remaining masks are empty
    fg = torch.zeros(n, 3, 8, 8)
    bg = torch.zeros(n, 3, 8, 8)
    bg[3] = 1.0  # sample 3: layers differ under its mask; sample 4: identical layers
    s = trivial_solution_summary(mask, fg, bg)
    assert s["frac_full"] == pytest.approx(0.3)
    assert s["frac_empty"] == pytest.approx(0.5)
    assert s["binariness"] == pytest.approx(1.0)
    assert s["coverage_mean"] == pytest.approx((3 + 2 * 0.25) / n)
    # Same layers: every sample except 3 (empty masks count: nothing differs under them).
    assert s["frac_same_layers"] == pytest.approx(0.9)
    soft = trivial_solution_summary(torch.full((4, 1, 4, 4), 0.5))
    assert soft["binariness"] == pytest.approx(0.0) and "frac_same_layers" not in soft

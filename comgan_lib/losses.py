"""Losses, all computed from logits so that nothing saturates into NaN, and the EMA of G.

- Adversarial (non-saturating, Eq. 3/7 as trained in practice): D minimises
  ``softplus(-D(x)) + softplus(D(x̄))`` = BCE with targets 1 / 0; G minimises ``softplus(-D(x̄))``.
- Binary regularisation (Eq. 11, L_binary from CGN): the mean per-pixel binary entropy of the mask
  in bits (1 at m = 0.5, 0 at m ∈ {0, 1}). From logits ``l`` the entropy is
  ``softplus(l) − l·sigmoid(l)`` nats, exact and finite for any ``l``; a probability-only version
  clamps m to [eps, 1 − eps].
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

LN2 = math.log(2.0)


def d_loss(real_logits: torch.Tensor, *fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss: real → 1, each fake batch → 0 (one term per fake batch, Eq. 7)."""
    loss = F.softplus(-real_logits).mean()
    for fake in fake_logits:
        loss = loss + F.softplus(fake).mean()
    return loss


def g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: ``-log sigmoid(D(x̄))``."""
    return F.softplus(-fake_logits).mean()


def binary_entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-pixel binary entropy of ``sigmoid(logits)``, in bits. Finite for every input."""
    return (F.softplus(logits) - logits * torch.sigmoid(logits)) / LN2


def binary_entropy(mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-pixel binary entropy of probabilities, in bits, clamped away from 0 and 1."""
    m = mask.clamp(eps, 1 - eps)
    return -(m * torch.log2(m) + (1 - m) * torch.log2(1 - m))


def binary_loss(mask_logits: torch.Tensor, beta: float) -> torch.Tensor:
    """β·L_binary: β times the mean pixel entropy of the mask (bits)."""
    return beta * binary_entropy_from_logits(mask_logits.float()).mean()


def mask_floor_loss(mask_logits: torch.Tensor, floor: float) -> torch.Tensor:
    """Per-sample hinge ``relu(log floor − log mean(M))``, averaged over the batch (0 at floor 0).

    Zero for every mask that covers at least ``floor`` of its image; below, it grows with the log
    of the shortfall, so its gradient reaches even a saturated, empty mask (the pixel logits' share
    is ``m·(1 − m) / (P·mean M)``, about ``1/P`` per pixel where the mask is brightest). The log of
    the mean is taken as a logsumexp of log-sigmoids: finite for any logits.
    """
    if floor <= 0:
        return mask_logits.new_zeros(())
    flat = F.logsigmoid(mask_logits.float().flatten(1))
    log_mean = torch.logsumexp(flat, dim=1) - math.log(flat.shape[1])
    return F.relu(math.log(floor) - log_mean).mean()


class EMA:
    """An exponential moving average copy of a model: ``ema = d·ema + (1 − d)·model``.

    ``d = min(decay, (1 + step) / (10 + step))``: without this warm-up a 0.999 average still holds
    over half of the *initial* weights after 600 steps (its time constant is 1,000 steps), and short
    CPU runs would sample noise. Buffers (batch-norm running statistics) are copied as they are.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, step: int | None) -> float:
        return self.decay if step is None else min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        """Blend ``model`` in; ``step`` (the number of updates so far) enables the warm-up."""
        decay = self.decay_at(step)
        for ema_p, p in zip(self.model.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)

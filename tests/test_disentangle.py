"""Disentanglement measures: where f, b and z act, and code recovery by Q_f / Q_b."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from comgan_lib.metrics.disentangle import code_recovery, leakage
from comgan_lib.nets import ComGAN, DSComGAN


class ConstantMask(nn.Module):
    """Mask logits that are +20 on the left half of the image and -20 on the right."""

    def forward(self, phi):
        logits = torch.full((phi.shape[0], 1, phi.shape[2], phi.shape[3]), -20.0)
        logits[..., : phi.shape[3] // 2] = 20.0
        return logits


@pytest.fixture
def G():
    torch.manual_seed(0)
    G = DSComGAN(32, z_dim=8, width=64, num_codes=4, head_blocks=0).eval()
    G.mask = ConstantMask()
    return G


def test_b_acts_outside_and_f_inside_a_known_mask(G):
    m = leakage(G, n=16, seed=0)
    assert m["b_share_outside_mask"] > 0.999 and m["f_share_inside_mask"] > 0.999
    assert m["f_share_inside_mask"] + m["f_share_outside_mask"] == pytest.approx(1)
    # M reads φ(z) only: codes never move the mask, z does (here it is constant by design).
    assert m["f_mean_mask_change"] == 0 and m["b_mean_mask_change"] == 0
    assert m["z_mean_image_change"] > 0


def test_leakage_on_a_learnt_mask_changes_with_z():
    torch.manual_seed(0)
    m = leakage(DSComGAN(32, z_dim=8, width=64, num_codes=4).eval(), n=16)
    assert m["z_mean_mask_change"] > m["f_mean_mask_change"] == 0


def test_leakage_needs_codes():
    with pytest.raises(ValueError, match="no codes"):
        leakage(ComGAN(32, z_dim=8, width=64))


def test_code_recovery_against_an_oracle_and_a_blind_classifier(G):
    class CodeAsColour(nn.Module):
        """An F/B head that paints its one-hot code (the first 3 input channels) as RGB."""

        def forward(self, x):
            return x[:, :3] * 2 - 1

    class ReadColour(nn.Module):
        def classify_code(self, x):
            return x.mean((2, 3))

    class Fixed(nn.Module):
        def __init__(self, answer):
            super().__init__()
            self.answer = answer

        def classify_code(self, x):
            return torch.nn.functional.one_hot(torch.full((len(x),), self.answer), 4).float()

    blind = nn.ModuleDict({"fg": Fixed(0), "bg": Fixed(1)})
    r = code_recovery(G, blind, n=400, seed=3)
    assert r["chance"] == 0.25
    assert abs(r["acc_f"] - 0.25) < 0.08 and abs(r["acc_b"] - 0.25) < 0.08

    torch.manual_seed(0)
    G3 = DSComGAN(32, z_dim=8, width=64, num_codes=3, head_blocks=0).eval()
    G3.fg, G3.bg = CodeAsColour(), CodeAsColour()
    perfect = code_recovery(G3, nn.ModuleDict({"fg": ReadColour(), "bg": ReadColour()}), n=64)
    assert perfect["acc_f"] == 1.0 and perfect["acc_b"] == 1.0

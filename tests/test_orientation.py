"""The border rule's confidence: a generator whose samples disagree on which layer is the object is
flagged, not only one whose average is undecided."""

import pytest
import torch
from torch import nn

from comgan_lib.orientation import (
    CONFIDENT_AGREEMENT,
    given_orientation,
    orient_generator,
    orient_per_image,
    orientation_warning,
)


class PartlyInvertedSquares(nn.Module):
    """A centred-square mask; the first ``inverted`` share of the samples draw its inverse."""

    def __init__(self, inverted: float, size: int = 16):
        super().__init__()
        self.inverted, self.size = inverted, size
        self.dummy = nn.Parameter(torch.zeros(1))

    def sample_latents(self, n, generator=None, device=None):
        return {"z": (torch.arange(n) < round(self.inverted * n)).float()}

    def forward(self, z):
        s = self.size
        square = torch.zeros(len(z), 1, s, s)
        square[:, :, s // 4 : s - s // 4, s // 4 : s - s // 4] = 1
        flip = z.view(-1, 1, 1, 1)
        mask = flip * (1 - square) + (1 - flip) * square
        return {"image": mask.expand(-1, 3, s, s) * 2 - 1, "mask": mask}


class EvenGrey(nn.Module):
    """Every mask pixel at ``level``: every sample votes the same way, but barely."""

    def __init__(self, level: float, size: int = 16):
        super().__init__()
        self.level, self.size = level, size
        self.dummy = nn.Parameter(torch.zeros(1))

    def sample_latents(self, n, generator=None, device=None):
        return {"z": torch.zeros(n)}

    def forward(self, z):
        mask = torch.full((len(z), 1, self.size, self.size), self.level)
        return {"image": mask.expand(-1, 3, -1, -1), "mask": mask}


def test_consistent_generator_is_confident_and_not_warned():
    record = orient_generator(PartlyInvertedSquares(0.0), n=40, seed=0)
    assert record["confident"] and record["frac_samples_agree"] == 1.0
    assert orientation_warning(record) is None


@pytest.mark.parametrize("inverted", [0.3, 0.5, 0.7])
def test_mixed_orientation_is_flagged_even_when_the_average_is_decided(inverted):
    record = orient_generator(PartlyInvertedSquares(inverted), n=40, seed=0)
    assert record["frac_samples_agree"] < CONFIDENT_AGREEMENT
    assert not record["confident"]
    warning = orientation_warning(record)
    assert warning is not None and "mixed" in warning
    if inverted != 0.5:  # the average alone picks a side with a margin of 0.2
        assert record["margin"] > 0.1


def test_undecided_average_with_agreeing_samples_is_flagged_as_unsure():
    record = orient_generator(EvenGrey(0.45), n=20, seed=0)
    assert record["frac_samples_agree"] == 1.0 and record["margin"] == pytest.approx(0.05)
    warning = orientation_warning(record)
    assert warning is not None and "unsure" in warning


def test_orientation_chosen_by_hand_is_not_warned():
    assert orientation_warning(given_orientation("inverse")) is None


def test_per_image_rule_flips_only_the_masks_that_hold_the_border():
    inside = torch.zeros(1, 1, 16, 16)
    inside[..., 5:11, 5:11] = 0.9  # an object inside the frame
    inverted = 1 - inside  # the same image held inside out
    thin = torch.zeros(1, 1, 16, 16)
    thin[..., 0:3, :] = 0.8  # touches the border, but covers less than half of the ring
    out = orient_per_image(torch.cat([inside, inverted, thin]))
    assert torch.equal(out[0], inside[0]) and torch.equal(out[2], thin[0])
    assert torch.allclose(out[1], inside[0])

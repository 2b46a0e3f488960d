"""The per-image colour EM: it sharpens a rough prior when the colours separate object and scene,
leaves the prior alone when they do not, and rejects mismatched shapes."""

from __future__ import annotations

import pytest
import torch

from comgan_lib.metrics.colour_em import colour_em
from comgan_lib.metrics.masks import centre_colour_em, centred_disc, score_masks


def _star_scene(n: int = 4, size: int = 32, seed: int = 0):
    """A thin cross (an object with arms) on a noisy scene of another colour, per image."""
    g = torch.Generator().manual_seed(seed)
    gt = torch.zeros(n, 1, size, size)
    c = size // 2
    gt[:, :, c - 2 : c + 2, 4:-4] = 1
    gt[:, :, 4:-4, c - 2 : c + 2] = 1
    fg = torch.rand(n, 3, 1, 1, generator=g) * 0.6 + 0.2
    bg = -(torch.rand(n, 3, 1, 1, generator=g) * 0.6 + 0.2)
    noise = 0.15 * torch.randn(n, 3, size, size, generator=g)
    return gt * fg + (1 - gt) * bg + noise, gt


def test_a_blob_prior_recovers_the_arms_of_a_cross():
    images, gt = _star_scene()
    blob = torch.zeros_like(gt)
    c = gt.shape[-1] // 2
    blob[:, :, c - 6 : c + 6, c - 6 : c + 6] = 1  # a rounded-blob guess: arms cut, corners filled
    prior = 0.2 + 0.6 * blob
    before = score_masks(prior, gt)["foreground"]["iou"]
    after = score_masks(colour_em(images, prior), gt)["foreground"]["iou"]
    assert before < 0.5 and after > 0.95


def test_uninformative_colours_leave_the_prior():
    images = torch.full((2, 3, 16, 16), 0.3)
    prior = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.1
    out = colour_em(images, prior)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, prior, atol=1e-5, rtol=0)


def test_centre_colour_em_beats_the_disc_it_starts_from():
    images, gt = _star_scene(seed=3)
    disc = score_masks(centred_disc(images), gt)["max_flip"]["iou"]
    em = score_masks(centre_colour_em(images), gt)["max_flip"]["iou"]
    assert em > disc + 0.3


@pytest.mark.parametrize(
    "images, prior",
    [
        (torch.zeros(2, 3, 8, 8), torch.zeros(2, 2, 8, 8)),
        (torch.zeros(2, 3, 8, 8), torch.zeros(3, 1, 8, 8)),
        (torch.zeros(3, 8, 8), torch.zeros(1, 8, 8)),
    ],
)
def test_shape_mismatch_is_refused(images, prior):
    with pytest.raises(ValueError):
        colour_em(images, prior)

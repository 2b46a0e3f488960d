"""Tests for comgan_lib.metrics.masks: hand-computed scores and training-free baselines."""

import math

import pytest
import torch

from comgan_lib.metrics.masks import (
    PROTOCOLS,
    TRAINING_FREE_PREDICTORS,
    all_foreground,
    border_otsu,
    centred_disc,
    coverage,
    dice_per_image,
    iou_per_image,
    otsu_threshold,
    score_masks,
    score_masks_per_image,
    score_training_free,
)


def _mask(rows: slice, cols: slice, size: int = 4) -> torch.Tensor:
    m = torch.zeros(1, 1, size, size)
    m[..., rows, cols] = 1.0
    return m


def test_known_overlap_iou_third_dice_half():
    # pred = top two rows (8 px), gt = left two columns (8 px): overlap = top-left 2x2 = 4 px,
    # union = 8 + 8 - 4 = 12 -> IoU 4/12 = 1/3; Dice = 2*4/(8+8) = 1/2.
    pred = _mask(slice(0, 2), slice(None))
    gt = _mask(slice(None), slice(0, 2))
    s = score_masks(pred, gt)
    assert s["foreground"]["iou"] == pytest.approx(1 / 3)
    assert s["foreground"]["dice"] == pytest.approx(1 / 2)
    # The inverse (bottom two rows) also overlaps gt in 4 px of a 12 px union: max-flip = 1/3.
    assert s["max_flip"]["iou"] == pytest.approx(1 / 3)
    assert s["max_flip"]["dice"] == pytest.approx(1 / 2)
    assert s["n_images"] == 1
    assert all(isinstance(v, float) for p in PROTOCOLS for v in s[p].values())


def test_inverted_prediction_zero_foreground_one_max_flip():
    gt = _mask(slice(1, 3), slice(0, 3))
    s = score_masks(1.0 - gt, gt)
    assert s["foreground"] == {"iou": 0.0, "dice": 0.0}
    assert s["max_flip"] == {"iou": 1.0, "dice": 1.0}


def test_per_image_mean_not_pooled():
    # Image A: pred == gt == one pixel -> IoU 1, Dice 1.
    # Image B: gt = top half (8 px), pred = everything (16 px) -> IoU 8/16, Dice 16/24 = 2/3.
    # Per-image mean IoU = 0.75; pooled IoU would be (1 + 8) / (1 + 16) = 9/17 ~ 0.53.
    pred = torch.cat([_mask(slice(0, 1), slice(0, 1)), torch.ones(1, 1, 4, 4)])
    gt = torch.cat([_mask(slice(0, 1), slice(0, 1)), _mask(slice(0, 2), slice(None))])
    s = score_masks(pred, gt)
    assert s["foreground"]["iou"] == pytest.approx(0.75)
    assert s["foreground"]["dice"] == pytest.approx((1 + 2 / 3) / 2)
    # Inverses score 0 on both images (A: 15 px vs 1 px disjoint; B: empty vs 8 px).
    assert s["max_flip"]["iou"] == pytest.approx(0.75)
    per = score_masks_per_image(pred, gt)
    assert per["foreground"]["iou"].tolist() == [1.0, 0.5]


def test_threshold_exactly_half_is_foreground():
    gt = _mask(slice(0, 2), slice(None))
    assert score_masks(gt * 0.5, gt)["foreground"]["iou"] == 1.0
    # Just below the threshold the prediction is empty: IoU 0 / 8.
    assert score_masks(gt * 0.4999, gt)["foreground"]["iou"] == 0.0
    assert score_masks(gt * 0.3, gt, threshold=0.3)["foreground"]["iou"] == 1.0
    assert coverage(gt * 0.5).tolist() == [0.5]


def test_both_empty_scores_one():
    empty = torch.zeros(2, 1, 4, 4)
    s = score_masks(empty, empty)
    assert s["foreground"] == {"iou": 1.0, "dice": 1.0}
    assert s["max_flip"] == {"iou": 1.0, "dice": 1.0}
    e = torch.zeros(1, 16, dtype=torch.bool)
    assert iou_per_image(e, e).item() == 1.0 and dice_per_image(e, e).item() == 1.0


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="shapes differ"):
        score_masks(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))
    with pytest.raises(ValueError, match="empty batch"):
        score_masks(torch.zeros(0, 1, 4, 4), torch.zeros(0, 1, 4, 4))
    with pytest.raises(ValueError, match="N,1,H,W"):
        score_masks(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4))


def test_three_dim_masks_accepted():
    gt = _mask(slice(0, 2), slice(None))[:, 0]
    assert score_masks(gt, gt)["foreground"]["iou"] == 1.0


def test_dice_is_monotone_function_of_iou():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(16, 1, 8, 8, generator=g)
    gt = (torch.rand(16, 1, 8, 8, generator=g) < torch.rand(16, 1, 1, 1, generator=g)).float()
    per = score_masks_per_image(pred, gt)
    for scores in per.values():
        iou, dice = scores["iou"], scores["dice"]
        assert torch.allclose(dice, 2 * iou / (1 + iou))
    assert (per["max_flip"]["iou"] >= per["foreground"]["iou"]).all()


def test_all_foreground_is_ones():
    out = all_foreground(torch.zeros(3, 3, 5, 7))
    assert out.shape == (3, 1, 5, 7)
    assert (out == 1).all()


@pytest.mark.parametrize("h,w", [(64, 64), (40, 56)])
def test_centred_disc_area_and_centre(h, w):
    out = centred_disc(torch.zeros(2, 3, h, w), radius_fraction=0.35)
    assert out.shape == (2, 1, h, w)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    r = 0.35 * min(h, w)
    assert out[0].sum().item() == pytest.approx(math.pi * r**2, rel=0.03)
    # Symmetric under both flips, so the centroid is the image centre.
    assert torch.equal(out, out.flip(-1)) and torch.equal(out, out.flip(-2))
    ys, xs = torch.nonzero(out[0, 0], as_tuple=True)
    assert ys.float().mean().item() == pytest.approx((h - 1) / 2)
    assert xs.float().mean().item() == pytest.approx((w - 1) / 2)


def test_otsu_threshold_bimodal():
    g = torch.Generator().manual_seed(1)
    low = 0.2 + 0.02 * torch.randn(500, generator=g)
    high = 0.8 + 0.02 * torch.randn(300, generator=g)
    t = otsu_threshold(torch.cat([low, high]), bins=256)
    assert 0.35 < t < 0.65
    assert (low <= t).all() and (high > t).all()
    assert otsu_threshold(torch.full((10,), 0.3)) == pytest.approx(0.3)


def _square_scene(n: int = 2, size: int = 32, contrast: float = 1.0, noise: float = 0.03):
    g = torch.Generator().manual_seed(2)
    bg = torch.tensor([-0.6, 0.2, 0.5])[:, None, None]
    fg = bg + contrast * torch.tensor([1.3, -0.7, -0.7])[:, None, None]
    images = bg.expand(n, 3, size, size).clone()
    gt = torch.zeros(n, 1, size, size)
    for i in range(n):
        top, left = 6 + 4 * i, 8 + 3 * i
        images[i, :, top : top + 12, left : left + 10] = fg
        gt[i, :, top : top + 12, left : left + 10] = 1.0
    images = (images + noise * torch.randn(images.shape, generator=g)).clamp(-1, 1)
    return images, gt


@pytest.mark.parametrize("contrast,noise", [(1.0, 0.03), (0.15, 0.01)])
def test_border_otsu_recovers_square(contrast, noise):
    # The low-contrast scene (colour distance ~0.24) rules out any fixed distance cut-off.
    images, gt = _square_scene(contrast=contrast, noise=noise)
    pred = border_otsu(images)
    assert pred.shape == gt.shape
    per = score_masks_per_image(pred, gt)
    assert (per["foreground"]["iou"] > 0.95).all()


def test_border_otsu_constant_image_is_background():
    images = torch.full((2, 3, 16, 16), 0.25)
    pred = border_otsu(images)
    assert not torch.isnan(pred).any()
    assert (pred == 0).all()


def test_score_training_free():
    images, gt = _square_scene()
    out = score_training_free(images, gt)
    names = ["all_foreground", "centred_disc", "border_otsu", "centre_colour_em"]
    assert list(out) == list(TRAINING_FREE_PREDICTORS) == names
    assert out["border_otsu"]["foreground"]["iou"] > 0.95
    # All-foreground IoU against gt is the gt coverage.
    expected = coverage(gt).double().mean().item()
    assert out["all_foreground"]["foreground"]["iou"] == pytest.approx(expected)
    assert out["centred_disc"]["n_images"] == 2
    assert set(out["centred_disc"]) == set(PROTOCOLS) | {"n_images"}

"""Mask fidelity against an oracle: orientation decided once, scores in that orientation."""

from __future__ import annotations

import torch
from torch import nn

from comgan_lib.oracle import disagreement_rows, mask_fidelity


class SquareGenerator(nn.Module):
    """Draws a bright square (the object) and returns M = the *background* (inverted mask)."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def sample_z(self, n, generator=None, device=None):
        return torch.rand(n, 2, generator=generator)

    def forward(self, z):
        n = z.shape[0]
        square = torch.zeros(n, 1, 16, 16)
        for i, (a, b) in enumerate((z * 8).long().tolist()):
            square[i, :, a : a + 6, b : b + 6] = 1
        image = (square * 2 - 1).expand(n, 3, 16, 16)
        return {"image": image, "mask": 1 - square, "fg": image, "bg": image}


class ThresholdOracle(nn.Module):
    def forward(self, x):
        return 20 * x[:, :1]  # logits: bright pixels are foreground


def test_inverted_masks_are_detected_once_and_scored_in_that_orientation():
    result = mask_fidelity(SquareGenerator(), ThresholdOracle(), n=20, seed=0)
    assert result["orientation"] == "inverse"
    assert result["iou"] == 1.0 and result["iou_other_orientation"] == 0.0
    assert abs(result["coverage_mean"] - 36 / 256) < 1e-6
    assert result["frac_coverage_5_95"] == 1.0
    assert result["spill"] == 0.0 and result["miss"] == 0.0


class OversizedMaskGenerator(SquareGenerator):
    """The same squares, with a mask twice as tall as the object (spill, no miss)."""

    def forward(self, z):
        out = super().forward(z)
        square = (1 - out["mask"]).clone()
        grown = square.clone()
        grown[:, :, 6:, :] = torch.maximum(grown[:, :, 6:, :], square[:, :, :-6, :])
        return {**out, "mask": grown}


def test_oversized_masks_show_as_spill_not_miss():
    result = mask_fidelity(OversizedMaskGenerator(), ThresholdOracle(), n=20, seed=0)
    assert result["orientation"] == "mask"
    assert result["miss"] == 0.0
    # Squares near the bottom edge grow less; every mask is between 1x and 2x the object.
    assert 0.0 < result["spill"] <= 0.5
    assert abs(result["spill"] - (1 - 36 / (result["coverage_mean"] * 256))) < 0.1


class CopyingSpillGenerator(OversizedMaskGenerator):
    """Oversized masks whose F copies B outside the object: F − B is 0 there, 2 on the object."""

    def forward(self, z):
        out = super().forward(z)
        square = (out["image"][:, :1] > 0).float()
        fg = torch.ones_like(out["image"])
        bg = fg - 2 * square  # -1 under the object, +1 elsewhere
        return {**out, "fg": fg, "bg": bg}


def test_layer_gap_by_region_tells_a_copied_spill_from_the_object():
    gap = mask_fidelity(CopyingSpillGenerator(), ThresholdOracle(), n=20, seed=0)["layer_gap"]
    assert gap["object"] == 1.0  # |1 - (-1)| / 2
    assert gap["spill"] == 0.0 and gap["background"] == 0.0
    assert gap["miss"] != gap["miss"]  # NaN: the masks miss nothing


def test_disagreement_rows_show_the_oriented_mask_and_its_layer_first():
    import matplotlib

    matplotlib.use("Agg")
    fig = disagreement_rows(CopyingSpillGenerator(), ThresholdOracle(), "inverse", k=4)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["image", "oracle", "mask (oriented)", "mask's layer", "other layer"]
    # The inverse orientation puts B (the layer 1 - M selects, black on the object) on the
    # mask's-layer row, and F (white everywhere) on the other row; the tiles' padding is grey.
    tiles = [ax.get_images()[0].get_array() for ax in fig.axes]
    assert tiles[3].min() < 0.1
    assert tiles[4].min() > 0.4


class EmptySceneGenerator(SquareGenerator):
    """Like SquareGenerator, but every other sample is an empty (dark) scene with an empty mask."""

    def forward(self, z):
        out = super().forward(z)
        empty = torch.arange(z.shape[0]) % 2 == 1
        image, mask = out["image"].clone(), out["mask"].clone()
        image[empty], mask[empty] = -1.0, 0.0  # no object; M (the inverted mask) empty too
        return {"image": image, "mask": mask, "fg": image, "bg": image}


def test_samples_without_an_object_are_counted_and_left_out():
    # The empty scenes' masks are empty and the oracle sees nothing: scored they would read IoU 1
    # in the direct orientation and pull the mean toward it.
    result = mask_fidelity(EmptySceneGenerator(), ThresholdOracle(), n=20, seed=0)
    assert result["n_no_object"] == 10 and result["n_scored"] == 10
    assert result["orientation"] == "inverse"
    assert result["iou"] == 1.0 and result["iou_other_orientation"] == 0.0


def test_an_untrained_generator_with_empty_masks_does_not_read_as_perfect():
    class Blank(SquareGenerator):
        def forward(self, z):
            image = -torch.ones(z.shape[0], 3, 16, 16)
            return {
                "image": image,
                "mask": torch.zeros(z.shape[0], 1, 16, 16),
                "fg": image,
                "bg": image,
            }

    result = mask_fidelity(Blank(), ThresholdOracle(), n=8, seed=0)
    assert result["n_no_object"] == 8 and result["n_scored"] == 0
    assert result["orientation"] is None and result["iou"] != result["iou"]  # NaN, not 1.0

"""The low-level image statistics that compare generated images with real ones (notebook 04)."""

from __future__ import annotations

import pytest
import torch

from comgan_lib.metrics.image_stats import image_statistics


def test_flat_grey_images_have_no_contrast_colour_or_detail():
    stats = image_statistics(torch.full((4, 3, 16, 16), 0.3))
    assert stats == pytest.approx({"contrast": 0.0, "colour_spread": 0.0, "detail": 0.0}, abs=1e-6)


def test_a_paler_copy_halves_every_statistic():
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    full, pale = image_statistics(x), image_statistics(0.5 * x + 0.1)
    for key in full:
        assert full[key] > 0
        assert pale[key] == pytest.approx(full[key] / 2, rel=1e-4)

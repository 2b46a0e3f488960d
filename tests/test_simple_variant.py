"""The simple synthetic variant (the parity check's data): one plain object, wholly inside the
frame, on a smooth background, composed exactly; selected by data.variant."""

from __future__ import annotations

import pytest
import torch

from comgan_lib.config import load_params
from comgan_lib.data import build_dataset, stack_items
from comgan_lib.data.synthetic import SyntheticDataset
from comgan_lib.errors import ConfigError
from comgan_lib.metrics.masks import TRAINING_FREE_PREDICTORS, score_masks


@pytest.fixture(scope="module")
def items():
    ds = SyntheticDataset(32, "train", 200, seed=0, num_species=3, num_scenes=3, variant="simple")
    return stack_items(ds)


def test_simple_items_are_exact_compositions_and_deterministic():
    ds = SyntheticDataset(
        32, "train", 4, num_species=3, num_scenes=3, variant="simple", return_layers=True
    )
    again = SyntheticDataset(32, "train", 4, num_species=3, num_scenes=3, variant="simple")
    for i in range(4):
        it = ds[i]
        m = it["mask"]
        assert torch.equal(it["image"], it["foreground"] * m + it["background"] * (1 - m))
        assert torch.equal(it["image"], again[i]["image"])
    clutter = SyntheticDataset(32, "train", 1, num_species=3, num_scenes=3)
    assert not torch.equal(clutter[0]["image"], ds[0]["image"])


def test_one_small_object_wholly_inside_the_frame(items):
    m = items["mask"][:, 0]
    cov = m.flatten(1).mean(1)
    assert 0.02 < float(cov.min()) and float(cov.max()) < 0.3
    assert 0.06 < float(cov.mean()) < 0.16
    border = torch.cat([m[:, 0], m[:, -1], m[:, :, 0], m[:, :, -1]], 1)
    assert float(border.sum()) == 0


def test_every_species_and_scene_occurs(items):
    assert set(items["fg_class"].tolist()) == {0, 1, 2}
    assert set(items["bg_class"].tolist()) == {0, 1, 2}


def test_backgrounds_are_smooth(items):
    # The object is the only edge: off the object, neighbouring pixels differ little.
    x, m = items["image"], items["mask"]
    off = (1 - m[..., :, 1:]) * (1 - m[..., :, :-1])
    step = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(1, keepdim=True)
    assert float((step * off).sum() / off.sum()) < 0.05


def test_the_data_is_easy_for_a_colour_rule(items):
    # A simple reference: the border-colour predictor does well here (it does not on the clutter
    # variant), so a layered GAN failing on it points at the GAN.
    best = max(
        score_masks(predict(items["image"]), items["mask"])["max_flip"]["iou"]
        for predict in TRAINING_FREE_PREDICTORS.values()
    )
    assert best > 0.6


def test_simple_variant_has_three_species_and_scenes():
    with pytest.raises(ValueError, match="simple variant"):
        SyntheticDataset(32, "train", 4, num_species=4, num_scenes=3, variant="simple")
    with pytest.raises(ValueError, match="variant must be"):
        SyntheticDataset(32, "train", 4, variant="plain")


def test_params_select_the_variant_and_check_its_counts(repo):
    params = load_params(repo / "params" / "simple.yaml", ["data.train_size=8", "data.test_size=4"])
    assert params.data.variant == "simple"
    train = build_dataset(params, "train")
    assert train.variant == "simple" and len(train) == 8
    with pytest.raises(ConfigError, match="simple variant has 3 species"):
        load_params(repo / "params" / "simple.yaml", ["data.num_species=5"])

"""The embedded dataset: deterministic, exact masks, independent layers, hard enough."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from comgan_lib.data import build_dataset, stack_items
from comgan_lib.data.synthetic import SCENES, SPECIES, SyntheticDataset, render_item
from comgan_lib.metrics.masks import TRAINING_FREE_PREDICTORS, score_masks


def test_same_seed_same_pixels_other_seed_other_pixels():
    a, b = SyntheticDataset(32, "train", 8, seed=3), SyntheticDataset(32, "train", 8, seed=3)
    c = SyntheticDataset(32, "train", 8, seed=4)
    for i in range(8):
        assert torch.equal(a[i]["image"], b[i]["image"])
        assert torch.equal(a[i]["mask"], b[i]["mask"])
    assert not torch.equal(a[0]["image"], c[0]["image"])


def test_items_do_not_depend_on_access_order_or_caching():
    lazy = SyntheticDataset(32, "train", 10, seed=1)
    cached = SyntheticDataset(32, "train", 10, seed=1, cache=True)
    late = lazy[7]["image"].clone()
    for i in range(10):
        cached[i]
    assert torch.equal(late, cached[7]["image"])
    assert torch.equal(SyntheticDataset(32, "train", 10, seed=1)[7]["image"], late)


def test_train_and_test_splits_are_different_images():
    train = stack_items(SyntheticDataset(32, "train", 50))
    test = stack_items(SyntheticDataset(32, "test", 50))
    distances = torch.cdist(train["image"].flatten(1), test["image"].flatten(1))
    assert distances.min() > 1.0


@pytest.mark.parametrize("resolution", [32, 48, 64, 100, 128])
def test_shapes_ranges_and_exact_binary_masks(resolution):
    ds = SyntheticDataset(resolution, "test", 4, return_layers=True)
    item = ds[2]
    assert item["image"].shape == (3, resolution, resolution)
    assert item["mask"].shape == (1, resolution, resolution)
    assert item["image"].dtype == torch.float32
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    assert 0 <= item["fg_class"] < len(SPECIES) and 0 <= item["bg_class"] < len(SCENES)


def test_image_is_exactly_the_composition_of_its_layers():
    batch = stack_items(SyntheticDataset(32, "train", 64, return_layers=True))
    m = batch["mask"]
    composed = batch["foreground"] * m + batch["background"] * (1 - m)
    assert torch.equal(batch["image"], composed)
    # The layers differ where it matters: the mask is not decorative.
    inside = (batch["foreground"] - batch["background"]).abs().sum(1, keepdim=True)[m.bool()]
    assert inside.mean() > 0.3


def test_the_same_item_shows_the_same_scene_at_every_resolution():
    small = render_item(0, "train", 5, 32, 5, 5)
    large = render_item(0, "train", 5, 128, 5, 5)
    assert small["fg_class"] == large["fg_class"] and small["bg_class"] == large["bg_class"]
    down = F.interpolate(large["mask"][None], size=(32, 32), mode="area")[0] > 0.5
    agree = (down == small["mask"].bool()).float().mean()
    assert agree > 0.97


def test_masks_cover_a_plausible_share_and_never_vanish():
    masks = stack_items(SyntheticDataset(32, "train", 300))["mask"]
    coverage = masks.flatten(1).mean(1)
    assert coverage.min() > 0.03
    assert coverage.max() < 0.6
    assert 0.1 < coverage.mean() < 0.35


def test_species_and_scenes_are_used_and_independent():
    batch = stack_items(SyntheticDataset(32, "train", 1000, num_species=3, num_scenes=4))
    counts = torch.zeros(3, 4)
    for s, c in zip(batch["fg_class"].tolist(), batch["bg_class"].tolist(), strict=True):
        counts[s, c] += 1
    assert (counts > 0).all()
    expected = counts.sum(1, keepdim=True) * counts.sum(0, keepdim=True) / counts.sum()
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 22.5  # 6 degrees of freedom; p about 0.001


def test_training_free_predictors_stay_clearly_below_a_learnt_segmenter():
    """Guards the dataset's difficulty: the segmentation issue needs IoU >= 0.80 and a margin."""
    batch = stack_items(SyntheticDataset(32, "test", 300))
    for name, predict in TRAINING_FREE_PREDICTORS.items():
        scores = score_masks(predict(batch["image"]), batch["mask"])
        assert scores["max_flip"]["iou"] < 0.6, name
    otsu = score_masks(TRAINING_FREE_PREDICTORS["border_otsu"](batch["image"]), batch["mask"])
    assert otsu["max_flip"]["iou"] > 0.25  # still a real baseline, not noise


@pytest.mark.parametrize(
    "kwargs",
    [
        {"resolution": 16},
        {"resolution": 256},
        {"split": "val"},
        {"size": 0},
        {"num_species": 9},
        {"num_scenes": 0},
    ],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        SyntheticDataset(**{"resolution": 32, "split": "train", "size": 4, **kwargs})


def test_index_out_of_range():
    with pytest.raises(IndexError):
        SyntheticDataset(32, "train", 4)[4]


def test_build_dataset_follows_the_parameters(repo):
    from comgan_lib.config import load_params

    params = load_params(
        repo / "params" / "smoke.yaml", ["data.resolution=64", "model.gen_width=64"]
    )
    train, test = build_dataset(params, "train"), build_dataset(params, "test")
    assert len(train) == params.data.train_size and len(test) == params.data.test_size
    assert train[0]["image"].shape[-1] == 64

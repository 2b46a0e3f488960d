"""The scenery synthetic variant (a miniature of the paper's datasets): one centred object wholly
inside the frame, covering about a quarter of it, over scenes whose palette overlaps the
objects'."""

from __future__ import annotations

import colorsys

import pytest
import torch

from comgan_lib.data import stack_items
from comgan_lib.data.scenery import CENTRE_JITTER, HUE_JITTER, SCENERY_SCENES
from comgan_lib.data.synthetic import SPECIES, SyntheticDataset, variant_classes


@pytest.fixture(scope="module")
def items():
    ds = SyntheticDataset(32, "train", 300, seed=0, variant="scenery", return_layers=True)
    return stack_items(ds)


def test_items_are_exact_compositions_and_deterministic(items):
    m = items["mask"]
    assert torch.equal(items["image"], items["foreground"] * m + items["background"] * (1 - m))
    again = SyntheticDataset(32, "train", 3, seed=0, variant="scenery")
    assert torch.equal(again[2]["image"], items["image"][2])


def test_one_object_near_the_centre_wholly_inside(items):
    m = items["mask"][:, 0]
    ring = torch.cat([m[:, 0], m[:, -1], m[:, :, 0], m[:, :, -1]], 1)
    assert float(ring.sum()) == 0
    coords = (torch.arange(32) + 0.5) / 16 - 1
    area = m.sum((1, 2))
    cx = (m.sum(1) * coords).sum(1) / area
    cy = (m.sum(2) * coords).sum(1) / area
    # The outline's centroid may sit off its pose centre (fish tail, crescent), but not far.
    assert float(torch.maximum(cx.abs(), cy.abs()).max()) < CENTRE_JITTER + 0.35
    assert float(torch.sqrt(cx**2 + cy**2).mean()) < 0.2


def test_coverage_is_the_paper_regime(items):
    cov = items["mask"].flatten(1).mean(1)
    assert 0.2 <= float(cov.mean()) <= 0.35
    assert float(cov.std()) > 0.04 and float(cov.min()) > 0.08 and float(cov.max()) < 0.5


def test_species_and_scenes_named_and_all_used(items):
    assert variant_classes("scenery") == (SPECIES, SCENERY_SCENES)
    assert set(items["fg_class"].tolist()) == set(range(5))
    assert set(items["bg_class"].tolist()) == set(range(5))


def test_scene_colours_overlap_the_objects(items):
    # Mean colours of objects and of backgrounds: for most objects, some background in the set
    # has a mean colour within 0.2 (on the [-1, 1] scale): colour alone does not tell them apart.
    m = items["mask"]
    obj = (items["image"] * m).sum((2, 3)) / m.sum((2, 3))
    scene = items["background"].mean((2, 3))
    nearest = torch.cdist(obj, scene).min(1).values
    assert float((nearest < 0.2).float().mean()) > 0.85


def _object_and_scene_hue_gap(items) -> torch.Tensor:
    """Per image: the hue distance (on the hue circle, in [0, 0.5]) between the object's mean
    colour and its own scene's mean colour."""

    def hue(rgb):
        rgb = ((rgb + 1) / 2).clamp(0, 1)
        return torch.tensor([colorsys.rgb_to_hsv(*map(float, c))[0] for c in rgb])

    m = items["mask"]
    gap = (
        hue((items["foreground"] * m).sum((2, 3)) / m.sum((2, 3)))
        - hue(items["background"].mean((2, 3)))
    ).abs()
    return torch.minimum(gap, 1 - gap)


def test_camouflage_gives_each_scene_its_objects_hue(items):
    plain = SyntheticDataset(32, "train", 120, seed=0, variant="scenery", return_layers=True)
    hidden = SyntheticDataset(
        32, "train", 120, seed=0, variant="scenery", return_layers=True, camouflage=1.0
    )
    plain_gap = _object_and_scene_hue_gap(stack_items(plain))
    hidden_gap = _object_and_scene_hue_gap(stack_items(hidden))
    # Without camouflage the scene's hue is drawn apart from the object's; with it, every
    # scene colour takes the object's hue (within HUE_JITTER).
    assert float(plain_gap.median()) > 0.1
    assert float((hidden_gap < 2 * HUE_JITTER).float().mean()) > 0.95
    # Camouflage 0 draws nothing extra: the images are those of the variant without it.
    assert torch.equal(
        SyntheticDataset(32, "train", 3, seed=0, variant="scenery", camouflage=0.0)[2]["image"],
        items["image"][2],
    )


def test_camouflage_only_on_scenery_and_in_range():
    with pytest.raises(ValueError, match="scenery"):
        SyntheticDataset(32, "train", 3, variant="clutter", camouflage=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SyntheticDataset(32, "train", 3, variant="scenery", camouflage=1.5)


def test_extra_scene_colours_change_only_the_scene(items):
    meadow = stack_items(
        SyntheticDataset(
            32, "train", 300, seed=0, variant="scenery", return_layers=True, extra_scene_colours=2
        )
    )
    # The object is drawn before the scene: its outline and labels are those of the default
    # (only the light, drawn after the scene, differs).
    assert torch.equal(meadow["mask"], items["mask"])
    assert torch.equal(meadow["fg_class"], items["fg_class"])
    assert not torch.equal(meadow["background"], items["background"])

    # More colours per scene: the scene's colours spread wider within each image.
    def spread(bg):
        return bg.flatten(2).std(2).mean(1)

    assert float(spread(meadow["background"]).median()) > 1.2 * float(
        spread(items["background"]).median()
    )


def test_extra_scene_colours_only_on_scenery_and_in_range():
    with pytest.raises(ValueError, match="scenery"):
        SyntheticDataset(32, "train", 3, variant="clutter", extra_scene_colours=1)
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        SyntheticDataset(32, "train", 3, variant="scenery", extra_scene_colours=5)

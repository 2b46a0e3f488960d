"""Tests of the bring-your-own image folder dataset (comgan_lib.data.folder)."""

import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from comgan_lib.data.folder import ImageFolderDataset, load_image_rgb
from comgan_lib.errors import DatasetError

R = 32


def _save(path, size, mode="RGB", color=0, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, **kwargs)


def _left_band(size, band, inside, outside, mode):
    """An image whose columns x < band have colour ``inside`` and the rest ``outside``."""
    im = Image.new(mode, size, outside)
    im.paste(inside, (0, 0, band, size[1]))
    return im


def _plain_folder(root, n, size=(8, 8)):
    for i in range(n):
        _save(root / "images" / f"img{i:02d}.png", size, color=(i * 10, 0, 0))
    return root


@pytest.fixture
def masked_root(tmp_path):
    """Six images of odd sizes and modes, each with a mask of another PIL mode."""
    img, msk = tmp_path / "images", tmp_path / "masks"
    _save(img / "a.png", (37, 53), color=(10, 20, 30))
    _save(msk / "a.png", (37, 53), mode="1", color=1)  # 1-bit mask, all foreground
    img.mkdir(exist_ok=True)
    # 100x60: red band on the left quarter, blue elsewhere; the mask marks the band.
    _left_band((100, 60), 25, (255, 0, 0), (0, 0, 255), "RGB").save(img / "b.png")
    _left_band((100, 60), 25, 255, 0, "L").save(msk / "b.png")
    _save(img / "c.png", (64, 64), mode="L", color=128)
    _save(msk / "c.png", (64, 64), mode="RGB", color=(255, 255, 255))
    _save(img / "d.png", (50, 40), mode="RGBA", color=(0, 255, 0, 0))  # alpha must be ignored
    _save(msk / "d.png", (50, 40), mode="L", color=200)  # > 127: foreground
    _save(img / "e.jpg", (80, 70), color=(200, 100, 50), quality=95)
    _save(msk / "e.png", (80, 70), mode="L", color=100)  # <= 127: background
    _save(img / "f.PNG", (20, 30), color=(0, 0, 0))  # upper-case extension
    _save(msk / "f.png", (20, 30), mode="L", color=255)
    (img / "notes.txt").write_text("not an image")
    (img / ".hidden.png").write_bytes(b"junk")
    return tmp_path


def test_items_with_masks_have_right_shapes_and_values(masked_root):
    ds = ImageFolderDataset(masked_root, R, split="all")
    assert ds.has_masks and len(ds) == 6 and ds.skipped == []
    assert ds.names == ["a", "b", "c", "d", "e", "f"]
    assert ds.resolution == R and ds.split == "all"
    for i in range(len(ds)):
        item = ds[i]
        assert item["index"] == i
        image, mask = item["image"], item["mask"]
        assert image.shape == (3, R, R) and image.dtype == torch.float32
        assert mask.shape == (1, R, R) and mask.dtype == torch.float32
        assert image.min() >= -1 and image.max() <= 1
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
    coverage = {name: ds[i]["mask"].mean().item() for i, name in enumerate(ds.names)}
    assert coverage["a"] == coverage["c"] == coverage["d"] == coverage["f"] == 1.0
    assert coverage["e"] == 0.0
    grey = ds[2]["image"]
    assert torch.allclose(grey, torch.full_like(grey, 128 / 255 * 2 - 1), atol=1e-4)
    green = ds[3]["image"].mean(dim=(1, 2))
    assert torch.allclose(green, torch.tensor([-1.0, 1.0, -1.0]), atol=1e-4)
    jpeg = ds[4]["image"].mean(dim=(1, 2))
    expected = torch.tensor([200, 100, 50]) / 255 * 2 - 1
    assert torch.allclose(jpeg, expected, atol=0.05)


def test_mask_follows_centre_crop_and_stretch(masked_root):
    crop = ImageFolderDataset(masked_root, R, split="all")[1]
    # Shorter side 60 -> 32 makes the image 53x32; the crop keeps original x in ~[20, 80],
    # so only ~5 of the 25 band columns (~3 of 32 output columns) stay visible.
    mask = crop["mask"][0]
    assert mask[:, :2].eq(1).all() and mask[:, 5:].eq(0).all()
    assert 0.05 < mask.mean().item() < 0.13
    image = crop["image"]
    assert image[0, :, 0].gt(0.9).all() and image[2, :, 0].lt(-0.9).all()  # red under the mask
    assert image[0, :, 10:].lt(-0.9).all() and image[2, :, 10:].gt(0.9).all()  # blue elsewhere

    stretch = ImageFolderDataset(masked_root, R, split="all", resize_mode="stretch")
    for i in range(len(stretch)):
        assert stretch[i]["image"].shape == (3, R, R) and stretch[i]["mask"].shape == (1, R, R)
    mask = stretch[1]["mask"][0]  # 25 of 100 columns -> 8 of 32
    assert mask[:, :7].eq(1).all() and mask[:, 9:].eq(0).all()
    assert abs(mask.mean().item() - 0.25) <= 1 / R


def test_without_masks(tmp_path):
    _save(tmp_path / "images" / "x.png", (40, 20))
    _save(tmp_path / "images" / "y.jpg", (20, 40))
    ds = ImageFolderDataset(tmp_path, 16, split="all", resize_mode="stretch")
    assert not ds.has_masks and ds.mask_paths is None
    item = ds[1]
    assert "mask" not in item and item["image"].shape == (3, 16, 16) and item["index"] == 1
    assert [p.name for p in ds.paths] == ["x.png", "y.jpg"]


def test_split_is_deterministic_disjoint_and_complete(tmp_path):
    root = _plain_folder(tmp_path, 20)
    everything = ImageFolderDataset(root, 8, split="all").names
    assert everything == sorted(everything) and len(everything) == 20

    train = ImageFolderDataset(root, 8, split="train", holdout_fraction=0.25, seed=3)
    test = ImageFolderDataset(root, 8, split="test", holdout_fraction=0.25, seed=3)
    assert len(test) == 5 and len(train) == 15
    assert set(train.names).isdisjoint(test.names)
    assert sorted(train.names + test.names) == everything
    again = ImageFolderDataset(root, 8, split="test", holdout_fraction=0.25, seed=3)
    assert again.names == test.names
    other = ImageFolderDataset(root, 8, split="test", holdout_fraction=0.25, seed=4)
    assert set(other.names) != set(test.names)


def test_holdout_sizes(tmp_path):
    root = _plain_folder(tmp_path, 3)
    # round(0.1 * 3) = 0, but a positive fraction holds out at least one image.
    assert len(ImageFolderDataset(root, 8, split="test", holdout_fraction=0.1)) == 1
    assert len(ImageFolderDataset(root, 8, split="train", holdout_fraction=0.0)) == 3
    with pytest.raises(DatasetError, match="'test' split"):
        ImageFolderDataset(root, 8, split="test", holdout_fraction=0.0)


def test_corrupt_file_error_and_skip(tmp_path):
    root = _plain_folder(tmp_path, 2)
    (root / "images" / "bad.jpg").write_bytes(b"\x00\x01garbage")
    with pytest.raises(DatasetError, match="bad.jpg") as err:
        ImageFolderDataset(root, 8)
    assert "on_bad_file: skip" in str(err.value) and "img00" not in str(err.value)

    with pytest.warns(UserWarning, match="bad.jpg"):
        ds = ImageFolderDataset(root, 8, split="all", on_bad_file="skip")
    assert ds.names == ["img00", "img01"] and ds.skipped == ["images/bad.jpg"]
    assert ds[1]["image"].shape == (3, 8, 8)


def test_error_lists_at_most_ten_files(tmp_path):
    root = _plain_folder(tmp_path, 1)
    for i in range(12):
        (root / "images" / f"bad{i:02d}.png").write_bytes(b"nope")
    with pytest.raises(DatasetError, match="12 bad file") as err:
        ImageFolderDataset(root, 8)
    message = str(err.value)
    assert "bad09.png" in message and "bad10.png" not in message and "and 2 more" in message


def test_file_broken_after_construction_is_named_at_load_time(tmp_path):
    root = _plain_folder(tmp_path, 2)
    ds = ImageFolderDataset(root, 8, split="all")
    (root / "images" / "img01.png").write_bytes(b"broken later")
    assert ds[0]["image"].shape == (3, 8, 8)
    with pytest.raises(DatasetError, match="img01.png"):
        ds[1]


def test_image_without_mask_and_orphan_mask(tmp_path):
    _save(tmp_path / "images" / "a.png", (10, 10))
    _save(tmp_path / "images" / "b.png", (10, 10))
    _save(tmp_path / "masks" / "a.png", (10, 10), mode="L")
    _save(tmp_path / "masks" / "zz.png", (10, 10), mode="L")
    with pytest.warns(UserWarning, match="zz.png"), pytest.raises(DatasetError, match="b.png"):
        ImageFolderDataset(tmp_path, 8)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ImageFolderDataset(tmp_path, 8, split="all", on_bad_file="skip")
    messages = " | ".join(str(w.message) for w in caught)
    assert "images/b.png" in messages and "zz.png" in messages
    assert ds.names == ["a"] and ds.skipped == ["images/b.png"]
    assert ds[0]["mask"].shape == (1, 8, 8)


def test_mask_of_another_size_is_a_bad_file(tmp_path):
    _save(tmp_path / "images" / "a.png", (40, 30))
    _save(tmp_path / "masks" / "a.png", (30, 40), mode="L")
    with pytest.raises(DatasetError, match="mask size 30x40 differs from image size 40x30"):
        ImageFolderDataset(tmp_path, 8)


def test_exif_rotated_photo_matches_upright_mask(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40x30, shown rotated by 90 degrees: 30x40
    _save(tmp_path / "images" / "a.jpg", (40, 30), exif=exif)
    _save(tmp_path / "masks" / "a.png", (30, 40), mode="L", color=255)
    ds = ImageFolderDataset(tmp_path, 8, split="all")
    assert load_image_rgb(ds.paths[0]).size == (30, 40)
    assert ds[0]["mask"].eq(1).all()


@pytest.mark.parametrize("layout", ["no_root", "no_images", "empty"])
def test_missing_or_empty_folders(tmp_path, layout):
    root = tmp_path / "data"
    expected = root
    if layout != "no_root":
        root.mkdir()
    if layout == "empty":
        (root / "images").mkdir()
        (root / "images" / "readme.txt").write_text("no images here")
        expected = root / "images"
    with pytest.raises(DatasetError, match=re.escape(str(expected))):
        ImageFolderDataset(root, 8)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"split": "val"},
        {"resize_mode": "crop"},
        {"resolution": 4},
        {"resolution": 2048},
        {"resolution": 64.0},
        {"resolution": True},
        {"holdout_fraction": 1.0},
        {"holdout_fraction": -0.1},
        {"on_bad_file": "ignore"},
    ],
)
def test_bad_arguments_raise_value_error(tmp_path, kwargs):
    root = _plain_folder(tmp_path, 2)
    args = {"resolution": 8, **kwargs}
    with pytest.raises(ValueError):
        ImageFolderDataset(root, **args)


def test_load_image_rgb(tmp_path):
    with pytest.raises(DatasetError, match="nothing.png"):
        load_image_rgb(tmp_path / "nothing.png")
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 128 * 257, dtype=np.uint16)).save(path)
    image = load_image_rgb(path)  # 16-bit grey is scaled down, not clipped to white
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (128, 128, 128)

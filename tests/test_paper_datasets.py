"""Loaders of the paper's datasets on small fixtures fabricated in the official layouts: counts,
splits, crops, pixel-aligned masks, and one clear error per malformed input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from dataset_fixtures import (
    CORNER_BOX,
    FLOWER_SIZE,
    INSIDE_BOX,
    H,
    W,
    cub_names,
    flower_truth,
    make_cars,
    make_class_folders,
    make_cub,
    make_dogs,
    make_drc,
    make_flowers,
    object_image,
    rect_mask,
    save,
)

from comgan_lib.config import params_from_dict
from comgan_lib.data import build_dataset
from comgan_lib.data.class_folders import ClassFolderDataset
from comgan_lib.data.common import apply_crop, box_crop_region
from comgan_lib.data.cub import CUBDataset
from comgan_lib.data.drc import DRCProcessedDataset
from comgan_lib.data.flowers import FlowersDataset, foreground_from_segmim
from comgan_lib.data.stanford_cars import StanfordCarsDataset
from comgan_lib.data.stanford_dogs import StanfordDogsDataset
from comgan_lib.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def cub_root(tmp_path_factory):
    return make_cub(tmp_path_factory.mktemp("cub") / "CUB_200_2011")


@pytest.fixture(scope="module")
def dogs_root(tmp_path_factory):
    return make_drc(make_dogs(tmp_path_factory.mktemp("dogs") / "dogs"))


@pytest.fixture(scope="module")
def cars_root(tmp_path_factory):
    return make_cars(tmp_path_factory.mktemp("cars") / "cars")


@pytest.fixture(scope="module")
def flowers_root(tmp_path_factory):
    return make_flowers(tmp_path_factory.mktemp("flowers") / "flowers")


def copy(root, tmp_path):
    return shutil.copytree(root, tmp_path / root.name)


def extent(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(first col, last col, first row, last row) of the foreground of a [1, R, R] mask."""
    rows = torch.nonzero(mask[0].any(1)).flatten()
    cols = torch.nonzero(mask[0].any(0)).flatten()
    return int(cols[0]), int(cols[-1]), int(rows[0]), int(rows[-1])


def assert_extent(mask, left, right, top, bottom):
    """The foreground spans [left, right) x [top, bottom) (fractional pixel edges), to a pixel."""
    c0, c1, r0, r1 = extent(mask)
    assert abs(c0 - left) <= 1 and abs(c1 + 1 - right) <= 1, (c0, c1, left, right)
    assert abs(r0 - top) <= 1 and abs(r1 + 1 - bottom) <= 1, (r0, r1, top, bottom)


def assert_image_matches_mask(item):
    """The red object in the image and the mask cover the same pixels (the boundary aside)."""
    red = item["image"][0] > 0
    disagree = (red != item["mask"][0].bool()).float().mean().item()
    assert disagree < 0.01, disagree


def check_item(item, resolution, with_mask=True):
    image = item["image"]
    assert image.shape == (3, resolution, resolution) and image.dtype == torch.float32
    assert image.min() >= -1 and image.max() <= 1
    assert isinstance(item["index"], int)
    if with_mask:
        mask = item["mask"]
        assert mask.shape == (1, resolution, resolution) and mask.dtype == torch.float32
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
    else:
        assert "mask" not in item


# -- CUB ----------------------------------------------------------------------------------------


def test_cub_counts_splits_names_and_labels(cub_root):
    names = cub_names()
    redo = {s: CUBDataset(cub_root, 32, s, "redo") for s in ("train", "val", "test", "all")}
    assert [len(redo[s]) for s in ("train", "val", "test", "all")] == [3, 1, 2, 6]
    assert redo["all"].names == names
    assert redo["val"].names == [names[3]] and redo["test"].names == names[4:]
    official = {s: CUBDataset(cub_root, 32, s, "official") for s in ("train", "test")}
    assert official["train"].names == names[:3] and official["test"].names == names[3:]
    assert redo["all"].labels == [0, 1, 0, 1, 0, 1]
    ds = redo["train"]
    assert ds.has_masks and ds.resolution == 32 and ds.split == "train" and ds.crop == "box"
    check_item(ds[1], 32)
    with pytest.raises(DatasetError, match="no 'val' split"):
        CUBDataset(cub_root, 32, "val", "official")


def test_cub_box_crop_puts_the_box_in_the_centre_at_two_thirds_of_the_side(cub_root):
    ds = CUBDataset(cub_root, 128, "all", "redo", crop="box")
    item = ds[0]  # INSIDE_BOX: 60x60 box, its 90x90 1.5x crop lies inside the image
    check_item(item, 128)
    assert box_crop_region(INSIDE_BOX, W, H) == (55, 35, 145, 125)
    side = 128 / 1.5
    assert_extent(item["mask"], 64 - side / 2, 64 + side / 2, 64 - side / 2, 64 + side / 2)
    area = item["mask"].mean().item()
    assert (side - 1) ** 2 / 128**2 <= area <= (side + 1) ** 2 / 128**2
    ys, xs = torch.nonzero(item["mask"][0], as_tuple=True)
    assert abs(xs.float().mean() - 63.5) <= 1 and abs(ys.float().mean() - 63.5) <= 1
    assert_image_matches_mask(item)


def test_cub_box_crops_clipped_at_the_image_border(cub_root):
    # CORNER_BOX (0, 0, 80, 60): centre (40, 30), r = 60 -> region [0, 100) x [0, 90), clipped.
    assert box_crop_region(CORNER_BOX, W, H) == (0, 0, 100, 90)
    stretched = CUBDataset(cub_root, 128, "all", "redo", crop="box_stretch")[1]
    assert_extent(stretched["mask"], 0, 80 * 128 / 100, 0, 60 * 128 / 90)
    assert_image_matches_mask(stretched)
    # "box" keeps the aspect ratio: 100x90 -> 142x128, centre crop drops 7 columns on the left.
    kept = CUBDataset(cub_root, 128, "all", "redo", crop="box")[1]
    scale = 128 / 90
    assert_extent(kept["mask"], 0, 80 * scale - 7, 0, 60 * scale)
    assert_image_matches_mask(kept)


@pytest.mark.parametrize("resolution", [128, 64])
def test_cub_full_crop_is_resize_152_over_128_then_centre_crop(cub_root, resolution):
    ds = CUBDataset(cub_root, resolution, "all", "redo", crop="full")
    item = ds[0]
    check_item(item, resolution)
    short = round(152 * resolution / 128)  # 152 at 128, 76 at 64
    scale = short / H
    left = (int(W * scale) - resolution) / 2
    top = (short - resolution) / 2
    x, y, w, h = INSIDE_BOX
    assert_extent(
        item["mask"],
        x * scale - left,
        (x + w) * scale - left,
        y * scale - top,
        (y + h) * scale - top,
    )
    assert_image_matches_mask(item)


def test_cub_without_masks_and_with_segmentations_beside_the_folder(tmp_path):
    root = make_cub(tmp_path / "CUB_200_2011", segmentations_beside=True)
    ds = CUBDataset(root, 32, "train", "official")
    assert ds.has_masks and ds[0]["mask"].sum() > 0
    shutil.rmtree(tmp_path / "segmentations")
    with pytest.raises(DatasetError, match="segmentations/: folder missing"):
        CUBDataset(root, 32, "train", "official")
    ds = CUBDataset(root, 32, "train", "official", use_masks=False)
    assert not ds.has_masks
    check_item(ds[0], 32, with_mask=False)


def test_cub_redo_split_file_with_other_ids_is_matched_by_row(tmp_path):
    root = make_cub(tmp_path / "CUB_200_2011")
    (root / "train_val_test_split.txt").write_text("0 0\n1 0\n2 0\n3 1\n4 2\n5 2\n")
    ds = CUBDataset(root, 32, "test", "redo")
    assert ds.names == cub_names()[4:]
    assert any("images.txt order" in w for w in ds.layout.warnings)


def _drop(path):
    path.unlink()


@pytest.mark.parametrize(
    "damage, pieces",
    [
        (lambda r: _drop(r / "images.txt"), ["images.txt: missing"]),
        (lambda r: _drop(r / "bounding_boxes.txt"), ["bounding_boxes.txt: missing"]),
        (
            lambda r: (r / "bounding_boxes.txt").write_text("1 70 50 60 60\n2 oops\n3 1 2 3 x\n"),
            ["bounding_boxes.txt line 2", "'2 oops'", "not numeric", "no box for 5 image(s)"],
        ),
        (
            lambda r: _drop(r / "images" / cub_names()[2]),
            [f"images/{cub_names()[2]}: listed in images.txt but missing"],
        ),
        (
            lambda r: _drop(r / "segmentations" / cub_names()[5].replace(".jpg", ".png")),
            ["segmentations/", "Bird_0006.png: segmentation missing"],
        ),
        (
            lambda r: _drop(r / "train_val_test_split.txt"),
            ["train_val_test_split.txt: missing", "ReDO", "split_scheme: official"],
        ),
        (
            lambda r: (r / "train_val_test_split.txt").write_text("1 0\n2 7\n"),
            ["split code '7'", "have no split"],
        ),
        (lambda r: shutil.rmtree(r / "images"), ["images/: folder missing"]),
    ],
)
def test_cub_malformed_inputs_are_one_clear_error(tmp_path, cub_root, damage, pieces):
    root = copy(cub_root, tmp_path)
    damage(root)
    with pytest.raises(DatasetError) as info:
        CUBDataset(root, 32, "train", "redo")
    message = str(info.value)
    assert "\n" not in message and "CUB-200-2011" in message
    for piece in pieces:
        assert piece in message


# -- Flowers ------------------------------------------------------------------------------------


def test_flowers_splits_official_and_redo_swap(flowers_root):
    official = {s: FlowersDataset(flowers_root, 32, s, "official") for s in ("train", "test")}
    redo = {s: FlowersDataset(flowers_root, 32, s, "redo") for s in ("train", "val", "test")}
    assert official["train"].names == ["image_00001.jpg", "image_00002.jpg"]  # trnid
    assert official["test"].names == ["image_00004.jpg", "image_00005.jpg"]  # tstid
    assert redo["train"].names == official["test"].names  # ReDO: train = tstid
    assert redo["test"].names == official["train"].names  # ReDO: test = trnid
    assert redo["val"].names == ["image_00003.jpg"]
    assert len(FlowersDataset(flowers_root, 32, "all")) == 5
    assert official["test"].labels == [1, 2]


def test_flowers_masks_are_the_non_blue_pixels_despite_jpeg(flowers_root):
    ds = FlowersDataset(flowers_root, 64, "all")
    truth = torch.from_numpy(flower_truth()).float()[None]
    expected = apply_crop(truth, "center", 64) > 0.5
    for i in range(len(ds)):  # yellow, magenta, purple, near-black and white flowers
        item = ds[i]
        check_item(item, 64)
        mask = item["mask"][0].bool()
        iou = (mask & expected[0]).sum() / (mask | expected[0]).sum()
        assert iou > 0.95, (i, float(iou))


def test_foreground_rule_on_a_jpeg_segmentation(flowers_root):
    from PIL import Image

    rgb = np.asarray(Image.open(flowers_root / "segmim" / "segmim_00004.jpg").convert("RGB"))
    fg = foreground_from_segmim(rgb)
    assert fg.shape == (FLOWER_SIZE[1], FLOWER_SIZE[0])
    assert (fg != flower_truth()).mean() < 0.02
    assert not foreground_from_segmim(np.array([[[0, 0, 254], [30, 35, 220]]], np.uint8)).any()
    assert foreground_from_segmim(np.array([[[60, 20, 200], [0, 0, 100]]], np.uint8)).all()


def test_flowers_problems_are_named(tmp_path, flowers_root):
    root = copy(flowers_root, tmp_path)
    (root / "segmim" / "segmim_00002.jpg").unlink()
    with pytest.raises(DatasetError, match="segmim/segmim_00002.jpg: segmentation missing"):
        FlowersDataset(root, 32, "train")
    (root / "setid.mat").unlink()
    with pytest.raises(DatasetError, match="setid.mat: missing"):
        FlowersDataset(root, 32, "train", use_masks=False)


# -- Stanford Dogs and DRC's release ------------------------------------------------------------


def test_dogs_counts_splits_labels_and_largest_box(dogs_root):
    train, test = StanfordDogsDataset(dogs_root, 64, "train"), StanfordDogsDataset(dogs_root, 64)
    assert len(train) == 3 and len(StanfordDogsDataset(dogs_root, 64, "test")) == 2
    assert len(StanfordDogsDataset(dogs_root, 64, "all")) == 5
    assert train.names[0] == "n02085620-Chihuahua/n02085620_100.jpg"
    assert train.records[0].box == INSIDE_BOX  # not the 20x20 decoy box of the same file
    assert train.records[0].size == (W, H)
    assert train.labels == [0, 1, 0] and not train.has_masks
    check_item(test[0], 64, with_mask=False)


def test_dogs_box_crop_holds_the_dog_at_the_centre(dogs_root):
    item = StanfordDogsDataset(dogs_root, 128, "train")[0]
    red = (item["image"][0] > 0).float()[None]
    side = 128 / 1.5
    assert_extent(red, 64 - side / 2, 64 + side / 2, 64 - side / 2, 64 + side / 2)


@pytest.mark.parametrize(
    "damage, piece",
    [
        (lambda a: a.write_text("<annotation><object>"), "not valid XML"),
        (lambda a: a.write_text("<annotation><size/></annotation>"), "no <object><bndbox>"),
        (
            lambda a: a.write_text(
                "<annotation><object><bndbox><xmin>a</xmin></bndbox></object></annotation>"
            ),
            "lacks numeric",
        ),
        (lambda a: a.unlink(), "box file missing"),
    ],
)
def test_dogs_bad_annotation_is_named(tmp_path, dogs_root, damage, piece):
    root = copy(dogs_root, tmp_path)
    damage(root / "Annotation" / "n02085782-Japanese_spaniel" / "n02085782_101")
    with pytest.raises(DatasetError) as info:
        StanfordDogsDataset(root, 32, "train")
    assert "Annotation/n02085782-Japanese_spaniel/n02085782_101" in str(info.value)
    assert piece in str(info.value)


def test_dogs_missing_list_is_named(tmp_path, dogs_root):
    root = copy(dogs_root, tmp_path)
    (root / "lists" / "test_list.mat").unlink()
    with pytest.raises(DatasetError, match="lists/test_list.mat: missing"):
        StanfordDogsDataset(root, 32, "train")


def test_drc_release_gives_masks_for_evaluation(dogs_root):
    params = paper_params("stanford_dogs", dogs_root, resolution=64)
    ds = build_dataset(params, "all", purpose="eval")
    assert isinstance(ds, DRCProcessedDataset) and ds.has_masks
    assert ds.names == ["train/3", "train/7", "test/a1"]
    assert len(build_dataset(params, "test")) == 1  # test -> eval by default
    item = ds[0]
    check_item(item, 64)
    # box (24, 20, 48, 40) of a 96x80 image, stretched to 64x64
    assert_extent(item["mask"], 24 * 64 / 96, 72 * 64 / 96, 20 * 64 / 80, 60 * 64 / 80)
    assert_image_matches_mask(item)
    assert isinstance(build_dataset(params, "train"), StanfordDogsDataset)  # training: official
    no_masks = paper_params("stanford_dogs", dogs_root, use_masks=False)
    assert isinstance(build_dataset(no_masks, "test"), StanfordDogsDataset)


def test_drc_missing_mask_and_missing_selection(tmp_path, dogs_root):
    root = copy(dogs_root, tmp_path)
    (root / "data_mrcnn" / "train" / "resized" / "7_maskresized.png").unlink()
    with pytest.raises(DatasetError, match="data_mrcnn/train/resized/7_maskresized.png: mask"):
        DRCProcessedDataset(root, 32, "train")
    (root / "data_tr_sel.npy").unlink()
    (root / "data_mrcnn" / "train" / "resized" / "7_resized.png").unlink()
    ds = DRCProcessedDataset(root, 32, "train")
    assert ds.names == ["train/3"]
    assert any("using all 1 image(s)" in w for w in ds.layout.warnings)


# -- Stanford Cars ------------------------------------------------------------------------------


def test_cars_counts_boxes_labels_and_crop(cars_root):
    train = StanfordCarsDataset(cars_root, 128, "train")
    test = StanfordCarsDataset(cars_root, 128, "test")
    assert len(train) == 3 and len(test) == 2 and len(StanfordCarsDataset(cars_root, 32, "all"))
    assert train.names == ["cars_train/00001.jpg", "cars_train/00002.jpg", "cars_train/00003.jpg"]
    assert train.records[0].box == tuple(float(v) for v in INSIDE_BOX)
    assert train.labels == [0, 1, 1] and test.labels is None
    item = train[0]
    check_item(item, 128, with_mask=False)
    red = (item["image"][0] > 0).float()[None]
    side = 128 / 1.5
    assert_extent(red, 64 - side / 2, 64 + side / 2, 64 - side / 2, 64 + side / 2)


def test_cars_test_annotations_with_labels_and_problems(tmp_path, cars_root):
    root = copy(cars_root, tmp_path)
    (root / "devkit" / "cars_test_annos.mat").rename(root / "cars_test_annos_withlabels.mat")
    assert len(StanfordCarsDataset(root, 32, "test")) == 2
    (root / "cars_train" / "00002.jpg").unlink()
    (root / "cars_test_annos_withlabels.mat").write_bytes(b"not a mat file")
    with pytest.raises(DatasetError) as info:
        StanfordCarsDataset(root, 32, "train")
    assert "cars_train/00002.jpg: listed in devkit/cars_train_annos.mat but missing" in str(
        info.value
    )
    assert "cars_test_annos_withlabels.mat: not a readable .mat file" in str(info.value)


def test_cars_annotation_without_box_fields(tmp_path, cars_root):
    from scipy.io import savemat

    root = copy(cars_root, tmp_path)
    arr = np.zeros((1, 1), dtype=[("fname", "O")])
    arr[0, 0] = ("00001.jpg",)
    savemat(root / "devkit" / "cars_train_annos.mat", {"annotations": arr})
    with pytest.raises(DatasetError, match="annotation 1 lacks fname or numeric bbox_x1"):
        StanfordCarsDataset(root, 32, "train")


# -- class folders ------------------------------------------------------------------------------


def test_class_folders_split_labels_and_bad_files(tmp_path):
    root = make_class_folders(tmp_path / "fs")
    train = ClassFolderDataset(root, 32, "train", holdout_fraction=0.25, seed=1)
    test = ClassFolderDataset(root, 32, "test", holdout_fraction=0.25, seed=1)
    assert len(train) == 9 and len(test) == 3 and not set(train.names) & set(test.names)
    assert ClassFolderDataset(root, 32, "all").labels == [0] * 4 + [1] * 4 + [2] * 4
    check_item(train[0], 32, with_mask=False)
    (root / "beta" / "broken.jpg").write_bytes(b"nope")
    with pytest.raises(DatasetError, match="beta/broken.jpg: unreadable"):
        ClassFolderDataset(root, 32, "all")
    with pytest.warns(UserWarning, match="broken.jpg"):
        assert len(ClassFolderDataset(root, 32, "all", on_bad_file="skip")) == 12


def test_class_folders_with_split_folders(tmp_path):
    make_class_folders(tmp_path / "fs" / "train", per_class=2)
    make_class_folders(tmp_path / "fs" / "test", per_class=1, classes=("alpha", "gamma"))
    root = tmp_path / "fs"
    assert len(ClassFolderDataset(root, 32, "train")) == 6
    test = ClassFolderDataset(root, 32, "test")
    assert test.names == ["test/alpha/alpha_0.png", "test/gamma/gamma_0.png"]
    assert test.labels == [0, 2]
    with pytest.raises(DatasetError, match="no class folders"):
        ClassFolderDataset(tmp_path / "fs" / "train" / "alpha", 32)


# -- build_dataset and parameters ---------------------------------------------------------------


def paper_params(kind, root=None, **data):
    return params_from_dict(
        {"run": {"name": "t"}, "data": {"kind": kind, "root": root and str(root), **data}}
    )


def test_build_dataset_dispatches_every_kind(cub_root, flowers_root, cars_root, tmp_path):
    cub = paper_params("cub", cub_root, split_scheme="redo", resolution=32)
    assert build_dataset(cub, "train").crop == "box"
    assert build_dataset(cub, "test").crop == "full"
    assert build_dataset(cub, "train", purpose="eval").crop == "full"
    drc = paper_params("cub", cub_root, split_scheme="redo", eval_protocol="drc")
    assert build_dataset(drc, "val").crop == "box_stretch"
    assert build_dataset(cub, "all", crop="full").crop == "full"
    flowers = paper_params("flowers", flowers_root, split_scheme="redo")
    assert isinstance(build_dataset(flowers, "test"), FlowersDataset)
    cars = build_dataset(paper_params("stanford_cars", cars_root), "test")
    assert isinstance(cars, StanfordCarsDataset) and not cars.has_masks
    fs = paper_params("class_folders", make_class_folders(tmp_path / "fs"), train_split="all")
    assert isinstance(build_dataset(fs, fs.data.train_split), ClassFolderDataset)
    clevr = tmp_path / "clevr6"
    for i in range(3):
        save(clevr / "images" / f"{i:06d}.png", object_image(INSIDE_BOX))
        save(clevr / "masks" / f"{i:06d}.png", rect_mask(INSIDE_BOX))
    ds = build_dataset(paper_params("clevr6", clevr, resolution=64), "all")
    assert ds.has_masks and len(ds) == 3
    assert_image_matches_mask(ds[0])


@pytest.mark.parametrize(
    "kind, download",
    [
        ("cub", "Caltech-UCSD Birds-200-2011"),
        ("stanford_dogs", "Stanford Dogs Dataset"),
        ("stanford_cars", "Stanford Cars Dataset"),
        ("flowers", "102 Category Flower Dataset"),
        ("clevr6", "clevr_with_masks_train.tfrecords"),
        ("class_folders", "FS-100"),
    ],
)
def test_unset_root_is_one_line_naming_the_key_and_the_download(kind, download, tmp_path):
    with pytest.raises(DatasetError) as info:
        build_dataset(paper_params(kind), "train")
    message = str(info.value)
    assert "\n" not in message
    for piece in ("'data.root' is not set", download, "docs/DATASETS.md"):
        assert piece in message
    with pytest.raises(DatasetError, match="'data.root' folder not found"):
        build_dataset(paper_params(kind, tmp_path / "nowhere"), "train")


def test_paper_parameter_files_load_without_a_root(repo):
    expected = {
        "cub": ("cub", 200, 58500),
        "stanford_dogs": ("stanford_dogs", 120, 59850),
        "stanford_cars": ("stanford_cars", 196, 40500),
        "flowers": ("flowers", 102, 30600),
        "clevr6": ("clevr6", 20, 174600),
        "fs100": ("class_folders", 100, 49950),
    }
    from comgan_lib.config import load_params

    for name, (kind, codes, steps) in expected.items():
        p = load_params(repo / "params" / f"{name}.yaml")
        assert (p.data.kind, p.model.num_codes, p.train.steps) == (kind, codes, steps)
        assert p.data.root is None and p.data.resolution == 128 and p.run.device == "cuda"
        assert (p.train.batch_size, p.train.lr, p.train.ema_decay) == (90, 2e-4, 0.999)
        assert p.eval.fid_samples == 20000 and p.model.gen_width == 512
        with pytest.raises(DatasetError, match="'data.root' is not set"):
            build_dataset(p, p.data.train_split)


@pytest.mark.parametrize(
    "data, piece",
    [
        ({"kind": "stanford_dogs", "split_scheme": "redo"}, "only cub and flowers"),
        ({"kind": "cub", "eval_split": "val"}, "with split_scheme official has the splits"),
        ({"kind": "synthetic", "train_split": "all"}, "data.kind synthetic has the splits"),
        ({"kind": "folder", "root": ".", "eval_split": "val"}, "'data.eval_split' is 'val'"),
    ],
)
def test_split_settings_are_checked_when_loading(data, piece):
    with pytest.raises(ConfigError, match=piece):
        params_from_dict({"run": {"name": "t"}, "data": data})

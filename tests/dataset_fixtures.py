"""Small datasets fabricated in the official layouts of CUB, Stanford Dogs, Stanford Cars, Flowers,
DRC's processed release and class folders, for the loader and data-check tests.

Every image is a dark blue field with a red object rectangle exactly on its bounding box; masks
(where the layout has them) are that rectangle, so a test can check that image and mask stay
aligned through any crop.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

BG = (20, 30, 120)
FG = (230, 40, 30)
W, H = 200, 160  # image size of the CUB / Dogs / Cars fixtures

# (x, y, w, h) boxes: a square box well inside the image (its 1.5x crop is not clipped) and a
# box at the top-left corner (its 1.5x crop is clipped).
INSIDE_BOX = (70, 50, 60, 60)
CORNER_BOX = (0, 0, 80, 60)
OTHER_BOXES = [(40, 30, 100, 90), (90, 20, 70, 120), (30, 60, 120, 50), (60, 40, 50, 50)]
CUB_BOXES = [INSIDE_BOX, CORNER_BOX, *OTHER_BOXES]  # 6 images


def object_image(box, size=(W, H)) -> np.ndarray:
    """uint8 [H, W, 3]: background colour with the FG rectangle on ``box`` (x, y, w, h)."""
    w, h = size
    a = np.empty((h, w, 3), np.uint8)
    a[:] = BG
    x, y, bw, bh = box
    a[y : y + bh, x : x + bw] = FG
    return a


def rect_mask(box, size=(W, H), value=255) -> np.ndarray:
    w, h = size
    m = np.zeros((h, w), np.uint8)
    x, y, bw, bh = box
    m[y : y + bh, x : x + bw] = value
    return m


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


# -- CUB ----------------------------------------------------------------------------------------

CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]


def cub_names() -> list[str]:
    return [f"{CUB_CLASSES[i % 2]}/Bird_{i + 1:04d}.jpg" for i in range(len(CUB_BOXES))]


def make_cub(root: Path, segmentations_beside: bool = False) -> Path:
    """Six images; official split: ids 1-3 train, 4-6 test; ReDO split: 1-3 train (0),
    4 val (1), 5-6 test (2)."""
    root.mkdir(parents=True, exist_ok=True)
    names = cub_names()
    seg_root = root.parent / "segmentations" if segmentations_beside else root / "segmentations"
    for name, box in zip(names, CUB_BOXES, strict=True):
        save(root / "images" / name, object_image(box), quality=95)
        save(seg_root / Path(name).with_suffix(".png"), rect_mask(box))
    ids = range(1, len(names) + 1)
    (root / "images.txt").write_text("".join(f"{i} {n}\n" for i, n in zip(ids, names, strict=True)))
    (root / "bounding_boxes.txt").write_text(
        "".join(
            f"{i} {x:.1f} {y:.1f} {w:.1f} {h:.1f}\n"
            for i, (x, y, w, h) in zip(ids, CUB_BOXES, strict=True)
        )
    )
    (root / "train_test_split.txt").write_text("".join(f"{i} {1 if i <= 3 else 0}\n" for i in ids))
    redo = {1: 0, 2: 0, 3: 0, 4: 1, 5: 2, 6: 2}
    (root / "train_val_test_split.txt").write_text("".join(f"{i} {redo[i]}\n" for i in ids))
    return root


# -- Stanford Dogs ------------------------------------------------------------------------------

DOG_BREEDS = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"]


def voc_xml(path: Path, boxes, size=(W, H)) -> Path:
    """A VOC annotation with one <object> per (x, y, w, h) box."""
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = path.name
    size_el = ET.SubElement(root, "size")
    ET.SubElement(size_el, "width").text = str(size[0])
    ET.SubElement(size_el, "height").text = str(size[1])
    ET.SubElement(size_el, "depth").text = "3"
    for x, y, w, h in boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = "dog"
        bb = ET.SubElement(obj, "bndbox")
        for key, value in (("xmin", x), ("ymin", y), ("xmax", x + w), ("ymax", y + h)):
            ET.SubElement(bb, key).text = str(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path)
    return path


def _cell(strings) -> np.ndarray:
    return np.array([[s] for s in strings], dtype=object)


def make_dogs(root: Path) -> Path:
    """Five images: 3 train, 2 test. Image 0 carries a small decoy box besides INSIDE_BOX."""
    root.mkdir(parents=True, exist_ok=True)
    boxes = [INSIDE_BOX, CORNER_BOX, *OTHER_BOXES[:3]]
    entries = []
    for i, box in enumerate(boxes):
        breed = DOG_BREEDS[i % 2]
        wnid = breed.split("-")[0]
        stem = f"{wnid}_{100 + i}"
        save(root / "Images" / breed / f"{stem}.jpg", object_image(box), quality=95)
        xml_boxes = [box, (5, 120, 20, 20)] if i == 0 else [box]
        voc_xml(root / "Annotation" / breed / stem, xml_boxes)
        entries.append((f"{breed}/{stem}.jpg", f"{breed}/{stem}", i % 2 + 1))
    (root / "lists").mkdir(exist_ok=True)
    for name, part in (("train_list.mat", entries[:3]), ("test_list.mat", entries[3:])):
        savemat(
            root / "lists" / name,
            {
                "file_list": _cell([e[0] for e in part]),
                "annotation_list": _cell([e[1] for e in part]),
                "labels": np.array([[e[2]] for e in part], dtype=float),
            },
        )
    return root


# -- Stanford Cars ------------------------------------------------------------------------------

_CAR_FIELDS = [(k, "O") for k in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]


def _car_annotations(rows, with_class=True) -> np.ndarray:
    fields = _CAR_FIELDS if with_class else [f for f in _CAR_FIELDS if f[0] != "class"]
    arr = np.zeros((1, len(rows)), dtype=fields)
    for i, (fname, (x, y, w, h), label) in enumerate(rows):
        values = [x, y, x + w, y + h] + ([label] if with_class else []) + [fname]
        arr[0, i] = tuple(values)
    return arr


def make_cars(root: Path) -> Path:
    """Three train images (one with INSIDE_BOX) and two test images."""
    train = [
        ("00001.jpg", INSIDE_BOX, 1),
        ("00002.jpg", CORNER_BOX, 2),
        ("00003.jpg", OTHER_BOXES[0], 2),
    ]
    test = [("00001.jpg", OTHER_BOXES[1], 1), ("00002.jpg", OTHER_BOXES[2], 1)]
    for split, rows in (("train", train), ("test", test)):
        for fname, box, _ in rows:
            save(root / f"cars_{split}" / fname, object_image(box), quality=95)
    (root / "devkit").mkdir(parents=True, exist_ok=True)
    savemat(root / "devkit" / "cars_train_annos.mat", {"annotations": _car_annotations(train)})
    savemat(
        root / "devkit" / "cars_test_annos.mat",
        {"annotations": _car_annotations(test, with_class=False)},
    )
    return root


# -- DRC's processed release (inside a Dogs or Cars folder) --------------------------------------

DRC_SIZE = (96, 80)  # pre-resized images of the fixture


def make_drc(root: Path, train_tokens=(3, 7), test_tokens=("a1",), cars_names=False) -> Path:
    """DRC pairs: image = object rectangle, mask = the same rectangle; selection .npy files."""
    box = (24, 20, 48, 40)
    for part, tokens in (("train", train_tokens), ("test", test_tokens)):
        folder = root / "data_mrcnn" / part / "resized"
        for token in tokens:
            save(folder / f"{token}_resized.png", object_image(box, DRC_SIZE))
            save(folder / f"{token}_maskresized.png", rect_mask(box, DRC_SIZE))
    tr, te = (
        ("data_mrcnn_train_select.npy", "data_mrcnn_test_select.npy")
        if cars_names
        else ("data_tr_sel.npy", "data_te_sel.npy")
    )
    np.save(root / tr, np.array(train_tokens))
    np.save(root / te, np.array(test_tokens))
    return root


# -- Flowers ------------------------------------------------------------------------------------

FLOWER_SIZE = (240, 200)
FLOWER_COLOURS = [(250, 220, 30), (200, 40, 120), (90, 30, 160), (25, 25, 25), (240, 240, 240)]
FLOWER_BOX = (60, 40, 120, 100)


def flower_truth(size=FLOWER_SIZE) -> np.ndarray:
    return rect_mask(FLOWER_BOX, size) > 0


def make_flowers(root: Path) -> Path:
    """Five images: trnid = [1, 2], valid = [3], tstid = [4, 5]; segmim JPEG with a blue
    background and the flower rectangle in five colours (dark and white included)."""
    rng = np.random.default_rng(0)
    truth = flower_truth()
    for i, colour in enumerate(FLOWER_COLOURS, 1):
        photo = rng.integers(0, 255, size=(FLOWER_SIZE[1], FLOWER_SIZE[0], 3), dtype=np.uint8)
        photo[truth] = colour
        save(root / "jpg" / f"image_{i:05d}.jpg", photo, quality=90)
        seg = np.empty_like(photo)
        seg[:] = (0, 0, 254)
        texture = rng.integers(-15, 15, size=photo.shape)
        seg[truth] = np.clip(np.array(colour) + texture[truth], 0, 255)
        save(root / "segmim" / f"segmim_{i:05d}.jpg", seg, quality=75)
    savemat(
        root / "setid.mat",
        {"trnid": np.array([[1, 2]]), "valid": np.array([[3]]), "tstid": np.array([[4, 5]])},
    )
    savemat(root / "imagelabels.mat", {"labels": np.array([[1, 1, 2, 2, 3]])})
    return root


# -- class folders ------------------------------------------------------------------------------


def make_class_folders(root: Path, per_class=4, classes=("alpha", "beta", "gamma")) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            a = np.full((40, 50, 3), (c * 80, i * 40, 100), np.uint8)
            save(root / name / f"{name}_{i}.png", a)
    return root

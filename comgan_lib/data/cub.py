"""CUB-200-2011 (Caltech-UCSD Birds) in its official layout, with the separately distributed
segmentations.

Layout (``ROOT`` = the ``CUB_200_2011`` folder)::

    ROOT/images.txt                   <id> <class>/<file>.jpg, one line per image (11,788)
    ROOT/bounding_boxes.txt           <id> <x> <y> <w> <h>
    ROOT/train_test_split.txt         <id> <1 = train, 0 = test>          (5,994 / 5,794)
    ROOT/train_val_test_split.txt     <id> <0 train, 1 val, 2 test>       (ReDO: 10,000/788/1,000)
    ROOT/images/<class>/<file>.jpg
    ROOT/segmentations/<class>/<file>.png   (or ROOT/../segmentations/, where segmentations.tgz
                                             lands when extracted beside CUB_200_2011.tgz)

Splits: ``split_scheme="official"`` gives train/test from ``train_test_split.txt``;
``"redo"`` gives train/val/test from ReDO's ``train_val_test_split.txt`` (rows matched by id, or
by row order when its ids do not match images.txt but the row count does). ``"all"`` is every
image in images.txt order, whatever the scheme (the released ComGAN trains on all 11,788).

Crops (see ``comgan_lib.data.common``): ``box`` for training (1.5x the bounding box, FineGAN and
the released code), ``full`` for the released ComGAN's evaluation (Resize(152) + CenterCrop(128),
scaled to R), ``box_stretch`` for DRC's evaluation. Masks are the segmentation's grey level / 255,
transformed with the image, > 0.5.

Usage::

    ds = CUBDataset("data/CUB_200_2011", 128, split="train", split_scheme="redo", crop="full")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from comgan_lib.data.common import AnnotatedImageDataset, Layout, Record, load_gray, read_table, rel

SPLIT_SCHEMES = ("official", "redo")
TITLE = "CUB-200-2011"


def _segmentation_dir(root: Path) -> Path | None:
    for candidate in (root / "segmentations", root.parent / "segmentations"):
        if candidate.is_dir():
            return candidate
    return None


def scan(root, split_scheme: str = "redo", use_masks: bool = True) -> Layout:
    """Parse the CUB files under ``root``; every missing or malformed file is a problem line."""
    if split_scheme not in SPLIT_SCHEMES:
        raise ValueError(f"split_scheme must be one of {', '.join(SPLIT_SCHEMES)}")
    root = Path(root)
    lay = Layout(TITLE, root)
    if not root.is_dir():
        lay.problem(f"{root}: dataset folder not found")
        return lay

    rows = read_table(root / "images.txt", 2, lay, "<id> <class>/<file>.jpg")
    if rows is None:
        lay.problem("images.txt: missing (one line '<id> <class>/<file>.jpg' per image)")
        rows = []
    ids: list[str] = []
    names: dict[str, str] = {}
    for image_id, name in rows:
        if image_id in names:
            lay.problem(f"images.txt: image id {image_id} listed twice")
            continue
        ids.append(image_id)
        names[image_id] = name

    boxes: dict[str, tuple[float, float, float, float]] = {}
    box_rows = read_table(root / "bounding_boxes.txt", 5, lay, "<id> <x> <y> <w> <h>")
    if box_rows is None:
        lay.problem("bounding_boxes.txt: missing (one line '<id> <x> <y> <w> <h>' per image)")
    else:
        for image_id, *values in box_rows:
            try:
                x, y, w, h = (float(v) for v in values)
            except ValueError:
                lay.problem(
                    f"bounding_boxes.txt: the box of image {image_id} is not numeric: "
                    f"{' '.join(values)}"
                )
                continue
            if w <= 0 or h <= 0 or x < 0 or y < 0:
                lay.problem(f"bounding_boxes.txt: image {image_id} has an invalid box {values}")
                continue
            if image_id not in names:
                lay.problem(f"bounding_boxes.txt: box for image id {image_id} not in images.txt")
                continue
            boxes[image_id] = (x, y, w, h)
        missing = [i for i in ids if i not in boxes]
        if missing:
            lay.problem(
                f"bounding_boxes.txt: no box for {len(missing)} image(s), ids "
                + ", ".join(missing[:10])
                + (" ..." if len(missing) > 10 else "")
            )

    images_dir = root / "images"
    if not images_dir.is_dir():
        lay.problem("images/: folder missing (it holds <class>/<file>.jpg)")
    seg_dir = _segmentation_dir(root) if use_masks else None
    if use_masks and seg_dir is None:
        lay.problem(
            "segmentations/: folder missing (segmentations.tgz is distributed separately; put it "
            "in or beside the dataset folder, or set data.use_masks: false for generation only)"
        )
    lay.has_masks = seg_dir is not None

    found_images = found_masks = 0
    for image_id in ids:
        name = names[image_id]
        image = images_dir / name
        mask = seg_dir / Path(name).with_suffix(".png") if seg_dir else None
        if images_dir.is_dir():
            if image.is_file():
                found_images += 1
            else:
                lay.problem(f"images/{name}: listed in images.txt but missing")
        if mask is not None:
            if mask.is_file():
                found_masks += 1
            else:
                lay.problem(f"{rel(mask, root)}: segmentation missing")
        label = _class_index(name)
        lay.records.append(Record(name, image, mask, boxes.get(image_id), label=label))

    lay.counts = {
        "images listed": len(ids),
        "images found": found_images,
        "boxes": len(boxes),
        "masks found": found_masks,
    }
    lay.splits["all"] = list(range(len(ids)))
    position = {image_id: i for i, image_id in enumerate(ids)}
    if split_scheme == "official":
        _read_split(
            lay,
            root / "train_test_split.txt",
            ids,
            position,
            {"1": "train", "0": "test"},
            "it comes with CUB_200_2011.tgz",
        )
    else:
        _read_split(
            lay,
            root / "train_val_test_split.txt",
            ids,
            position,
            {"0": "train", "1": "val", "2": "test"},
            "it is ReDO's split file, datasplits/cub in ReDO's repository; or set "
            "data.split_scheme: official to use train_test_split.txt",
        )
    return lay


def _class_index(name: str) -> int | None:
    head = name.split("/", 1)[0].split(".", 1)[0]
    return int(head) - 1 if head.isdigit() else None


def _read_split(lay: Layout, path: Path, ids, position, codes: dict, hint: str) -> None:
    for split in dict.fromkeys(codes.values()):
        lay.splits[split] = []
    rows = read_table(path, 2, lay, "<id> <" + "/".join(codes) + ">")
    if rows is None:
        lay.problem(f"{path.name}: missing; {hint}")
        return
    by_id = all(image_id in position for image_id, _ in rows)
    if not by_id and len(rows) == len(ids):
        lay.warnings.append(
            f"{path.name}: its ids do not match images.txt; rows are matched in images.txt order"
        )
    seen = set()
    for row, (image_id, code) in enumerate(rows):
        if code not in codes:
            allowed = ", ".join(codes)
            lay.problem(
                f"{path.name}: image {image_id} has split code {code!r} (allowed: {allowed})"
            )
            continue
        if by_id:
            index = position[image_id]
        elif len(rows) == len(ids):
            index = row
        else:
            lay.problem(f"{path.name}: image id {image_id} not in images.txt")
            continue
        if index in seen:
            lay.problem(f"{path.name}: image id {image_id} listed twice")
            continue
        seen.add(index)
        lay.splits[codes[code]].append(index)
    if ids and len(seen) != len(ids):
        lay.problem(f"{path.name}: {len(ids) - len(seen)} image(s) of images.txt have no split")
    for split in lay.splits:
        lay.splits[split].sort()


class CUBDataset(AnnotatedImageDataset):
    """CUB-200-2011 items (see the module docstring).

    Args:
        root: the CUB_200_2011 folder.
        resolution: output side R.
        split: "train", "test", "val" (ReDO scheme only) or "all".
        split_scheme: "redo" (train_val_test_split.txt) or "official" (train_test_split.txt).
        crop: "box" (training), "full" (released ComGAN evaluation), "box_stretch" (DRC).
        use_masks: read segmentations/ (False: generation only, no "mask" key).
    """

    def __init__(
        self,
        root,
        resolution: int = 128,
        split: str = "train",
        split_scheme: str = "redo",
        crop: str = "box",
        use_masks: bool = True,
    ):
        super().__init__(scan(root, split_scheme, use_masks), resolution, split, crop, use_masks)
        self.split_scheme = split_scheme

    def load_mask(self, record: Record) -> np.ndarray:
        return load_gray(record.mask)

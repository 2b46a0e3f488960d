"""Stanford Cars in its official layout (image folders and the devkit's .mat annotations).

Layout::

    ROOT/cars_train/<fname>.jpg                 8,144 images (cars_train.tgz)
    ROOT/cars_test/<fname>.jpg                  8,041 images (cars_test.tgz)
    ROOT/devkit/cars_train_annos.mat            struct array 'annotations' with bbox_x1, bbox_y1,
                                                bbox_x2, bbox_y2 (box corners), class (1..196),
                                                fname (car_devkit.tgz)
    ROOT/devkit/cars_test_annos.mat             the same without class; or
                                                cars_test_annos_withlabels.mat (in devkit/ or ROOT)

A ``cars_train/cars_train/`` nesting, as some mirrors pack it, is accepted. Box corners become
(x, y, w, h) = (x1, y1, x2 - x1, y2 - y1). The training crop is 1.5x the box (``box``), as FineGAN
and the same author's L2IC do. Stanford Cars has no masks; with DRC's processed release in the
same folder (see ``comgan_lib.data.drc``) evaluation reads DRC's approximate masks instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from comgan_lib.data.common import AnnotatedImageDataset, Layout, Record, load_mat, rel

TITLE = "Stanford Cars"
ANNOTATIONS = {
    "train": ("devkit/cars_train_annos.mat",),
    "test": (
        "devkit/cars_test_annos.mat",
        "devkit/cars_test_annos_withlabels.mat",
        "cars_test_annos_withlabels.mat",
    ),
}
_BOX_FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")


def _image_dir(root: Path, split: str) -> Path:
    folder = root / f"cars_{split}"
    nested = folder / f"cars_{split}"
    return nested if nested.is_dir() else folder


def _annotations(mat: dict) -> list:
    value = mat.get("annotations")
    if value is None:
        raise ValueError("no 'annotations' struct array")
    return list(np.atleast_1d(np.asarray(value, dtype=object)).ravel())


def scan(root) -> Layout:
    """Parse the Stanford Cars files under ``root``; each missing or malformed file is a problem."""
    root = Path(root)
    lay = Layout(TITLE, root)
    if not root.is_dir():
        lay.problem(f"{root}: dataset folder not found")
        return lay
    found_images = boxes = 0
    for split, candidates in ANNOTATIONS.items():
        lay.splits[split] = []
        images_dir = _image_dir(root, split)
        if not images_dir.is_dir():
            lay.problem(f"cars_{split}/: folder missing (cars_{split}.tgz)")
        path = next((root / c for c in candidates if (root / c).is_file()), None)
        if path is None:
            lay.problem(f"{' or '.join(candidates)}: missing (car_devkit.tgz)")
            continue
        mat = load_mat(path, lay)
        if mat is None:
            continue
        name = rel(path, root)
        try:
            entries = _annotations(mat)
        except ValueError as e:
            lay.problem(f"{name}: {e}")
            continue
        for number, entry in enumerate(entries, 1):
            try:
                fname = str(entry.fname)
                x1, y1, x2, y2 = (float(getattr(entry, f)) for f in _BOX_FIELDS)
            except (AttributeError, TypeError, ValueError):
                lay.problem(
                    f"{name}: annotation {number} lacks fname or numeric {', '.join(_BOX_FIELDS)}"
                )
                continue
            image = images_dir / fname
            if images_dir.is_dir():
                if image.is_file():
                    found_images += 1
                else:
                    lay.problem(f"{rel(image, root)}: listed in {name} but missing")
            box = None
            if x2 <= x1 or y2 <= y1 or x1 < 0 or y1 < 0:
                lay.problem(f"{name}: {fname} has an invalid box ({x1:g}, {y1:g}, {x2:g}, {y2:g})")
            else:
                box = (x1, y1, x2 - x1, y2 - y1)
                boxes += 1
            label = getattr(entry, "class", None)
            label = int(label) - 1 if isinstance(label, (int, float, np.number)) else None
            lay.splits[split].append(len(lay.records))
            lay.records.append(Record(f"cars_{split}/{fname}", image, None, box, label=label))
    lay.splits["all"] = list(range(len(lay.records)))
    lay.counts = {"images listed": len(lay.records), "images found": found_images, "boxes": boxes}
    return lay


class StanfordCarsDataset(AnnotatedImageDataset):
    """Stanford Cars items from the official files, without masks (see the module docstring).

    Args:
        root: the folder holding cars_train/, cars_test/ and devkit/.
        resolution: output side R.
        split: "train" (8,144), "test" (8,041) or "all".
        crop: "box" (training, 1.5x the box), "box_stretch", "full" or "center".
    """

    def __init__(self, root, resolution: int = 128, split: str = "train", crop: str = "box"):
        super().__init__(scan(root), resolution, split, crop, use_masks=False)
